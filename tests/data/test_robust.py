from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from rich.console import Console

from egokit.data.egoclip import EGOCLIP_COLUMNS, EgoClipDataset
from egokit.data.robust import Failure, FailureReport, RobustDataset, collate_with_failures
from egokit.errors import ConfigError, DataError
from tests.data.videos import make_chunked_video, read_index


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("robust")
    make_chunked_video(root / "videos", "good", [30], 10)
    (root / "videos" / "trunc").mkdir()
    good = (root / "videos" / "good" / "0.mp4").read_bytes()
    (root / "videos" / "trunc" / "0.mp4").write_bytes(good[: len(good) // 3])
    rows = [("good", 1.0, 2.0), ("missing", 0.0, 1.0), ("good", 1.5, 2.5), ("trunc", 0.5, 1.5)]
    with (root / "egoclip.csv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(EGOCLIP_COLUMNS)
        for i, (uid, s, e) in enumerate(rows):
            w.writerow([i, uid, 3.0, "narration_pass_1", i, (s + e) / 2, s, e, f"text {i}", "[1]", "[2]"])
    return root


def _dataset(root: Path) -> EgoClipDataset:
    return EgoClipDataset(root / "egoclip.csv", root / "videos", num_frames=4, chunk_seconds=600, scene_negatives=False)


def test_strict_raises_with_path_and_range(data: Path) -> None:
    ds = RobustDataset(_dataset(data), "strict")
    assert ds[0]["video"].shape == (4, 3, 64, 64)
    with pytest.raises(DataError) as err:
        ds[1]
    assert "missing" in str(err.value) and "[0.000, 1.000]" in str(err.value)
    with pytest.raises(DataError, match="trunc"):
        ds[3]


def test_lax_replaces_with_real_samples_and_reports(data: Path) -> None:
    ds = RobustDataset(_dataset(data), "lax", seed=1)
    items = [ds[i] for i in range(4)]
    for i in (1, 3):
        failures = items[i]["_failures"]
        assert failures and failures[0].index == i and failures[0].reason in {"DataError", "VideoDecodeError"}
        # the replacement is a real clip of a readable row: index frames, never a black frame
        ids = [read_index(f.numpy()) for f in items[i]["video"]]
        assert all(10 <= k <= 25 for k in ids), ids
        assert items[i]["video"].float().mean() > 10
    assert "_failures" not in items[0]
    assert [read_index(f.numpy()) for f in ds[1]["video"]] == [read_index(f.numpy()) for f in items[1]["video"]]

    batch = collate_with_failures([items[0], items[1], items[3]])
    assert batch["video"].shape == (3, 4, 3, 64, 64)
    report = FailureReport()
    report.update(batch)
    report.update(collate_with_failures([items[2]]))
    assert report.total == len(batch["_failures"]) >= 2
    assert report.summary().startswith(f"{report.total} samples failed: ")
    console = Console(record=True, width=200)
    console.print(report.to_table())
    text = console.export_text()
    assert "reason" in text and "missing" in text


def test_lax_gives_up_after_max_retries(tmp_path: Path, data: Path) -> None:
    class AlwaysBad(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> dict:
            raise DataError(f"row {i} is broken")

    with pytest.raises(DataError, match="4 samples in a row failed"):
        RobustDataset(AlwaysBad(), "lax", max_retries=3)[0]
    with pytest.raises(ConfigError):
        RobustDataset(AlwaysBad(), "sloppy")  # type: ignore[arg-type]


def test_failure_report_counts_by_reason() -> None:
    report = FailureReport()
    for f in [Failure(1, "VideoDecodeError", "a.mp4 [0, 1]"), (2, "VideoDecodeError", "b.mp4"), Failure(3, "DataError", "c")]:
        report.add(f)
    assert report.counts == {"VideoDecodeError": 2, "DataError": 1}
    assert report.summary() == "3 samples failed: VideoDecodeError x 2, DataError x 1"
    assert FailureReport().summary() == "0 samples failed"
