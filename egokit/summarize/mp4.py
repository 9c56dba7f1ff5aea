"""Re-encode the selected shots, in time order, into one H.264 mp4 (PyAV)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from egokit.errors import VideoDecodeError
from egokit.io import atomic_path
from egokit.summarize.shots import Shot


def write_summary_mp4(source: str | Path, shots: Sequence[Shot], path: str | Path, *, crf: int = 23) -> Path:
    """Copy the frames whose time falls inside a selected shot into ``path`` (yuv420p, source frame rate).

    The source is decoded once, front to back; frames outside the selection are dropped without conversion.
    """
    source, path = Path(source), Path(path)
    spans = sorted((s.start, s.end) for s in shots)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, suffix=".mp4") as tmp, av.open(str(source)) as src, \
                av.open(str(tmp), mode="w", format="mp4") as dst:
            if not src.streams.video:
                raise VideoDecodeError(f"{source}: no video stream")
            stream = src.streams.video[0]
            rate = Fraction(stream.average_rate or 30).limit_denominator(1001)
            out = dst.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
            ctx = stream.codec_context
            out.width, out.height = ctx.width - ctx.width % 2, ctx.height - ctx.height % 2
            out.pix_fmt = "yuv420p"
            frame_tb = 1 / rate  # fixed: the muxer may change out.time_base once the header is written
            out.time_base = frame_tb
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            written = 0
            for frame in src.decode(stream):
                t = float(frame.pts * stream.time_base) - start if frame.pts is not None else None
                if t is None or not any(a <= t < b for a, b in spans):
                    continue
                # a fresh frame: decoded frames carry the source's picture type, which x264 would try to honour
                rgb = frame.to_ndarray(format="rgb24")[: out.height, : out.width]
                image = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                image.pts, image.time_base = written, frame_tb
                dst.mux(out.encode(image))
                written += 1
            dst.mux(out.encode(None))
            if written == 0:
                raise VideoDecodeError(f"{source}: no frame fell inside the selected shots")
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"{source}: cannot re-encode the summary ({exc})") from None
    return path
