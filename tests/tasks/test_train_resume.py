"""`egokit train TASK` is preemption-safe: SIGTERM stops a real run after its current step with a training
checkpoint, the printed command (`... --resume latest`) continues it, and the kept best checkpoint, the final
training state and the results equal an uninterrupted run's bit for bit. A new run never mixes with an earlier
one in the same folder."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from egokit.errors import ConfigError
from egokit.testing import one_thread, run_cli, tiny_checkpoint

REPO = Path(__file__).parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 18  # 3 epochs of 6 steps (24 training clips, 4 per step)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def ek100(tmp_path_factory) -> tuple[Path, Path]:
    """`egokit synth --task ek100-mir` data and a tiny checkpoint whose tokenizer knows its captions."""
    root = tmp_path_factory.mktemp("ek100-resume")
    run_cli("synth", "--task", "ek100-mir", root / "data", "--no-model")
    with (root / "data" / "EPIC_100_retrieval_train_sentence.csv").open() as f:
        import csv

        texts = [row["narration"] for row in csv.DictReader(f)]
    return root / "data", tiny_checkpoint(root / "ckpt", texts)


def _command(data: Path, ckpt: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "egokit", "train", "ek100-mir", "--ckpt", str(ckpt), "--data", str(data), "-o",
            str(out), "num_frames=4", "num_workers=0", "eval_batch_size=8", "finetune.epochs=3",
            "finetune.batch_size=4", "finetune.lr=1e-3", "finetune.warmup=0", "finetune.log_every=1"]


def _records(run: Path, key: str) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if f'"{key}"' in line]


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_sigterm_then_the_printed_command_resumes_egokit_train_bit_identically(ek100, tmp_path):
    data, ckpt = ek100
    ref = subprocess.run(_command(data, ckpt, tmp_path / "ref"), capture_output=True, text=True, timeout=600,
                         env=ENV, cwd=REPO)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "stopped"
    args = _command(data, ckpt, run)
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_records(run, "train/loss")) < 8:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be stopped"
    seen = len(_records(run, "train/loss"))
    proc.send_signal(signal.SIGTERM)
    seen_after = len(_records(run, "train/loss"))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and "cannot be resumed" not in stderr
    line = [ln for ln in stderr.splitlines() if ln.startswith("interrupted at step ")]
    assert len(line) == 1, stderr[-3000:]
    stopped_at = int(line[0].split()[3].rstrip(";"))
    assert seen <= stopped_at <= seen_after + 1 < STEPS  # the step it was in, finished; no further step
    command = shlex.split(line[0].split("; continue with: ", 1)[1])
    assert command == [*args, "--resume", "latest"]
    state = run / "train_state"
    assert (state / "latest").read_text().strip() == f"step-{stopped_at:08d}"
    assert (state / f"step-{stopped_at:08d}" / "COMPLETE").is_file()
    assert not [p for p in state.iterdir() if p.name.startswith(".")]  # no temporary left
    assert not (run / "ek100-mir_train_results.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {state / f'step-{stopped_at:08d}'} at step {stopped_at}" in resumed.stdout.replace("\n", "")

    # the kept best checkpoint, the final training state and the results: as if never stopped
    _assert_same_tensors(*(load_file(str(r / "checkpoint" / "model.safetensors")) for r in (tmp_path / "ref", run)))
    final = f"train_state/step-{STEPS:08d}/module.pt"
    _assert_same_tensors(*(torch.load(r / final, weights_only=True) for r in (tmp_path / "ref", run)))
    results = [json.loads((r / "ek100-mir_train_results.json").read_text()) for r in (tmp_path / "ref", run)]
    assert results[0]["metrics"] == results[1]["metrics"] and results[1]["metrics"]["steps"] == STEPS
    history = [[{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]] for r in results]
    assert history[0] == history[1]
    # every step logged once, every epoch validated once
    assert _records(run, "train/loss") == list(range(1, STEPS + 1))
    assert _records(run, "val/map.avg") == _records(tmp_path / "ref", "val/map.avg") == [6, 12, 18]
    kept = sorted(p.name for p in state.iterdir())
    assert kept[0] == "latest" and kept[-1] == f"step-{STEPS:08d}" and len(kept) == 3  # the newest two

    # the same command without --resume would mix two runs in one folder: refused, nothing touched
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=r"holds an earlier run \(records in metrics\.jsonl and training "
                                          r"checkpoints in train_state/\): continue it with --resume latest, write "
                                          r"this run to a new folder \(-o NEW_FOLDER\)"):
        run_cli(*args[3:])
    assert (run / "metrics.jsonl").read_bytes() == before


def test_resume_is_for_training_only_and_needs_a_checkpoint(ek100, tmp_path):
    from egokit.errors import CheckpointError
    from egokit.tasks.runner import run_task

    data, ckpt = ek100
    with pytest.raises(ConfigError, match="--resume continues an interrupted training run; `eval` has nothing"):
        run_task("ek100-mir", "eval", checkpoint=str(ckpt), data=str(data), output_dir=tmp_path, resume="latest")
    with pytest.raises(CheckpointError, match=r"--resume latest: no complete checkpoint under .*train_state"):
        run_cli("train", "ek100-mir", "--ckpt", ckpt, "--data", data, "-o", tmp_path / "new", "num_frames=4",
                "num_workers=0", "--resume", "latest")


def test_a_new_pretraining_run_refuses_a_folder_holding_an_earlier_run(tmp_path):
    from egokit.pretrain import pretrain

    base = [f"data.root={tmp_path}", "eval.egomcq=null"]
    records = tmp_path / "records"
    records.mkdir()
    (records / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss/loss": 2.0}) + "\n")
    with pytest.raises(ConfigError, match=r"holds an earlier run \(records in metrics\.jsonl\): continue it with "
                                          r"--resume latest, write this run to a new folder \(output_dir="):
        pretrain(str(REPO / "recipes" / "demo.yaml"), [*base, f"output_dir={records}"])
    assert sorted(p.name for p in records.iterdir()) == ["metrics.jsonl"]  # nothing written

    saved = tmp_path / "saved" / "checkpoints" / "step-00000004"
    saved.mkdir(parents=True)
    (saved / "COMPLETE").write_text("1\n")
    with pytest.raises(ConfigError, match=r"\(training checkpoints in checkpoints/\)"):
        pretrain(str(REPO / "recipes" / "demo.yaml"), [*base, f"output_dir={tmp_path / 'saved'}"])
    with pytest.raises(ConfigError, match=r"train\.checkpoint_every must be a number of steps \(0: once per "
                                          r"epoch\), got -1"):
        pretrain(str(REPO / "recipes" / "demo.yaml"), [*base, f"output_dir={tmp_path / 'new'}",
                                                       "train.checkpoint_every=-1"])
    # a folder whose earlier run stopped before its first record is no earlier run
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    from egokit.engine.checkpointing import check_fresh_run

    check_fresh_run(tmp_path / "empty", tmp_path / "empty" / "checkpoints", elsewhere="-o NEW")
