"""Writers for the synthetic dataset: H.264 chunk files and atomically replaced text files."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = ["encode_chunks", "write_csv", "write_json", "write_text"]


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Tab-separated, like the official egoclip.csv (read back with ``sep='\\t'``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


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
        fd, tmp = tempfile.mkstemp(prefix=f".{k}.", suffix=".mp4", dir=out_dir)
        os.close(fd)
        try:
            _encode_one(frame_at, range(first, min(first + chunk_frames, num_frames)), tmp, fps, crf, preset, gop)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
