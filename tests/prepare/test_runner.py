"""Resume, failure reporting and the process pool of `egokit prepare`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import egokit.prepare.runner as runner
from egokit.data.video import read_frames_at
from egokit.prepare import PrepareSettings, load_manifest, prepare, read_manifest
from tests.data.videos import make_index_video, read_index

SETTINGS = PrepareSettings(short_side=32, chunk_seconds=2.0, preset="ultrafast")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for name, frames in (("a", 50), ("b", 30), ("c", 20)):
        make_index_video(folder / f"{name}.mp4", frames, 10, size=(48, 32), gop=50)
    return folder


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """uids encoded (not skipped) by in-process runs."""
    calls: list[str] = []
    original = runner.encode_video

    def counting(job, *args, **kwargs):
        calls.append(job.uid)
        return original(job, *args, **kwargs)

    monkeypatch.setattr(runner, "encode_video", counting)
    return calls


def _mtimes(dst: Path) -> dict[str, int]:
    return {p.relative_to(dst).as_posix(): p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}


def test_resume_skips_finished_videos(src: Path, tmp_path: Path, encodes: list[str]) -> None:
    dst = tmp_path / "dst"
    first = prepare(src, dst, SETTINGS)
    assert [r.status for r in first.results] == ["done"] * 3 and encodes == ["a", "b", "c"]
    before = _mtimes(dst)
    second = prepare(src, dst, SETTINGS)
    assert [r.status for r in second.results] == ["skipped"] * 3 and second.frames == 0
    assert encodes == ["a", "b", "c"] and _mtimes(dst) == before
    assert prepare(src, dst, SETTINGS, overwrite=True).frames == 100


def test_resume_redoes_changed_sources_settings_and_damaged_chunks(src: Path, tmp_path: Path,
                                                                   encodes: list[str]) -> None:
    dst = tmp_path / "dst"
    prepare(src, dst, SETTINGS)
    make_index_video(src / "a.mp4", 30, 10, size=(48, 32), gop=50)  # source replaced: shorter
    (dst / "b" / "0.mp4").write_bytes((dst / "b" / "0.mp4").read_bytes()[:100])  # chunk damaged
    (dst / "c" / ".0.mp4.partial").write_bytes(b"left by a killed run")
    encodes.clear()
    report = prepare(src, dst, SETTINGS)
    assert {r.uid: r.status for r in report.results} == {"a": "done", "b": "done", "c": "skipped"}
    assert load_manifest(dst)["a"].num_frames == 30
    assert sorted(p.name for p in (dst / "a").iterdir()) == ["0.mp4", "1.mp4"]  # the old third chunk is gone
    encodes.clear()
    prepare(src, dst, PrepareSettings(short_side=16, chunk_seconds=2.0, preset="ultrafast"))
    assert encodes == ["a", "b", "c"]  # other settings: everything re-encoded
    assert not list(dst.rglob("*.partial"))
    assert load_manifest(dst)["c"].width == 24


def test_corrupt_input_is_reported_and_the_others_succeed(src: Path, tmp_path: Path) -> None:
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    dst = tmp_path / "dst"
    report = prepare(src, dst, SETTINGS)
    failed = report.by_status("failed")
    assert [r.uid for r in failed] == ["broken"] and str(src / "broken.mp4") in failed[0].source
    assert failed[0].error and not report.ok
    assert sorted(r.uid for r in report.by_status("done")) == ["a", "b", "c"]
    entries = read_manifest(dst)
    assert entries["broken"]["status"] == "failed" and entries["broken"]["error"] == failed[0].error
    assert not (dst / "broken").exists()
    assert sorted(load_manifest(dst)) == ["a", "b", "c"]
    again = prepare(src, dst, SETTINGS)  # failures are retried, finished videos skipped
    assert {r.uid: r.status for r in again.results} == {"a": "skipped", "b": "skipped", "c": "skipped",
                                                        "broken": "failed"}


def test_process_pool_gives_the_same_outputs(src: Path, tmp_path: Path) -> None:
    frames: list[int] = []
    report = prepare(src, tmp_path / "dst", SETTINGS, workers=2, on_frames=frames.append)
    assert report.ok and sum(frames) == report.frames == 100
    video = load_manifest(tmp_path / "dst")["a"]
    assert [read_index(f.numpy()) for f in read_frames_at(video.chunked(), [1.95, 2.05, 4.95])] == [19, 20, 49]
