"""What ``egokit prepare`` produces: output size, frame rate, key-frame interval, chunk length and codec."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from egokit.errors import ConfigError

__all__ = ["PrepareSettings", "choose_codec", "output_rate", "output_size"]

CODECS = ("auto", "libx264", "mpeg4")


@dataclass(frozen=True)
class PrepareSettings:
    """Encoding settings; every field except ``codec`` is recorded per video in the manifest.

    ``short_side``: frames are scaled down so the shorter side has this many pixels (never up; both sides even).
    ``fps``: output frame rate, ``None`` keeps the source rate. ``gop_seconds``: key-frame interval in seconds
    (``gop_size = round(gop_seconds * fps)``). ``chunk_seconds``: chunk length; a chunk holds
    ``round(chunk_seconds * fps)`` frames. ``codec``: ``'auto'`` (libx264 if PyAV's FFmpeg has it, else mpeg4),
    ``'libx264'`` or ``'mpeg4'``. ``crf``/``preset`` tune libx264.
    """

    short_side: int = 256
    fps: float | None = None
    gop_seconds: float = 1.0
    chunk_seconds: float = 600.0
    codec: str = "auto"
    crf: int = 23
    preset: str = "veryfast"

    def validate(self) -> None:
        if self.short_side < 2:
            raise ConfigError(f"--short-side must be >= 2 pixels, got {self.short_side}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}")
        if not self.gop_seconds > 0:
            raise ConfigError(f"--gop-seconds must be positive, got {self.gop_seconds}")
        if not self.chunk_seconds > 0:
            raise ConfigError(f"--chunk-seconds must be positive, got {self.chunk_seconds}")
        if self.codec not in CODECS:
            raise ConfigError(f"--codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be in 0..51, got {self.crf}")

    def record(self, codec: str) -> dict[str, Any]:
        """The manifest's view of these settings, with the codec actually used; a change means re-encoding."""
        return {**dataclasses.asdict(self), "codec": codec}


def choose_codec(requested: str = "auto", available: frozenset[str] | set[str] | None = None) -> tuple[str, str | None]:
    """``(codec name, warning or None)``: libx264 when available (or asked for), else mpeg4."""
    available = av.codecs_available if available is None else available
    if requested == "mpeg4" or (requested == "auto" and "libx264" not in available):
        if "mpeg4" not in available:
            raise ConfigError("PyAV's FFmpeg has neither libx264 nor mpeg4 encoders; install a PyAV wheel with them")
        warning = None if requested == "mpeg4" else (
            "PyAV's FFmpeg has no libx264 encoder: writing MPEG-4 Part 2 (mpeg4) instead, which is larger and "
            "slower to decode; install a PyAV wheel built with libx264 for H.264 output"
        )
        return "mpeg4", warning
    if "libx264" not in available:
        raise ConfigError("--codec libx264 requested but PyAV's FFmpeg has no libx264 encoder; use --codec auto")
    return "libx264", None


def output_rate(source_rate: Fraction, settings: PrepareSettings) -> Fraction:
    """Exact output frame rate: ``--fps`` if given, else the source rate (NTSC rates stay e.g. 30000/1001)."""
    rate = Fraction(settings.fps) if settings.fps is not None else Fraction(source_rate)
    return rate.limit_denominator(1001)


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Even ``(width, height)`` with the shorter side scaled to ``short_side`` (sources are never scaled up)."""
    scale = min(1.0, short_side / min(width, height))

    def even(x: float) -> int:
        return max(2, 2 * int(x / 2 + 0.5))  # half up (round() would round 50.5 to 50)

    return even(width * scale), even(height * scale)
