"""QFVS plugin: parsing the official layout, semantic F1 with the real Tags.mat, a leave-one-video-out run on a tiny
fake UT-Egocentric layout whose saved heads evaluate back to the same numbers (also from the layout of earlier
releases), and the synthetic dataset through `egokit train` and `egokit eval`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from egokit.tasks.api import DataError, load_qfvs_tags, qfvs_f1
from egokit.testing import one_thread, run_cli, tiny_checkpoint
from egokit_qfvs import QFVSTask
from egokit_qfvs.data import load_video

ROOT = Path(__file__).resolve().parents[3]
TAGS = ROOT / "tests" / "fixtures" / "qfvs" / "Tags.mat"
CONCEPTS = ["Car", "Cupglass", "Tree", "Hand"]
VIDEOS = ("P01", "P02", "P03", "P04")


def make_layout(root: Path, shots: int = 6, videos=VIDEOS) -> Path:
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


# --------------------------------------------------------------------------------- leave-one-video-out runs
OPTIONS = [f"tags={TAGS}", "finetune.epochs=1", "ff_dim=64", "segment_shots=4", "embed_batch_size=4",
           "finetune.lr=1e-3", "finetune.warmup=0"]


def _results(folder: Path, action: str = "eval") -> dict:
    return json.loads((folder / ("qfvs_results.json" if action == "eval" else "qfvs_train_results.json")).read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    """``egokit train qfvs`` on the fake layout: (data, trained checkpoint folder, train results)."""
    tmp = tmp_path_factory.mktemp("loo")
    root = make_layout(tmp / "qfvs")
    texts = [p for c1, c2 in (("Car", "Tree"), ("Glass", "Hand"))
             for p in (f"There is a {c1}", f"There is a {c2}", f"There is a {c1} and a {c2}")]
    ckpt = tiny_checkpoint(tmp / "micro", texts, depth=2, fused_layers=1)
    with one_thread():  # module scope: set up before the per-test autouse fixture
        run_cli("train", "qfvs", "--ckpt", ckpt, "--data", root, "-o", tmp / "run", *OPTIONS)
    results = _results(tmp / "run", "train")
    return root, Path(results["artifacts"]["checkpoint"]), results


def test_leave_one_out_train_and_eval(trained, tmp_path: Path) -> None:
    root, folder, results = trained
    metrics = results["metrics"]
    # one head per held-out video, and the head trained on every video beside the model (for `egokit summarize`)
    assert sorted(p.parent.name for p in folder.glob("*/head.safetensors")) == [f"P0{i}" for i in range(1, 5)]
    assert (folder / "head.safetensors").is_file() and (folder / "model.safetensors").is_file()
    for v in ("P01", "P02", "P03", "P04"):
        assert 0 <= metrics[v]["precision"] <= 100 and 0 <= metrics[v]["recall"] <= 100
    run_cli("eval", "qfvs", "--ckpt", folder, "--data", root, "-o", tmp_path / "eval", *OPTIONS)
    again = _results(tmp_path / "eval")["metrics"]
    for v in ("P01", "P02", "P03", "P04"):
        assert again[v]["precision"] == pytest.approx(metrics[v]["precision"], abs=1e-4)
    assert set(again) == {*VIDEOS, "average_f1"}


def test_heads_saved_by_earlier_releases_still_load(trained, tmp_path: Path) -> None:
    """Earlier releases wrote ``qfvs_heads/<video>.safetensors`` and ``qfvs_head.safetensors`` (each with a JSON
    config beside it) into the checkpoint folder: `egokit eval qfvs` and `egokit summarize` still read them."""
    import torch

    from egokit.summarize import find_head, save_head
    from egokit.tasks.api import SummaryHead, load_head

    root, folder, results = trained
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer"):
        (shutil.copytree if (folder / name).is_dir() else shutil.copy)(folder / name, old / name)
    for v in VIDEOS:
        save_head(load_head(folder / v, SummaryHead)[0], old / "qfvs_heads", f"{v}.safetensors")
    save_head(load_head(folder, SummaryHead)[0], old)
    assert (old / "qfvs_head.safetensors").is_file() and (old / "qfvs_head.json").is_file()

    run_cli("eval", "qfvs", "--ckpt", old, "--data", root, "-o", tmp_path / "eval", *OPTIONS)
    again = _results(tmp_path / "eval")["metrics"]
    for v in VIDEOS:
        assert again[v] == pytest.approx(results["metrics"][v], abs=1e-4)
    new, legacy = find_head(folder), find_head(old)
    assert isinstance(new, SummaryHead) and isinstance(legacy, SummaryHead)
    for (name, a), b in zip(new.state_dict().items(), legacy.state_dict().values()):
        assert torch.equal(a, b), name
    assert find_head(tmp_path) is None


# ------------------------------------------------------------------------------------------ synthetic data
def test_synth_train_eval(qfvs_synth, qfvs_checkpoint, tmp_path: Path) -> None:
    """`egokit synth --task qfvs OUT` -> `egokit train qfvs` -> `egokit eval qfvs`, with the default options."""
    root, summary = qfvs_synth
    assert QFVSTask().has_synth and summary["options"]["data"] == str(root)
    assert summary["videos"] == 4 and summary["queries"] == 8 and (root / "Tags.mat").is_file()
    options = [f"{k}={v}" for k, v in summary["options"].items() if k != "data"]
    run = tmp_path / "run"
    run_cli("train", "qfvs", "--ckpt", qfvs_checkpoint, "--data", root, "-o", run, *options)
    trained = _results(run, "train")
    assert QFVSTask.trained_model == "checkpoint"  # `egokit synth` prints: eval --ckpt RUN/checkpoint
    run_cli("eval", "qfvs", "--ckpt", run / "checkpoint", "--data", root, "-o", run, *options)
    metrics = _results(run)["metrics"]
    for v in VIDEOS:
        assert set(metrics[v]) == {"precision", "recall", "f1"}
        assert all(0 < metrics[v][m] <= 100 for m in ("precision", "recall", "f1"))  # every shot shows a Table
        assert metrics[v] == pytest.approx(trained["metrics"][v], abs=1e-4)
    assert metrics["average_f1"] == pytest.approx(np.mean([metrics[v]["f1"] for v in VIDEOS]))
    # the training checkpoint again: the heads are found under the output folder
    run_cli("eval", "qfvs", "--ckpt", qfvs_checkpoint, "--data", root, "-o", run, *options)
    again = _results(run)["metrics"]
    assert all(again[v] == pytest.approx(metrics[v]) for v in VIDEOS)
    assert trained["artifacts"]["checkpoint"] == str(run / "checkpoint")
    assert (run / "checkpoint" / "head.json").is_file() and (run / "checkpoint" / "tokenizer").is_dir()
