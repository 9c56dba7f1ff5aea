"""Attention rollout of the dual video tower from its CLS token.

Rollout multiplies the layers' head-averaged attention matrices, each mixed with the identity for the residual
stream, and reads the row of the output CLS token: how much each input token (here each frame patch) flows into
the video embedding. A divided space-time block computes ``z = x + time(x)``, then ``x + space(z)``, so its
token-mixing matrix is ``M = (I + S (I + T) / 2) / 2`` (S, T the space and time attention matrices, every matrix
row-stochastic, so the rollout row sums to 1). The row is propagated from the last block down as a vector, using
the block structure of S and T, so no (T x T) matrix is formed even at 16 frames.
"""

from __future__ import annotations

import torch

from egokit.explain.capture import DividedProbs

__all__ = ["apply_divided", "cls_rollout"]


def apply_divided(r: torch.Tensor, probs: DividedProbs, sample: int = 0) -> torch.Tensor:
    """``r @ A`` for the (T,) row vector ``r`` and the head-averaged attention matrix ``A`` of ``probs`` (computed
    in ``r``'s dtype; the rollout uses float64)."""
    cls = probs.cls[sample].mean(0).to(r.dtype)  # (T,)
    groups = probs.groups[sample].mean(0).to(r.dtype)  # (G, L, 1+L)
    f = probs.num_frames
    n = (r.shape[0] - 1) // f
    rest = r[1:].reshape(f, n)
    rg = rest if probs.axis == "space" else rest.T  # (G, L)
    contrib = torch.einsum("gl,glk->gk", rg, groups)  # (G, 1+L)
    out = r[0] * cls
    out[0] += contrib[:, 0].sum()
    patch = contrib[:, 1:]
    out[1:] += (patch if probs.axis == "space" else patch.T).reshape(-1)
    return out


def cls_rollout(blocks: dict[int, dict[str, DividedProbs]], sample: int = 0) -> torch.Tensor:
    """(T,) rollout row of the output CLS over the input tokens (CLS first, then frame-major patches)."""
    if not blocks:
        raise ValueError("no attention was recorded: run the dual video tower inside DividedAttentionCapture")
    first = blocks[min(blocks)]["space"]
    r = torch.zeros(first.cls.shape[-1], dtype=torch.float64)
    r[0] = 1.0
    for i in sorted(blocks, reverse=True):
        space = apply_divided(r, blocks[i]["space"], sample)
        mixed = 0.5 * space + 0.5 * apply_divided(space, blocks[i]["time"], sample)
        r = 0.5 * r + 0.5 * mixed
    return r.float()
