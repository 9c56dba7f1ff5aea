"""One attention function, two kernels.

``sdpa`` is :func:`torch.nn.functional.scaled_dot_product_attention` (flash/cuDNN/efficient kernels on CUDA);
``matmul`` is the explicit ``softmax(q kᵀ) v``, which on CPU runs 3-10x faster in backward than SDPA's math path
(measured on this project's reference machine). Both take the same boolean mask (True = may attend) and give the
same result, so the choice is purely about speed.

``auto`` picks per call: ``matmul`` on CPU; on CUDA ``sdpa`` unless the keys are fewer than
:data:`SDPA_MIN_KEYS`. TimeSformer's time attention is one sequence of ``frames + 1`` keys per patch (75,264
sequences of 4 queries x 5 keys at batch 32, 4 frames): the fused kernels work in tiles of 64+ rows, so there the
explicit form is faster (H100, bf16, forward + backward: cuDNN 3.41 ms, matmul 1.94 ms), while from 15 keys on
SDPA wins (15 x 15 captions: 0.36 vs 1.24 ms; 785 x 15 video<-text: 0.56 vs 0.83 ms). ``bench/gpu_check.py`` times
every call site both ways.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


SDPA_MIN_KEYS = 8  # between 5 keys (matmul faster) and 15 (SDPA faster), measured on an H100


def resolve_kernel(kernel: str, device: torch.device, num_keys: int | None = None) -> str:
    """Map ``auto`` to the fastest kernel for ``device`` and, on CUDA, the key length (``auto`` stays ``auto`` on
    CUDA when ``num_keys`` is not known yet: :func:`attention` resolves it per call)."""
    if kernel != "auto":
        return kernel
    if device.type != "cuda":
        return "matmul"
    if num_keys is None:
        return "auto"
    return "sdpa" if num_keys >= SDPA_MIN_KEYS else "matmul"


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    kernel: str = "auto",
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention over the last two dims: q (..., Lq, d), k/v (..., Lk, d) -> (..., Lq, d).

    ``mask`` is boolean and broadcastable to (..., Lq, Lk); False entries are excluded from the softmax.
    ``scale`` defaults to d**-0.5.
    """
    kernel = resolve_kernel(kernel, q.device, k.shape[-2])
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if kernel == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    if kernel != "matmul":
        raise ValueError(f"unknown attention kernel {kernel!r}")
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return torch.matmul(probs, v)


def key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 0/1 token mask -> boolean (B, 1, 1, L) mask broadcastable over heads and queries."""
    return attention_mask.bool()[:, None, None, :]
