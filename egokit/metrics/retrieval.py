"""EPIC-KITCHENS-100 multi-instance retrieval metrics: mAP and nDCG over a graded relevancy matrix.

Semantics deliberately follow the official JPoSE/EPIC evaluation (EgoVLPv2 ``utils/mAP.py`` and ``utils/nDCG.py``,
identical to LaViLa's ``evaluation_ek100mir.py``) so that numbers are comparable with published ones:

* mAP: an item is relevant only if its relevance is exactly 1, but the precision numerator at a relevant rank k is
  the cumulative sum of the *graded* relevances of the first k items (not the count of hits).
* nDCG: the graded relevance is summed over the first K ranks only, K being the number of items with relevance > 0
  for that query; the ideal DCG uses the same K with items sorted by relevance.
* A query with no relevant item gives 0/0 = NaN, which makes the mean NaN, exactly as the official ``np.mean``.
* Ties in similarity: ranks come from numpy's default (introsort, not stable) ``argsort``, like the official code;
  nDCG reverses an ascending argsort (``argsort(s)[:, ::-1]``) while mAP sorts ``-s`` ascending, so tied items can be
  ordered differently by the two metrics, as they are officially.

Rows of ``similarity``/``relevancy`` are videos and columns texts; "v2t" ranks texts for each video, "t2v" uses the
transposes. Values are fractions (multiply by 100 for the usual tables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["mir_map", "mir_ndcg"]


def _as_pair(similarity: Any, relevancy: Any) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(similarity, dtype=np.float64)
    rel = np.asarray(relevancy, dtype=np.float64)
    if sim.ndim != 2 or sim.shape != rel.shape:
        raise ValueError(f"similarity and relevancy must be 2-D with equal shapes; got {sim.shape} and {rel.shape}")
    return sim, rel


def _average_precision_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row AP with the official graded numerator; NaN for rows without an item of relevance 1."""
    order = np.argsort(-sim, axis=1)  # default kind, as the official `(-sim_mat).argsort()`
    ranked = np.take_along_axis(rel, order, axis=1)
    hits = ranked == 1
    graded_cumsum = np.cumsum(ranked, axis=1)
    ranks = np.arange(1, ranked.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hits, graded_cumsum / ranks, 0.0).sum(axis=1) / hits.sum(axis=1)


def _dcg_rows(sim: np.ndarray, rel: np.ndarray, k_mask: np.ndarray) -> np.ndarray:
    order = np.argsort(sim, axis=1)[:, ::-1]  # default kind, reversed, as the official calculate_DCG
    gains = np.take_along_axis(rel, order, axis=1) * k_mask
    return (gains / np.log2(np.arange(sim.shape[1]) + 2.0)).sum(axis=1)


def _ndcg_rows(sim: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-row nDCG truncated at the row's number of relevant (> 0) items; NaN for rows without one."""
    k_mask = np.sort(rel, axis=1)[:, ::-1] > 0  # first K_q ranks, K_q = #(rel > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _dcg_rows(sim, rel, k_mask) / _dcg_rows(rel, rel, k_mask)


def _both_directions(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray], similarity: Any, relevancy: Any
) -> dict[str, float]:
    sim, rel = _as_pair(similarity, relevancy)
    v2t = float(np.mean(fn(sim, rel)))
    t2v = float(np.mean(fn(sim.T, rel.T)))
    return {"v2t": v2t, "t2v": t2v, "avg": (v2t + t2v) / 2.0}


def mir_map(similarity: Any, relevancy: Any) -> dict[str, float]:
    """Mean average precision, video-to-text, text-to-video and their average (fractions; see module doc)."""
    return _both_directions(_average_precision_rows, similarity, relevancy)


def mir_ndcg(similarity: Any, relevancy: Any) -> dict[str, float]:
    """Normalised DCG, video-to-text, text-to-video and their average (fractions; see module doc)."""
    return _both_directions(_ndcg_rows, similarity, relevancy)
