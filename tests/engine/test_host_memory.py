"""`keep_freed_host_memory`: freed tensor memory is reused instead of being faulted in again every step.

The allocator setting is process-wide, so each check runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import torch
    from egokit.engine.host_memory import keep_freed_host_memory

    kept = keep_freed_host_memory() if sys.argv[1] == "keep" else False

    def step():  # activations of a training step: allocated, used, freed, every step (1-70 MiB each)
        xs = [torch.ones(mib * 2**18) for mib in (1, 3, 9, 20, 40, 70)]
        ys = [x * 2 for x in xs]
        del xs, ys

    step()  # the first step faults its memory in either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
""")


def _run(mode: str, **env) -> dict:
    import json
    import os

    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_memory_is_reused_without_page_faults():
    plain, kept = _run("plain"), _run("keep")
    assert kept["kept"] is True
    assert plain["faults"] > 100_000  # ~290 MiB of 4 KiB pages faulted in again every step (measured: 330-370 k)
    assert kept["faults"] < plain["faults"] / 5  # measured: ~22 k


def test_environment_variable_turns_it_off():
    assert _run("keep", EGOKIT_KEEP_HOST_MEMORY="0")["kept"] is False
