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

    The decoder runs in float32 even under autocast (in the model's own dtype otherwise): pretraining scores only the masked positions (a few rows), so
    casting the 50265 x 768 decoder to bf16 and its gradient back cost far more than the matmul (0.37 s of a 7 s
    CPU step), and float32 logits are what the loss wants anyway.
    """

    def __init__(self, width: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.transform = MLMTransform(width, eps)
        self.decoder = nn.Linear(width, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transform(x)  # float32 under autocast (LayerNorm), else the model's dtype
        dtype = torch.promote_types(x.dtype, self.decoder.weight.dtype)
        with torch.autocast(x.device.type, enabled=False):
            return nn.functional.linear(x.to(dtype), self.decoder.weight.to(dtype), self.bias.to(dtype))


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
