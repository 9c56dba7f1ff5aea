"""Interrupting `egokit train nlq` (a feature-head task): a stop signal during head training ends the run with the
"continue with: ... --resume latest" command; resuming reuses the cached features and trains the head again, to
the same head and metrics as an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from egokit.cli.invocation import interrupt_message
from egokit.engine.interrupt import TrainingInterrupted
from egokit.errors import ConfigError
from egokit.tasks.runner import run_task
from egokit_nlq import NLQ


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.01)


def test_a_stopped_head_training_resumes_from_the_cached_features_to_the_same_head(nlq_setup, tmp_path):
    root = nlq_setup
    common = {"checkpoint": str(root / "ckpt"),
              "overrides": [f"data={root}", f"features={root / 'features'}", "dim=32", "finetune.epochs=4",
                            "finetune.batch_size=12", "dropout=0.1"]}
    reference = run_task("nlq", "train", output_dir=tmp_path / "ref", **common)
    meta = root / "features" / "egovlpv2-nlq" / "embed_meta.json"
    features = {f.name: f.stat().st_mtime_ns for f in meta.parent.glob("*.pt")}

    task, steps = NLQ(), []

    def fit_head(options, train, *, on_step=None, **kwargs):  # SIGTERM arrives during the head's third step
        def step(loss):
            steps.append(loss)
            if len(steps) == 3:
                _deliver(signal.SIGTERM)
            if on_step is not None:
                on_step(loss)

        return NLQ.fit_head(task, options, train, on_step=step, **kwargs)

    task.fit_head = fit_head
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        run_task(task, "train", output_dir=run, **common)
    exc = info.value
    assert (exc.step, exc.signum, exc.checkpoint, exc.resumable) == (3, signal.SIGTERM, None, True)
    command = ["egokit", "train", "nlq", "--ckpt", "ckpt", "-o", str(run)]
    assert interrupt_message(exc, command) == f"interrupted at step 3; continue with: egokit train nlq --ckpt ckpt " \
                                             f"-o {run} --resume latest"
    assert not (run / "nlq_head").exists() and len(steps) == 3

    resumed = run_task("nlq", "train", output_dir=run, resume="latest", **common)
    assert len(features) == 16  # the cached features were reused, not embedded again
    assert {f.name: f.stat().st_mtime_ns for f in meta.parent.glob("*.pt")} == features
    assert resumed.metrics == reference.metrics
    a, b = (load_file(str(r / "nlq_head" / "head.safetensors")) for r in (tmp_path / "ref", run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run / "nlq_predictions.json").read_text()) == \
        json.loads((tmp_path / "ref" / "nlq_predictions.json").read_text())

    with pytest.raises(ConfigError, match=r"nlq: --resume .*step-1: a feature-head run has no training "
                                          r"checkpoints; --resume latest reuses"):
        run_task("nlq", "train", output_dir=run, resume=str(run / "train_state" / "step-1"), **common)
