"""VSLNet-style span head (``head_type=vslnet``, the default): the official EgoNLQ head, re-written from the paper.

Zhang et al., "Span-based Localizing Network for Natural Language Video Localization" (ACL 2020), as used by the
official EgoNLQ pipeline. Written from the paper's description, not from the official code:

1. **Projection**: video features -> dropout + linear (``dim``); query token states -> linear (``dim``).
2. **Shared feature encoder** (applied to video and query alike): learned positions, ``conv_layers`` residual
   pre-LN depthwise-separable convolutions (kernel 7), one residual pre-LN multi-head self-attention block and a
   residual pre-LN feed-forward block.
3. **Context-query attention**: trilinear similarity ``S_ij = w . [v_i, q_j, v_i * q_j]``; ``A = softmax_j(S) Q``
   (video-to-query) and ``B = softmax_j(S) softmax_i(S)^T V`` (query-to-video); ``[V, A, V * A, V * B]`` -> linear.
   The query is then pooled by learned attention weights and concatenated to every video step (-> linear).
4. **Query-guided highlighting**: a per-step foreground logit ``h``; the features are multiplied by
   ``sigmoid(h)``. Its target is the answer span extended on both sides by ``highlight_extend`` x its length
   (the paper's extended foreground), trained with BCE.
5. **Conditioned span predictor**: ``h_s = Enc_s(x)``, ``h_e = Enc_e(h_s)`` (the end is conditioned on the start
   states); start/end logits from a 2-layer MLP on ``[h_s, x]`` / ``[h_e, x]``. ``predictor="encoder"`` (default)
   uses the shared-weight conv + attention encoder as the official EgoVLP predictor does; ``predictor="lstm"`` uses
   the paper's two unidirectional LSTMs.

Loss (``egokit_nlq.head.span_loss`` with ``extend=highlight_extend``): CE(start) + CE(end) + weight x highlight
BCE. Inference (``egokit_nlq.head.top_spans``): p_start x p_end, end >= start, top-k spans.

Simplified versus the paper / official code: no character-level word embeddings (the query is a sequence of
pre-computed text-encoder token states, as in the official EgoNLQ features); the highlight BCE is not
positive-weighted; GELU/ReLU choice and initialisation are PyTorch defaults.
"""

from __future__ import annotations

import torch
import torch.nn as nn

_NEG = -1e4


class _DepthwiseSeparable(nn.Module):
    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pointwise = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = (self.norm(x) * mask[..., None]).transpose(1, 2)
        y = torch.relu(self.pointwise(self.depthwise(y))).transpose(1, 2)
        return x + self.drop(y)


class FeatureEncoder(nn.Module):
    """Positions + residual depthwise-separable convolutions + self-attention + feed-forward (all pre-LN)."""

    def __init__(self, dim: int, heads: int, conv_layers: int, kernel: int, max_pos: int, dropout: float) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_pos, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.convs = nn.ModuleList(_DepthwiseSeparable(dim, kernel, dropout) for _ in range(conv_layers))
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.pos[: x.shape[1]]
        for conv in self.convs:
            x = conv(x, mask)
        y = self.attn_norm(x)
        y, _ = self.attn(y, y, y, key_padding_mask=~mask, need_weights=False)
        x = x + self.drop(y)
        x = x + self.drop(self.ffn(self.ffn_norm(x)))
        return x * mask[..., None]


class ContextQueryAttention(nn.Module):
    """Trilinear context-query attention; returns (B, T, dim)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.w_video = nn.Linear(dim, 1)
        self.w_query = nn.Linear(dim, 1, bias=False)
        self.w_both = nn.Parameter(torch.empty(dim))
        nn.init.normal_(self.w_both, std=dim ** -0.5)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, v: torch.Tensor, v_mask: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        vd, qd = self.drop(v), self.drop(q)
        score = self.w_video(vd) + self.w_query(qd).transpose(1, 2) + (vd * self.w_both) @ qd.transpose(1, 2)
        to_query = score.masked_fill(~q_mask[:, None, :], _NEG).softmax(-1)  # (B, T, L): over query tokens
        to_video = score.masked_fill(~v_mask[:, :, None], _NEG).softmax(1)  # (B, T, L): over video steps
        a = to_query @ q
        b = to_query @ (to_video.transpose(1, 2) @ v)
        return self.out(torch.cat([v, a, v * a, v * b], dim=-1))


class QueryConcat(nn.Module):
    """Attention-pooled query vector concatenated to every video step, projected back to ``dim``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, q: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        alpha = self.score(q).squeeze(-1).masked_fill(~q_mask, _NEG).softmax(-1)
        pooled = (alpha[..., None] * q).sum(1, keepdim=True).expand(-1, x.shape[1], -1)
        return self.out(torch.cat([x, pooled], dim=-1))


class VSLNetHead(nn.Module):
    """Same interface as :class:`egokit_nlq.head.SpanHead`: ``forward(video, video_mask, text, text_mask)`` ->
    start, end, highlight logits (B, T), padding at -1e4. Defaults follow the official EgoNLQ configuration
    (dim 128, 8 heads, dropout 0.2, 4 conv layers of kernel 7, highlight extension 0.1)."""

    def __init__(self, video_dim: int, text_dim: int, dim: int = 128, heads: int = 8, conv_layers: int = 4,
                 kernel: int = 7, max_len: int = 256, max_text: int = 64, dropout: float = 0.2,
                 predictor: str = "encoder", highlight_extend: float = 0.1) -> None:
        super().__init__()
        if predictor not in ("encoder", "lstm"):
            raise ValueError(f"predictor must be 'encoder' or 'lstm', not {predictor!r}")
        self.config = dict(video_dim=video_dim, text_dim=text_dim, dim=dim, heads=heads, conv_layers=conv_layers,
                           kernel=kernel, max_len=max_len, max_text=max_text, dropout=dropout, predictor=predictor,
                           highlight_extend=highlight_extend)
        self.highlight_extend = highlight_extend
        self.video_in = nn.Sequential(nn.Dropout(dropout), nn.Linear(video_dim, dim))
        self.text_in = nn.Linear(text_dim, dim)
        max_pos = max(max_len, max_text)
        self.encoder = FeatureEncoder(dim, heads, conv_layers, kernel, max_pos, dropout)
        self.cq_attention = ContextQueryAttention(dim, dropout)
        self.cq_concat = QueryConcat(dim)
        self.highlight = nn.Linear(dim, 1)
        self.predictor = predictor
        if predictor == "encoder":
            self.span_encoder = FeatureEncoder(dim, heads, conv_layers, kernel, max_pos, dropout)
            self.start_norm, self.end_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        else:
            self.start_rnn = nn.LSTM(dim, dim, batch_first=True)
            self.end_rnn = nn.LSTM(dim, dim, batch_first=True)
        self.start_out = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        self.end_out = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def _span_states(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.predictor == "encoder":
            hs = self.span_encoder(x, mask)
            he = self.span_encoder(hs, mask)
            return self.start_norm(hs), self.end_norm(he)
        hs, _ = self.start_rnn(x)  # left-to-right: padding is at the end, so it never reaches valid steps
        he, _ = self.end_rnn(hs)
        return hs, he

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v = self.encoder(self.video_in(video), video_mask)
        q = self.encoder(self.text_in(text), text_mask)
        x = self.cq_attention(v, video_mask, q, text_mask)
        x = self.cq_concat(x, q, text_mask)
        highlight = self.highlight(x).squeeze(-1).masked_fill(~video_mask, _NEG)
        x = x * highlight.sigmoid()[..., None]
        hs, he = self._span_states(x, video_mask)
        start = self.start_out(torch.cat([hs, x], dim=-1)).squeeze(-1).masked_fill(~video_mask, _NEG)
        end = self.end_out(torch.cat([he, x], dim=-1)).squeeze(-1).masked_fill(~video_mask, _NEG)
        return start, end, highlight
