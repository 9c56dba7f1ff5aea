"""Schema of ``egokit pretrain`` recipes (``recipes/egoclip.yaml``, ``recipes/demo.yaml``).

Relative paths never depend on where a path happens to exist, and never silently on the working directory:

* ``data.egoclip``, ``data.videos`` and a ``data.tokenizer`` folder are relative to ``data.root``;
* paths written in a recipe *file* (``data.root``, ``model.checkpoint``, ``model.vit`` and ``model.roberta`` when
  they are files or folders, ``eval.tasks[].options.data``) are relative to the folder of that file;
* paths given on the command line (``data.root=DIR`` and other ``key=value`` overrides) and ``output_dir``
  (wherever it is written: outputs go where the command runs, as with every ``-o``) are relative to the working
  directory; so are the paths of a recipe passed as a Python mapping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union


@dataclass
class ModelSection:
    name: str = "egovlpv2-base"                 # registry name (see `egokit models`)
    checkpoint: Optional[str] = None            # start from an official .pth / egokit folder / hub:org/name
    vit: Optional[str] = None                   # timm ViT weights (file or timm name) for the video tower
    roberta: Optional[str] = None               # RoBERTa weights (folder or hub name) for the text tower
    overrides: dict[str, Any] = field(default_factory=dict)  # config overrides, e.g. {attention: matmul}
    gradient_checkpointing: Union[bool, str] = False  # false/none | true/full | selective (keep matmul outputs,
                                                      # recompute norms/activations)


@dataclass
class DataSection:
    root: Optional[str] = None                  # dataset folder; paths below are relative to it (a relative root:
                                                # to the recipe file's folder; given as data.root=: to the cwd)
    egoclip: str = "egoclip.csv"
    videos: str = "videos"
    tokenizer: Optional[str] = None             # folder/hub name; default: the model's (or <root>/tokenizer)
    num_frames: int = 4
    chunk_seconds: float = 600.0
    neg_window: Optional[float] = 60.0          # scene-aware negatives window (s); null disables (no doubling)
    max_text_length: int = 15
    mlm_probability: float = 0.15
    mlm_slots: Optional[int] = None             # cap masked tokens per caption (fixed MLM slots); null: no cap
    batch_size: int = 32                        # positives per process (doubled by scene negatives)
    num_workers: int = 4
    policy: str = "lax"                         # strict: stop at the first bad clip; lax: replace and report
    short_side: Optional[int] = None            # resize while decoding (speed); null: decode at file size
    crop_scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop area range (official)
    hflip: float = 0.5                          # horizontal-flip probability (official; 0 when text says left/right)


@dataclass
class OptimSection:
    lr: float = 3e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    lr_mult_head: float = 4.0
    lr_mult_cross: float = 4.0
    warmup: float = 0.1                         # fraction of total steps
    schedule: str = "cosine"                    # cosine | linear | constant
    clip_grad: Optional[float] = None


@dataclass
class LossSection:
    temperature: float = 0.05
    egonce: float = 1.0
    mlm: float = 1.0
    vtm: float = 2.0
    verb: bool = True                           # EgoNCE action-aware positives
    noun: bool = True


@dataclass
class TrainSection:
    epochs: int = 20
    max_steps: Optional[int] = None
    precision: str = "auto"                     # auto (bf16 on CUDA/CPU-AMX, else fp32) | bf16 | fp16 | fp32
    grad_accum: int = 1
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000                # steps between checkpoints (0: once per epoch)
    keep_checkpoints: int = 2
    compile: bool = False                       # torch.compile the transformer blocks (CUDA; slow start)
    compile_backend: str = "inductor"           # any torch.compile backend (aot_eager: checks without a compiler)
    static_shapes: bool = True                  # fixed MLM slots / VTM pairs, no host syncs (false: boolean indexing)


@dataclass
class EvalTaskSection:
    """One task evaluated during pretraining, with the in-memory model (see ``egokit tasks``)."""

    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # the task's options; data/num_frames/chunk_seconds/
                                                           # num_workers default to the data section's
    every: Optional[int] = None                 # steps between evaluations (None: eval.every; 0: only at the end)


@dataclass
class EvalSection:
    tasks: list[EvalTaskSection] = field(default_factory=list)
    every: int = 0                              # default steps between evaluations (0: only at the end)


#: experiment trackers ``log.with`` accepts (each through Accelerate; see ``egokit.engine.logging``)
LOG_TRACKERS = ("tensorboard", "wandb", "mlflow", "aim")


@dataclass
class LogSection:
    """Where metrics go besides ``RUN/metrics.jsonl`` (always written). The recipe key is ``log.with`` (``with_``
    here because ``with`` is a Python keyword)."""

    with_: list[str] = field(default_factory=lambda: ["tensorboard"])  # any of LOG_TRACKERS; [] for none
    project: str = "egokit"                     # W&B project / MLflow experiment / Aim experiment

    def __post_init__(self) -> None:
        from egokit.errors import ConfigError

        for name in self.with_:
            if name not in LOG_TRACKERS:
                raise ConfigError(f"log.with: unknown tracker {name!r}; choose from {', '.join(LOG_TRACKERS)}")


def normalize_log_section(raw: dict[str, Any]) -> dict[str, Any]:
    """``log.with`` (also a single name, ``log.with=wandb``) -> the schema's ``with_`` field."""
    section = raw.get("log")
    if not isinstance(section, dict) or "with" not in section:
        return raw
    section = dict(section)
    value = section.pop("with")
    section["with_"] = [value] if isinstance(value, str) else value
    return {**raw, "log": section}


def recipe_dict(recipe: "PretrainRecipe") -> dict[str, Any]:
    """The resolved recipe as a mapping, with ``log.with`` spelled as in recipe files (``recipe.json``)."""
    from egokit.recipes import to_dict

    out = to_dict(recipe)
    out["log"] = {("with" if k == "with_" else k): v for k, v in out["log"].items()}
    return out


#: egokit 0.1 eval keys, still accepted: ``eval.egomcq=PATH`` evaluates EgoMCQ on PATH (adding it to eval.tasks),
#: ``eval.egomcq=null`` removes it; ``eval.num_frames|batch_size|limit`` set the options of the egomcq entry.
LEGACY_EVAL_KEYS = ("egomcq", "num_frames", "batch_size", "limit")


def normalize_eval_aliases(raw: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the 0.1 ``eval.egomcq`` keys (see :data:`LEGACY_EVAL_KEYS`) into ``eval.tasks`` entries."""
    section = raw.get("eval")
    if not isinstance(section, dict) or not any(k in section for k in LEGACY_EVAL_KEYS):
        return raw
    section = dict(section)
    tasks = [dict(t) if isinstance(t, dict) else t for t in (section.get("tasks") or [])]
    legacy = {k: section.pop(k) for k in LEGACY_EVAL_KEYS if k in section}
    mcq = [t for t in tasks if isinstance(t, dict) and t.get("name") == "egomcq"]
    if "egomcq" in legacy:
        if legacy["egomcq"] is None:
            tasks = [t for t in tasks if not (isinstance(t, dict) and t.get("name") == "egomcq")]
            mcq = []
        elif not mcq:
            mcq = [{"name": "egomcq", "options": {}}]
            tasks.append(mcq[0])
    for entry in mcq:
        options = dict(entry.get("options") or {})
        if legacy.get("egomcq") is not None:
            options["data"] = legacy["egomcq"]
        options.update({k: legacy[k] for k in ("num_frames", "batch_size", "limit") if k in legacy})
        entry["options"] = options
    section["tasks"] = tasks
    return {**raw, "eval": section}


@dataclass
class PretrainRecipe:
    output_dir: str = "runs/pretrain"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    log: LogSection = field(default_factory=LogSection)


def load_pretrain_recipe(recipe: str | Path | dict[str, Any] | None, overrides: Sequence[str] = ()) -> PretrainRecipe:
    """A recipe file (or mapping) with ``key=value`` overrides, the 0.1 eval aliases rewritten, validated."""
    from egokit.errors import ConfigError
    from egokit.recipes import apply_overrides, build, read_yaml

    where = str(recipe) if isinstance(recipe, (str, Path)) else "recipe"
    if isinstance(recipe, (str, Path)):
        raw = anchor_recipe_paths(normalize_eval_aliases(read_yaml(recipe)), Path(recipe).parent)
    else:
        raw = dict(recipe or {})
    try:
        return build(PretrainRecipe, normalize_log_section(normalize_eval_aliases(apply_overrides(raw, overrides))))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).replace('log.with_', 'log.with')}") from None


# Values that name a model file or folder when they look like a path; otherwise (``roberta-base``,
# ``vit_base_patch16_224``, ``hub:org/name``) they are hub/timm names and stay as written.
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".npz", ".ckpt")


def _looks_like_path(value: str, folder: Path) -> bool:
    return (value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value
            or value.lower().endswith(_WEIGHT_SUFFIXES) or (folder / value).exists())


def _anchor(value: Any, folder: Path, always: bool = True) -> Any:
    if not isinstance(value, str) or not value or value.startswith("hub:"):
        return value
    path = Path(value).expanduser()
    if path.is_absolute() or not (always or _looks_like_path(value, folder)):
        return str(path) if path.is_absolute() else value
    return os.path.abspath(folder / path)


def anchor_recipe_paths(raw: dict[str, Any], folder: str | Path) -> dict[str, Any]:
    """``raw`` (a recipe file's mapping) with its relative input paths made absolute against ``folder``, the
    file's folder (see the module doc); ``output_dir`` and names that are not paths are left as written."""
    folder = Path(os.path.abspath(folder))
    out = dict(raw)
    data = out.get("data")
    if isinstance(data, dict) and "root" in data:
        out["data"] = {**data, "root": _anchor(data["root"], folder)}
    model = out.get("model")
    if isinstance(model, dict):
        model = dict(model)
        if "checkpoint" in model:
            model["checkpoint"] = _anchor(model["checkpoint"], folder)
        for key in ("vit", "roberta"):
            if key in model:
                model[key] = _anchor(model[key], folder, always=False)
        out["model"] = model
    section = out.get("eval")
    if isinstance(section, dict) and isinstance(section.get("tasks"), list):
        tasks = []
        for entry in section["tasks"]:
            options = entry.get("options") if isinstance(entry, dict) else None
            if isinstance(options, dict) and "data" in options:
                entry = {**entry, "options": {**options, "data": _anchor(options["data"], folder)}}
            tasks.append(entry)
        out["eval"] = {**section, "tasks": tasks}
    return out


def data_path(data: DataSection, value: str) -> Path:
    """``data.egoclip`` / ``data.videos``: absolute as written, else under ``data.root`` (never the working
    directory, even when a file of that name exists there)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if data.root is None:
        from egokit.errors import ConfigError

        raise ConfigError(f"{value!r} is relative but data.root is not set: pass data.root=/path/to/egoclip")
    return Path(data.root).expanduser() / path


def data_tokenizer(data: DataSection) -> str | Path | None:
    """``data.tokenizer``: a folder (absolute, or under ``data.root``) or a hub name such as ``roberta-base``
    (a name with no folder of that name under ``data.root``)."""
    if not data.tokenizer:
        return None
    path = Path(data.tokenizer).expanduser()
    if path.is_absolute() or data.root is None:
        return path if path.is_absolute() else data.tokenizer
    under = Path(data.root).expanduser() / path
    if under.is_dir() or data.tokenizer.startswith((".", "~")) or data.tokenizer.count("/") > 1:
        return under
    return data.tokenizer
