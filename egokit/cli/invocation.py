"""The command line the user ran, for the run history in ``recipe.json`` and the "continue with" message of an
interrupted run."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["interrupt_message", "invoked_command", "launcher_command", "resume_command"]

_LAUNCHERS = ("accelerate", "torchrun")
_LAUNCHER_MODULES = ("accelerate.commands.launch", "accelerate.commands.accelerate_cli", "torch.distributed.run",
                     "torch.distributed.launch")


def invoked_command() -> list[str]:
    """This process's command line as typed: ``egokit pretrain ...`` or ``python -m egokit pretrain ...`` (with the
    interpreter's own options); under ``accelerate launch``/``torchrun`` the launcher's command line."""
    launched = _launcher_of_this_process()
    if launched is not None:
        return launched
    argv = list(sys.argv)
    original = list(getattr(sys, "orig_argv", []))
    if argv and Path(argv[0]).name == "__main__.py" and original:  # python [options] -m egokit ...
        return original
    program = argv[0] if argv else "egokit"
    return [_short(program), *argv[1:]]


def _short(program: str) -> str:
    """``/venv/bin/egokit`` -> ``egokit`` when that name finds the same file on PATH."""
    name = Path(program).name
    found = shutil.which(name)
    try:
        if found is not None and Path(found).resolve() == Path(program).resolve():
            return name
    except OSError:
        pass
    return program


def _launcher_of_this_process() -> list[str] | None:
    """The parent's command line when the parent is the launcher of a distributed run (torchrun and
    ``accelerate launch`` set TORCHELASTIC_RUN_ID and start every process themselves)."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    return launcher_command([os.fsdecode(part) for part in raw.split(b"\0") if part])


def launcher_command(parts: Sequence[str]) -> list[str] | None:
    """``[python, /venv/bin/accelerate, launch, ...]`` -> ``[accelerate, launch, ...]``; ``python -m
    accelerate.commands.launch ...`` and ``torchrun ...`` kept as they are; ``None`` for anything else."""
    parts = list(parts)
    if len(parts) >= 2 and Path(parts[0]).name.startswith("python") and not parts[1].startswith("-"):
        parts = parts[1:]  # a launcher script run through its interpreter (the shebang line)
    if not parts:
        return None
    module = parts[parts.index("-m") + 1] if "-m" in parts[:-1] else None
    if Path(parts[0]).name in _LAUNCHERS or module in _LAUNCHER_MODULES:
        return [_short(parts[0]), *parts[1:]]
    return None


def resume_command(command: Sequence[str]) -> list[str]:
    """``command`` with any ``--resume X`` / ``--resume=X`` removed and ``--resume latest`` appended once."""
    out: list[str] = []
    skip = False
    for item in command:
        if skip:
            skip = False
        elif item == "--resume":
            skip = True
        elif not item.startswith("--resume="):
            out.append(item)
    return [*out, "--resume", "latest"]


def interrupt_message(exc, command: Sequence[str]) -> str:
    """The line printed for a :class:`~egokit.engine.interrupt.TrainingInterrupted` run."""
    if exc.resumable:
        return f"interrupted at step {exc.step}; continue with: {shlex.join(resume_command(command))}"
    return (f"interrupted at step {exc.step}; this training cannot be resumed yet (no --resume), so run it again "
            f"from the start: {shlex.join(list(command))}")
