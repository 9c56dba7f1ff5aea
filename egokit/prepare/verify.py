"""Check a written chunk: frame count, frame rate, size, and that its first and last frames decode on time."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

__all__ = ["ChunkCheckError", "verify_chunk"]


class ChunkCheckError(Exception):
    """A chunk does not hold what was written (message says what differs)."""


def verify_chunk(path: str | os.PathLike, num_frames: int, rate: Fraction, width: int, height: int) -> None:
    """Raise :class:`ChunkCheckError` unless ``path`` holds ``num_frames`` frames of ``width`` x ``height`` at
    ``rate``, the first shown at time 0 and the last at ``(num_frames - 1) / rate`` (egokit's timing model).

    Decodes only the first frame and the last group of pictures (about one key-frame interval).
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ChunkCheckError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.frames and stream.frames != num_frames:
                raise ChunkCheckError(f"{path} has {stream.frames} frames, expected {num_frames}")
            if stream.average_rate is None or Fraction(stream.average_rate) != rate:
                raise ChunkCheckError(f"{path} has frame rate {stream.average_rate}, expected {rate}")
            tb = Fraction(stream.time_base)
            start = stream.start_time or 0
            first = next(container.decode(stream), None)
            if first is None:
                raise ChunkCheckError(f"{path}: no frame could be decoded")
            if (first.width, first.height) != (width, height):
                raise ChunkCheckError(f"{path} frames are {first.width}x{first.height}, expected {width}x{height}")
            _check_time(path, "first", (first.pts - start) * tb, 0, rate)
            last_time = Fraction(num_frames - 1) / rate
            container.seek(start + int(last_time / tb), stream=stream, backward=True, any_frame=False)
            last = None
            for last in container.decode(stream):
                pass
            if last is None:
                raise ChunkCheckError(f"{path}: the last frame could not be decoded")
            _check_time(path, "last", (last.pts - start) * tb, num_frames - 1, rate)
    except av.FFmpegError as exc:
        raise ChunkCheckError(f"{path} does not decode: {exc}") from exc


def _check_time(path: Path, which: str, time: Fraction, index: int, rate: Fraction) -> None:
    if abs(time * rate - index) >= Fraction(1, 2):
        raise ChunkCheckError(f"{path}: {which} frame is shown at {float(time):.4f} s, expected frame {index} "
                              f"at {float(index / rate):.4f} s")
