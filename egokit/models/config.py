"""Model and preprocessing configuration.

One dataclass describes every EgoVLPv2 size; it is what ``config.json`` stores beside ``model.safetensors`` so a
checkpoint folder carries everything needed to rebuild the model and to feed it correctly (frames, resolution,
normalisation, tokenizer, text length), as timm/open_clip do with their pretrained configs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from egokit.errors import ConfigError

PROJECTIONS = ("minimal", "small")
ATTENTION_KERNELS = ("auto", "sdpa", "matmul")
DIVIDED_ATTENTION = ("split", "masked", "flex")  # see egokit.models.attention.divided_attention
CHECKPOINTING = (False, True, "none", "full", "selective")


TIME_INITS = ("zeros", "random")


@dataclass
class PreprocessConfig:
    """How raw videos and captions are turned into model inputs."""

    num_frames: int = 4
    image_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    tokenizer: str = "roberta-base"
    max_text_length: int = 15


@dataclass
class EgoVLPv2Config:
    """Architecture of an EgoVLPv2 model (defaults = the paper's base model, pretraining checkpoint)."""

    width: int = 768
    num_heads: int = 12
    depth: int = 12
    fused_layers: int = 6
    mlp_ratio: float = 4.0
    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 4
    vocab_size: int = 50265
    max_text_positions: int = 514
    type_vocab_size: int = 1
    pad_token_id: int = 1
    text_intermediate_size: int = 3072
    text_dropout: float = 0.1
    video_drop_path: float = 0.0
    video_ln_eps: float = 1e-5
    fusion_ln_eps: float = 1e-6
    text_ln_eps: float = 1e-5
    mlm_ln_eps: float = 1e-12
    projection: str = "minimal"
    projection_dim: int = 4096
    vtm_head: bool = True
    mlm_head: bool = True
    attention: str = "auto"
    divided_attention: str = "split"  # video space/time attention: split | masked | flex (same result)
    gradient_checkpointing: bool | str = False  # false/none | true/full | selective (keep matmul outputs)
    init_std: float = 0.02  # from-scratch init of linear layers (ViT/BERT: 0.02); see EgoVLPv2.reset_parameters
    embed_init_std: float = 0.02  # from-scratch init of the word embeddings (BERT: 0.02)
    time_init: str = "zeros"  # from-scratch time attention: zeros (official) | random (like the other linears)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig(**_known(PreprocessConfig, self.preprocess, "preprocess"))
        for name in ("mean", "std"):
            setattr(self.preprocess, name, tuple(float(v) for v in getattr(self.preprocess, name)))
        self.validate()

    def validate(self) -> None:
        if self.width % self.num_heads:
            raise ConfigError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if not 0 <= self.fused_layers <= self.depth:
            raise ConfigError(f"fused_layers must be in [0, depth={self.depth}], got {self.fused_layers}")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.projection not in PROJECTIONS:
            raise ConfigError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ConfigError(f"attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
        if self.divided_attention not in DIVIDED_ATTENTION:
            raise ConfigError(f"divided_attention must be one of {DIVIDED_ATTENTION}, got {self.divided_attention!r}")
        if not any(self.gradient_checkpointing is v if isinstance(v, bool) else self.gradient_checkpointing == v
                   for v in CHECKPOINTING):
            raise ConfigError("gradient_checkpointing must be false/none, true/full or selective, "
                              f"got {self.gradient_checkpointing!r}")
        if self.num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.time_init not in TIME_INITS:
            raise ConfigError(f"time_init must be one of {TIME_INITS}, got {self.time_init!r}")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def patches_per_frame(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EgoVLPv2Config":
        return cls(**_known(cls, data, "model config"))

    def replace(self, **overrides: Any) -> "EgoVLPv2Config":
        """A copy with ``overrides`` applied; ``num_frames`` also updates the preprocessing frame count."""
        data = self.to_dict()
        pre = dict(data.pop("preprocess"))
        for key, value in overrides.items():
            if key in data:
                data[key] = value
            elif key in pre:
                pre[key] = value
            else:
                raise ConfigError(f"unknown model option {key!r}; known: {sorted([*data, *pre])}")
        if "num_frames" in overrides:
            pre["num_frames"] = overrides["num_frames"]
        if "image_size" in overrides:
            pre["image_size"] = overrides["image_size"]
        return type(self)(**data, preprocess=PreprocessConfig(**pre))


def _known(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown keys in {what}: {unknown}; known: {sorted(names)}")
    return dict(data)
