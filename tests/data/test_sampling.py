from __future__ import annotations

import numpy as np
import pytest

from egokit.data.sampling import frame_range, sample_frame_indices, slot_times


@pytest.mark.parametrize(
    ("start", "end", "fps", "expected"),
    [
        (1.0, 2.0, 30, (30, 59)),  # end on a frame boundary: frame 60 starts at 2.0 and is excluded
        (0.3, 0.7, 30, (9, 20)),  # 0.3 * 30 == 8.999999999999998 in floats: still frame 9
        (0.5, 1.3, 25, (12, 32)),  # 12.5 -> frame 12 (contains 0.5 s); 32.5 -> frame 32 (contains 1.29 s)
        (0.01, 0.02, 30, (0, 0)),  # both ends inside frame 0
        (2.0, 3.0, 30000 / 1001, (59, 89)),  # 59.94 -> 59, 89.91 -> 89
    ],
)
def test_frame_range_covers_frames_overlapping_the_interval(start, end, fps, expected) -> None:
    assert frame_range(start, end, fps) == expected


@pytest.mark.parametrize(("start", "end", "fps"), [(1.0, 1.0, 30), (2.0, 1.0, 30), (-0.1, 1.0, 30), (0, 1, 0)])
def test_frame_range_rejects_bad_input(start, end, fps) -> None:
    with pytest.raises(ValueError):
        frame_range(start, end, fps)


def test_slot_times_are_frame_middles() -> None:
    assert slot_times([0, 1, 30], 30) == pytest.approx([1 / 60, 3 / 60, 61 / 60])


@pytest.mark.parametrize(
    ("first", "last", "num", "expected"),
    [
        (30, 59, 4, [33, 40, 48, 55]),  # bins 30-36, 37-44, 45-51, 52-59
        (0, 9, 10, list(range(10))),
        (0, 99, 1, [49]),
        (12, 32, 4, [14, 19, 24, 29]),  # bins 12-16, 17-21, 22-26, 27-32
        # fewer frames than wanted: frame under each bin middle
        (30, 32, 4, [30, 31, 31, 32]),
        (0, 1, 4, [0, 0, 1, 1]),
        (5, 5, 3, [5, 5, 5]),
    ],
)
def test_uniform_takes_bin_middles(first, last, num, expected) -> None:
    assert sample_frame_indices(first, last, num, "uniform") == expected


def _official_uniform(start_f: int, end_f: int, num: int) -> list[int]:
    """The official sample_frames_start_end 'uniform' rule (spec 4.3), re-derived here from its description."""
    edges = np.linspace(start_f, end_f, num + 1).astype(int)
    return [int((edges[k] + edges[k + 1] - 1) // 2) for k in range(num)]


def test_uniform_matches_official_rule_when_range_has_enough_frames() -> None:
    for first in (0, 7, 1000, 17990):
        for count in range(1, 70):
            for num in (1, 2, 3, 4, 8, 16):
                if count >= num:
                    expected = _official_uniform(first, first + count, num)
                    assert sample_frame_indices(first, first + count - 1, num, "uniform") == expected


def test_rand_stays_in_bins_and_reaches_every_frame_of_each_bin() -> None:
    rng = np.random.default_rng(0)
    bins = [set(range(0, 3)), set(range(3, 6)), set(range(6, 10))]  # 10 frames in 3 bins
    seen = [set() for _ in bins]
    for _ in range(400):
        picks = sample_frame_indices(0, 9, 3, "rand", rng)
        for k, p in enumerate(picks):
            assert p in bins[k]
            seen[k].add(p)
    assert seen == bins  # including the last frame of each bin, which the official rule never draws


def test_rand_with_fewer_frames_than_wanted_picks_frames_overlapping_each_bin() -> None:
    # 3 frames, 4 bins of 0.75 frame: [0, .75) [.75, 1.5) [1.5, 2.25) [2.25, 3)
    rng = np.random.default_rng(1)
    allowed = [{0}, {0, 1}, {1, 2}, {2}]
    seen = [set() for _ in allowed]
    for _ in range(300):
        picks = sample_frame_indices(10, 12, 4, "rand", rng)
        assert picks == sorted(picks)
        for k, p in enumerate(picks):
            seen[k].add(p - 10)
    assert seen == allowed


def test_rand_is_reproducible_with_a_seeded_generator() -> None:
    a = sample_frame_indices(0, 999, 16, "rand", np.random.default_rng(5))
    b = sample_frame_indices(0, 999, 16, "rand", np.random.default_rng(5))
    assert a == b and a == sorted(a)


@pytest.mark.parametrize(("first", "last", "num", "mode"), [(0, 9, 0, "uniform"), (5, 4, 2, "uniform"), (0, 9, 2, "x")])
def test_sample_frame_indices_rejects_bad_input(first, last, num, mode) -> None:
    with pytest.raises(ValueError):
        sample_frame_indices(first, last, num, mode)
