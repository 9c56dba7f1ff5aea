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

Divided space-time attention (:func:`divided_attention`) has three equivalent implementations (``divided``):
``split`` (default) runs the CLS query over all tokens, then every frame (space) or patch position (time) as its
own short sequence with the CLS key prepended: two calls, the q/k/v regrouped and the CLS key/value copied into
every group. ``masked`` is one attention call over the unpermuted sequence with a (T, T) mask that allows exactly
those pairs (dense work: T keys per query). ``flex`` is one FlexAttention call with the same rule as a block mask
(block-sparse work; a fused kernel under ``torch.compile``, which egokit applies itself on CUDA when the caller is
not compiling; FlexAttention has no backward on CPU, so there a training pass computes ``masked`` instead). All
three give the same result up to float rounding.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


DIVIDED_KERNELS = ("split", "masked", "flex")
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


def divided_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_frames: int,
    axis: str,
    *,
    kernel: str = "auto",
    divided: str = "split",
) -> torch.Tensor:
    """Frozen-in-time divided attention over (B, H, T, hd) q/k/v with ``T = 1 + num_frames * N`` (token 0 = CLS,
    then frame-major patches) -> (B, H, T, hd).

    The CLS query attends to every token; a patch query attends to the CLS key and to the patches of its own frame
    (``axis="space"``) or of its own position in every frame (``axis="time"``). ``kernel`` is the attention kernel
    of the ``split`` and ``masked`` implementations (:func:`attention`); ``divided`` picks the implementation (see
    the module docstring).
    """
    if axis not in ("space", "time"):
        raise ValueError(f"axis must be space or time, got {axis!r}")
    if divided == "split":
        return _divided_split(q, k, v, num_frames, axis, kernel)
    t = q.shape[-2]
    if divided == "masked":
        return attention(q, k, v, divided_mask(t, num_frames, axis, q.device), kernel=kernel)
    if divided == "flex":
        return _divided_flex(q, k, v, num_frames, axis)
    raise ValueError(f"unknown divided attention implementation {divided!r}; expected one of {DIVIDED_KERNELS}")


def _divided_split(q, k, v, num_frames: int, axis: str, kernel: str) -> torch.Tensor:
    b, h, t, hd = q.shape
    n = (t - 1) // num_frames
    # split, not slicing: the backward of a split is one concatenation, while each slice's backward
    # zero-fills a full-size gradient and adds it (6 per call, ~0.5 s of a 7 s CPU step)
    (q_cls, q_rest), (k_cls, k_rest), (v_cls, v_rest) = (z.split([1, t - 1], dim=2) for z in (q, k, v))
    cls_out = attention(q_cls, k, v, kernel=kernel)

    def groups(z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(b, h, num_frames, n, hd)
        return z if axis == "space" else z.transpose(2, 3)

    qg, kg, vg = groups(q_rest), groups(k_rest), groups(v_rest)  # (B, H, G, L, hd)
    g = qg.shape[2]
    cls_k = k_cls[:, :, None].expand(b, h, g, 1, hd)
    cls_v = v_cls[:, :, None].expand(b, h, g, 1, hd)
    kg = torch.cat([cls_k, kg], dim=3)
    vg = torch.cat([cls_v, vg], dim=3)
    out = attention(qg.reshape(b, h * g, -1, hd), kg.reshape(b, h * g, -1, hd), vg.reshape(b, h * g, -1, hd),
                    kernel=kernel)
    out = out.reshape(b, h, g, -1, hd)
    if axis == "time":
        out = out.transpose(2, 3)
    return torch.cat([cls_out, out.reshape(b, h, num_frames * n, hd)], dim=2)


def _divided_rule(num_frames: int, patches: int, axis: str):
    """``mask_mod(b, h, q_idx, kv_idx)`` of divided attention (works on ints and index tensors alike)."""

    def mask_mod(b, h, q_idx, kv_idx):
        qp, kp = q_idx - 1, kv_idx - 1
        same = (qp // patches == kp // patches) if axis == "space" else (qp % patches == kp % patches)
        return (q_idx == 0) | (kv_idx == 0) | same

    return mask_mod


def divided_mask(num_tokens: int, num_frames: int, axis: str, device=None) -> torch.Tensor:
    """The (T, T) boolean mask of divided attention (True = may attend), CLS first, frame-major patches."""
    idx = torch.arange(num_tokens, device=device)
    return _divided_rule(num_frames, (num_tokens - 1) // num_frames, axis)(None, None, idx[:, None], idx[None, :])


def _divided_flex(q, k, v, num_frames: int, axis: str) -> torch.Tensor:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    t = q.shape[-2]
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(z.requires_grad for z in (q, k, v)):
        # FlexAttention has no backward on CPU: the same rule as one dense masked call
        return attention(q, k, v, divided_mask(t, num_frames, axis, q.device), kernel="matmul")
    rule = _divided_rule(num_frames, (t - 1) // num_frames, axis)
    block_mask = create_block_mask(rule, None, None, t, t, device=q.device)
    run = flex_attention
    if q.is_cuda and not torch.compiler.is_compiling():
        run = _compiled_flex_attention()  # eager flex_attention materialises the full score matrix
    return run(q, k, v, block_mask=block_mask)


@functools.cache
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)
