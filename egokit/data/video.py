"""Frame-exact clip reading with PyAV: one seek per file, decode forward, keep only the wanted frames.

Timing model
    Times are seconds from the first frame of the stream (``pts * time_base`` minus the stream start time). The
    real stream rate and timestamps are used, never an assumed 30 fps. A time maps to the frame whose
    presentation interval contains it: the last frame with ``pts <= t``; the last frame of a file counts for one
    nominal frame period, and later times raise (a range beyond the video, or a truncated file whose header still
    claims the full length, is an error, never padded). ``read_clip`` lays the nominal frame grid of the stream's average rate over ``[start, end)``,
    samples grid slots with :func:`egokit.data.sampling.sample_frame_indices` and returns, for each slot, the frame
    shown at the slot's middle. On a constant-rate stream slot ``i`` is exactly frame ``i``; on a variable-rate
    stream it is the frame on screen at that point of the grid.

Difference from the official EgoVLPv2 reader
    ``read_frames_cv2_egoclip`` seeks OpenCV to ``index - 1`` and so returns the frame *before* each sampled index
    (and assumes 30 fps). egokit returns the sampled frame itself, so clips are shifted by one frame (33 ms at
    30 fps) relative to the official ones. It also never pads: a missing or short file raises
    :class:`~egokit.errors.VideoDecodeError` instead of repeating frames or returning black ones.

Chunked layout
    Ego4D videos are stored as ``<root>/<video_uid>/<k>.mp4``, chunk ``k`` covering ``[k * chunk_seconds,
    (k + 1) * chunk_seconds)`` of the full video with its own timestamps starting at 0. A slot at absolute time
    ``t`` is read from chunk ``floor(t / chunk_seconds)`` at local time ``t - k * chunk_seconds``; the grid's rate
    is that of the chunk holding ``start``. A clip that straddles chunks opens each chunk once.

Cost
    Each file touched is opened once, seeked once to the key frame at or before the first wanted frame, and
    decoded forward until the frame after the last wanted one (needed to know where a frame's display interval
    ends on variable-rate streams). Only kept frames are converted to RGB, resized on conversion by swscale when
    ``short_side`` is given. Decoder threading is left at PyAV's default (slice threads, which single-slice x264
    streams do not use): frame threading (``thread_type='AUTO'``) gave no gain on 2 cores for random 256-px clips
    (``bench/decode.py --thread-type AUTO``: 11.9 vs 11.9 clips/s at 4 frames, 11.1 vs 12.0 at 16 frames).
    If the demuxer's seek lands after the first wanted frame (possible with B-frames when an index is by decode
    time), the reader seeks to the previous key frame instead of returning a later frame.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from egokit.data.sampling import frame_range, sample_frame_indices, slot_times
from egokit.errors import DataError, VideoDecodeError

__all__ = ["ChunkedVideo", "VideoInfo", "probe_video", "read_clip", "read_frames_at"]

_MAX_RESEEKS = 3


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts read from the container, without decoding."""

    fps: float  # average frame rate of the stream (frames / duration as stored), not an assumed 30
    duration: float  # seconds
    num_frames: int
    width: int
    height: int


@dataclass(frozen=True)
class ChunkedVideo:
    """A video stored as ``<root>/<video_uid>/<k>.mp4`` chunks of ``chunk_seconds`` each (official Ego4D layout)."""

    root: Path
    video_uid: str
    chunk_seconds: float = 600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if not self.chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")

    def chunk_path(self, chunk: int) -> Path:
        return self.root / self.video_uid / f"{chunk}.mp4"

    def locate(self, t: float) -> tuple[int, float]:
        """``(chunk index, local time)`` of absolute time ``t``."""
        chunk = math.floor(t / self.chunk_seconds)
        return chunk, t - chunk * self.chunk_seconds


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, duration, frame count and size of the first video stream of ``path``."""
    path = Path(path)
    with _open(path, "probing") as container:
        stream = _video_stream(container, path, "probing")
        fps = _stream_fps(stream, path, "probing")
        num_frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        duration = _stream_duration(container, stream)
        if not math.isfinite(duration):
            duration = num_frames / fps
        ctx = stream.codec_context
        return VideoInfo(fps=fps, duration=duration, num_frames=num_frames, width=ctx.width, height=ctx.height)


def read_clip(
    source: ChunkedVideo | str | os.PathLike,
    start: float,
    end: float,
    num_frames: int,
    *,
    sampling: str = "uniform",
    rng: np.random.Generator | None = None,
    short_side: int | None = None,
    thread_type: str | None = None,
) -> torch.Tensor:
    """uint8 tensor ``(num_frames, 3, H, W)`` (channels-last memory) of frames sampled in ``[start, end)`` s.

    For a :class:`ChunkedVideo` the times are absolute times of the full video. ``sampling`` is ``'uniform'``
    (bin middles, deterministic) or ``'rand'`` (uniform within each bin, drawn from ``rng``). ``short_side``
    resizes the shorter frame side to that many pixels during RGB conversion, keeping the aspect ratio.
    ``thread_type`` (``'AUTO'``, ``'FRAME'``, ``'SLICE'``) overrides PyAV's decoder threading (see module doc).
    """
    label = f"[{start:.3f}, {end:.3f}) s"
    if not (0 <= start < end and math.isfinite(end)):
        raise DataError(f"invalid time range {label} for {_describe(source)}: need 0 <= start < end")
    if num_frames < 1:
        raise DataError(f"num_frames must be >= 1 for {_describe(source)}, got {num_frames}")
    _check_short_side(short_side)
    first_chunk = _locate(source, start)[0]
    path = _chunk_path(source, first_chunk)
    with _open(path, label) as container:  # the grid's frame rate comes from the file holding `start`
        fps = _stream_fps(_video_stream(container, path, label), path, label)
        indices = sample_frame_indices(*frame_range(start, end, fps), num_frames, sampling, rng)
        times = slot_times(indices, fps)
        return _read_sorted(source, times, short_side, label, {first_chunk: container}, thread_type)


def read_frames_at(
    source: ChunkedVideo | str | os.PathLike,
    times: list[float],
    *,
    short_side: int | None = None,
    thread_type: str | None = None,
) -> torch.Tensor:
    """uint8 tensor ``(len(times), 3, H, W)``: for each time (seconds, any order) the frame shown at that time.

    Times are absolute times of the full video for a :class:`ChunkedVideo`; other options as in :func:`read_clip`.
    """
    times = [float(t) for t in times]
    if not times or not all(0 <= t < math.inf for t in times):
        raise DataError(f"times for {_describe(source)} must be a non-empty list of finite times >= 0, got {times}")
    _check_short_side(short_side)
    order = sorted(range(len(times)), key=times.__getitem__)
    label = f"times [{min(times):.3f} .. {max(times):.3f}] s"
    frames = _read_sorted(source, [times[i] for i in order], short_side, label, {}, thread_type)
    result = torch.empty_like(frames)
    result[torch.tensor(order)] = frames
    return result


def _check_short_side(short_side: int | None) -> None:
    if short_side is not None and short_side < 1:
        raise DataError(f"short_side must be a positive number of pixels, got {short_side}")


def _locate(source: ChunkedVideo | str | os.PathLike, t: float) -> tuple[int, float]:
    return source.locate(t) if isinstance(source, ChunkedVideo) else (0, t)


def _chunk_path(source: ChunkedVideo | str | os.PathLike, chunk: int) -> Path:
    return source.chunk_path(chunk) if isinstance(source, ChunkedVideo) else Path(source)


def _read_sorted(
    source: ChunkedVideo | str | os.PathLike,
    times: list[float],
    short_side: int | None,
    label: str,
    opened: dict[int, av.container.InputContainer],
    thread_type: str | None,
) -> torch.Tensor:
    """Frames shown at the ascending absolute ``times``; each file is opened once (or taken from ``opened``)."""
    groups: dict[int, list[float]] = {}
    for t in times:
        chunk, local = _locate(source, t)
        groups.setdefault(chunk, []).append(local)
    frames: list[np.ndarray] = []
    for chunk in sorted(groups):
        path = _chunk_path(source, chunk)
        with contextlib.nullcontext(opened[chunk]) if chunk in opened else _open(path, label) as container:
            stream = _video_stream(container, path, label)
            if thread_type is not None:
                stream.thread_type = thread_type
            frames += _decode_at(container, stream, groups[chunk], short_side, path, label)
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoDecodeError(
            f"frames of {_describe(source)} for {label} have different sizes {sorted(shapes)}; "
            "re-encode the chunks to one resolution or pass short_side"
        )
    # A permuted view, no copy: the memory is channels-last (``torch.channels_last``), which interpolate and
    # conv layers handle natively; transposing uint8 to channels-first would cost ~5 % of a 16-frame read.
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def _describe(source: ChunkedVideo | str | os.PathLike) -> str:
    if isinstance(source, ChunkedVideo):
        return f"chunked video {source.root / source.video_uid} ({source.chunk_seconds:g} s chunks)"
    return str(source)


class _open:
    """Open ``path`` for reading, turning every failure into a VideoDecodeError that names file and time range."""

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label
        self.container: av.container.InputContainer | None = None

    def __enter__(self) -> av.container.InputContainer:
        if not self.path.is_file():
            raise VideoDecodeError(
                f"video file not found: {self.path} (needed for {self.label}); check the data directory and, "
                "for chunked videos, that <root>/<video_uid>/<chunk>.mp4 exists for every chunk of the clip"
            )
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise VideoDecodeError(
                f"cannot open {self.path} for {self.label}: {exc}; the file is truncated or not a video, "
                "re-download or re-encode it"
            ) from exc
        return self.container

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.container is not None:
            self.container.close()
        if isinstance(exc, (av.FFmpegError, OSError)):
            raise VideoDecodeError(
                f"cannot decode {self.path} for {self.label}: {exc}; the file is truncated or corrupt, "
                "re-download or re-encode it"
            ) from exc


def _video_stream(container: av.container.InputContainer, path: Path, label: str) -> av.VideoStream:
    if not container.streams.video:
        raise VideoDecodeError(f"{path} has no video stream (needed for {label})")
    return container.streams.video[0]


def _stream_fps(stream: av.VideoStream, path: Path, label: str) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise VideoDecodeError(f"{path} does not declare a frame rate (needed for {label}); re-encode it")
    return float(rate)


def _stream_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds from the stream's first timestamp to its end; inf when the container does not say."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        return container.duration / av.time_base - start
    return math.inf


def _output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


def _decode_at(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    times: list[float],
    short_side: int | None,
    path: Path,
    label: str,
) -> list[np.ndarray]:
    """RGB (H, W, 3) frames shown at the sorted local ``times`` of ``stream``: one seek, then decode forward."""
    tb = stream.time_base
    start_pts = stream.start_time or 0
    frame_period = 1.0 / _stream_fps(stream, path, label)
    seek_pts = start_pts + math.floor(times[0] / tb)
    for _ in range(_MAX_RESEEKS):
        container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        out, overshoot_pts, end = _decode_forward(
            container, stream, times, short_side, start_pts, frame_period, path, label
        )
        if overshoot_pts is None:
            break
        seek_pts = overshoot_pts - 1  # seek landed after the first wanted time: go to the previous key frame
    else:
        raise VideoDecodeError(f"cannot seek to {times[0]:.3f} s in {path} (needed for {label}); re-encode it")
    if len(out) < len(times) and end is None:
        raise VideoDecodeError(
            f"no frame of {path} could be decoded at or after {times[0]:.3f} s (needed for {label}): the file is "
            "truncated or corrupt, or the time range is beyond its end; re-download or re-encode it"
        )
    if len(out) < len(times):
        raise VideoDecodeError(
            f"{path} has decodable frames only up to {end:.3f} s but {label} needs one at {times[len(out)]:.3f} s "
            "of it: the time range is beyond the end of the video, or the file is truncated or corrupt "
            "(check the annotation against the video, or re-download / re-encode the file)"
        )
    return out


def _decode_forward(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    times: list[float],
    short_side: int | None,
    start_pts: int,
    frame_period: float,
    path: Path,
    label: str,
) -> tuple[list[np.ndarray], int | None, float | None]:
    """Frames for ``times``, decoding from the current position.

    Also returns the pts of the first decoded frame if the seek landed after ``times[0]`` (else None), and the
    time up to which frames were available (None if no frame could be decoded).
    """
    tb = stream.time_base
    out: list[np.ndarray] = []
    prev: av.VideoFrame | None = None
    prev_rgb: np.ndarray | None = None

    def rgb(frame: av.VideoFrame) -> np.ndarray:
        width, height = _output_size(frame.width, frame.height, short_side)
        return frame.to_ndarray(format="rgb24", width=width, height=height)

    for frame in container.decode(stream):
        if frame.pts is None:
            raise VideoDecodeError(f"{path} has frames without timestamps (needed for {label}); remux it")
        t = float((frame.pts - start_pts) * tb)
        if prev is None and t > times[0] and frame.pts > start_pts:
            return out, frame.pts, t
        while len(out) < len(times) and times[len(out)] < t:
            if prev_rgb is None:
                prev_rgb = rgb(prev if prev is not None else frame)
            out.append(prev_rgb)
        if len(out) == len(times):
            return out, None, t
        prev, prev_rgb = frame, None
    if prev is None:
        return out, None, None
    # End of stream: the last frame is shown for one nominal frame period. Not until the declared duration, so
    # that a truncated file whose header still claims the full length raises instead of repeating its last frame.
    end = float((prev.pts - start_pts) * tb) + frame_period
    while len(out) < len(times) and times[len(out)] < end:
        if prev_rgb is None:
            prev_rgb = rgb(prev)
        out.append(prev_rgb)
    return out, None, end
