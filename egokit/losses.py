"""Pre-training and fine-tuning losses (EgoNCE, InfoNCE, max-margin ranking, MLM, VTM with hard negatives).

Every loss is computed in fp32 with autocast disabled, whatever the input dtype: the official EgoNCE takes
``log(sum(softmax * mask))``, which underflows in fp16, so egokit uses the log-sum-exp form instead.
Contrastive losses expect *global* embeddings (gathered over ranks with
:func:`egokit.distributed.gather_with_grad`); every rank then computes the same global loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "EgoNCEOutput",
    "LossWeights",
    "VTMPairs",
    "cosine_similarity_matrix",
    "egonce_loss",
    "egonce_positives",
    "info_nce_loss",
    "max_margin_ranking_loss",
    "mlm_loss",
    "sample_vtm_pairs",
    "total_loss",
    "vtm_key",
    "vtm_loss",
]

_EPS = 1e-8


def _fp32(device: torch.device) -> torch.autocast:
    """A context that turns autocast off, so matmuls inside stay fp32 even in an AMP training step."""
    return torch.autocast(device_type=device.type, enabled=False)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """fp32 ``S[i, j] = cos(a_i, b_j)``; rows are divided by ``max(norm, eps)`` (official ``sim_matrix``).

    Unlike ``F.normalize`` (which clamps the same way) this is spelled out to pin the official eps rule.
    """
    with _fp32(a.device):
        a, b = a.float(), b.float()
        a = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
        b = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
        return a @ b.T


def egonce_positives(n: int, verb: torch.Tensor | None = None, noun: torch.Tensor | None = None, *,
                  device: torch.device | None = None) -> torch.Tensor:
    """EgoNCE positives ``P[i, j]``: ``i == j``, or the narrations share a verb class and/or a noun class.

    Given verb and noun: both must be shared (official ``mask_v * mask_n + I > 0``); only one given: that one
    (``mask_v + I`` / ``mask_n + I``); neither: the identity (plain InfoNCE). "Shared" means cosine > 0, which
    for the non-negative multi-hot class vectors is ``dot > 0``; an all-zero vector matches nothing but itself.
    """
    if device is None:
        device = verb.device if verb is not None else noun.device if noun is not None else torch.device("cpu")
    mask = torch.eye(n, dtype=torch.bool, device=device)
    shared: torch.Tensor | None = None
    with _fp32(device):
        for classes in (verb, noun):
            if classes is None:
                continue
            if classes.shape[0] != n:
                raise ValueError(f"class vectors have {classes.shape[0]} rows, expected {n}")
            c = classes.float()
            share = (c @ c.T) > 0
            shared = share if shared is None else shared & share
    return mask if shared is None else mask | shared


class EgoNCEOutput(NamedTuple):
    """Loss plus what hard-negative mining needs: the fp32 similarity (with grad) and the positive mask."""

    loss: torch.Tensor
    similarity: torch.Tensor
    positive_mask: torch.Tensor


def egonce_loss(text_emb: torch.Tensor, video_emb: torch.Tensor, verb: torch.Tensor | None = None,
                noun: torch.Tensor | None = None, temperature: float = 0.05) -> EgoNCEOutput:
    """EgoNCE (action-aware positives; scene-aware negatives are just batch members), spec §3.2.

    ``loss = -mean_i log sum_{j in P_i} softmax(S/t)[i, j] - mean_i log sum_{j in P_i} softmax(S^T/t)[i, j]``,
    the sum of both directions, with ``S = cos(text, video)`` of shape (N, N) and ``P`` from
    :func:`egonce_positives` (symmetric, so it is used untransposed for the video-to-text term, as officially).
    Evaluated as ``logsumexp(positives) - logsumexp(all)`` in fp32.
    """
    if text_emb.shape[0] != video_emb.shape[0]:
        raise ValueError(f"EgoNCE needs paired embeddings, got {text_emb.shape[0]} texts, {video_emb.shape[0]} videos")
    sim = cosine_similarity_matrix(text_emb, video_emb)
    mask = egonce_positives(sim.shape[0], verb, noun, device=sim.device)
    with _fp32(sim.device):
        logits = sim / temperature
        loss = _multi_positive_nce(logits, mask) + _multi_positive_nce(logits.T, mask)
    return EgoNCEOutput(loss, sim, mask)


def _multi_positive_nce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``-mean_i log(sum_{j: mask[i,j]} softmax(logits)[i, j])``; every row must hold at least one positive."""
    positives = logits.masked_fill(~mask, float("-inf")).logsumexp(dim=1)
    return (logits.logsumexp(dim=1) - positives).mean()


def info_nce_loss(text_emb: torch.Tensor, video_emb: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Symmetric InfoNCE on cosine similarity, the sum of both directions (official ``NormSoftmaxLoss``)."""
    sim = cosine_similarity_matrix(text_emb, video_emb)
    with _fp32(sim.device):
        target = torch.arange(sim.shape[0], device=sim.device)
        logits = sim / temperature
        return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def max_margin_ranking_loss(text_emb: torch.Tensor, video_emb: torch.Tensor, relevance: torch.Tensor,
                            margin: float = 0.2) -> torch.Tensor:
    """EK-100 MIR fine-tuning loss (official ``AdaptiveMaxMarginRankingLoss``, ``fix_norm=True``), spec §5.2.

    With ``X = cos(text, video)`` and ``w_i = relevance[i]`` (the relation of pair i), the mean over ``i != j`` of
    ``relu(w_i*margin - (X_ii - X_ij))`` and ``relu(w_i*margin - (X_ii - X_ji))``, both sets pooled in one mean.
    """
    x = cosine_similarity_matrix(text_emb, video_emb)
    n = x.shape[0]
    if n < 2:
        raise ValueError("max-margin ranking needs at least two pairs")
    with _fp32(x.device):
        diag = x.diagonal().unsqueeze(1)
        m = relevance.float().reshape(n, 1) * margin
        off = ~torch.eye(n, dtype=torch.bool, device=x.device)
        row = F.relu(m - (diag - x))[off]  # X_ii - X_ij
        col = F.relu(m - (diag - x.T))[off]  # X_ii - X_ji
        return torch.cat([row, col]).mean()


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, *, num_targets: torch.Tensor | int | None = None,
             ignore_index: int = -100) -> torch.Tensor:
    """Masked-LM cross-entropy in fp32, averaged over the tokens whose label is not ``ignore_index``.

    ``logits`` is (..., V) with ``labels`` (...): either every token (B, L, V)/(B, L) or only the masked positions
    (M, V)/(M,), which avoids an fp32 copy of the full vocabulary logits. ``num_targets`` replaces the local
    count as denominator — pass ``global_count / world_size`` to get the global-batch mean under DDP averaging
    without gathering logits. With no target at all the loss is 0 (still attached to the graph), not NaN.
    """
    with _fp32(logits.device):
        flat_logits = logits.reshape(-1, logits.shape[-1]).float()
        flat_labels = labels.reshape(-1)
        total = F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index, reduction="sum")
        if num_targets is None:
            num_targets = (flat_labels != ignore_index).sum()
        if isinstance(num_targets, torch.Tensor):
            return total / num_targets.to(total.dtype).clamp_min(1)
        return total / max(num_targets, 1)


def vtm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Video-text matching cross-entropy on (B, 2) logits; label 1 = matched pair (official ``itm`` loss)."""
    with _fp32(logits.device):
        return F.cross_entropy(logits.float(), labels.long())


class VTMPairs(NamedTuple):
    """Global indices of the (text, video) pair for each local slot, and its match label (1 = positive)."""

    text_index: torch.Tensor
    video_index: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def sample_vtm_pairs(similarity: torch.Tensor, positive_mask: torch.Tensor, *, temperature: float = 0.05,
                     local_rows: slice, generator: torch.Generator | None = None,
                     key: torch.Tensor | int | None = None) -> VTMPairs:
    """Hard-negative VTM pairs for this rank's local slots, batched (spec §3.4, §8.1 item 5).

    ``similarity`` is the global (N, N) text-video cosine matrix and ``positive_mask`` the EgoNCE positives;
    ``local_rows = slice(r*b, (r+1)*b)``. Labels: ``b // 2`` ones and the rest zeros, randomly permuted. A label-0
    slot i (global g) keeps one side and replaces the other, choosing by a fair coin:

    * keep text g, video ``j ~ w_t2v[i]`` with ``w_t2v = softmax(S^T[rows] / t)``: row i weighs texts j by
      ``cos(t_j, v_g)``, i.e. the replacement video is picked by how well *its text* matches *video g*;
    * keep video g, text ``j ~ w_v2t[i]`` with ``w_v2t = softmax(S[rows] / t)``: weighs ``cos(t_g, v_j)``.

    This is the official orientation, transposed with respect to ALBEF; it is kept for fidelity. Both weights
    are 0 on every EgoNCE positive of g. Deviation: the official code adds 1e-9 *after* masking, so positives
    keep weight 1e-9 and get drawn once the negatives' softmax weights fall below ~1e-9 (a cosine gap above
    t*ln(1e9) ~ 1.04 at t = 0.05). egokit adds it before masking, so a positive is drawn only when every sample
    of the row is a positive (then uniformly, as officially).

    Randomness (the official code uses ``np.random``; same distributions, another stream): every draw is a
    function of a 62-bit ``key`` and the *global* position it is for (:func:`counter_uniform`), computed on
    ``similarity``'s device with fixed shapes: the labels are the ``b // 2`` slots with the smallest random keys,
    the coin is one random bit, and each replacement is a Gumbel-max draw (``argmax(log w + Gumbel)``, exactly a
    draw from ``w / sum(w)``). No host synchronisation, no generator object: the whole function can be captured
    by ``torch.compile(fullgraph=True)`` and CUDA graphs when ``key`` is a tensor. Without ``key`` one is drawn
    from ``generator`` (or the global generator): :func:`vtm_key` of a seed is the key a fresh CPU generator
    seeded with it gives. Indices are global, so the caller gathers only the video tokens / text ids they name.
    """
    start, stop = local_rows.start or 0, local_rows.stop
    if stop is None or local_rows.step not in (None, 1) or not 0 <= start < stop <= similarity.shape[0]:
        raise ValueError(f"local_rows must be a contiguous slice inside [0, {similarity.shape[0]}), got {local_rows}")
    b, n, device = stop - start, similarity.shape[0], similarity.device
    if key is None:
        key = int(torch.randint(0, 2**62, (), generator=generator,
                                device=generator.device if generator is not None else "cpu"))
    own = torch.arange(start, stop, device=device)

    cells = own[:, None] * n + torch.arange(n, device=device)  # global (slot, candidate) position
    label_bits, coin_bits, video_bits, text_bits = _counter_bits_streams(
        key, ((_STREAM_LABELS, own), (_STREAM_COIN, own), (_STREAM_VIDEO, cells), (_STREAM_TEXT, cells)))
    chosen = torch.argsort(label_bits)[: b // 2]
    labels = torch.zeros(b, dtype=torch.long, device=device).scatter(0, chosen, 1)
    replace_video = coin_bits >= 2**31

    with _fp32(device):
        sim = similarity.detach().float()
        blocked = positive_mask[local_rows]
        w_v2t = _negative_weights(sim[local_rows] / temperature, blocked)
        w_t2v = _negative_weights(sim[:, local_rows].T / temperature, blocked)
        new_video = (w_t2v.log() + _gumbel(_bits_to_uniform(video_bits))).argmax(dim=1)
        new_text = (w_v2t.log() + _gumbel(_bits_to_uniform(text_bits))).argmax(dim=1)

    negative = labels == 0
    text_index = torch.where(negative & ~replace_video, new_text, own)
    video_index = torch.where(negative & replace_video, new_video, own)
    return VTMPairs(text_index, video_index, labels)


def _negative_weights(logits: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
    """``softmax + 1e-9`` with positives zeroed afterwards; rows with no negative at all become uniform."""
    w = (F.softmax(logits, dim=1) + 1e-9).masked_fill(blocked, 0.0)
    return torch.where(blocked.all(dim=1, keepdim=True), torch.ones_like(w), w)


def vtm_key(seed: int) -> int:
    """The VTM sampling key of an integer seed: the first 62-bit draw of a CPU generator seeded with ``seed`` (what
    :func:`sample_vtm_pairs` draws from ``torch.Generator().manual_seed(seed)``). Pass it as a 0-dim int64 tensor
    to a compiled or CUDA-graphed step, where a Python int would be a constant."""
    return int(torch.randint(0, 2**62, (), generator=torch.Generator().manual_seed(int(seed))))


# ---------------------------------------------------------------------------------------- counter-based draws
_M32 = 0xFFFFFFFF
_STREAM_LABELS, _STREAM_COIN, _STREAM_VIDEO, _STREAM_TEXT = 5, 6, 7, 8


def _mul32(x, c: int):
    """``(x * c) mod 2**32`` for int64 ``x`` in [0, 2**32) without int64 overflow (16-bit halves of ``c``); ``x``
    may also be a Python int (the same value)."""
    return (x * (c & 0xFFFF) + ((x * (c >> 16)) & 0xFFFF) * 65536) & _M32


def _mix32(x):
    """A bijective 32-bit integer hash (lowbias32: xor-shift / multiply rounds) on int64 tensors in [0, 2**32) or
    on Python ints."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def counter_bits(key: torch.Tensor, stream: int, index: torch.Tensor) -> torch.Tensor:
    """32 random bits (int64 in [0, 2**32)) for each non-negative ``index`` < 2**32, a pure function of the 0-dim
    int64 ``key``, the ``stream`` number and the index: no generator state, the same on every device and rank.
    For a fixed key and stream the map index -> bits is a bijection (no two indices share a value)."""
    return _counter_bits_streams(key, ((stream, index),))[0]


def _counter_bits_streams(key: torch.Tensor | int, requests) -> list[torch.Tensor]:
    """:func:`counter_bits` for several ``(stream, index)`` pairs in one pass of element-wise ops (the same values
    as separate calls, fewer kernels). An int ``key`` has its per-stream constants computed on the host (the same
    arithmetic on Python ints); a tensor key keeps everything on its device (compiled and CUDA-graphed steps)."""
    flat = [index.to(torch.long).reshape(-1) for _, index in requests]
    sizes = [f.numel() for f in flat]
    if isinstance(key, torch.Tensor):
        key = key.to(torch.long)
        lo, hi = key & _M32, (key >> 32) & _M32
        # fills and views only: no host-to-device copy, which a CUDA graph could not record
        streams = torch.stack([torch.full_like(lo, stream) for stream, _ in requests])
        bases = _mix32(_mix32(lo ^ _mix32(streams)) ^ hi)  # one per stream
        base = torch.cat([bases[i].expand(size) for i, size in enumerate(sizes)])
    else:
        lo, hi = int(key) & _M32, (int(key) >> 32) & _M32
        base = torch.cat([torch.full((size,), _mix32(_mix32(lo ^ _mix32(stream)) ^ hi), dtype=torch.long,
                                     device=flat[0].device) for (stream, _), size in zip(requests, sizes)])
    bits = _mix32(_mix32(torch.cat(flat) ^ base) ^ lo)
    return [part.reshape(index.shape) for part, (_, index) in zip(bits.split(sizes), requests)]


def counter_uniform(key: torch.Tensor, stream: int, index: torch.Tensor) -> torch.Tensor:
    """Float32 uniforms in the open interval (0, 1) from :func:`counter_bits` (24 bits, centred)."""
    return _bits_to_uniform(counter_bits(key, stream, index))


def _bits_to_uniform(bits: torch.Tensor) -> torch.Tensor:
    return ((bits >> 8).float() + 0.5) * 2.0**-24


def _gumbel(u: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(u))


@dataclass(frozen=True)
class LossWeights:
    """Pre-training loss weights; the defaults are the official code's ``EgoNCE + MLM + 2 * VTM`` (spec §3.5)."""

    egonce: float = 1.0
    mlm: float = 1.0
    vtm: float = 2.0


def total_loss(egonce: torch.Tensor | None, mlm: torch.Tensor | None, vtm: torch.Tensor | None,
               weights: LossWeights = LossWeights()) -> torch.Tensor:
    """Weighted sum of the pre-training losses; a ``None`` term (task switched off) is skipped."""
    terms = [(w, t) for w, t in ((weights.egonce, egonce), (weights.mlm, mlm), (weights.vtm, vtm)) if t is not None]
    if not terms:
        raise ValueError("total_loss needs at least one loss term")
    out = terms[0][0] * terms[0][1]
    for w, t in terms[1:]:
        out = out + w * t
    return out
