"""Checkpoint rotation never exposes a half-deleted checkpoint, even when deletion is interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.engine import checkpointing
from egokit.engine.checkpointing import list_checkpoints, remove_stale_temporaries, save_training_checkpoint
from egokit.models import EgoVLPv2
from tests.conftest import micro_config


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it in the process runs."""


def _save(root, step, model):
    return save_training_checkpoint(root, step, model=model, tokenizer=None, training_state={"step": step},
                                    rank=0, world_size=1, barrier=lambda: None, keep=2)


def test_killed_rotation_leaves_only_complete_checkpoints(tmp_path, monkeypatch):
    model = EgoVLPv2(micro_config())
    root = tmp_path / "checkpoints"
    _save(root, 1, model)
    _save(root, 2, model)

    def killed_midway(path, *args, **kwargs):  # deletes one file, then the process "dies"
        path = Path(path)
        if not path.exists():
            return
        next(p for p in sorted(path.rglob("*")) if p.is_file()).unlink()
        raise Killed

    monkeypatch.setattr(checkpointing.shutil, "rmtree", killed_midway)
    with pytest.raises(Killed):
        _save(root, 3, model)  # rotation removes step 1
    monkeypatch.undo()  # the process is gone; later runs delete normally
    for folder in root.glob("step-*"):
        assert (folder / "COMPLETE").is_file() and (folder / "model.safetensors").is_file(), folder
    assert [p.name for p in list_checkpoints(root)] == ["step-00000002", "step-00000003"]
    remove_stale_temporaries(root)  # what the next run does first
    assert not list(root.glob(".*step-*"))
