"""Initialise the towers from image/text backbones, as the official pretraining does.

* video: an ImageNet ViT-B/16 (``vit_base_patch16_224`` family) through timm, from a local weights file or the
  hub. Patch embedding, CLS, positional embedding, the blocks' norm1/attn/norm2/mlp and the final norm are copied;
  time attention, temporal embedding, ``norm3`` and cross-attention keep their init (the model starts as a
  per-frame ViT).
* text: any RoBERTa checkpoint through transformers (``roberta-base`` from the hub or a local folder). The fused
  layers' cross-attention is new; gates stay at 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from egokit.models.report import LoadReport
from egokit.errors import CheckpointError
from egokit.models.egovlpv2 import EgoVLPv2

_VIT_BLOCK_PARTS = ("norm1.", "attn.qkv.", "attn.proj.", "norm2.", "mlp.fc1.", "mlp.fc2.")


def vit_state_dict(source: str | os.PathLike, model_name: str = "vit_base_patch16_224") -> dict[str, torch.Tensor]:
    """timm ViT weights from a local file (``.pth``/``.safetensors``/``.npz``) or a timm hub name."""
    import timm

    path = Path(str(source)).expanduser()
    try:
        if path.exists():
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            if path.suffix == ".npz":  # original JAX release: let timm convert it
                vit = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
                return vit.state_dict()
            state = torch.load(path, map_location="cpu", weights_only=True)
            return state.get("model", state.get("state_dict", state))
        return timm.create_model(str(source), pretrained=True).state_dict()
    except Exception as exc:
        raise CheckpointError(
            f"cannot load ViT weights from {source!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "pass a local timm ViT weights file if the hub is unreachable"
        ) from None


def init_video_from_vit(model: EgoVLPv2, source: str | os.PathLike) -> LoadReport:
    state = {k.removeprefix("module."): v for k, v in vit_state_dict(source).items()}
    mapped = {}
    for key, value in state.items():
        if key in ("cls_token", "pos_embed") or key.startswith(("patch_embed.proj.", "norm.")):
            mapped[f"video_model.{key}"] = value
        elif key.startswith("blocks.") and any(part in key for part in _VIT_BLOCK_PARTS):
            mapped[f"video_model.{key}"] = value
    return _load_subset(model, mapped, str(source), prefix="video_model.")


def init_text_from_roberta(model: EgoVLPv2, source: str | os.PathLike) -> LoadReport:
    from transformers import RobertaModel

    try:
        hf = RobertaModel.from_pretrained(str(source), add_pooling_layer=False)
    except Exception as exc:
        raise CheckpointError(
            f"cannot load RoBERTa weights from {source!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "pass a local folder holding a RoBERTa checkpoint if the hub is unreachable"
        ) from None
    mapped = {f"text_model.{k}": v for k, v in hf.state_dict().items() if not k.startswith("pooler.")}
    return _load_subset(model, mapped, str(source), prefix="text_model.")


def _load_subset(model: EgoVLPv2, mapped: dict[str, torch.Tensor], source: str, prefix: str) -> LoadReport:
    own = model.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in mapped.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(wrong[:4]))
    unexpected = [k for k in mapped if k not in own]
    result = model.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
    # position_ids is a constant arange buffer that recent transformers no longer store.
    missing = [k for k in result.missing_keys if k.startswith(prefix) and not k.endswith("position_ids")]
    return LoadReport(source=source, missing=missing, unexpected=unexpected)
