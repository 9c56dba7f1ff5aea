"""`egokit pretrain`: runs end to end, distributed equivalence, kill-and-resume exactness, atomic checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import MICRO_MODEL_OVERRIDES

REPO = Path(__file__).parents[2]


def _overrides(data: Path, out: Path, *extra: str) -> list[str]:
    return [*MICRO_MODEL_OVERRIDES, f"data.root={data}", f"output_dir={out}", "data.chunk_seconds=4",
            "data.num_workers=0", "data.batch_size=4", "train.precision=fp32", "train.log_every=1",
            "eval.egomcq=null", *extra]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=REPO, **kwargs)


def _latest_step(run: Path) -> int:
    pointer = run / "checkpoints" / "latest"
    return int(pointer.read_text().strip().split("-")[1]) if pointer.is_file() else 0


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_pretrain_runs_and_writes_a_loadable_model(tiny_synth, tmp_path):
    from egokit.pretrain import pretrain

    result = pretrain(str(REPO / "recipes" / "demo.yaml"),
                      _overrides(tiny_synth, tmp_path / "run", "train.max_steps=3", "train.checkpoint_every=2",
                                 f"eval.egomcq={tiny_synth}", "eval.limit=4"))
    assert result.steps == 3
    assert set(result.final_losses) >= {"loss", "egonce", "mlm", "vtm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in result.final_losses.values())
    import egokit

    model = egokit.load_model(result.model_dir)
    assert model.config.width == 32 and (result.model_dir / "tokenizer").is_dir()
    summary = json.loads((tmp_path / "run" / "results.json").read_text())["summary"]
    assert summary["steps"] == 3 and summary["eval"]["egomcq"]["ensemble"]["inter"] >= 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if "loss/loss" in line] == [1, 2, 3]
    assert (tmp_path / "run" / "recipe.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest", "step-00000002", "step-00000003"]


def test_unknown_recipe_key_is_an_error(tiny_synth, tmp_path):
    from egokit.pretrain import pretrain
    from egokit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean optim\.lr"):
        pretrain(str(REPO / "recipes" / "demo.yaml"), _overrides(tiny_synth, tmp_path / "run", "optim.lrr=1"))


@pytest.mark.parametrize("static", ["true", "false"])  # each rank scores its own slots' pairs / its videos' pairs
def test_two_processes_match_one_process_on_the_same_global_batch(tiny_synth, tmp_path, static):
    # Some gradients are analytically zero (key biases, the zero-initialised time attention's q/k) and only carry
    # float noise, which differs with the reduction order; Adam with eps 1e-8 would blow that noise up to +-lr.
    # A larger eps keeps every real update (gradients >> 1e-3) and silences the noise.
    common = ["train.max_steps=2", "train.checkpoint_every=100", "optim.eps=1e-3", f"train.static_shapes={static}"]
    one = _run([sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml",
                *_overrides(tiny_synth, tmp_path / "one", *common, "data.batch_size=4")])
    assert one.returncode == 0, one.stderr[-3000:]
    # Accelerate's own `--cpu` multi-process mode needs MPI; `--multi_gpu` on a CPU-only machine + egokit's
    # CPU accelerator gives a 2-process gloo job.
    two = _run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "-m", "egokit", "pretrain", "recipes/demo.yaml",
                *_overrides(tiny_synth, tmp_path / "two", *common, "data.batch_size=2")])
    assert two.returncode == 0, two.stderr[-3000:]
    losses = [json.loads((tmp_path / r / "results.json").read_text())["summary"]["final_losses"] for r in ("one", "two")]
    for key in ("egonce", "mlm", "vtm", "loss"):
        assert losses[0][key] == pytest.approx(losses[1][key], abs=1e-5), key
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], rtol=0, atol=1e-5, msg=key)


def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(tiny_synth, tmp_path):
    common = ["train.max_steps=8", "train.checkpoint_every=1", "train.keep_checkpoints=3"]
    ref = _run([sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml", *_overrides(tiny_synth, tmp_path / "ref", *common)])
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "killed"
    args = [sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml", *_overrides(tiny_synth, run, *common)]
    kill_after = random.Random(os.getpid()).randint(1, 4)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _latest_step(run) < kill_after:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _latest_step(run) < 8
    for folder in (run / "checkpoints").glob("step-*"):
        assert (folder / "COMPLETE").is_file() and (folder / "model.safetensors").is_file(), folder

    resumed = _run(args + ["--resume", "latest"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    a, b = _weights(tmp_path / "ref"), _weights(run)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_canonical_order_maps_rank_major_doubled_batches_to_one_process_order():
    from egokit.engine.objective import canonical_order

    # 2 ranks x (2 positives + 2 negatives): gathered = [p0 p1 n0 n1 | p2 p3 n2 n3]
    gathered = ["p0", "p1", "n0", "n1", "p2", "p3", "n2", "n3"]
    order = canonical_order(4, 2, True)
    assert [gathered[i] for i in order] == ["p0", "p1", "p2", "p3", "n0", "n1", "n2", "n3"]
    assert canonical_order(4, 2, False).tolist() == list(range(8))
