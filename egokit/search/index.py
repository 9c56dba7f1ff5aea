"""A search index: the L2-normalised dual-encoder embedding of every window of a set of videos, with its times.

Layout of an index folder::

    index.json                    what the index holds (format, count, dim, dtype, the feature recipe, the
                                  checkpoint, one entry per video: uid, path, clip range, fps, first row, rows)
    vectors-<content>.npy         (N, D) float16 or float32, row r = window r, L2-normalised (numpy .npy: read
                                  with np.load(..., mmap_mode="r"), no egokit needed)
    windows-<content>.npy         (N,) records (video int32, window int32, start float64, end float64): the video's
                                  position in index.json, the window's position in its video, and the window's
                                  [start, end) in seconds of the video file
    features/                     when built from videos: the `egokit embed` folder the vectors come from

Indexing videos runs `egokit embed` into ``features/`` (the same decoding, batching, atomic per-video files,
resume and process sharding), then packs the feature files into one matrix. An existing `egokit embed` folder
(projected features, or backbone features with the checkpoint to project them) is packed directly.

The matrix and the window table are written under names derived from their content and only then does the new
``index.json`` point at them (atomic rename), so a reader sees the old index or the new one, never a mix; a
rebuild whose content is unchanged does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egokit.errors import ConfigError, DataError
from egokit.io import atomic_path, write_json_atomic

__all__ = ["DTYPES", "INDEX_FORMAT", "INDEX_NAME", "WINDOW_DTYPE", "IndexVideo", "build_index", "index_videos",
           "read_index_meta"]

INDEX_FORMAT = "egokit-search-index"
INDEX_VERSION = 1
INDEX_NAME = "index.json"
FEATURES_DIR = "features"
DTYPES = ("float16", "float32")
WINDOW_DTYPE = np.dtype([("video", "<i4"), ("window", "<i4"), ("start", "<f8"), ("end", "<f8")])


@dataclass(frozen=True)
class IndexVideo:
    """A video of an index: where to read it and which rows hold its windows."""

    uid: str
    path: str
    first_row: int
    num_windows: int
    clip_start: float
    clip_end: float
    fps: float
    num_video_frames: int | None = None
    chunk_seconds: float | None = None  # `egokit prepare` chunks: ``path/<k>.mp4``

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def source(self):
        """What :func:`egokit.data.video.read_frames_at` takes for this video (times in seconds of the video)."""
        if self.chunk_seconds is None:
            return Path(self.path)
        from egokit.data.video import ChunkedVideo

        return ChunkedVideo(Path(self.path).parent, Path(self.path).name, self.chunk_seconds)

    def clip_file(self, start: float) -> tuple[Path, float]:
        """The file that plays time ``start`` and the offset of that file's t=0 in the video (chunks)."""
        if self.chunk_seconds is None:
            return Path(self.path), 0.0
        chunk = self.source.locate(start)[0]
        return Path(self.path) / f"{chunk}.mp4", chunk * self.chunk_seconds


def read_index_meta(index_dir: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of ``index_dir``, checked (clear error when the folder is not an index)."""
    path = Path(index_dir) / INDEX_NAME
    if not path.is_file():
        raise DataError(f"{index_dir} is not a search index ({INDEX_NAME} is missing); build one with "
                        "`egokit index SOURCE INDEX --ckpt CKPT`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise DataError(f"{path} is not an egokit search index (expected \"format\": \"{INDEX_FORMAT}\")")
    if meta.get("version") != INDEX_VERSION:
        raise DataError(f"{path} has index version {meta.get('version')}; this egokit reads version {INDEX_VERSION}")
    return meta


def _feature_meta(folder: Path) -> dict[str, Any]:
    from egokit.embed.writer import META_NAME

    path = folder / META_NAME
    if not path.is_file():
        raise DataError(f"{folder} has no {META_NAME}: give an `egokit embed` output folder, or videos to embed")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _content_id(meta: dict[str, Any], folder: Path, dtype: str, extra: dict[str, Any]) -> str:
    """Changes whenever the packed matrix would: the feature run, every feature file, the dtype, the projection."""
    files = []
    for uid, entry in sorted(meta.get("videos", {}).items()):
        stat = (folder / entry["file"]).stat()
        files.append([uid, entry["file"], entry.get("shape"), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"fingerprint": meta.get("fingerprint"), "files": files, "dtype": dtype, **extra},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _projector(meta: dict[str, Any], folder: Path, model) -> tuple[Callable[[Any], Any] | None, dict[str, Any]]:
    """How feature rows become dual-encoder embeddings: as they are (projected), or through ``vid_proj``."""
    mode = meta.get("recipe", {}).get("mode")
    if mode == "projected":
        return None, {}
    if mode == "fusion":
        raise DataError(f"{folder} holds fusion (query-conditioned) features, which cannot be searched by a new "
                        "query; index videos or projected/backbone features instead")
    if mode != "backbone":
        raise DataError(f"{folder}/embed_meta.json: unknown feature mode {mode!r}")
    if model is None:
        raise ConfigError(f"{folder} holds backbone (unprojected) features: pass --ckpt, the checkpoint that "
                          "made them, to project them into the text-video space")
    want = meta.get("checkpoint_sha256")
    have = getattr(getattr(model, "load_report", None), "sha256", None)
    if want and have and want != have:
        raise ConfigError(f"{folder} was made with checkpoint sha256 {want[:12]}..., but --ckpt has {have[:12]}...; "
                          "pass the checkpoint that made the features")
    import torch

    from egokit.models.heads import outside_autocast

    device = next(model.parameters()).device

    @torch.no_grad()
    def project(rows: torch.Tensor) -> torch.Tensor:
        if not len(rows):
            return rows.new_zeros(0, model.config.projection_dim)
        return torch.cat([outside_autocast(model.vid_proj, chunk.to(device)).float().cpu()
                          for chunk in rows.split(4096)])

    return project, {"projected_with": have}


def build_index(features: str | os.PathLike, index_dir: str | os.PathLike, *, dtype: str = "float16", model=None,
                source: str | None = None, progress=None) -> dict[str, Any]:
    """Pack the feature files of the `egokit embed` folder ``features`` into the index ``index_dir``.

    ``model`` (with ``vid_proj``) is needed only for backbone features. Rows are L2-normalised in float32 and
    stored as ``dtype``. Returns the new ``index.json`` (unchanged, and nothing written, when the content is
    the same as the index already there). ``progress``: an object with ``advance(n)`` per video.
    """
    import torch

    from egokit.embed.writer import load_features

    if dtype not in DTYPES:
        raise ConfigError(f"index dtype must be one of {DTYPES}, got {dtype!r}")
    features, index_dir = Path(features), Path(index_dir)
    meta = _feature_meta(features)
    project, proj_info = _projector(meta, features, model)
    videos = meta.get("videos", {})
    if not videos:
        raise DataError(f"{features}/embed_meta.json lists no finished videos; run the embedding again")
    content = _content_id(meta, features, dtype, proj_info)
    index_dir.mkdir(parents=True, exist_ok=True)
    old = None
    if (index_dir / INDEX_NAME).is_file():
        try:
            old = read_index_meta(index_dir)
        except DataError:
            old = None
    if old is not None and old.get("content") == content and all(
            (index_dir / old[k]).is_file() for k in ("vectors", "windows")):
        return old

    entries, total, dim = [], 0, None
    for uid, entry in sorted(videos.items()):
        shape = entry.get("shape") or []
        if len(shape) != 2:
            raise DataError(f"{features / entry['file']}: expected (windows, dim) features, got shape {shape}")
        out_dim = model.config.projection_dim if project is not None else shape[1]
        if dim is not None and out_dim != dim:
            raise DataError(f"{features / entry['file']}: dimension {out_dim} differs from the other videos' {dim}")
        dim = out_dim
        clip_start = float(entry.get("start") or 0.0)
        entries.append(IndexVideo(uid=uid, path=str(entry["video"]), first_row=total, num_windows=int(shape[0]),
                                  clip_start=clip_start, clip_end=float(entry.get("end") or 0.0),
                                  fps=float(entry.get("fps") or 0.0), num_video_frames=entry.get("num_video_frames"),
                                  chunk_seconds=entry.get("chunk_seconds")))
        total += int(shape[0])
    if total == 0:
        raise DataError(f"{features}: the videos have no windows (all shorter than one window?)")

    vectors_name, windows_name = f"vectors-{content}.npy", f"windows-{content}.npy"
    with atomic_path(index_dir / vectors_name, suffix=".npy") as vec_tmp, \
            atomic_path(index_dir / windows_name, suffix=".npy") as win_tmp:
        vectors = np.lib.format.open_memmap(vec_tmp, mode="w+", dtype=np.dtype(dtype), shape=(total, dim))
        windows = np.lib.format.open_memmap(win_tmp, mode="w+", dtype=WINDOW_DTYPE, shape=(total,))
        for v, video in enumerate(entries):
            entry = videos[video.uid]
            rows = load_features(features / entry["file"]).float()
            if project is not None:
                rows = project(rows)
            rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            sl = slice(video.first_row, video.first_row + video.num_windows)
            vectors[sl] = rows.numpy().astype(dtype, copy=False)
            win = windows[sl]
            win["video"] = v
            win["window"] = np.arange(video.num_windows)
            win["start"] = video.clip_start + np.asarray(entry["window_starts"], dtype=np.float64)
            win["end"] = video.clip_start + np.asarray(entry["window_ends"], dtype=np.float64)
            del rows
            if progress is not None:
                progress.advance(1)
        vectors.flush()
        windows.flush()
        del vectors, windows
    record = {
        "format": INDEX_FORMAT, "version": INDEX_VERSION, "content": content, "count": total, "dim": dim,
        "dtype": dtype, "normalized": True, "vectors": vectors_name, "windows": windows_name,
        "source": source, "features": str(features.resolve()), "feature_fingerprint": meta.get("fingerprint"),
        "recipe": meta.get("recipe"), "feature_mode": meta.get("recipe", {}).get("mode"),
        "checkpoint": meta.get("checkpoint"), "model": meta.get("model"), **proj_info,
        "times": "seconds of the video file; a window covers [start, end)",
        "videos": [v.to_dict() for v in entries],
    }
    write_json_atomic(index_dir / INDEX_NAME, record)
    for stale in index_dir.glob("*.npy"):  # files of earlier builds: nothing points at them any more
        if stale.name not in (vectors_name, windows_name) and stale.name.startswith(("vectors-", "windows-")):
            stale.unlink(missing_ok=True)
    return record


def index_videos(model, items: Sequence[Any], recipe, index_dir: str | os.PathLike, *, dtype: str = "float16",
                 batch_size: int = 32, precision: str = "fp32", overwrite: bool = False, state=None,
                 show_progress: bool = True, console=None, on_item_done: Callable[[str], None] | None = None,
                 source: str | None = None, checkpoint: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Embed ``items`` (:func:`egokit.embed.collect_items`) into ``index_dir/features`` with `egokit embed`'s
    machinery (resumable; with an Accelerate ``state`` each process takes every n-th video), then pack the index
    on the main process. ``checkpoint`` adds facts to the recorded checkpoint (e.g. its resolved ``path``, which
    `egokit search` loads by default). Returns ``index.json`` on the main process, None on the others."""
    from egokit.embed.run import embed_to_folder

    if recipe.mode == "fusion":
        raise ConfigError("a search index needs query-independent features: use mode 'projected' (the default)")
    recipe = recipe if recipe.mode == "projected" else recipe.replace(mode="projected")
    features = Path(index_dir) / FEATURES_DIR
    embed_to_folder(model, items, recipe, features, fmt="npy", batch_size=batch_size, precision=precision,
                    overwrite=overwrite, state=state, show_progress=show_progress, console=console,
                    on_item_done=on_item_done, checkpoint=checkpoint)
    if state is not None and not state.is_main_process:
        return None
    return build_index(features, index_dir, dtype=dtype, source=source)
