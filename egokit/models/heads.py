"""Projection, pooling, video-text matching and masked-language-model heads (official key names)."""

from __future__ import annotations

import torch
import torch.nn as nn

from egokit.models.config import EgoVLPv2Config


def build_projections(cfg: EgoVLPv2Config) -> tuple[nn.Sequential, nn.Sequential]:
    """(txt_proj, vid_proj).

    ``minimal``: Linear(no bias) -> ReLU -> Linear -> ReLU -> Linear (768-4096-4096-4096, pretraining checkpoint).
    ``small``: text ReLU -> Linear, video Linear (768->256, the EK-100 / Charades-Ego checkpoints; the text-side ReLU
    before the projection is inherited from EgoVLP and kept for checkpoint compatibility).
    """
    d, p = cfg.width, cfg.projection_dim
    if cfg.projection == "minimal":

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(d, p, bias=False), nn.ReLU(), nn.Linear(p, p), nn.ReLU(), nn.Linear(p, p))

        return mlp(), mlp()
    return nn.Sequential(nn.ReLU(), nn.Linear(d, p)), nn.Sequential(nn.Linear(d, p))


class Pooler(nn.Module):
    """Linear + tanh on an already selected token."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x))


class VTMHead(nn.Module):
    """Video-text matching classifier on [text, video] pooled features; class 1 = match (official ``ITMHead``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class MLMTransform(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.act = nn.GELU()
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class MLMHead(nn.Module):
    """Dense-GELU-LayerNorm transform, then an untied decoder plus a separate bias (official ``MLMHead``).

    The decoder runs outside autocast (:func:`outside_autocast`): pretraining scores only the masked positions.
    """

    def __init__(self, width: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.transform = MLMTransform(width, eps)
        self.decoder = nn.Linear(width, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return outside_autocast(self.decoder, self.transform(x)) + self.bias


def outside_autocast(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``module`` with autocast off, in float32 (or the model's own dtype when that is wider or it is not
    autocast's business, e.g. float64 or a pure-bf16 model).

    For big layers applied to a few rows (the 4096-wide projections on CLS vectors: 73 M parameters; the 50265-way
    MLM decoder on masked tokens: 39 M) autocast would cast every weight to bf16 and every weight gradient back to
    float32 each step, a pass over more memory than the matmuls of a few rows touch; float32 embeddings and logits
    are what the losses want anyway.
    """
    weight = next(module.parameters())
    dtype = torch.promote_types(x.dtype, weight.dtype)
    with torch.autocast(x.device.type, enabled=False):
        return module(x.to(dtype))


def init_bert_style(module: nn.Module, std: float = 0.02) -> None:
    """normal(0, std) weights, zero biases, unit LayerNorm: the official ``init_weights`` (std 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
