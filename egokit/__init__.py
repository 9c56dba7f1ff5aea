"""egokit: pre-train, evaluate and use EgoVLPv2-style fusion-in-backbone video-language models.

The top-level names are imported lazily so that ``import egokit`` stays cheap (the CLI's ``--help`` and the plugin
registry do not pay for torch/transformers imports they do not use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0.dev0"

_LAZY = {
    "load_model": ("egokit.checkpoint", "load_model"),
    "create_model": ("egokit.models", "create_model"),
    "list_models": ("egokit.models", "list_models"),
    "EgoVLPv2": ("egokit.models", "EgoVLPv2"),
    "EgoVLPv2Config": ("egokit.models", "EgoVLPv2Config"),
    "load_tokenizer": ("egokit.tokenizer", "load_tokenizer"),
    "embed_video": ("egokit.embed", "embed_video"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'egokit' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)
