"""Preemption-safe training: SIGTERM/SIGINT/SIGUSR1 stop a run after its current step with a checkpoint, the
printed command continues it bit-identically, the run's history is kept; experiment trackers through Accelerate."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from egokit.engine.interrupt import STOP_SIGNALS, StopSignals, TrainingInterrupted
from tests.conftest import MICRO_MODEL_OVERRIDES

REPO = Path(__file__).parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _handlers() -> dict:
    return {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}


def _deliver(sig: int) -> None:
    """Send ``sig`` to this process and give Python the chance to run its handler (main thread, next bytecode)."""
    os.kill(os.getpid(), sig)
    for _ in range(100):
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------- the signal handler
def test_first_signal_asks_to_stop_second_exits_at_once_and_handlers_are_restored():
    before = _handlers()
    exits = []

    def fake_exit(code):  # os._exit in real runs; here: record it and leave the block
        exits.append(code)
        raise SystemExit(code)

    with pytest.raises(SystemExit):
        with StopSignals(announce=False, exit=fake_exit) as stop:
            assert stop.active and stop.signum is None and stop.agreed() == 0
            _deliver(signal.SIGUSR1)
            assert stop.signum == signal.SIGUSR1 and stop.agreed() == signal.SIGUSR1  # recorded, still running
            assert exits == []
            _deliver(signal.SIGTERM)
            pytest.fail("a second signal must stop at once")
    assert exits == [128 + signal.SIGTERM]
    assert _handlers() == before and not stop.active


def test_handlers_are_restored_after_an_error_and_nothing_is_installed_off_the_main_thread():
    before = _handlers()
    with pytest.raises(ValueError):
        with StopSignals():
            assert _handlers() != before
            raise ValueError("boom")
    assert _handlers() == before

    seen = {}

    def worker():
        with StopSignals() as stop:
            seen["active"] = stop.active

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"active": False} and _handlers() == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_fit_epochs_finishes_the_current_step_then_stops(sig):
    from egokit.engine.finetune import fit_epochs

    torch.manual_seed(0)
    head = torch.nn.Linear(3, 1)
    loader = [{"x": torch.randn(4, 3), "y": torch.randn(4, 1)} for _ in range(10)]
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    losses = []

    def on_step(loss):
        losses.append(loss)
        if len(losses) == 3:
            _deliver(sig)  # arrives inside step 3, before the loop's check

    before = _handlers()
    with pytest.raises(TrainingInterrupted) as info:
        fit_epochs(head, loader, lambda h, b: ((h(b["x"]) - b["y"]) ** 2).mean(), optimizer, schedule, epochs=2,
                   on_step=on_step)
    exc = info.value
    assert (exc.step, exc.signum, exc.exit_code, exc.resumable) == (3, sig, 128 + sig, False)
    assert len(losses) == 3 and schedule.last_epoch == 3  # step 3 completed, step 4 never started
    assert _handlers() == before


def test_finetune_stops_every_process_after_the_same_step():
    from egokit.engine.accel import make_accelerator
    from egokit.engine.finetune import FinetuneOptions, finetune

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, batch):
            x, y = batch
            return {"loss": ((self.linear(x) - y) ** 2).mean()}

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    validated = []

    def on_log(step, record):
        if step == 2:
            _deliver(signal.SIGTERM)

    with pytest.raises(TrainingInterrupted) as info:
        finetune(make_accelerator(), Regression(), data, FinetuneOptions(epochs=3, batch_size=4, log_every=1),
                 validate=lambda module, epoch, step: validated.append(step) or {}, on_log=on_log)
    assert (info.value.step, info.value.exit_code, info.value.checkpoint) == (2, 143, None)
    assert validated == []


# ----------------------------------------------------------------------------------------- the printed command
def test_continue_command_appends_resume_latest_once_and_quotes_for_the_shell():
    from egokit.cli.invocation import interrupt_message, launcher_command, resume_command

    argv = ["egokit", "pretrain", "recipes/demo.yaml", "model.overrides={width: 32, num_heads: 4}", "--resume",
            "runs/x/checkpoints/step-00000004", "data.root=/data with space", "--resume=latest"]
    assert resume_command(argv) == ["egokit", "pretrain", "recipes/demo.yaml",
                                    "model.overrides={width: 32, num_heads: 4}", "data.root=/data with space",
                                    "--resume", "latest"]
    exc = TrainingInterrupted(7, signal.SIGTERM, "runs/x/checkpoints/step-00000007")
    message = interrupt_message(exc, argv)
    prefix = "interrupted at step 7; continue with: "
    assert message.startswith(prefix) and shlex.split(message[len(prefix):]) == resume_command(argv)
    assert shlex.split(message[len(prefix):]).count("--resume") == 1
    assert interrupt_message(TrainingInterrupted(3, signal.SIGTERM), argv) == \
        f"interrupted at step 3; this training cannot be resumed yet (no --resume), so run it again from the start: "\
        f"{shlex.join(argv)}"
    # a distributed run: the launcher's command line (its interpreter dropped when it ran a launcher script)
    assert launcher_command(["/venv/bin/python3", "/venv/bin/accelerate", "launch", "-m", "egokit", "pretrain"]) == \
        ["/venv/bin/accelerate", "launch", "-m", "egokit", "pretrain"]
    assert launcher_command(["python", "-m", "accelerate.commands.launch", "-m", "egokit"])[:3] == \
        ["python", "-m", "accelerate.commands.launch"]
    assert launcher_command(["/usr/bin/slurmstepd", "x"]) is None


# ------------------------------------------------------------------------------------------------ run history
def test_truncate_metrics_drops_records_after_the_resumed_step(tmp_path):
    from egokit.engine.logging import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": s / 10}) for s in (1, 2, 3, 4)] + ["not json", '{"step": 5, "lo']
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5])  # the last line was cut short by a kill
    assert truncate_metrics(path, 2) == 3
    assert path.read_text().splitlines() == lines[:2] + ["not json"]
    before = path.stat().st_mtime_ns
    assert truncate_metrics(path, 2) == 0 and path.stat().st_mtime_ns == before  # nothing to drop: not rewritten
    assert not [p for p in tmp_path.iterdir() if p.name != "metrics.jsonl"]  # no temporary left


def test_resume_keeps_the_history_of_an_older_recipe_json(tmp_path):
    from egokit.engine.pretrain import _record_run

    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"recipe": {}, "source": "a.yaml", "overrides": ["x=1"],
                                "environment": {"command": ["egokit", "pretrain", "a.yaml", "x=1"], "time": "t0"}}))
    _record_run(path, {"r": 1}, "a.yaml", ["x=1"], ["egokit", "pretrain", "a.yaml", "x=1", "--resume", "latest"],
                "latest", 4)
    commands = json.loads(path.read_text())["commands"]
    assert [c["argv"] for c in commands] == [["egokit", "pretrain", "a.yaml", "x=1"],
                                             ["egokit", "pretrain", "a.yaml", "x=1", "--resume", "latest"]]
    assert [c["resumed_from_step"] for c in commands] == [None, 4]
    _record_run(path, {"r": 1}, "a.yaml", [], ["egokit", "pretrain", "a.yaml"], None, None)  # a new run: new history
    assert len(json.loads(path.read_text())["commands"]) == 1


# --------------------------------------------------------------------------------------------------- trackers
def test_tensorboard_is_the_default_tracker_and_writes_event_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from egokit.engine.logging import RunLogger
    from egokit.engine.pretrain_recipe import load_pretrain_recipe

    assert load_pretrain_recipe({}).log.with_ == ["tensorboard"]
    logger = RunLogger(tmp_path, trackers=load_pretrain_recipe({}).log.with_)
    for step in (1, 2, 3):
        logger.log(step, {"loss/loss": 1.0 / step, "epoch": 0, "note": "text stays in metrics.jsonl"})
    logger.close()
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("loss/loss")] == [(1, 1.0), (2, 0.5), (3, 0.3333)]

    RunLogger(tmp_path / "none", trackers=[]).close()
    assert not (tmp_path / "none" / "tensorboard").exists()


def test_unknown_or_uninstalled_tracker_is_an_error_before_training(tmp_path, monkeypatch):
    import accelerate.utils

    from egokit.engine.logging import check_trackers
    from egokit.errors import ConfigError
    from egokit.pretrain import pretrain

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(ConfigError, match=r"log\.with: the wandb tracker needs the 'wandb' package: `pip install "
                                          r"wandb`, or remove wandb from log\.with"):
        check_trackers(["tensorboard", "wandb"])
    out = tmp_path / "run"
    base = [f"data.root={tmp_path}", f"output_dir={out}", "eval.egomcq=null"]
    with pytest.raises(ConfigError, match=r"log\.with: unknown tracker 'tensorbord'; choose from tensorboard"):
        pretrain(str(REPO / "recipes" / "demo.yaml"), [*base, "log.with=[tensorbord]"])
    with pytest.raises(ConfigError, match=r"pip install wandb"):
        pretrain(str(REPO / "recipes" / "demo.yaml"), [*base, "log.with=[tensorboard, wandb]"])
    assert not out.exists()  # nothing was started


# ------------------------------------------------------------------------------ SIGTERM a real run, then resume
def _overrides(data: Path, out: Path, *extra: str) -> list[str]:
    return [*MICRO_MODEL_OVERRIDES, f"data.root={data}", f"output_dir={out}", "data.chunk_seconds=4",
            "data.num_workers=0", "data.batch_size=4", "train.precision=fp32", "train.log_every=1",
            "eval.egomcq=null", *extra]


def _logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if "loss/loss" in line]


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_the_printed_command_resumes_bit_identically(
        tiny_synth, tmp_path):
    steps = 10
    common = [f"train.max_steps={steps}", "train.checkpoint_every=100", "train.keep_checkpoints=2"]
    ref = subprocess.run([sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml",
                          *_overrides(tiny_synth, tmp_path / "ref", *common)],
                         capture_output=True, text=True, timeout=600, env=ENV, cwd=REPO)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "stopped"
    args = [sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml", *_overrides(tiny_synth, run, *common)]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_logged_steps(run)) < 3:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be stopped"
    seen = len(_logged_steps(run))
    proc.send_signal(signal.SIGTERM)
    seen_after = len(_logged_steps(run))  # the signal came while step seen_after (+1) ran
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr

    line = [ln for ln in stderr.splitlines() if ln.startswith("interrupted at step ")]
    assert len(line) == 1, stderr[-3000:]
    stopped_at = int(line[0].split()[3].rstrip(";"))
    assert seen <= stopped_at <= seen_after + 1 < steps  # the step it was in, finished; no further step
    command = shlex.split(line[0].split("; continue with: ", 1)[1])
    assert command == [*args, "--resume", "latest"]
    checkpoints = run / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == f"step-{stopped_at:08d}"
    assert (checkpoints / f"step-{stopped_at:08d}" / "COMPLETE").is_file()
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")]  # no temporary left
    assert _logged_steps(run) == list(range(1, stopped_at + 1))
    assert not (run / "model").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    printed = resumed.stdout.replace("\n", "")  # rich wraps long lines
    assert f"resumed from {checkpoints / f'step-{stopped_at:08d}'} at step {stopped_at}" in printed

    a, b = (load_file(str(r / "model" / "model.safetensors")) for r in (tmp_path / "ref", run))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    history = json.loads((run / "recipe.json").read_text())["commands"]
    assert [h["argv"] for h in history] == [args, command]
    assert [h["resumed_from_step"] for h in history] == [None, stopped_at]
    assert _logged_steps(run) == list(range(1, steps + 1))  # every step once
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_a_second_signal_ends_a_run_with_data_workers_at_once_leaving_only_complete_checkpoints(tiny_synth, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "egokit", "pretrain", "recipes/demo.yaml",
            *_overrides(tiny_synth, run, "train.max_steps=200", "train.checkpoint_every=2", "data.num_workers=2")]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_logged_steps(run)) < 2:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be stopped"
    os.killpg(proc.pid, signal.SIGTERM)  # the whole process group (workers too), as Slurm and Ctrl-C do
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=120)  # a hang (e.g. waiting for workers) fails here
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and "SIGTERM again: stopping now" in stderr
    checkpoints = run / "checkpoints"
    for folder in checkpoints.glob("step-*"):
        assert (folder / "COMPLETE").is_file() and (folder / "model.safetensors").is_file(), folder
    if (checkpoints / "latest").is_file():
        assert (checkpoints / (checkpoints / "latest").read_text().strip() / "COMPLETE").is_file()
