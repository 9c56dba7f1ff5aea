"""Training checkpoints that are never partial on disk.

Each checkpoint is a folder written under a temporary name and renamed into place (an atomic operation on POSIX),
then ``latest`` (a one-line pointer file) is replaced atomically. A killed run therefore leaves either the previous
checkpoint or the new one, never a half-written folder under a real name; old checkpoints are renamed to a hidden
name before they are deleted, so a kill during clean-up cannot leave a half-deleted one either. The folder is also a loadable egokit
model (``config.json`` + ``model.safetensors`` + tokenizer), plus ``training_state.pt`` (optimizer, scheduler,
position, recipe) and per-rank RNG states, all readable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from egokit.checkpoint import save_pretrained
from egokit.errors import CheckpointError
from egokit.io import write_text_atomic

_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_training_checkpoint(root: Path, step: int, *, model=None, tokenizer=None, training_state: dict[str, Any],
                             rank: int, world_size: int, barrier, keep: int = 2,
                             files: dict[str, Any] | None = None) -> Path:
    """Write ``root/step-N`` atomically (all ranks call this; rank 0 writes the shared files).

    ``model`` (an EgoVLPv2) makes the folder a loadable egokit model; ``files`` (``{name: object}``, rank 0) are
    written with ``torch.save`` beside ``training_state.pt`` (e.g. the state dict of a fine-tuned module)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        if model is not None:
            save_pretrained(model, tmp, tokenizer=tokenizer)
        for name, value in (files or {}).items():
            torch.save(value, tmp / name)
        torch.save(training_state, tmp / "training_state.pt")
    barrier()
    if rank == 0:
        (tmp / "COMPLETE").write_text(f"{world_size}\n")
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
        write_text_atomic(root / "latest", final.name + "\n")
        for old in sorted(list_checkpoints(root))[:-keep] if keep > 0 else []:
            _discard(old)
    barrier()
    return final


def _discard(folder: Path) -> None:
    """Delete a checkpoint folder without ever exposing it half-deleted: rename it to a hidden name (atomic), then
    remove it. A run killed in between leaves only a ``.trash-*`` folder, cleared on the next start."""
    trash = folder.with_name(f".trash-{folder.name}")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_temporaries(root: Path) -> None:
    """Delete ``.tmp-step-*`` / ``.trash-step-*`` folders left by a run killed while writing or deleting one."""
    if root.is_dir():
        for tmp in (*root.glob(".tmp-step-*"), *root.glob(".trash-step-*")):
            shutil.rmtree(tmp, ignore_errors=True)


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / "COMPLETE").is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def resolve_resume(run_dir: Path, resume: str, *, folder: str = "checkpoints") -> Path:
    """``latest`` -> newest complete checkpoint under ``run_dir/folder``; otherwise a checkpoint folder path."""
    if resume == "latest":
        root = Path(run_dir) / folder
        pointer = root / "latest"
        if pointer.is_file():
            candidate = root / pointer.read_text().strip()
            if (candidate / "COMPLETE").is_file():
                return candidate
        found = list_checkpoints(root)
        if not found:
            raise CheckpointError(f"--resume latest: no complete checkpoint under {root}")
        return found[-1]
    path = Path(resume)
    if not (path / "COMPLETE").is_file() or not (path / "training_state.pt").is_file():
        raise CheckpointError(f"--resume {resume}: not a complete egokit training checkpoint folder")
    return path


def checkpoint_step(folder: Path) -> int:
    """The optimizer step a training checkpoint was written at (read without loading its tensors)."""
    state = torch.load(Path(folder) / "training_state.pt", map_location="cpu", weights_only=True, mmap=True)
    return int(state["step"])


def load_training_state(folder: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    state = torch.load(folder / "training_state.pt", map_location="cpu", weights_only=True)
    rng_path = folder / f"rng-rank{rank}.pt"
    rng = torch.load(rng_path, map_location="cpu", weights_only=True) if rng_path.is_file() else None
    return state, rng


def check_fresh_run(run_dir: Path, checkpoints: Path, *, elsewhere: str) -> None:
    """Refuse to start a new (not resumed) run in the folder of an earlier one.

    Its ``metrics.jsonl`` would hold two runs' records (two step 1s, appended after each other) and the checkpoint
    rotation would mix both runs' checkpoints, so the choice is the user's: continue the earlier run
    (``--resume latest``), write the new one elsewhere (``elsewhere``: the option that names the output folder),
    or move the old folder away. Nothing is deleted. A folder without records or complete checkpoints (a run that
    stopped before its first step, or outputs of other commands) is fine. Every process may call this: it only
    reads."""
    from egokit.errors import ConfigError

    found = []
    metrics = Path(run_dir) / "metrics.jsonl"
    if _has_records(metrics):
        found.append(f"records in {metrics.name}")
    done = list_checkpoints(Path(checkpoints))
    if done:
        found.append(f"training checkpoints in {Path(checkpoints).name}/")
    if found:
        raise ConfigError(f"{run_dir} holds an earlier run ({' and '.join(found)}): continue it with --resume latest, "
                          f"write this run to a new folder ({elsewhere}), or move that folder away")


def _has_records(path: Path) -> bool:
    import json

    if not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "step" in record:
                return True
    return False
