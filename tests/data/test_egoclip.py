from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.data.egoclip import (
    EGOCLIP_COLUMNS,
    EgoClipDataset,
    SceneNegativeIndex,
    multi_hot,
    parse_tag_list,
    read_egoclip_csv,
)
from egokit.errors import DataError
from tests.data.videos import make_chunked_video, read_index

FPS = 10
CHUNK_S = 3.0  # 30 frames per chunk


def write_egoclip(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(EGOCLIP_COLUMNS)
        for i, r in enumerate(rows):
            row = {"clip_idx": i, "video_dur": 6.0, "narration_source": "narration_pass_1", "narration_ind": i,
                   "tag_verb": "[1]", "tag_noun": "[2, 5]", **r}  # fmt: skip
            if "narration_time" not in r:
                row["narration_time"] = (float(row["clip_start"]) + float(row["clip_end"])) / 2
            writer.writerow([row[c] for c in EGOCLIP_COLUMNS])
    return path


def test_read_csv_and_multi_hot(tmp_path: Path) -> None:
    path = write_egoclip(tmp_path / "e.csv", [
        {"video_uid": "v1", "clip_start": 0.5, "clip_end": 1.5, "clip_text": "#C C picks a cup", "tag_verb": "[93]", "tag_noun": "[192, 115, 12]"},
        {"video_uid": "v1", "clip_start": -0.2, "clip_end": 0.9, "clip_text": "#C C drops it", "tag_verb": "[]", "tag_noun": "(3,)"},
    ])  # fmt: skip
    table = read_egoclip_csv(path)
    assert len(table) == 2 and table.video_uid == ["v1", "v1"]
    assert table.tag_verb == [(93,), ()] and table.tag_noun == [(192, 115, 12), (3,)]
    assert table.clip_text[0] == "#C C picks a cup" and table.clip_start[1] == -0.2
    vec = multi_hot(table.tag_noun[0], 582)
    assert vec.shape == (582,) and vec.dtype == torch.float32
    assert vec.nonzero().flatten().tolist() == [12, 115, 192] and vec.sum() == 3
    assert multi_hot((), 118).sum() == 0


@pytest.mark.parametrize(
    "tag",
    ["__import__('os').system('touch pwned')", "[1, 'a']", "[1.5]", "{1: 2}", "[True]", "[118]", "[-1]", "open('x')", "[1,"],
)
def test_bad_tag_strings_are_rejected_with_location(tmp_path: Path, tag: str) -> None:
    path = write_egoclip(tmp_path / "bad.csv", [
        {"video_uid": "v1", "clip_start": 0, "clip_end": 1, "clip_text": "t"},
        {"video_uid": "v1", "clip_start": 0, "clip_end": 1, "clip_text": "t", "tag_verb": tag},
    ])  # fmt: skip
    with pytest.raises(DataError) as err:
        read_egoclip_csv(path)
    assert f"{path}:3" in str(err.value) and "tag_verb" in str(err.value)
    assert not Path("pwned").exists()


def test_other_csv_errors(tmp_path: Path) -> None:
    bad_time = write_egoclip(tmp_path / "t.csv", [{"video_uid": "v", "clip_start": "abc", "clip_end": 1, "clip_text": "t", "narration_time": 1}])
    with pytest.raises(DataError, match=r"t.csv:2: column clip_start"):
        read_egoclip_csv(bad_time)
    no_col = tmp_path / "n.csv"
    no_col.write_text("video_uid\tclip_text\nv\tt\n")
    with pytest.raises(DataError, match="missing column"):
        read_egoclip_csv(no_col)
    with pytest.raises(DataError, match="does not exist"):
        read_egoclip_csv(tmp_path / "absent.csv")
    ragged = write_egoclip(tmp_path / "r.csv", [{"video_uid": "v", "clip_start": 0, "clip_end": 1, "clip_text": "t"}] * 2)
    ragged.write_text(ragged.read_text() + "only\ttwo\n")
    with pytest.raises(DataError, match=r"r.csv:4: expected 11"):
        read_egoclip_csv(ragged)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(read_egoclip_csv(ragged, on_bad_lines="skip")) == 2
    assert parse_tag_list("[3, 17]", 20, "x") == (3, 17)


@pytest.mark.parametrize("window", [60.0, 7.5])
def test_scene_negative_index_matches_brute_force(window: float) -> None:
    rng = np.random.default_rng(0)
    uids = [f"v{int(i)}" for i in rng.integers(0, 6, 800)]
    times = rng.uniform(-5, 400, 800)
    index = SceneNegativeIndex(uids, times, window)
    segment = [f"{u}_{t // window}" for u, t in zip(uids, times)]  # the official segment_id
    for row in range(len(uids)):
        brute = [j for j in range(len(uids)) if segment[j] == segment[row]]
        assert index.candidates(row).tolist() == brute
    draws = [index.sample(0, np.random.default_rng(k)) for k in range(300)]
    assert set(draws) == set(index.candidates(0).tolist())  # uniform over the window, anchor included


@pytest.fixture(scope="module")
def egoclip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("egoclip")
    make_chunked_video(root / "videos", "vid-a", [30, 30], FPS)  # frames 0..59, chunk boundary at 3 s
    make_chunked_video(root / "videos", "vid-b", [30], FPS)
    write_egoclip(root / "egoclip.csv", [
        {"video_uid": "vid-a", "clip_start": 0.0, "clip_end": 1.0, "clip_text": "a0"},
        {"video_uid": "vid-a", "clip_start": 2.5, "clip_end": 3.7, "clip_text": "a1 straddles"},
        {"video_uid": "vid-a", "clip_start": 4.0, "clip_end": 5.5, "clip_text": "a2"},
        {"video_uid": "vid-b", "clip_start": -0.3, "clip_end": 1.2, "clip_text": "b0", "narration_time": 0.2},
    ])  # fmt: skip
    return root


def _frame_ids(video: torch.Tensor) -> list[int]:
    return [read_index(f.numpy()) for f in video]


def test_egoclip_items_sample_the_clip_range(egoclip_root: Path) -> None:
    ds = EgoClipDataset(egoclip_root / "egoclip.csv", egoclip_root / "videos", num_frames=4, chunk_seconds=CHUNK_S, neg_window=3.0)
    assert len(ds) == 4
    ranges = {0: (0, 9), 1: (25, 36), 2: (40, 54), 3: (0, 11)}
    for i in range(4):
        item = ds[i]
        assert item["video"].shape == (4, 3, 64, 64) and item["video"].dtype == torch.uint8
        ids = _frame_ids(item["video"])
        lo, hi = ranges[i]
        assert ids == sorted(ids) and lo <= ids[0] and ids[-1] <= hi, (i, ids)
        assert item["verb"].shape == (118,) and item["noun"].shape == (582,) and item["noun"][5] == 1
        neg = item["neg_index"]
        assert ds.table.video_uid[neg] == ds.table.video_uid[i]
        assert ds.table.narration_time[neg] // 3.0 == ds.table.narration_time[i] // 3.0
        assert item["neg_text"] == ds.table.clip_text[neg] and item["neg_video"].shape == (4, 3, 64, 64)
    straddle = _frame_ids(ds[1]["video"])
    assert straddle[0] < 30 <= straddle[-1]  # frames from both chunks


def test_egoclip_randomness_is_keyed_by_seed_epoch_index(egoclip_root: Path) -> None:
    calls = []

    def transform(video: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        calls.append(generator)
        return video[:, :, :32, :32]

    kwargs = dict(num_frames=4, chunk_seconds=CHUNK_S, transform=transform, seed=3)
    a = EgoClipDataset(egoclip_root / "egoclip.csv", egoclip_root / "videos", **kwargs)
    b = EgoClipDataset(egoclip_root / "egoclip.csv", egoclip_root / "videos", **kwargs)
    assert a[2]["video"].shape == (4, 3, 32, 32) and isinstance(calls[0], torch.Generator)
    epoch0 = [_frame_ids(a[2]["video"]) for _ in range(2)] + [_frame_ids(b[2]["video"])]
    assert epoch0[0] == epoch0[1] == epoch0[2]
    seen = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        seen.add(tuple(_frame_ids(a[2]["video"])))
        assert a[2]["epoch"] == epoch
    assert len(seen) > 1
    no_neg = EgoClipDataset(egoclip_root / "egoclip.csv", egoclip_root / "videos", chunk_seconds=CHUNK_S, neg_window=None)
    assert "neg_video" not in no_neg[0]


def test_missing_video_error_names_line_and_range(egoclip_root: Path, tmp_path: Path) -> None:
    csv_path = write_egoclip(tmp_path / "m.csv", [{"video_uid": "ghost", "clip_start": 1.0, "clip_end": 2.0, "clip_text": "x"}])
    ds = EgoClipDataset(csv_path, egoclip_root / "videos", chunk_seconds=CHUNK_S)
    with pytest.raises(DataError) as err:
        ds[0]
    assert f"{csv_path}:2" in str(err.value) and "ghost" in str(err.value) and "[1.000, 2.000]" in str(err.value)
