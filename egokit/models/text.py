"""RoBERTa text tower with gated text<-video cross-attention in its top layers.

egokit's own module, state-dict compatible with Hugging Face ``roberta-base`` (``embeddings.*``,
``encoder.layer.N.*``), so any RoBERTa checkpoint initialises it. The fused layers (official names
``crossattention_t2i`` and ``alpha_t2i``) follow EgoVLPv2/FIBER exactly:

``a = SelfOutput(SelfAttn(T))`` (dense + dropout, no residual yet); ``a = a + alpha * CrossOut(CrossAttn(q=a,
kv=V))`` with keys/values from the raw video stream and no mask over video tokens; then ``LN(a + T)`` and the FFN.
With ``alpha = 0`` a fused layer computes exactly what the plain layer computes.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from egokit.models.attention import attention
from egokit.models.config import EgoVLPv2Config


class RobertaEmbeddings(nn.Module):
    def __init__(self, cfg: EgoVLPv2Config) -> None:
        super().__init__()
        self.pad_token_id = cfg.pad_token_id
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_text_positions, cfg.width, padding_idx=cfg.pad_token_id)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.width)
        self.LayerNorm = nn.LayerNorm(cfg.width, eps=cfg.text_ln_eps)
        self.dropout = nn.Dropout(cfg.text_dropout)
        # Persistent, as in the official checkpoints (``text_model.embeddings.position_ids``).
        self.register_buffer("position_ids", torch.arange(cfg.max_text_positions).expand(1, -1), persistent=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # RoBERTa positions: padding keeps pad_token_id, real tokens count up from pad_token_id + 1.
        real = input_ids.ne(self.pad_token_id).long()
        positions = torch.cumsum(real, dim=1) * real + self.pad_token_id
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings(torch.zeros_like(input_ids))
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.dropout_p = dropout

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None, kernel: str) -> torch.Tensor:
        b, lq, d = x.shape
        h = self.num_heads

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.reshape(b, z.shape[1], h, d // h).transpose(1, 2)

        p = self.dropout_p if self.training else 0.0
        out = attention(heads(self.query(x)), heads(self.key(kv)), heads(self.value(kv)), mask, kernel=kernel, dropout_p=p)
        return out.transpose(1, 2).reshape(b, lq, d)


class SelfOutput(nn.Module):
    """Dense + dropout; the LayerNorm lives here (HF naming) but is applied by the layer after the gate."""

    def __init__(self, width: int, dropout: float, eps: float | None) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class Attention(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float, eps: float | None) -> None:
        super().__init__()
        self.self = SelfAttention(width, num_heads, dropout)
        self.output = SelfOutput(width, dropout, eps)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None, kernel: str) -> torch.Tensor:
        return self.output(self.self(x, kv, mask, kernel))


class Intermediate(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, hidden)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Output(nn.Module):
    def __init__(self, hidden: int, width: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class RobertaLayer(nn.Module):
    def __init__(self, cfg: EgoVLPv2Config, fused: bool) -> None:
        super().__init__()
        w, p, eps = cfg.width, cfg.text_dropout, cfg.text_ln_eps
        self.attention = Attention(w, cfg.num_heads, p, eps)
        if fused:
            self.crossattention_t2i = Attention(w, cfg.num_heads, p, eps=None)
            self.alpha_t2i = nn.Parameter(torch.zeros(1))
        self.intermediate = Intermediate(w, cfg.text_intermediate_size)
        self.output = Output(cfg.text_intermediate_size, w, p, eps)
        self.fused = fused

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        kernel: str,
        video: torch.Tensor | None = None,
    ) -> torch.Tensor:
        a = self.attention(x, x, mask, kernel)
        if video is not None:
            if not self.fused:
                raise RuntimeError("this text layer has no cross-attention; video can only be passed to fused layers")
            a = self.alpha_t2i * self.crossattention_t2i(a, video, None, kernel) + a
        a = self.attention.output.LayerNorm(a + x)
        return self.output(self.intermediate(a), a)


class RobertaEncoder(nn.Module):
    def __init__(self, cfg: EgoVLPv2Config) -> None:
        super().__init__()
        first_fused = cfg.depth - cfg.fused_layers
        self.layer = nn.ModuleList(RobertaLayer(cfg, fused=i >= first_fused) for i in range(cfg.depth))


class RobertaTextModel(nn.Module):
    """Embeddings + encoder (no pooler: EgoVLPv2 never uses it and its checkpoints do not hold one)."""

    def __init__(self, cfg: EgoVLPv2Config) -> None:
        super().__init__()
        self.embeddings = RobertaEmbeddings(cfg)
        self.encoder = RobertaEncoder(cfg)
