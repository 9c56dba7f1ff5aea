"""Schema of ``egokit pretrain`` recipes (``recipes/egoclip.yaml``, ``recipes/demo.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
class EvalSection:
    egomcq: Optional[str] = None                # folder with egomcq.json + videos/ (null: no periodic eval)
    every: int = 0                              # steps between evaluations (0: only at the end)
    num_frames: int = 4                         # the paper evaluates 4 frames during pretraining
    batch_size: int = 4
    limit: Optional[int] = None


@dataclass
class PretrainRecipe:
    output_dir: str = "runs/pretrain"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
