"""Frame-sampling arithmetic: which frames of a time range a clip is made of.

Pure index/time math with no decoding, so it can be tested exhaustively and reused by every reader.

Conventions (see ``egokit.data.video`` for how they meet real timestamps):

* Frame ``i`` of a stream with rate ``fps`` is presented during ``[i / fps, (i + 1) / fps)``. A time range
  ``[start, end)`` covers the frames whose presentation interval overlaps it: ``floor(start * fps)`` up to
  ``ceil(end * fps) - 1``. The official code uses ``int(start * 30)`` up to ``int(end * 30) - 1`` with an assumed
  30 fps; the two agree whenever ``end`` falls on a frame boundary.
* The frames ``first..last`` (inclusive) are split into ``num_frames`` equal bins; bin ``k`` holds frames
  ``first + floor(k * n / num_frames)`` .. ``first + floor((k + 1) * n / num_frames) - 1`` with
  ``n = last - first + 1`` (the official ``linspace(...).astype(int)`` edges, computed exactly in integers).
  ``'uniform'`` takes the bin middle ``(a + b) // 2`` (same as official); ``'rand'`` draws uniformly from the
  whole bin ``a..b`` (the official code never draws ``b`` and fails on one-frame bins).
* Fewer frames than ``num_frames`` (``n < num_frames``): bins are narrower than a frame, so frames repeat. Bin ``k``
  is the real interval ``[k * n / num_frames, (k + 1) * n / num_frames)`` in frame units; ``'uniform'`` takes the
  frame under its middle, ``'rand'`` the frame under a uniformly drawn point of it. The result stays sorted and
  every frame of the range is used at least once (``n=3, num_frames=4`` gives offsets ``0, 1, 1, 2``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SAMPLING_MODES = ("uniform", "rand")

# Tolerance, in frames, for float times that should sit exactly on a frame boundary (0.3 * 30 = 8.999999999999998).
_BOUNDARY_EPS = 1e-6


def frame_range(start: float, end: float, fps: float) -> tuple[int, int]:
    """Inclusive ``(first, last)`` indices of the frames whose presentation interval overlaps ``[start, end)``.

    Raises ``ValueError`` for an empty or negative range or a non-positive ``fps``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if start < 0 or not end > start:
        raise ValueError(f"time range must satisfy 0 <= start < end, got [{start}, {end})")
    first = math.floor(start * fps + _BOUNDARY_EPS)
    last = math.ceil(end * fps - _BOUNDARY_EPS) - 1
    return first, max(first, last)


def slot_times(indices: Sequence[int], fps: float) -> list[float]:
    """Middle of each frame's nominal presentation interval, ``(i + 0.5) / fps``.

    Readers look up the frame shown at these times: the middle is robust to timestamp rounding, and on a
    variable-frame-rate stream it picks the frame actually on screen at that point of the nominal grid.
    """
    return [(i + 0.5) / fps for i in indices]


def sample_frame_indices(
    first: int,
    last: int,
    num_frames: int,
    mode: str,
    rng: np.random.Generator | None = None,
) -> list[int]:
    """Sorted indices of ``num_frames`` frames sampled from ``first..last`` inclusive (rules in the module doc).

    ``rng`` is only used by ``'rand'``; without one a fresh, unseeded generator is made.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if last < first:
        raise ValueError(f"empty frame range {first}..{last}")
    n = last - first + 1
    if mode == "rand" and rng is None:
        rng = np.random.default_rng()

    if n < num_frames:
        # Sub-frame bins: the frame under the bin middle ('uniform') or under a random point of the bin ('rand').
        offsets = np.arange(num_frames, dtype=np.float64)
        offsets += 0.5 if mode == "uniform" else rng.random(num_frames)
        picks = np.floor(offsets * n / num_frames).astype(np.int64)
        return [first + int(min(p, n - 1)) for p in picks]

    ks = np.arange(num_frames + 1, dtype=np.int64)
    edges = first + (ks * n) // num_frames  # bin k is edges[k] .. edges[k+1] - 1, never empty here
    lo, hi = edges[:-1], edges[1:] - 1
    if mode == "uniform":
        picks = (lo + hi) // 2
    else:
        picks = rng.integers(lo, hi + 1)
    return [int(p) for p in picks]
