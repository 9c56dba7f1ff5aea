"""What a task receives when it runs: the accelerator, the model in the task's fusion mode, outputs and logging."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from egokit.errors import ConfigError

__all__ = ["TaskContext"]


@dataclass
class TaskContext:
    """Runtime context handed to ``Task.evaluate(ctx, options)`` / ``Task.train(ctx, options)``.

    The model is loaded lazily (tasks choose the frame count, e.g. EgoMCQ evaluates with 16 frames and the
    temporal embeddings are interpolated on load) and in the task's ``fusion_mode``: a ``dual`` task gets the
    towers without fusion layers or heads (see :func:`egokit.checkpoint.dual_config`); ``fusion`` and ``ensemble``
    tasks get the whole model. ``model``/``tokenizer`` may be given in memory (periodic evaluation during
    pretraining), in which case nothing is loaded.

    ``resume`` is ``egokit train TASK --resume``'s value (``"latest"`` or a checkpoint folder; ``None``: a new
    run). A task that fine-tunes with :func:`egokit.engine.finetune.finetune` passes
    ``checkpoints=ctx.training_checkpoints(best=best)``: its training checkpoints go to ``OUT/train_state`` and
    a resumed run continues from one bit for bit.
    """

    accelerator: Any
    checkpoint: str | None
    output_dir: Path
    fusion_mode: str = "fusion"
    seed: int = 0
    console: Console = field(default_factory=Console)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    tokenizer_source: str | None = None
    model: Any = None
    tokenizer: Any = None
    task_name: str = "task"
    loaded: Any = field(default=None, repr=False)  # the last model load_model() built (for provenance)
    resume: str | None = None
    stop: Any = field(default=None, repr=False)  # a StopSignals while a task prepares its inputs (check_stop)
    _logger: Any = field(default=None, repr=False)
    _resumed_step: int | None = field(default=None, repr=False, init=False)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)

    @property
    def device(self):
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # ------------------------------------------------------------------------------------------------- model
    def load_model(self, **overrides: Any):
        """The checkpoint as an EgoVLPv2 in eval mode on the accelerator's device, in the task's fusion mode."""
        from egokit.checkpoint import load_model

        if self.model is not None:  # an in-memory model (periodic evaluation during training)
            frames = overrides.get("num_frames")
            if frames is not None and frames != self.model.config.num_frames:
                raise ConfigError(f"{self.task_name}: the in-memory model has {self.model.config.num_frames} "
                                  f"frames, the task asks for {frames}; set the task's num_frames to "
                                  f"{self.model.config.num_frames} (or evaluate the saved model afterwards with "
                                  f"`egokit eval {self.task_name} --ckpt RUN/model`)")
            return self.model
        if self.checkpoint is None:
            raise ConfigError("this task needs a model: pass --ckpt SOURCE (official .pth, egokit folder or hub:org/name)")
        mode = "dual" if self.fusion_mode == "dual" else "full"
        model = load_model(self.checkpoint, mode=mode, **{**overrides, **self.model_overrides})
        self.loaded = model
        return model.to(self.device).eval()

    def load_tokenizer(self, model=None):
        """The tokenizer bundled with the checkpoint, else the one its config names, else ``--tokenizer``."""
        from egokit.tokenizer import load_tokenizer

        if self.tokenizer is not None:
            return self.tokenizer
        if self.tokenizer_source:
            return load_tokenizer(self.tokenizer_source)
        folder = getattr(model, "source_path", None)
        if folder is not None and (Path(folder) / "tokenizer").is_dir():
            return load_tokenizer(Path(folder) / "tokenizer")
        name = model.config.preprocess.tokenizer if model is not None else "roberta-base"
        return load_tokenizer(name)

    # ----------------------------------------------------------------------------------------------- outputs
    def path(self, name: str) -> Path:
        """``output_dir / name``."""
        return self.output_dir / name

    def write_json(self, name: str, data: Any) -> Path:
        """Atomically write ``output_dir/name`` on the main process; returns the path on every process."""
        from egokit.io import write_json_atomic

        path = self.path(name)
        if self.is_main:
            write_json_atomic(path, data)
        return path

    def save_model(self, model, folder: str | Path, tokenizer=None) -> Path:
        """Save an egokit checkpoint folder atomically (main process; every process waits for it). A model loaded
        in dual mode is written complete, its untouched fusion weights included."""
        from egokit.checkpoint import save_pretrained_atomic

        folder = Path(folder)
        if self.is_main:
            save_pretrained_atomic(model, folder, tokenizer=tokenizer)
        self.accelerator.wait_for_everyone()
        return folder

    def progress(self, description: str, total: int | None = None):
        """A progress bar (``with ctx.progress(...) as bar: bar.advance(n)``), silent on non-main processes."""
        from egokit.engine.progress import task_progress

        return task_progress(description, total, disable=not self.is_main, console=self.console,
                             on_advance=self.check_stop)

    def check_stop(self, *_: Any) -> None:
        """Raise :class:`~egokit.engine.interrupt.TrainingInterrupted` (resumable: what was finished is cached)
        when a stop signal arrived during an active ``ctx.stop`` block; called between units of work (clips,
        progress steps) while a task extracts its inputs."""
        if self.stop is not None and self.stop.signum:
            from egokit.engine.interrupt import TrainingInterrupted

            raise TrainingInterrupted(0, self.stop.signum, None, main_process=self.is_main, resumable=True)

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Append to ``output_dir/metrics.jsonl`` (and TensorBoard when installed), main process only."""
        if not self.is_main:
            return
        if self._logger is None:
            from egokit.engine.logging import RunLogger

            self._logger = RunLogger(self.output_dir, enabled=True, resumed_step=self._resumed_step)
        self._logger.log(step, values)

    # ------------------------------------------------------------------------------------------- resuming
    #: where :meth:`training_checkpoints` puts a fine-tuning run's training checkpoints, under the output folder
    TRAIN_STATE = "train_state"

    def training_checkpoints(self, **state: Any):
        """What :func:`~egokit.engine.finetune.finetune` needs to checkpoint and resume this run (its
        ``checkpoints`` argument): ``OUT/train_state``, ``--resume``'s value, and ``state``, objects saved with
        every checkpoint and restored on resume (``best=BestCheckpoint(...)``)."""
        from egokit.engine.finetune import TrainingCheckpoints

        return TrainingCheckpoints(self.path(self.TRAIN_STATE), resume=self.resume, state=dict(state),
                                   on_resume=self.resumed_from)

    def resumed_from(self, folder: str | Path, step: int) -> None:
        """A resumed run continues after ``step`` (the checkpoint ``folder``'s): the records the interrupted run
        logged after it are dropped from ``metrics.jsonl`` (and TensorBoard), so the replayed steps appear once."""
        from egokit.engine.logging import truncate_metrics

        self._resumed_step = int(step)
        if self.is_main:
            truncate_metrics(self.output_dir / "metrics.jsonl", int(step))
            self.console.print(f"resumed from {folder} at step {step}", highlight=False)
        if self._logger is not None:  # opened before the resume: reopen with TensorBoard's purge step
            self._logger.close()
            self._logger = None

    def close(self) -> None:
        if self._logger is not None:
            self._logger.close()
            self._logger = None
