"""Resumable fine-tuning (:func:`egokit.engine.finetune.finetune` with ``checkpoints=``): a run stopped by a signal
anywhere -- in the middle of an epoch, after an epoch's last step (its validation still to run), during a
validation, between ``checkpoint_every`` checkpoints -- continues from its checkpoint to the same module, best
record and history bit for bit; the data a dataset draws at random does not depend on which process or worker
loads it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from egokit.engine.finetune import FinetuneOptions, TrainingCheckpoints, finetune
from egokit.engine.interrupt import TrainingInterrupted
from egokit.errors import CheckpointError, ConfigError


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.01)


class Noisy(torch.utils.data.Dataset):
    """Regression items with a random perturbation drawn from torch's global RNG when loaded (as the task datasets
    draw their random frames and captions)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i] + 0.3 * torch.randn(3), "y": self.y[i]}


class Regressor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))

    def forward(self, batch: dict) -> dict:
        return {"loss": ((self.net(batch["x"]) - batch["y"]) ** 2).mean()}


VAL = Noisy(12)


def _run(root: Path, *, resume: str | None = None, stop: tuple[str, int] | None = None, every: int | None = None,
         workers: int = 0, lr: float = 0.02):
    """Train on 22 items (5 steps of 4 per epoch) for 3 epochs; ``stop``: ("step", n) sends SIGTERM during step n,
    ("validate", e) during epoch e's validation. Returns the result, the best record's object and the validated
    epochs."""
    from egokit.engine.accel import make_accelerator
    from egokit.tasks.base import MetricSpec
    from egokit.tasks.selection import BestCheckpoint

    accelerator = make_accelerator()
    torch.manual_seed(1)
    model = Regressor()
    ctx = SimpleNamespace(is_main=True, accelerator=accelerator)
    best = BestCheckpoint(ctx, MetricSpec("loss", higher_is_better=False), root / "best",
                          lambda folder: torch.save(model.state_dict(), folder / "weights.pt"))
    validated = []

    def validate(module, epoch, step):
        validated.append(epoch)
        if stop == ("validate", epoch):
            _deliver(signal.SIGTERM)
        with torch.no_grad():
            loss = sum(float(module({"x": VAL.x[i:i + 1], "y": VAL.y[i:i + 1]})["loss"]) for i in range(12))
        metrics = {"loss": loss / 12}
        best.update(metrics, epoch, step)
        return metrics

    def on_log(step, record):
        if stop == ("step", step):
            _deliver(signal.SIGTERM)

    settings = FinetuneOptions(epochs=3, batch_size=4, lr=lr, warmup=0.2, log_every=1, checkpoint_every=every)
    checkpoints = TrainingCheckpoints(root / "train_state", resume=resume, state={"best": best})
    result = finetune(accelerator, model, Noisy(22), settings, seed=7, num_workers=workers, validate=validate,
                      on_log=on_log, checkpoints=checkpoints)
    return result, best, validated


def _same_run(a, b) -> None:
    (result_a, best_a, _), (result_b, best_b, _) = a, b
    assert result_a.steps == result_b.steps == 15
    state_a, state_b = result_a.module.state_dict(), result_b.module.state_dict()
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=0, msg=key)
    assert best_a.best == best_b.best
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in res.history] for res in (result_a, result_b)]
    assert strip[0] == strip[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root, _run(root)


def test_an_uninterrupted_run_keeps_the_last_two_epoch_end_checkpoints(reference):
    root, (result, best, validated) = reference
    assert validated == [0, 1, 2]
    folder = root / "train_state"
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-00000010", "step-00000015"]
    assert (folder / "latest").read_text().strip() == "step-00000015"
    state = torch.load(folder / "step-00000015" / "training_state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch"], state["validate_pending"]) == (15, 2, 5, False)
    assert state["state"]["best"]["best"] == best.best
    saved = torch.load(folder / "step-00000015" / "module.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in result.module.state_dict().items())
    weights = torch.load(root / "best" / "weights.pt", weights_only=True)  # the best epoch's weights
    assert best.best["epoch"] in (0, 1, 2) and set(weights) == set(saved)


@pytest.mark.parametrize("stop, stopped_at, pending", [
    (("step", 3), 3, False),        # in the middle of the first epoch: no checkpoint before it
    (("step", 5), 5, True),         # an epoch's last step: its validation runs after the resume
    (("step", 12), 12, False),      # after an epoch-end checkpoint
    (("validate", 1), 10, False),   # during a validation: it finishes, the epoch-end checkpoint is written
])
def test_a_stopped_run_resumes_to_the_same_module_best_and_history(reference, tmp_path, stop, stopped_at, pending):
    with pytest.raises(TrainingInterrupted) as info:
        _run(tmp_path, stop=stop)
    exc = info.value
    folder = tmp_path / "train_state" / f"step-{stopped_at:08d}"
    assert (exc.step, exc.signum, exc.checkpoint, exc.resumable) == (stopped_at, signal.SIGTERM, folder, True)
    assert (tmp_path / "train_state" / "latest").read_text().strip() == folder.name
    state = torch.load(folder / "training_state.pt", weights_only=True)
    assert state["validate_pending"] is pending
    resumed = _run(tmp_path, resume="latest")
    _same_run(reference[1], resumed)
    first = {("step", 3): [], ("step", 5): [], ("step", 12): [0, 1], ("validate", 1): [0, 1]}[stop]
    assert first + resumed[2] == [0, 1, 2]  # every epoch validated once over both runs
    assert not [p for p in (tmp_path / "train_state").iterdir() if p.name.startswith(".")]


def test_checkpoint_every_n_steps_and_resume_from_an_older_checkpoint_folder(reference, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        _run(tmp_path, stop=("step", 9), every=4)
    assert info.value.step == 9
    folder = tmp_path / "train_state"
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-00000008", "step-00000009"]
    _same_run(reference[1], _run(tmp_path, resume=str(folder / "step-00000008"), every=4))


def test_data_randomness_does_not_depend_on_dataloader_workers(reference, tmp_path):
    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, stop=("step", 7), workers=2)
    _same_run(reference[1], _run(tmp_path, resume="latest", workers=2))


def test_resume_errors_name_the_problem(reference, tmp_path):
    with pytest.raises(CheckpointError, match=r"--resume latest: no complete checkpoint under .*train_state"):
        _run(tmp_path, resume="latest")
    root = reference[0]
    with pytest.raises(CheckpointError, match=r"other settings \(finetune\.lr 0\.02 then, 0\.05 now\); resume with "
                                              r"the same command"):
        _run(root, resume="latest", lr=0.05)
    with pytest.raises(ConfigError, match="finetune.checkpoint_every must be a positive number of steps"):
        _run(tmp_path, every=0)
