"""Input layouts: EPIC-KITCHENS, Ego4D, Charades and plain folders, and which uid each video gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.errors import ConfigError, DataError
from egokit.prepare import detect_layout, discover

UUID_A = "0a1b2c3d-0000-4000-8000-000000000001"
UUID_B = "ffeeddcc-1111-4111-9111-000000000002"


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def _uids(src: Path, layout: str = "auto", exclude: Path | None = None) -> tuple[str, list[tuple[str, str]]]:
    used, jobs = discover(src, layout, exclude=exclude)
    return used, [(j.uid, j.path.relative_to(src).as_posix()) for j in jobs]


def test_epic_layouts(tmp_path: Path) -> None:
    _touch(tmp_path, "P01/videos/P01_01.MP4", "P01/videos/P01_102.MP4", "P02/P02_03.MP4", "P02/notes.txt",
           "P03/rgb_frames/P03_01/frame_0000000001.jpg", ".cache/P04_01.MP4")
    assert _uids(tmp_path) == ("epic", [("P01_01", "P01/videos/P01_01.MP4"), ("P01_102", "P01/videos/P01_102.MP4"),
                                        ("P02_03", "P02/P02_03.MP4")])


def test_ego4d_layout(tmp_path: Path) -> None:
    _touch(tmp_path, f"{UUID_B}.mp4", f"{UUID_A}.mp4", "manifest.csv")
    assert _uids(tmp_path) == ("ego4d", [(UUID_A, f"{UUID_A}.mp4"), (UUID_B, f"{UUID_B}.mp4")])
    cli_download = _touch(tmp_path / "v1", f"full_scale/{UUID_A}.mp4")
    assert _uids(cli_download) == ("ego4d", [(UUID_A, f"full_scale/{UUID_A}.mp4")])


def test_charades_layout(tmp_path: Path) -> None:
    _touch(tmp_path, "46GP8.mp4", "005BUEGO.mp4")
    assert _uids(tmp_path) == ("charades", [("005BUEGO", "005BUEGO.mp4"), ("46GP8", "46GP8.mp4")])


def test_plain_layout_is_recursive_and_skips_the_output_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "kitchen/day1.mp4", "kitchen/day2.MOV", "walk.mkv", "readme.md", "out/a/0.mp4")
    assert detect_layout(tmp_path) == "plain"
    assert _uids(tmp_path, exclude=tmp_path / "out") == ("plain", [
        ("kitchen/day1", "kitchen/day1.mp4"), ("kitchen/day2", "kitchen/day2.MOV"), ("walk", "walk.mkv")])


def test_forced_layout_and_single_file(tmp_path: Path) -> None:
    _touch(tmp_path, "a.mp4", "sub/b.mp4")
    assert _uids(tmp_path, "ego4d") == ("ego4d", [("a", "a.mp4")])  # top level only
    assert discover(tmp_path / "a.mp4")[1][0].uid == "a"


def test_errors(tmp_path: Path) -> None:
    _touch(tmp_path, "x/P01/P01_01.MP4", "y/P01/P01_01.MP4")
    with pytest.raises(DataError, match="two videos would be stored as 'P01_01'"):
        discover(tmp_path, "epic")
    with pytest.raises(ConfigError, match="--layout"):
        discover(tmp_path, "kinetics")
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "missing")
