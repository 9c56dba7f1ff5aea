"""Exact top-k search over a memory-mapped index, and optional re-ranking with the fusion VTM head.

Search is one matrix product per chunk of rows: each chunk of the (N, D) memory-mapped matrix is copied into a
reusable float32 buffer and multiplied by the (D, Q) query matrix; a running top-k per query is merged chunk by
chunk. The cost is one pass over the matrix per batch of queries (N x D x 2 bytes for float16), the memory a
buffer of ``chunk_rows`` rows plus the pages the OS caches; nothing of size N is allocated. Scores are float32
cosines of the stored vectors, identical whatever the chunk size; ties keep the lower row first.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egokit.errors import ConfigError, DataError
from egokit.search.index import WINDOW_DTYPE, IndexVideo, read_index_meta

__all__ = ["CHUNK_BYTES", "Hit", "SearchIndex", "encode_queries", "rerank_vtm"]

CHUNK_BYTES = 32 << 20  # float32 buffer per chunk: 32 MiB (32768 rows at D=256, 2048 at D=4096)


@dataclass
class Hit:
    """One retrieved window: its rank (1 = best), where it is and its cosine score (and VTM probability)."""

    rank: int
    row: int
    video: str
    path: str
    window: int
    start: float
    end: float
    score: float
    vtm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rank": self.rank, "video": self.video, "path": self.path, "start": round(self.start, 3),
               "end": round(self.end, 3), "score": round(self.score, 6), "row": self.row, "window": self.window}
        if self.vtm is not None:
            out["vtm"] = round(self.vtm, 6)
        return out


def _topk_merge(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query (axis 0), the ``k`` best of ``scores`` (Q, M): highest score first, lower row on ties."""
    order = np.lexsort((rows, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, -1), np.take_along_axis(rows, order, -1)


def _merge_topk(scores, best_s: np.ndarray, best_r: np.ndarray, r0: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the best ``k`` of a chunk's ``scores`` (Q, m) (rows ``r0 ...``) into the running top-k."""
    import torch

    m = scores.shape[1]
    kk = min(k, m)
    vals, idx = torch.topk(scores, min(kk + 1, m), dim=1)  # sorted, best first
    cand_s, cand_r = vals[:, :kk].numpy().copy(), idx[:, :kk].numpy().astype(np.int64) + r0
    if vals.shape[1] > kk:  # an exact tie across the k-th place: keep the lowest rows, as a full sort would
        for j in torch.nonzero(vals[:, kk] == vals[:, kk - 1]).flatten().tolist():
            col = scores[j].numpy()
            pick = np.flatnonzero(col >= vals[j, kk - 1].item())
            order = np.lexsort((pick, -col[pick]))[:kk]
            cand_s[j], cand_r[j] = col[pick[order]], pick[order] + r0
    return _topk_merge(np.concatenate([best_s, cand_s], 1), np.concatenate([best_r, cand_r], 1), k)


def _merge_above(scores, best_s: np.ndarray, best_r: np.ndarray, r0: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Once every query has ``k`` results, only scores above its current k-th best can enter. Those are few after
    the first chunks (about k * m / rows seen so far), so one comparison replaces a top-k over the chunk. Rows come
    in increasing order, so a later row that only ties the k-th best stays out, as a full sort would keep it out."""
    import torch

    above = scores > torch.from_numpy(best_s[:, -1:])
    if not bool(above.any()):
        return best_s, best_r
    qi, ri = torch.nonzero(above, as_tuple=True)
    vals = scores[qi, ri].numpy()
    qi, ri = qi.numpy(), ri.numpy().astype(np.int64) + r0
    best_s, best_r = best_s.copy(), best_r.copy()
    for j in np.unique(qi):
        sel = qi == j
        s, r = _topk_merge(np.concatenate([best_s[j], vals[sel]])[None], np.concatenate([best_r[j], ri[sel]])[None], k)
        best_s[j], best_r[j] = s[0], r[0]
    return best_s, best_r


class SearchIndex:
    """An index folder opened for search: ``vectors`` (N, D) and ``windows`` (N,) memory-mapped, read-only."""

    def __init__(self, index_dir: str | os.PathLike) -> None:
        self.path = Path(index_dir)
        self.meta = read_index_meta(self.path)
        try:
            self.vectors = np.load(self.path / self.meta["vectors"], mmap_mode="r")
            self.windows = np.load(self.path / self.meta["windows"], mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot open the index files ({exc}); rebuild it with `egokit index`") \
                from None
        if self.vectors.shape != (self.meta["count"], self.meta["dim"]) or self.windows.dtype != WINDOW_DTYPE \
                or len(self.windows) != self.meta["count"]:
            raise DataError(f"{self.path}: the index files do not match index.json; rebuild it with `egokit index`")
        self.videos = [IndexVideo(**v) for v in self.meta["videos"]]

    def __len__(self) -> int:
        return int(self.meta["count"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def search_vectors(self, queries: np.ndarray, k: int = 10, *, chunk_rows: int | None = None,
                       num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` rows for each query vector ((Q, D) or (D,), compared as given: normalise them first).

        Returns ``(scores, rows)``, each (Q, min(k, N)), best first."""
        import torch

        q = np.asarray(queries, dtype=np.float32)
        q = q[None] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ConfigError(f"query vectors must be (Q, {self.dim}), got {tuple(np.shape(queries))}")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        n = len(self)
        k = min(k, n)
        rows_per_chunk = chunk_rows or max(256, CHUNK_BYTES // (4 * self.dim))
        qt = torch.from_numpy(np.ascontiguousarray(q.T))  # (D, Q)
        buf = torch.empty((min(rows_per_chunk, n), self.dim), dtype=torch.float32)
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_r = np.zeros((len(q), 0), dtype=np.int64)
        threads = torch.get_num_threads()
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            for r0 in range(0, n, rows_per_chunk):
                block = self.vectors[r0:r0 + rows_per_chunk]
                b = buf[:len(block)]
                with warnings.catch_warnings():  # read-only memory map: the tensor is only read
                    warnings.simplefilter("ignore", UserWarning)
                    view = torch.from_numpy(np.asarray(block))
                b.copy_(view)  # float16 -> float32 while copying
                # rows x queries, the matrix on the left: BLAS streams the rows once (the (Q, D) x (D, m) form is
                # ~10x slower for one query at D=4096, measured on this project's 2-core machine)
                scores = torch.mm(b, qt).T  # (Q, m) view
                if best_s.shape[1] == k:
                    best_s, best_r = _merge_above(scores, best_s, best_r, r0, k)
                else:
                    best_s, best_r = _merge_topk(scores, best_s, best_r, r0, k)
        finally:
            torch.set_num_threads(threads)
        return best_s, best_r

    def hits(self, scores: np.ndarray, rows: np.ndarray) -> list[Hit]:
        """One query's ``(scores, rows)`` ((k,), or (1, k) as :meth:`search_vectors` returns them) as hits."""
        scores, rows = np.asarray(scores).reshape(-1), np.asarray(rows).reshape(-1)
        out = []
        for rank, (score, row) in enumerate(zip(scores.tolist(), rows.tolist()), 1):
            rec = self.windows[row]
            video = self.videos[int(rec["video"])]
            out.append(Hit(rank=rank, row=int(row), video=video.uid, path=video.path, window=int(rec["window"]),
                           start=float(rec["start"]), end=float(rec["end"]), score=float(score)))
        return out

    def video(self, uid: str) -> IndexVideo:
        for video in self.videos:
            if video.uid == uid:
                return video
        raise DataError(f"{self.path}: no video {uid!r} in the index")

    def recipe(self):
        from egokit.embed.recipes import FeatureRecipe

        data = dict(self.meta.get("recipe") or {})
        if not data:
            raise DataError(f"{self.path}/index.json records no feature recipe; rebuild the index")
        return FeatureRecipe(**data)


def encode_queries(model, tokenizer, texts: Sequence[str]) -> np.ndarray:
    """(Q, P) L2-normalised dual-encoder text embeddings of ``texts`` (the model's text length and padding)."""
    import torch

    from egokit.engine.features import encode_texts

    if not texts:
        raise ConfigError("give at least one query text")
    with torch.no_grad():
        emb = encode_texts(model, tokenizer, list(texts))
    return torch.nn.functional.normalize(emb.float(), dim=-1).numpy()


def window_clips(index: SearchIndex, hits: Sequence[Hit], image_size: int):
    """uint8 (len(hits), F, 3, S, S): each hit's window frames exactly as indexing read them (the recipe's plan)."""
    import torch

    from egokit.data.transforms import EvalTransform
    from egokit.data.video import VideoInfo, probe_video, read_frames_at
    from egokit.embed.extract import plan_windows

    recipe = index.recipe()
    transform = EvalTransform(image_size)
    clips = []
    plans: dict[str, Any] = {}
    for hit in hits:
        video = index.video(hit.video)
        if hit.video not in plans:
            frames = video.num_video_frames
            if frames is None:
                frames = probe_video(video.path).num_frames
            info = VideoInfo(fps=video.fps, duration=frames / video.fps, num_frames=int(frames), width=0, height=0)
            plans[hit.video] = plan_windows(recipe, info, video.clip_start, video.clip_end)
        plan = plans[hit.video]
        if len(plan) != video.num_windows:
            raise DataError(f"{video.path}: the video now has {len(plan)} windows but was indexed with "
                            f"{video.num_windows}; rebuild the index")
        times = [(int(i) + 0.5) / video.fps for i in plan.frames[hit.window]]
        clips.append(transform(read_frames_at(video.source, times, short_side=recipe.short_side)))
    return torch.stack(clips)


def rerank_vtm(index: SearchIndex, hits: Sequence[Hit], model, tokenizer, query: str, n: int, *,
               batch_size: int = 8) -> list[Hit]:
    """Score the first ``n`` hits with the fusion VTM head (probability of a match) and order them by it (ties:
    dual score); the hits after ``n`` keep their order. Ranks are renumbered."""
    import torch

    from egokit.data.transforms import normalize_video
    from egokit.summarize.scoring import encode_query, fuse_with_query, vtm_probability

    if n < 1:
        return list(hits)
    recipe = index.recipe()
    if model.config.num_frames != recipe.frames_per_window:
        raise ConfigError(f"re-ranking needs the model loaded with num_frames={recipe.frames_per_window} "
                          f"(the index's windows), got {model.config.num_frames}")
    if not model.config.vtm_head:
        raise ConfigError("the checkpoint has no VTM head; re-ranking needs a full (fusion) model")
    top, rest = list(hits[:n]), list(hits[n:])
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    pre = model.config.preprocess
    prefix = encode_query(model, tokenizer, query)
    probs: list[float] = []
    with torch.no_grad():
        for b0 in range(0, len(top), batch_size):
            clips = window_clips(index, top[b0:b0 + batch_size], model.config.image_size)
            video = normalize_video(clips.to(device), pre.mean, pre.std, dtype=dtype)
            fused = fuse_with_query(model, model.fusion_video_prefix(video), prefix)
            probs.extend(vtm_probability(model, fused).float().cpu().tolist())
    for hit, p in zip(top, probs):
        hit.vtm = float(p)
    top.sort(key=lambda h: (-h.vtm, -h.score, h.row))
    out = top + rest
    for rank, hit in enumerate(out, 1):
        hit.rank = rank
    return out


def search_texts(index: SearchIndex | str | os.PathLike, model, tokenizer, queries: Sequence[str], *, k: int = 10,
                 rerank: int = 0, chunk_rows: int | None = None) -> list[tuple[str, list[Hit]]]:
    """Top-``k`` moments of ``index`` for each query text; with ``rerank`` > 0 the best ``rerank`` candidates of
    each query (``rerank`` may exceed ``k``) are re-ordered by the fusion VTM head before the first ``k`` are kept
    (``model`` must then be a full model with the index's frames).

    Example::

        model = egokit.load_model("EgoVLPv2.pth")
        tok = egokit.load_tokenizer("roberta-base")
        for query, hits in search_texts("my_index", model, tok, ["I open the fridge"], k=5):
            print([(h.video, h.start, h.end, h.score) for h in hits])
    """
    index = index if isinstance(index, SearchIndex) else SearchIndex(index)
    vectors = encode_queries(model, tokenizer, queries)
    if vectors.shape[1] != index.dim:
        raise ConfigError(f"the model's text embeddings have {vectors.shape[1]} dimensions but the index has "
                          f"{index.dim}: search with the checkpoint that built the index")
    scores, rows = index.search_vectors(vectors, max(k, rerank), chunk_rows=chunk_rows)
    results = []
    for query, s, r in zip(queries, scores, rows):
        hits = index.hits(s, r)
        if rerank:
            hits = rerank_vtm(index, hits, model, tokenizer, query, rerank)
        results.append((query, hits[:k]))
    return results
