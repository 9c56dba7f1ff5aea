"""QFVS plugin: parsing the official layout, semantic F1 with the real Tags.mat, and a leave-one-video-out run on
a tiny fake UT-Egocentric layout whose saved heads evaluate back to the same numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egokit.errors import DataError
from egokit.metrics import load_qfvs_tags, qfvs_f1

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
try:
    import egokit_qfvs  # noqa: F401
except ImportError:  # plugin not installed: use the source tree
    sys.path.insert(0, str(ROOT / "plugins" / "egokit-qfvs"))
from egokit_qfvs import make_task  # noqa: E402
from egokit_qfvs.data import load_video  # noqa: E402


TAGS = ROOT / "tests" / "fixtures" / "qfvs" / "Tags.mat"
CONCEPTS = ["Car", "Cupglass", "Tree", "Hand"]


def make_layout(root: Path, shots: int = 6, videos=("P01", "P02", "P03", "P04")) -> Path:
    rng = np.random.default_rng(0)
    for v in videos:
        frames = root / "video_frames" / f"{v}-moviepy"
        frames.mkdir(parents=True)
        for i in range(shots * 5 + 2):  # two stray images that do not make a shot
            colour = (200, 40, 40) if (i // 5) % 2 else (40, 40, 200)
            Image.new("RGB", (40, 32), colour).save(frames / f"{i:05d}.jpg")
        dense = root / "origin_data" / "Dense_per_shot_tags" / v
        dense.mkdir(parents=True)
        lines = [",".join(c for c in CONCEPTS if rng.random() < 0.5) for _ in range(shots)]
        lines[0] = "Car,Tree"
        (dense / f"{v}.txt").write_text("\n".join(lines) + "\n")
        oracle = root / "origin_data" / "Query-Focused_Summaries" / "Oracle_Summaries" / v
        oracle.mkdir(parents=True)
        (oracle / "Car_Tree_oracle.txt").write_text("1\n3\n")
        (oracle / "Cupglass_Hand_oracle.txt").write_text("2\n")
    return root


def test_parse_layout(tmp_path: Path) -> None:
    video = load_video(make_layout(tmp_path / "qfvs"), "P02")
    assert video.num_shots == 6 and len(video.shots[0]) == 5
    assert video.shots[1][0].name == "00005.jpg"
    assert video.shot_concepts[0] == {"Car", "Tree"} and video.concept_labels("Car")[0] == 1.0
    queries = {(q.c1, q.c2): q for q in video.queries}
    assert queries[("Car", "Tree")].oracle == (0, 2)  # 1-based ids in the file
    assert queries[("Cupglass", "Hand")].prompts() == ("There is a Glass", "There is a Hand", "There is a Glass and a Hand")


def test_oracle_out_of_range_is_reported(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "qfvs")
    (root / "origin_data/Query-Focused_Summaries/Oracle_Summaries/P01/Car_Tree_oracle.txt").write_text("7\n")
    with pytest.raises(DataError, match="outside 1..6"):
        load_video(root, "P01")


def test_semantic_f1_with_real_tags() -> None:
    tags = load_qfvs_tags(TAGS)
    assert [len(t) for t in tags] == [2783, 3692, 2152, 3588]
    p01 = tags[0]
    nonempty = np.flatnonzero(p01.sum(1) > 0)
    empty = np.flatnonzero(p01.sum(1) == 0)
    same = qfvs_f1(nonempty[:5], nonempty[:5], p01)
    assert same["f1"] == pytest.approx(1.0) and same["precision"] == pytest.approx(1.0)
    # two shots whose concepts do not overlap: precision = recall = 0, F1 NaN as the official 0/0
    a = nonempty[0]
    b = next(j for j in nonempty if not (p01[a] & p01[j]).any())
    disjoint = qfvs_f1([a], [b], p01)
    assert disjoint["precision"] == 0 and disjoint["recall"] == 0 and np.isnan(disjoint["f1"])
    if len(empty):
        assert np.isnan(qfvs_f1([empty[0]], [a], p01)["f1"])


def test_leave_one_out_train_and_eval(tmp_path: Path) -> None:
    from accelerate import Accelerator

    from egokit.tasks.context import TaskContext
    from tests.plugins.test_egotaskqa import micro_checkpoint

    root = make_layout(tmp_path / "qfvs")
    ckpt = micro_checkpoint(tmp_path / "micro", tmp_path, depth=2, fused_layers=1)
    options = {"data": str(root), "tags": str(TAGS), "epochs": 1, "ff_dim": 64, "segment_shots": 4, "batch_size": 4,
               "lr": 1e-3, "warmup_epochs": 0}

    def ctx(source, out):
        return TaskContext(accelerator=Accelerator(cpu=True), checkpoint=str(source), options=options, output_dir=out)

    spec = make_task()
    trained = spec.train(ctx(ckpt, tmp_path / "run"))
    metrics = trained["metrics"]
    folder = Path(trained["checkpoint"]["path"])
    assert sorted(p.name for p in (folder / "qfvs_heads").glob("*.safetensors")) == [f"P0{i}.safetensors" for i in range(1, 5)]
    assert (folder / "qfvs_head.safetensors").is_file()
    for v in ("P01", "P02", "P03", "P04"):
        assert 0 <= metrics[v]["precision"] <= 100 and 0 <= metrics[v]["recall"] <= 100
    again = spec.evaluate(ctx(folder, tmp_path / "eval"))["metrics"]
    for v in ("P01", "P02", "P03", "P04"):
        assert again[v]["precision"] == pytest.approx(metrics[v]["precision"], abs=1e-4)
