"""Stopping a training run cleanly when it is asked to: SIGTERM, SIGINT (Ctrl-C) and SIGUSR1, the signals that
Slurm and Kubernetes send some time before they kill a job.

While a :class:`StopSignals` block is active, the first of these signals only records that a stop was asked for.
The training loop looks at it after every optimizer step (:meth:`StopSignals.agreed`, the same answer on every
process of a distributed run, so all of them stop after the same step), writes a checkpoint and raises
:class:`TrainingInterrupted`; the command line turns that into the "continue with" message and exit status
128 + the signal number (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1), as a shell reports a process killed by
that signal. A second signal ends the process at once with that status (``os._exit``, as if killed: no clean-up
code runs, none can hang; DataLoader workers see their parent gone and end): every file egokit writes goes under a
temporary name and is renamed when complete, so stopping anywhere leaves the complete files written before (a
hidden temporary is removed by the next run). In a notebook that ends the kernel. Leaving the block restores the
handlers that were installed before it, so nothing stays changed in the process (tests and notebooks run training
in-process).

Python runs signal handlers in the main thread only, so a block entered in another thread installs nothing.
This module imports no torch at import time (the command line imports it to report an interruption).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["STOP_SIGNALS", "StopSignals", "TrainingInterrupted", "ignore_stop_signals", "shielded_workers",
           "signal_name"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class TrainingInterrupted(BaseException):
    """A training loop stopped by a signal after finishing its current step and saving what it can.

    ``checkpoint`` is the training checkpoint written at ``step`` (``None``: none was written). ``resumable``
    says whether ``--resume latest`` continues the run; by default, whether a checkpoint was written (a task whose
    resume redoes cheap work from cached inputs, such as a feature head, is resumable without one). A
    ``BaseException`` like ``KeyboardInterrupt``: a stop that was asked for, not an error, so ``except Exception``
    blocks let it through. ``main_process`` says whether this process reports it."""

    def __init__(self, step: int, signum: int, checkpoint: str | os.PathLike | None = None, *,
                 main_process: bool = True, resumable: bool | None = None) -> None:
        self.step = step
        self.signum = int(signum)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.main_process = main_process
        self._resumable = resumable
        where = f"; checkpoint {self.checkpoint}" if self.checkpoint is not None else "; no checkpoint"
        super().__init__(f"interrupted by {signal_name(self.signum)} at step {step}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def resumable(self) -> bool:
        return self.checkpoint is not None if self._resumable is None else self._resumable


def _say(text: str) -> None:
    """Write to stderr from a signal handler (``os.write``: no buffered stream that the handler may have
    interrupted in the middle of a write)."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


class StopSignals:
    """Context manager: while active, :data:`STOP_SIGNALS` ask the loop to stop at its next safe point.

    ``signum`` is the first signal received (``None`` until then); a second signal calls ``exit(128 + signal)``
    (``os._exit``). ``announce`` prints one line on the first signal (the main process of a distributed run);
    ``saves`` says whether the loop writes a checkpoint when it stops. The object can be entered again; the
    recorded signal is kept."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS, *, announce: bool = True, saves: bool = True,
                 exit: Callable[[int], Any] = os._exit) -> None:
        self.signals = tuple(signals)
        self.announce = announce
        self.saves = saves
        self._exit = exit
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if self._previous:
            raise RuntimeError("StopSignals block entered twice at the same time")
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> bool:
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            # None: a handler installed outside Python, which Python cannot reinstall; the default is the closest
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return False

    @property
    def active(self) -> bool:
        """Whether this block's handlers are installed."""
        return bool(self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            _say(f"\negokit: {signal_name(signum)} again: stopping now (checkpoints already written are "
                 f"complete)\n")
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - the signal may have come in the middle of a write to it
                    pass
            self._exit(128 + signum)
            return
        self.signum = signum
        if self.announce:
            then = " and saving a checkpoint" if self.saves else ""
            _say(f"\negokit: {signal_name(signum)} received: stopping after the current step{then} (send it again "
                 f"to stop at once)\n")

    def agreed(self, accelerator: Any = None) -> int:
        """The signal that stops the run now, 0 to go on; the same on every process. A collective operation in a
        distributed run: every process calls it at the same point of the loop."""
        local = int(self.signum or 0)
        if accelerator is None or accelerator.num_processes < 2:
            return local
        import torch

        flags = accelerator.gather(torch.tensor([local], dtype=torch.int64, device=accelerator.device))
        return int(flags.max().item())


def ignore_stop_signals(worker_id: int = 0) -> None:
    """``worker_init_fn`` for DataLoader workers: they ignore :data:`STOP_SIGNALS`, which Ctrl-C (the whole
    foreground process group) and Slurm (every process of the job) also send to them. The main process decides
    when to stop; it shuts its workers down when it ends (and a worker ends by itself when its parent has gone),
    and a worker killed by the signal would otherwise end the step with a "worker exited unexpectedly" error.
    Workers started by :func:`shielded_workers` hold the signals until here; what came meanwhile is dropped."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold :data:`STOP_SIGNALS` in this thread; processes started meanwhile inherit the hold. Nothing is lost: a
    signal that comes meanwhile is handled when the block ends (or at once by another thread of the process)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def shielded_workers(loader: Iterable[T]) -> Iterator[T]:
    """Iterate a DataLoader whose workers use :func:`ignore_stop_signals`, holding the stop signals until its first
    batch: a worker process started by the iteration inherits the hold, so a signal sent to every process while
    it starts (before its ``worker_init_fn`` runs, when PyTorch's own handler would end it) cannot kill it. The
    main process gets the signal as soon as the first batch is there."""
    with _stop_signals_held():
        iterator = iter(loader)
        try:
            first = next(iterator)
        except StopIteration:
            return
    yield first
    yield from iterator
