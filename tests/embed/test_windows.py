"""Window arithmetic against hand-computed values, and the exact frames a decoded window holds."""

from __future__ import annotations

import numpy as np
import pytest

from egokit.data.transforms import EvalTransform
from egokit.data.video import probe_video
from egokit.embed import FeatureRecipe, ego4d_windows, get_recipe, plan_windows, sliding_windows
from egokit.embed.extract import _decode_chunks
from egokit.errors import ConfigError, DataError
from tests.data.videos import make_index_video, read_index


def test_ego4d_windows_hand_computed():
    # M = int(1 * 1.87 * 4 + 1) = 8 samples; edges = int(linspace(0, 30, 9)) = 0 3 7 11 15 18 22 26 30;
    # middles (a + b - 1) // 2 = 1 4 8 12 16 19 23 27 -> two windows of 4; window times from the edges.
    plan = ego4d_windows(0.0, 1.0, 30.0, 300, 4, 1.87)
    assert plan.frames.tolist() == [[1, 4, 8, 12], [16, 19, 23, 27]]
    assert np.allclose(plan.starts, [0.0, 0.5]) and np.allclose(plan.ends, [0.5, 1.0])


def test_ego4d_windows_match_official_feature_lengths():
    # spec §5.4/§5.5: a 480-s clip gives 897 windows for both the NLQ (4-frame) and MQ (16-frame) settings
    assert len(ego4d_windows(0, 480, 30, 14400, 16)) == 897
    assert len(ego4d_windows(0, 480, 30, 14400, 4)) == 897
    # a clip in the middle of a longer video: times are relative to the clip start, frames absolute
    plan = ego4d_windows(10.0, 11.0, 30.0, 900, 4)
    assert plan.frames.tolist() == [[301, 304, 308, 312], [316, 319, 323, 327]]
    assert np.allclose(plan.starts, [0.0, 0.5])


def test_ego4d_end_beyond_video_is_clamped_and_tail_dropped():
    # clip claims 2 s but the video has 45 frames (1.5 s): M = int(2*1.87*4+1) = 15 bins over frames 0..45,
    # 15 // 4 = 3 windows; the three leftover samples (a partial window) are dropped
    plan = ego4d_windows(0.0, 2.0, 30.0, 45, 4)
    edges = np.linspace(0, 45, 16).astype(int)
    mids = (edges[:-1] + edges[1:] - 1) // 2
    assert plan.frames.tolist() == mids[:12].reshape(3, 4).tolist()
    assert plan.frames.max() < 45


def test_sliding_windows_counts_times_and_partial_tail():
    # 8-frame windows every 0.5 s (15 frames) at 30 fps, 4 frames sampled at bin middles of 2 frames
    plan = sliding_windows(0.0, 2.0, 30.0, 60, 4, 8, 0.5)
    assert plan.frames.tolist() == [[0, 2, 4, 6], [15, 17, 19, 21], [30, 32, 34, 36], [45, 47, 49, 51]]
    assert np.allclose(plan.starts, [0, 0.5, 1.0, 1.5]) and np.allclose(plan.ends, np.array([8, 23, 38, 53]) / 30)
    # clip ends at frame 50: the window 45..52 would be partial and is dropped
    assert len(sliding_windows(0.0, 51 / 30, 30.0, 60, 4, 8, 0.5)) == 3
    # shorter than one window: no windows
    assert len(sliding_windows(0.0, 0.2, 30.0, 60, 4, 8, 0.5)) == 0


def test_invalid_ranges_and_recipes_raise():
    with pytest.raises(DataError, match="after the end"):
        ego4d_windows(5.0, 6.0, 30.0, 90, 4)
    with pytest.raises(ConfigError, match="exactly one of stride"):
        FeatureRecipe(windowing="sliding", stride=0.5, windows_per_second=2.0)
    with pytest.raises(ConfigError, match="unknown feature recipe"):
        get_recipe("egovlpv2-xyz")
    assert get_recipe("egovlpv2-mq").frames_per_window == 16 and get_recipe("egovlpv2-nlq").mode == "fusion"
    assert get_recipe("egovlpv2-mq", mode="backbone").name is None


@pytest.mark.parametrize("recipe", [FeatureRecipe(frames_per_window=4),
                                    FeatureRecipe(frames_per_window=3, windowing="sliding", window_frames=6,
                                                  stride=0.3, windows_per_second=None)])
def test_decoded_windows_hold_exactly_the_planned_frames(tmp_path, recipe):
    path = make_index_video(tmp_path / "v.mp4", 75, 25, size=(64, 64), gop=10)
    info = probe_video(path)
    plan = plan_windows(recipe, info, 0.4, 2.9)
    assert len(plan) >= 3
    got = []
    for w0, windows in _decode_chunks(path, plan, info.fps, EvalTransform(64), None, chunk=2):
        assert w0 == len(got)
        got += [[read_index(frame.numpy()) for frame in window] for window in windows]
    assert got == plan.frames.tolist()
