"""DST/manifest.json: per-video facts and chunk boundaries, atomic writes, and the load_manifest hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egokit.data.video import probe_video, read_clip
from egokit.errors import DataError
from egokit.prepare import load_manifest, read_manifest
from egokit.prepare.manifest import write_manifest
from tests.data.videos import read_index


def test_manifest_content(prepared: tuple[Path, Path]) -> None:
    src, dst = prepared
    data = json.loads((dst / "manifest.json").read_text())
    assert data["format"] == "egokit-prepare" and data["version"] == 1
    entry = data["videos"]["long"]
    assert entry["status"] == "done" and entry["uid"] == "long"
    assert entry["source"] == str((src / "long.mp4").resolve())
    assert entry["source_bytes"] == (src / "long.mp4").stat().st_size
    assert (entry["fps"], entry["rate"], entry["num_frames"], entry["duration"]) == (10.0, "10/1", 250, 25.0)
    assert (entry["width"], entry["height"], entry["source_width"], entry["source_height"]) == (48, 32, 96, 64)
    assert (entry["chunk_seconds"], entry["chunk_frames"], entry["gop_size"]) == (10.0, 100, 10)
    assert entry["settings"]["short_side"] == 32 and entry["settings"]["codec"] in ("libx264", "mpeg4")
    bounds = [(c["index"], c["path"], c["start_frame"], c["end_frame"], c["start"], c["end"], c["num_frames"])
              for c in entry["chunks"]]
    assert bounds == [(0, "long/0.mp4", 0, 100, 0.0, 10.0, 100), (1, "long/1.mp4", 100, 200, 10.0, 20.0, 100),
                      (2, "long/2.mp4", 200, 250, 20.0, 25.0, 50)]
    for chunk in entry["chunks"]:
        assert chunk["bytes"] == (dst / chunk["path"]).stat().st_size
    short = data["videos"]["short"]
    assert (short["fps"], short["num_frames"], short["width"], short["height"]) == (25.0, 75, 32, 32)
    assert [(c["start_frame"], c["end_frame"]) for c in short["chunks"]] == [(0, 75)]


def test_load_manifest_gives_lengths_without_probing_and_a_reader(prepared: tuple[Path, Path]) -> None:
    _, dst = prepared
    videos = load_manifest(dst)
    assert sorted(videos) == ["long", "short"]
    long = videos["long"]
    assert (long.info.num_frames, long.info.duration, long.info.fps, long.info.width) == (250, 25.0, 10.0, 48)
    assert long.chunk_seconds == 10.0
    assert load_manifest(dst / "manifest.json")["short"].info == probe_video(dst / "short" / "0.mp4")
    clip = read_clip(long.chunked(), 9.8, 10.2, 4)
    assert [read_index(f.numpy()) for f in clip] == [98, 99, 100, 101]


def test_write_is_atomic_and_failed_entries_are_not_loaded(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"b": {"uid": "b", "status": "failed", "error": "x"}})
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left
    assert read_manifest(tmp_path)["b"]["error"] == "x"
    assert load_manifest(tmp_path) == {}


def test_bad_manifests_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no prepare manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(DataError, match="not an egokit prepare manifest"):
        read_manifest(tmp_path)
