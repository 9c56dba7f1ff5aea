"""Tiny H.264 test videos whose frames carry their own index, written with PyAV.

Each frame is a 4x4 grid of black/white blocks: block ``b`` (row-major) is white when bit ``b`` of the index is
set. Big flat blocks survive H.264 compression and resizing, so :func:`read_index` recovers the index exactly and
tests can check *which* frame a reader returned (egokit's own tests and third-party task tests).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4  # blocks per side
NUM_BITS = GRID * GRID


def index_image(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (H, W, 3) image encoding ``index`` (0 <= index < 2**16) as black/white blocks."""
    if not 0 <= index < 2**NUM_BITS:
        raise ValueError(f"index {index} does not fit in {NUM_BITS} bits")
    width, height = size
    bits = np.array([(index >> b) & 1 for b in range(NUM_BITS)], dtype=np.uint8).reshape(GRID, GRID)
    rows = np.minimum(np.arange(height) * GRID // height, GRID - 1)
    cols = np.minimum(np.arange(width) * GRID // width, GRID - 1)
    plane = bits[rows[:, None], cols[None, :]] * 255
    return np.repeat(plane[:, :, None], 3, axis=2)


def read_index(image: np.ndarray) -> int:
    """Index encoded in an (H, W, 3) or (3, H, W) uint8 frame; reads the middle half of each block."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[2] != 3:
        img = img.transpose(1, 2, 0)
    gray = img.astype(np.float32).mean(axis=2)
    height, width = gray.shape
    value = 0
    for b in range(NUM_BITS):
        r, c = divmod(b, GRID)
        y0, y1 = (4 * r + 1) * height // (4 * GRID), (4 * r + 3) * height // (4 * GRID)
        x0, x1 = (4 * c + 1) * width // (4 * GRID), (4 * c + 3) * width // (4 * GRID)
        mean = gray[y0:y1, x0:x1].mean()
        if 64 < mean < 192:
            raise ValueError(f"block {b} is ambiguous (mean {mean:.0f}); not an index frame")
        value |= int(mean >= 128) << b
    return value


def make_index_video(
    path: str | os.PathLike,
    num_frames: int,
    fps: float | Fraction,
    size: tuple[int, int] = (64, 64),
    gop: int = 12,
    pts: Sequence[int] | None = None,
    *,
    time_base: Fraction | None = None,
    bframes: int = 2,
    first_index: int = 0,
    faststart: bool = False,
) -> Path:
    """Write an H.264 mp4 of ``num_frames`` index frames (frame ``i`` shows ``first_index + i``).

    ``gop`` is the key-frame interval (scene-cut detection is off, so key frames fall exactly every ``gop`` frames).
    ``pts`` gives irregular presentation timestamps (in units of ``time_base``, default ``1 / fps``) for
    variable-frame-rate tests; by default frame ``i`` has pts ``i`` in a ``1 / fps`` time base. ``faststart``
    puts the index (moov) first, so a truncated copy still opens and fails only when decoding.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    if pts is not None and len(pts) != num_frames:
        raise ValueError(f"got {len(pts)} pts for {num_frames} frames")
    tb = time_base if time_base is not None else 1 / rate
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        stream.options = {
            "preset": "ultrafast",
            "crf": "12",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
        }
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_image(first_index + i, size), format="rgb24")
            frame.pts = i if pts is None else int(pts[i])
            frame.time_base = tb
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def make_chunked_video(
    root: str | os.PathLike,
    video_uid: str,
    chunk_frames: Sequence[int],
    fps: float | Fraction,
    size: tuple[int, int] = (64, 64),
    gop: int = 12,
) -> Path:
    """Write ``<root>/<video_uid>/<k>.mp4`` chunks; frame indices continue across chunks. Returns the video dir."""
    video_dir = Path(root) / video_uid
    video_dir.mkdir(parents=True, exist_ok=True)
    offset = 0
    for k, count in enumerate(chunk_frames):
        make_index_video(video_dir / f"{k}.mp4", count, fps, size, gop, first_index=offset)
        offset += count
    return video_dir


def decode_all(path: str | os.PathLike) -> list[tuple[float, np.ndarray]]:
    """Every frame of the first video stream as ``(time in seconds, RGB array)``, in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
