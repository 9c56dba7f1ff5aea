"""One decode + re-encode pass per video, cut into frame-exact chunks ``DST/<uid>/<k>.mp4``.

The source is decoded once, from start to end. Each decoded frame is placed on the output's constant-rate grid
(slot ``j`` shows the source frame on screen at ``(j + 0.5) / fps``, the same rule as egokit's reader, so a
constant-rate source maps frame ``i`` to slot ``i``; ``--fps`` resamples by the same rule), scaled once by
swscale and sent to the encoder of chunk ``k = j // chunk_frames`` with pts ``j - k * chunk_frames``. At a chunk
boundary the encoder is flushed, the file closed, verified and renamed from its temporary name; the next chunk
gets a fresh encoder and container. The official preprocessing instead runs one ffmpeg per chunk, each decoding
the source from the start.

Audio, subtitles, rotation metadata and sample aspect ratio are dropped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from egokit.prepare.discover import VideoJob
from egokit.prepare.settings import PrepareSettings, output_rate, output_size
from egokit.prepare.verify import verify_chunk

__all__ = ["chunk_path", "encode_video", "partial_path", "source_rate"]

PROGRESS_EVERY = 32  # frames between progress callbacks


def chunk_path(dst: Path, uid: str, index: int) -> Path:
    """Final name of chunk ``index``: ``DST/<uid>/<index>.mp4`` (what :class:`egokit.data.video.ChunkedVideo` opens)."""
    return dst / uid / f"{index}.mp4"


def partial_path(dst: Path, uid: str, index: int) -> Path:
    """Temporary name while chunk ``index`` is written (hidden, never matched by ``<k>.mp4``)."""
    return dst / uid / f".{index}.mp4.partial"


def source_rate(stream: av.VideoStream) -> Fraction:
    """The source's nominal constant rate: the container's frame rate when it agrees with the average rate to 1 %
    (so 29.97 stays 30000/1001), else the average rate (variable-rate sources), as a fraction."""
    average, base = stream.average_rate, stream.base_rate or stream.guessed_rate
    if average and base and abs(float(average) / float(base) - 1) < 0.01:
        return Fraction(base)
    rate = average or base
    if not rate or rate <= 0:
        raise ValueError("the source does not declare a frame rate; remux it with a frame rate")
    return Fraction(rate).limit_denominator(1001)


class _ChunkWriter:
    """Encoder + container of one chunk, written to its partial name."""

    def __init__(self, path: Path, codec: str, rate: Fraction, width: int, height: int, gop: int,
                 settings: PrepareSettings) -> None:
        self.path = path
        self.frames = 0
        self.time_base = 1 / rate  # the muxer may change the stream's time base when it writes the header
        self.container = av.open(str(path), mode="w", format="mp4")
        try:
            stream = self.container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = 1 / rate
            ctx = stream.codec_context
            ctx.time_base = 1 / rate
            ctx.gop_size = gop
            if codec == "libx264":
                stream.options = {"preset": settings.preset, "crf": str(settings.crf)}
            else:  # mpeg4: a bitrate for about the quality of crf 23 at 256 px
                ctx.bit_rate = int(width * height * float(rate) * 0.3)
            self.stream = stream
        except BaseException:
            self.container.close()
            raise

    def write(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        try:
            self.container.mux(self.stream.encode())
        finally:
            self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - best effort: the partial file is deleted next
            pass
        self.path.unlink(missing_ok=True)


def encode_video(
    job: VideoJob,
    dst: Path,
    settings: PrepareSettings,
    codec: str,
    on_frames: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Prepare one video; returns its manifest entry (status ``done``). On error, no partial file is left."""
    started = time.perf_counter()
    stat = os.stat(job.path)
    out_dir = dst / job.uid
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.mp4.partial"):
        stale.unlink()
    with av.open(str(job.path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: sequential decoding of the whole file
        src_rate = source_rate(stream)
        rate = output_rate(src_rate, settings)
        ctx = stream.codec_context
        if not (ctx.width and ctx.height):
            raise ValueError("the video stream does not declare its frame size")
        width, height = output_size(ctx.width, ctx.height, settings.short_side)
        gop = max(1, round(settings.gop_seconds * rate))
        chunk_frames = max(1, round(settings.chunk_seconds * rate))
        tb = Fraction(stream.time_base)
        start_pts = stream.start_time
        period = 1 / rate
        chunks: list[dict[str, Any]] = []
        writer: _ChunkWriter | None = None
        slot = 0  # next output frame index
        pending = 0  # frames not yet reported to on_frames

        def finish_chunk() -> None:
            nonlocal writer
            assert writer is not None
            k = len(chunks)
            writer.close()
            verify_chunk(writer.path, writer.frames, rate, width, height)
            final = chunk_path(dst, job.uid, k)
            os.replace(writer.path, final)
            first = k * chunk_frames
            end = first + writer.frames
            chunks.append({"index": k, "path": f"{job.uid}/{k}.mp4", "start_frame": first, "end_frame": end,
                           "start": float(first * period), "end": float(end * period),
                           "num_frames": writer.frames, "bytes": final.stat().st_size})
            writer = None

        def emit(frame: av.VideoFrame) -> None:
            nonlocal writer, slot, pending
            if slot % chunk_frames == 0:
                if writer is not None:
                    finish_chunk()
                k = slot // chunk_frames
                writer = _ChunkWriter(partial_path(dst, job.uid, k), codec, rate, width, height, gop, settings)
            writer.write(frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA"))
            slot += 1
            pending += 1
            if on_frames is not None and pending >= PROGRESS_EVERY:
                on_frames(pending)
                pending = 0

        def slot_middle(j: int) -> Fraction:
            return (j + Fraction(1, 2)) * period

        try:
            prev: av.VideoFrame | None = None
            prev_time = Fraction(0)
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise ValueError(f"frame {slot} has no timestamp; remux the file")
                if start_pts is None:
                    start_pts = frame.pts
                t = (frame.pts - start_pts) * tb
                while slot_middle(slot) < t:
                    emit(prev if prev is not None else frame)
                prev, prev_time = frame, t
            if prev is None:
                raise ValueError("no frame could be decoded")
            end_time = prev_time + 1 / src_rate  # the last frame is shown for one source frame period
            while slot_middle(slot) < end_time:
                emit(prev)
            if writer is None:
                raise ValueError(f"the video ({float(end_time):.3f} s) is shorter than half a frame at "
                                 f"{float(rate):g} fps")
            finish_chunk()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if on_frames is not None and pending:
            on_frames(pending)
        for extra in out_dir.glob("*.mp4"):  # chunks of an earlier run with a longer video or shorter chunks
            if extra.stem.isdigit() and int(extra.stem) >= len(chunks):
                extra.unlink()
        return {
            "uid": job.uid,
            "status": "done",
            "source": str(job.path.resolve()),
            "source_bytes": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns,
            "settings": settings.record(codec),
            "fps": float(rate),
            "rate": f"{rate.numerator}/{rate.denominator}",
            "num_frames": slot,
            "duration": float(slot * period),
            "width": width,
            "height": height,
            "source_fps": float(src_rate),
            "source_width": ctx.width,
            "source_height": ctx.height,
            "gop_size": gop,
            "chunk_seconds": settings.chunk_seconds,
            "chunk_frames": chunk_frames,
            "chunks": chunks,
            "encode_seconds": round(time.perf_counter() - started, 3),
        }
