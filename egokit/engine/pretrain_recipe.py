"""Schema of ``egokit pretrain`` recipes (``recipes/egoclip.yaml``, ``recipes/demo.yaml``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class ModelSection:
    name: str = "egovlpv2-base"                 # registry name (see `egokit models`)
    checkpoint: Optional[str] = None            # start from an official .pth / egokit folder / hub:org/name
    vit: Optional[str] = None                   # timm ViT weights (file or timm name) for the video tower
    roberta: Optional[str] = None               # RoBERTa weights (folder or hub name) for the text tower
    overrides: dict[str, Any] = field(default_factory=dict)  # config overrides, e.g. {attention: matmul}
    gradient_checkpointing: bool = False


@dataclass
class DataSection:
    root: Optional[str] = None                  # dataset folder; paths below are relative to it
    egoclip: str = "egoclip.csv"
    videos: str = "videos"
    tokenizer: Optional[str] = None             # folder/hub name; default: the model's (or <root>/tokenizer)
    num_frames: int = 4
    chunk_seconds: float = 600.0
    neg_window: Optional[float] = 60.0          # scene-aware negatives window (s); null disables (no doubling)
    max_text_length: int = 15
    mlm_probability: float = 0.15
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
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    compile: bool = False                       # torch.compile the transformer blocks (CUDA; slow start)
    compile_backend: str = "inductor"           # any torch.compile backend (aot_eager: checks without a compiler)


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


def load_pretrain_recipe(recipe: str | Path | dict[str, Any] | None, overrides: Sequence[str] = ()) -> PretrainRecipe:
    """A recipe file (or mapping) with ``key=value`` overrides, the 0.1 eval aliases rewritten, validated."""
    from egokit.errors import ConfigError
    from egokit.recipes import apply_overrides, build, read_yaml

    where = str(recipe) if isinstance(recipe, (str, Path)) else "recipe"
    raw = read_yaml(recipe) if isinstance(recipe, (str, Path)) else dict(recipe or {})
    try:
        return build(PretrainRecipe, normalize_eval_aliases(apply_overrides(raw, overrides)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
