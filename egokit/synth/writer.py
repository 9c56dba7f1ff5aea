"""Writers for the synthetic dataset: H.264 chunk files and atomically replaced text files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from egokit.io import atomic_path, write_csv_atomic, write_json_atomic, write_text_atomic

__all__ = ["encode_chunks", "write_csv", "write_json", "write_text"]


def write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def write_json(path: Path, data: Any) -> None:
    write_json_atomic(path, data, indent=1)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Tab-separated, like the official egoclip.csv (read back with ``sep='\\t'``)."""
    write_csv_atomic(path, header, rows, delimiter="\t")


def encode_chunks(
    frame_at: Callable[[int], np.ndarray],
    num_frames: int,
    out_dir: Path,
    fps: int,
    chunk_frames: int,
    *,
    crf: int = 23,
    preset: str = "veryfast",
    gop: int | None = None,
) -> list[Path]:
    """Encode frames ``0..num_frames-1`` as ``out_dir/<k>.mp4`` chunks of ``chunk_frames`` frames each.

    H.264 (libx264), yuv420p, a key frame exactly every ``gop`` frames (default: one per second, which keeps
    random clip access cheap), single-threaded so parallel workers do not oversubscribe the CPU and output is
    reproducible. Each chunk's timestamps start at 0, as in the official chunked layout.
    """
    gop = gop or fps
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, first in enumerate(range(0, num_frames, chunk_frames)):
        path = out_dir / f"{k}.mp4"
        with atomic_path(path, suffix=".mp4") as tmp:
            _encode_one(frame_at, range(first, min(first + chunk_frames, num_frames)), str(tmp), fps, crf, preset,
                        gop)
        paths.append(path)
    return paths


def _encode_one(
    frame_at: Callable[[int], np.ndarray], indices: range, path: str, fps: int, crf: int, preset: str, gop: int
) -> None:
    first = frame_at(indices[0])
    height, width = first.shape[:2]
    options = {
        "crf": str(crf),
        "preset": preset,
        # one thread: the workers already use the cores. mbtree=0: with macroblock-tree rate control the same
        # frames gave different bytes from run to run (measured, PyAV 18 / libx264 here), breaking same seed ->
        # same video; without it 25 of 25 encodes were identical
        "threads": "1",
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:mbtree=0:threads=1:lookahead-threads=1",
    }
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for local, index in enumerate(indices):
            image = first if local == 0 else frame_at(index)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = local
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
