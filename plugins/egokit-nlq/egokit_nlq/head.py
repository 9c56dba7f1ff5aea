"""egokit's span head for NLQ (``head_type=span``): a small pre-LN transformer over [query tokens; video steps].

It keeps VSLNet's training signal (start and end cross-entropy plus a highlight BCE on the answer's steps) and its
decoding (top-k of the upper triangle of p_start x p_end), with joint attention in place of VSLNet's conv encoders
and context-query attention. Which head is better: README, "Tasks".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_NEG = -1e4


class SpanHead(nn.Module):
    def __init__(self, video_dim: int, text_dim: int, dim: int = 128, heads: int = 4, layers: int = 2,
                 max_len: int = 256, max_text: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.config = dict(video_dim=video_dim, text_dim=text_dim, dim=dim, heads=heads, layers=layers,
                           max_len=max_len, max_text=max_text, dropout=dropout)
        self.video_in = nn.Sequential(nn.LayerNorm(video_dim), nn.Dropout(dropout), nn.Linear(video_dim, dim))
        self.text_in = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.video_pos = nn.Parameter(torch.zeros(max_len, dim))
        self.text_pos = nn.Parameter(torch.zeros(max_text, dim))
        nn.init.trunc_normal_(self.video_pos, std=0.02)
        nn.init.trunc_normal_(self.text_pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 3)  # start, end, highlight

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, Dv), (B, T) bool, (B, L, Dt), (B, L) bool -> start, end, highlight logits (B, T), padding -1e4."""
        t, l = video.shape[1], text.shape[1]
        v = self.video_in(video) + self.video_pos[:t]
        q = self.text_in(text) + self.text_pos[:l]
        keep = torch.cat([text_mask, video_mask], dim=1)
        x = self.encoder(torch.cat([q, v], dim=1), src_key_padding_mask=~keep)
        logits = self.out(self.norm(x[:, l:]))
        logits = logits.masked_fill(~video_mask[..., None], _NEG)
        return logits[..., 0], logits[..., 1], logits[..., 2]


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, highlight_logits: torch.Tensor,
              video_mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
              highlight_weight: float = 5.0, extend: float = 0.0) -> torch.Tensor:
    """CE(start) + CE(end) + weight * masked BCE(highlight) with positives = steps in [start, end], that span
    widened on both sides by ``round(extend * length)`` steps (VSLNet's extended foreground; 0: the span itself)."""
    steps = torch.arange(video_mask.shape[1], device=video_mask.device)
    pad = torch.round(extend * (end - start + 1).float()).long()
    inside = ((steps[None] >= (start - pad)[:, None]) & (steps[None] <= (end + pad)[:, None])).float()
    bce = F.binary_cross_entropy_with_logits(highlight_logits, inside, reduction="none")
    bce = (bce * video_mask).sum() / video_mask.sum().clamp(min=1)
    return F.cross_entropy(start_logits, start) + F.cross_entropy(end_logits, end) + highlight_weight * bce


@torch.no_grad()
def top_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, video_mask: torch.Tensor, k: int = 5,
              max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` (start, end) step pairs (B, k, 2) with start <= end by p_start * p_end, and their scores."""
    ps = start_logits.float().softmax(-1)
    pe = end_logits.float().softmax(-1)
    joint = ps[:, :, None] * pe[:, None, :]
    t = joint.shape[-1]
    allowed = torch.ones(t, t, dtype=torch.bool, device=joint.device).triu()
    if max_steps is not None:
        allowed &= ~torch.ones_like(allowed).triu(max_steps)
    pair_ok = allowed[None] & video_mask[:, :, None] & video_mask[:, None, :]
    joint = joint.masked_fill(~pair_ok, -1.0).flatten(1)
    scores, flat = joint.topk(min(k, joint.shape[1]), dim=-1)
    return torch.stack([flat // t, flat % t], dim=-1), scores
