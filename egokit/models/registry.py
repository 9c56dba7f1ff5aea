"""Named model configurations (timm-style): ``create_model("egovlpv2-base")``."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable

from egokit.errors import ConfigError
from egokit.models.config import EgoVLPv2Config, PreprocessConfig


def _base() -> EgoVLPv2Config:
    """The paper's model: ViT-B/16 TimeSformer + RoBERTa-base, 6 fused layers, 4096-d projection, 4 frames."""
    return EgoVLPv2Config()


def _base_smallproj() -> EgoVLPv2Config:
    """The EK-100 / Charades-Ego release: same backbones with the 256-d 'small' projection, 16 frames."""
    return EgoVLPv2Config(projection="small", projection_dim=256, num_frames=16,
                          preprocess=PreprocessConfig(num_frames=16, max_text_length=30))


def _tiny() -> EgoVLPv2Config:
    """A 4-layer, 128-wide model on 96-px frames that trains on a laptop CPU in minutes (tests, demos)."""
    return EgoVLPv2Config(
        width=128, num_heads=4, depth=4, fused_layers=2, image_size=96, patch_size=16, num_frames=4,
        vocab_size=2000, max_text_positions=40, text_intermediate_size=512, projection_dim=128, text_dropout=0.1,
        init_std=128 ** -0.5, embed_init_std=1.0, time_init="random",
        preprocess=PreprocessConfig(num_frames=4, image_size=96, tokenizer="bundled", max_text_length=15),
    )


_REGISTRY: MappingProxyType[str, Callable[[], EgoVLPv2Config]] = MappingProxyType({
    "egovlpv2-base": _base,
    "egovlpv2-base-smallproj": _base_smallproj,
    "egovlpv2-tiny": _tiny,
})


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def describe_model(name: str) -> str:
    return (get_config(name) and _REGISTRY[name].__doc__ or "").strip()


def get_config(name: str, **overrides: Any) -> EgoVLPv2Config:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(list_models())}") from None
    cfg = factory()
    return cfg.replace(**overrides) if overrides else cfg


def create_model(name: str, **overrides: Any):
    """Build a registered configuration with random (from-scratch) weights."""
    from egokit.models.egovlpv2 import EgoVLPv2

    return EgoVLPv2(get_config(name, **overrides))
