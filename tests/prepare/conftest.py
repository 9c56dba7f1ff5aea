"""A small dataset of index videos (each frame shows its own index) prepared once per module that asks for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from egokit.prepare import PrepareSettings, prepare
from tests.data.videos import make_index_video

LONG_FRAMES, LONG_FPS = 250, 10  # 25 s: chunks of 10 s hold frames 0-99, 100-199, 200-249
SETTINGS = PrepareSettings(short_side=32, chunk_seconds=10.0, gop_seconds=1.0, preset="ultrafast")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(src, dst)``: src holds ``long.mp4`` (25 s at 10 fps, 96x64, one key frame every 250 frames, as the raw
    official data) and ``short.mp4`` (3 s at 25 fps); dst is ``egokit prepare`` output with 10-s chunks."""
    base = tmp_path_factory.mktemp("prepare")
    src = base / "src"
    src.mkdir()
    make_index_video(src / "long.mp4", LONG_FRAMES, LONG_FPS, size=(96, 64), gop=250)
    make_index_video(src / "short.mp4", 75, 25, size=(64, 64), gop=25)
    report = prepare(src, base / "dst", SETTINGS)
    assert report.ok, [r.error for r in report.results]
    return src, base / "dst"
