"""What a task receives when it runs: the accelerator, how to get the model/tokenizer, options and outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass
class TaskContext:
    """Runtime context handed to ``TaskSpec.evaluate`` / ``TaskSpec.train``.

    ``options`` are the task's own settings (from its recipe and ``key=value`` overrides); a task validates them with
    :func:`egokit.recipes.build` against its own schema. The model is loaded lazily because tasks choose the frame
    count (e.g. EgoMCQ evaluates with 16 frames, temporal embeddings interpolated on load).
    """

    accelerator: Any
    checkpoint: str | None
    options: dict[str, Any]
    output_dir: Path
    seed: int = 0
    console: Console = field(default_factory=Console)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    tokenizer_source: str | None = None
    model: Any = None
    tokenizer: Any = None
    loaded: Any = field(default=None, repr=False)  # the last model load_model() built (for provenance)

    @property
    def device(self):
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def load_model(self, **overrides: Any):
        """The checkpoint as an EgoVLPv2 in eval mode on the accelerator's device."""
        from egokit.checkpoint import load_model
        from egokit.errors import ConfigError

        if self.model is not None:  # an in-memory model (periodic evaluation during training)
            return self.model
        if self.checkpoint is None:
            raise ConfigError("this task needs a model: pass --ckpt SOURCE (official .pth, egokit folder or hub:org/name)")
        model = load_model(self.checkpoint, **{**overrides, **self.model_overrides})
        self.loaded = model
        return model.to(self.device).eval()

    def load_tokenizer(self, model=None):
        """The tokenizer bundled with the checkpoint, else the one its config names, else ``tokenizer_source``."""
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

    def progress(self, description: str, total: int | None = None):
        from egokit.engine.progress import task_progress

        return task_progress(description, total, disable=not self.is_main, console=self.console)
