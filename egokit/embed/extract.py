"""Sliding-window video features: decode each video once, batch windows across videos, write resumably.

Decoding: a video's windows are read in chunks of consecutive windows, each chunk with one seek to the key frame
before it and a forward decode (``egokit.data.video.read_frames_at``), never one seek per window; only the frames
the windows use are converted to RGB, each once. Decoding runs in a background thread, overlapping the model.

Batching: windows of consecutive videos share forward batches (a short clip does not waste a batch), and results
are scattered back per video. Fusion mode runs the unfused lower layers once per window and the fused layers once
per (window, query), with each query's text prefix computed once per clip (``EgoVLPv2.fuse``).

Differences from the official extraction (spec §5.4/§5.5): frames come from the stream's real frame rate and
timestamps instead of an assumed 30 fps (identical on Ego4D's 30-fps videos), frame ``i`` itself instead of
decord's batch read, the eval transform crops before resizing once (``egokit.data.transforms``), and no normalised
frame tensors are cached on disk (the official NLQ code wrote ~2 GB per clip).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from egokit.data.transforms import EvalTransform
from egokit.data.video import VideoInfo, probe_video, read_frames_at
from egokit.embed.items import EmbedItem, Query
from egokit.embed.recipes import FeatureRecipe
from egokit.embed.windows import WindowPlan, ego4d_windows, sliding_windows
from egokit.engine.features import prepare_video, tokenize_texts
from egokit.errors import ConfigError, DataError

__all__ = ["EmbedResult", "EmbedStats", "embed_items", "embed_texts", "embed_video", "feature_dim", "plan_windows"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class EmbedResult:
    """Features of one video: ``features`` (n_windows, D) (or (n_queries, n_windows, D)), window times in s."""

    features: torch.Tensor
    starts: np.ndarray
    ends: np.ndarray
    frames: np.ndarray  # (n_windows, F) source-frame indices
    fps: float


@dataclass
class EmbedStats:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0


def feature_dim(model, recipe: FeatureRecipe) -> int:
    return model.config.projection_dim if recipe.mode == "projected" else model.config.width


def _check_model(model, recipe: FeatureRecipe) -> None:
    if model.config.num_frames != recipe.frames_per_window:
        raise ConfigError(f"the recipe uses {recipe.frames_per_window} frames per window but the model was built "
                          f"for {model.config.num_frames}: load it with num_frames={recipe.frames_per_window}")


def plan_windows(recipe: FeatureRecipe, info: VideoInfo, start: float = 0.0, end: float | None = None) -> WindowPlan:
    """Windows of ``[start, end)`` (default: the whole video) of a video with stream facts ``info``."""
    end = info.duration if end is None else end
    if recipe.windowing == "ego4d":
        return ego4d_windows(start, end, info.fps, info.num_frames, recipe.frames_per_window,
                             recipe.windows_per_second)  # type: ignore[arg-type]
    return sliding_windows(start, end, info.fps, info.num_frames, recipe.frames_per_window,
                           recipe.source_window_frames, recipe.stride_seconds)


def _decode_chunks(path, plan: WindowPlan, fps: float, transform: EvalTransform, short_side: int | None,
                   chunk: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first window, uint8 (n, F, 3, S, S))`` for consecutive chunks of ``chunk`` windows."""
    for w0 in range(0, len(plan), chunk):
        grid = plan.frames[w0:w0 + chunk]
        unique, inverse = np.unique(grid, return_inverse=True)
        frames = read_frames_at(path, [(int(i) + 0.5) / fps for i in unique], short_side=short_side)
        frames = transform(frames)
        yield w0, frames[torch.from_numpy(inverse.reshape(grid.shape))]


def _prefetch(iterable: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead; exceptions re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(("error", exc))

    thread = threading.Thread(target=work, daemon=True, name="egokit-embed-decode")
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


class _Computer:
    """The model forward of one batch of windows for a recipe's mode."""

    def __init__(self, model, recipe: FeatureRecipe, tokenizer, device, precision: str) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if recipe.mode == "fusion" and tokenizer is None:
            raise ConfigError("fusion features need a tokenizer for the query text")
        self.model, self.recipe, self.tokenizer, self.device = model, recipe, tokenizer, torch.device(device)
        self.dtype = PRECISIONS[precision]

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    @torch.no_grad()
    def text_prefix(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fusion text prefix (Q, L, W) and mask (Q, L) of the queries, computed once per clip."""
        if self.recipe.lowercase_query:
            texts = [t.strip().lower() for t in texts]
        ids, mask = tokenize_texts(self.tokenizer, texts, self.recipe.query_max_length)
        ids, mask = ids.to(self.device), mask.to(self.device)
        with self.autocast():
            return self.model.fusion_text_prefix(ids, mask), mask

    @torch.no_grad()
    def __call__(self, windows: torch.Tensor, segments: Sequence[tuple[int, Any]]) -> list[torch.Tensor]:
        """Features for ``windows`` (B, F, 3, S, S) uint8; ``segments`` = ``(length, text prefix or None)`` runs of
        consecutive windows of one clip. Returns one (n, D) or (Q, n, D) float32 CPU tensor per segment."""
        video = prepare_video(windows, self.model, self.device)
        with self.autocast():
            if self.recipe.mode != "fusion":
                fn = self.model.encode_video if self.recipe.mode == "projected" else self.model.video_features
                return list(fn(video).float().cpu().split([n for n, _ in segments]))
            prefix = self.model.fusion_video_prefix(video)
            out, w0 = [], 0
            for n, (text, mask) in segments:
                v = prefix[w0:w0 + n]
                rows = [self.model.fuse(v, text[q:q + 1].expand(n, -1, -1), mask[q:q + 1].expand(n, -1)).video_cls
                        for q in range(len(text))]
                out.append(torch.stack(rows).float().cpu())
                w0 += n
            return out


@dataclass
class _State:
    """A clip being embedded: its plan, its query prefix and the output rows filled so far."""

    index: int
    item: EmbedItem
    info: VideoInfo
    plan: WindowPlan
    queries: tuple[Query, ...]
    squeeze: bool = False  # one global query: store (n, D) instead of (1, n, D)
    text: Any = None
    out: Optional[torch.Tensor] = None
    filled: int = 0


def _item_queries(item: EmbedItem, recipe: FeatureRecipe, query: str | None) -> tuple[Query, ...]:
    if recipe.mode != "fusion":
        return ()
    if query is not None:
        return (Query("query", query),)
    if not item.queries:
        raise DataError(f"{item.uid}: fusion features need a query: pass --query TEXT or give the clip queries "
                        "(clip list field 'queries', or an official NLQ file)")
    return item.queries


def _run(model, states: list[_State], recipe: FeatureRecipe, computer: _Computer, batch_size: int,
         on_done: Callable[[_State], None], on_batch: Callable[[int], None] | None = None) -> None:
    """Feed the windows of ``states`` (in order) through the model in batches that span clips."""
    image_size = model.config.image_size
    transform = EvalTransform(image_size)
    dim = feature_dim(model, recipe)

    def pieces() -> Iterator[tuple[_State, int, torch.Tensor]]:
        for st in states:
            for w0, windows in _decode_chunks(st.item.source, st.plan, st.info.fps, transform, recipe.short_side,
                                              batch_size):
                yield st, w0, windows

    def finish(st: _State) -> None:
        if st.out is None:  # a clip shorter than one window
            st.out = torch.zeros((len(st.queries), 0, dim) if recipe.mode == "fusion" else (0, dim))
        if st.squeeze:
            st.out = st.out[0]
        on_done(st)

    pending: list[tuple[_State, int, torch.Tensor]] = []
    count = 0

    def flush(limit: int) -> None:
        nonlocal count, pending
        take, taken, rest = [], 0, []
        for st, w0, win in pending:
            if taken >= limit:
                rest.append((st, w0, win))
                continue
            k = min(len(win), limit - taken)
            take.append((st, w0, win[:k]))
            if k < len(win):
                rest.append((st, w0 + k, win[k:]))
            taken += k
        pending, count = rest, count - taken
        segments = []
        for st, _, win in take:
            if recipe.mode == "fusion" and st.text is None:
                st.text = computer.text_prefix([q.text for q in st.queries])
            segments.append((len(win), st.text))
        results = computer(torch.cat([w for _, _, w in take]), segments)
        for (st, w0, win), feats in zip(take, results):
            if st.out is None:
                shape = (len(st.plan), dim) if feats.dim() == 2 else (feats.shape[0], len(st.plan), dim)
                st.out = torch.empty(shape)
            st.out[..., w0:w0 + len(win), :] = feats
            st.filled += len(win)
            if st.filled == len(st.plan):
                finish(st)
        if on_batch is not None:
            on_batch(taken)

    for st in states:
        if len(st.plan) == 0:
            finish(st)
    for piece in _prefetch(pieces()):
        pending.append(piece)
        count += len(piece[2])
        while count >= batch_size:
            flush(batch_size)
    while count:
        flush(batch_size)


def embed_video(model, path: str | Path, recipe: FeatureRecipe, *, start: float = 0.0, end: float | None = None,
                query: str | Sequence[str] | None = None, tokenizer=None, batch_size: int = 32,
                precision: str = "fp32") -> EmbedResult:
    """Features of every window of ``path`` (or of ``[start, end)`` s of it) on the model's device.

    ``query`` is required for fusion recipes: one string gives ``(n_windows, D)``, a list gives
    ``(n_queries, n_windows, D)``. Example::

        model = egokit.load_model("EgoVLPv2.pth", num_frames=16)
        out = egokit.embed_video(model, "clip.mp4", egokit.embed.get_recipe("egovlpv2-mq"))
        out.features.shape, out.starts[:3]
    """
    _check_model(model, recipe)
    path = Path(path)
    info = probe_video(path)
    plan = plan_windows(recipe, info, start, end)
    single = isinstance(query, str)
    queries = tuple(Query(str(i), q) for i, q in enumerate([query] if single else (query or ())))
    if recipe.mode == "fusion" and not queries:
        raise ConfigError("fusion recipes need query= (the text the video features are conditioned on)")
    device = next(model.parameters()).device
    computer = _Computer(model, recipe, tokenizer, device, precision)
    state = _State(0, EmbedItem(path.stem, path, start, end), info, plan, queries, squeeze=single)
    _run(model, [state], recipe, computer, batch_size, lambda st: None)
    return EmbedResult(state.out, plan.starts, plan.ends, plan.frames, info.fps)


@torch.no_grad()
def embed_texts(model, tokenizer, sentences: Sequence[str], *, mode: str = "projected", max_length: int | None = None,
                batch_size: int = 256, device=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Text features: ``projected`` -> (N, P) dual embeddings; ``backbone`` -> (N, L, width) token states and their
    (N, L) mask (the unprojected query tokens the official NLQ head reads)."""
    device = device or next(model.parameters()).device
    max_length = max_length or model.config.preprocess.max_text_length
    feats, masks = [], []
    for i in range(0, len(sentences), batch_size):
        ids, mask = tokenize_texts(tokenizer, list(sentences[i:i + batch_size]), max_length)
        ids, mask = ids.to(device), mask.to(device)
        if mode == "projected":
            feats.append(model.encode_text(ids, mask).float().cpu())
        else:
            feats.append(model.text_features(ids, mask).float().cpu())
            masks.append(mask.cpu())
    if not feats:
        raise DataError("no sentences to embed")
    return torch.cat(feats), (torch.cat(masks) if masks else None)


def embed_items(model, items: Sequence[EmbedItem], recipe: FeatureRecipe, writer, *, tokenizer=None,
                query: str | None = None, batch_size: int = 32, precision: str = "fp32", rank: int = 0,
                world_size: int = 1, progress=None, on_item_done: Callable[[str], None] | None = None) -> EmbedStats:
    """Embed this process's share of ``items`` (every ``world_size``-th from ``rank``) into ``writer``.

    Finished items (see :class:`~egokit.embed.writer.FeatureWriter`) are skipped. ``progress`` is an object with
    ``advance(n, **fields)`` (windows) or None; ``on_item_done(uid)`` is called after each item is written.
    """
    _check_model(model, recipe)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    stats = EmbedStats()
    states: list[_State] = []
    for i, item in enumerate(items[rank::world_size]):
        if writer.is_done(item.uid):
            stats.skipped.append(item.uid)
            continue
        info = item.info or probe_video(item.path)
        states.append(_State(i, item, info, plan_windows(recipe, info, item.start, item.end),
                             _item_queries(item, recipe, query), squeeze=query is not None))
    total = sum(len(st.plan) for st in states)
    if progress is not None:
        progress.update(total=total, videos=0)
    device = next(model.parameters()).device
    computer = _Computer(model, recipe, tokenizer, device, precision)
    started = time.perf_counter()

    def done(st: _State) -> None:
        entry = {
            "video": str(st.item.path), "start": st.item.start,
            "end": st.item.end if st.item.end is not None else st.info.duration,
            "fps": st.info.fps, "num_windows": len(st.plan), "num_video_frames": st.info.num_frames,
            "window_starts": [round(float(t), 6) for t in st.plan.starts],
            "window_ends": [round(float(t), 6) for t in st.plan.ends],
        }
        if st.item.video is not None:  # `egokit prepare` chunks: <path>/<k>.mp4 of chunk_seconds each
            entry["chunk_seconds"] = st.item.video.chunk_seconds
        if recipe.mode == "fusion":
            entry["queries"] = [q.key for q in st.queries] if query is None else None
        writer.write(st.item.uid, st.out, entry)
        st.out = None  # free the buffer
        stats.computed.append(st.item.uid)
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.advance(0, videos=len(stats.computed), vps=len(stats.computed) / elapsed,
                             wps=stats.windows / elapsed)
        if on_item_done is not None:
            on_item_done(st.item.uid)

    def batch(n: int) -> None:
        stats.windows += n
        if progress is not None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.advance(n, vps=len(stats.computed) / elapsed, wps=stats.windows / elapsed)

    _run(model, states, recipe, computer, batch_size, done, batch)
    stats.seconds = time.perf_counter() - started
    return stats


def windows_per_second(stats: EmbedStats) -> float:
    return stats.windows / stats.seconds if stats.seconds > 0 else math.nan
