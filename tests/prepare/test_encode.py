"""The single-pass re-encode: frame-exact chunks readable by egokit's reader, resampling, size and codec choice."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from egokit.data.video import ChunkedVideo, probe_video, read_clip, read_frames_at
from egokit.errors import ConfigError
from egokit.prepare import PrepareSettings, choose_codec, load_manifest, prepare
from egokit.prepare.settings import output_size
from tests.data.videos import make_index_video, read_index
from tests.prepare.conftest import LONG_FPS, LONG_FRAMES


def _indices(frames) -> list[int]:
    return [read_index(f.numpy()) for f in frames]


def test_chunks_use_the_official_layout_and_frame_counts(prepared: tuple[Path, Path]) -> None:
    _, dst = prepared
    assert sorted(p.name for p in (dst / "long").iterdir()) == ["0.mp4", "1.mp4", "2.mp4"]  # no temp files left
    counts = [probe_video(dst / "long" / f"{k}.mp4").num_frames for k in range(3)]
    assert counts == [100, 100, 50]
    info = probe_video(dst / "long" / "0.mp4")
    assert (info.width, info.height, info.fps) == (48, 32, 10.0)  # short side 32, even, source rate kept


def test_every_frame_is_the_source_frame_across_chunk_boundaries(prepared: tuple[Path, Path]) -> None:
    _, dst = prepared
    video = ChunkedVideo(dst, "long", chunk_seconds=10.0)  # no manifest needed: the official naming
    times = [(i + 0.5) / LONG_FPS for i in range(LONG_FRAMES)]
    assert _indices(read_frames_at(video, times)) == list(range(LONG_FRAMES))


@pytest.mark.parametrize("start, end", [(9.5, 10.5), (9.95, 10.05), (19.0, 21.0), (5.0, 24.9)])
def test_clips_straddling_chunk_boundaries(prepared: tuple[Path, Path], start: float, end: float) -> None:
    _, dst = prepared
    first, last = int(start * LONG_FPS), -int(-end * LONG_FPS) - 1
    expected = list(range(first, last + 1))
    clip = read_clip(ChunkedVideo(dst, "long", 10.0), start, end, len(expected))
    assert _indices(clip) == expected


def test_key_frame_about_every_second(prepared: tuple[Path, Path]) -> None:
    _, dst = prepared
    with av.open(str(dst / "long" / "0.mp4")) as container:
        keys = [i for i, p in enumerate(container.demux(video=0)) if p.is_keyframe]
    assert keys[:3] == [0, 10, 20] and len(keys) >= 10


def test_ntsc_rate_chunks_hold_whole_frames(tmp_path: Path) -> None:
    rate = Fraction(30000, 1001)
    (tmp_path / "src").mkdir()
    make_index_video(tmp_path / "src" / "ntsc.mp4", 130, rate, size=(64, 48), gop=60)
    assert prepare(tmp_path / "src", tmp_path / "dst", PrepareSettings(short_side=48, chunk_seconds=2.0)).ok
    video = load_manifest(tmp_path / "dst")["ntsc"]
    assert video.rate == rate and video.chunk_frames == 60  # round(2 * 29.97)
    assert video.chunk_seconds == pytest.approx(60 / float(rate))
    times = [float((i + Fraction(1, 2)) / rate) for i in range(130)]
    assert _indices(read_frames_at(video.chunked(), times)) == list(range(130))


def test_fps_resamples_to_the_frame_on_screen(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_index_video(tmp_path / "src" / "v.mp4", 60, 30, size=(64, 48), gop=30)
    assert prepare(tmp_path / "src", tmp_path / "dst", PrepareSettings(fps=10, chunk_seconds=1.0)).ok
    video = load_manifest(tmp_path / "dst")["v"]
    assert (video.num_frames, video.chunk_frames, len(video.chunks)) == (20, 10, 2)
    frames = read_frames_at(video.chunked(), [(j + 0.5) / 10 for j in range(20)])
    assert _indices(frames) == [3 * j + 1 for j in range(20)]  # source frame shown at each output slot middle


def test_variable_rate_source_becomes_constant_rate(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    pts = [3000 * i + (2000 if i % 3 == 1 else 0) for i in range(45)]  # 30 fps grid, every third frame late
    source = make_index_video(tmp_path / "src" / "vfr.mp4", 45, 30, size=(64, 48), gop=45, pts=pts,
                              time_base=Fraction(1, 90000))
    assert prepare(tmp_path / "src", tmp_path / "dst", PrepareSettings(chunk_seconds=0.5)).ok
    video = load_manifest(tmp_path / "dst")["vfr"]
    assert (video.rate, video.num_frames, video.chunk_frames) == (30, 45, 15)
    slots = [(j + 0.5) / 30 for j in range(45)]
    expected = _indices(read_frames_at(source, slots))  # the frame on screen at each slot middle
    assert expected != list(range(45))  # the late frames really are replaced by their predecessor somewhere
    assert _indices(read_frames_at(video.chunked(), slots)) == expected


def test_mpeg4_fallback_round_trips(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_index_video(tmp_path / "src" / "v.mp4", 40, 10, size=(64, 64), gop=40)
    report = prepare(tmp_path / "src", tmp_path / "dst", PrepareSettings(codec="mpeg4", chunk_seconds=3.0))
    assert report.ok and report.codec == "mpeg4"
    video = load_manifest(tmp_path / "dst")["v"]
    assert _indices(read_frames_at(video.chunked(), [(i + 0.5) / 10 for i in range(40)])) == list(range(40))


def test_choose_codec() -> None:
    assert choose_codec("auto", {"libx264", "mpeg4"}) == ("libx264", None)
    codec, warning = choose_codec("auto", {"mpeg4", "h264"})
    assert codec == "mpeg4" and "libx264" in warning
    with pytest.raises(ConfigError, match="libx264"):
        choose_codec("libx264", {"mpeg4"})


def test_output_size_is_even_and_never_upscaled() -> None:
    assert output_size(1920, 1080, 256) == (456, 256)
    assert output_size(1080, 1920, 256) == (256, 456)
    assert output_size(640, 360, 256) == (456, 256)  # 455.1 -> even
    assert output_size(101, 75, 256) == (102, 76)  # smaller than 256: kept, rounded to even
