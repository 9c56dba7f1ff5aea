"""Charades-Ego task: strict metadata parsing, zero-shot class-name retrieval mAP and fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egokit.tasks.api import DataError
from egokit.testing import run_cli
from egokit_charades.data import CharadesSegmentDataset, find_videos, parse_actions, read_classes, read_metadata
from egokit_charades.synth import plan_videos

TEST_VIDEOS = plan_videos(4, 8, "test", 0)  # what the charades_data fixture holds: (id, [(class, start, end)])
TRAIN_VIDEOS = plan_videos(4, 16, "train", 0)


def test_actions_are_parsed_strictly():
    actions = parse_actions("c092 11.90 21.20;c147 0.00 12.60", 157, "f.csv line 2 column 'actions'")
    assert [(a.cls, a.start, a.end) for a in actions] == [(92, 11.9, 21.2), (147, 0.0, 12.6)]
    assert parse_actions("", 157, "x") == ()
    with pytest.raises(DataError, match=r"f\.csv line 2 column 'actions'.*'c092 11\.90'"):
        parse_actions("c092 11.90;c147 0.00 12.60", 157, "f.csv line 2 column 'actions'")
    with pytest.raises(DataError, match="c157 is not in the class file"):
        parse_actions("c157 1.0 2.0", 157, "x")


def test_class_file_and_metadata(tmp_path, charades_data):
    ids, names = read_classes(charades_data / "Charades_v1_classes.txt")
    assert ids[:2] == ["c000", "c001"] and names[3] == "Drinking from a cup/glass/bottle"
    (tmp_path / "bad.txt").write_text("c000 Holding some clothes\nc002 Opening a door\n")
    with pytest.raises(DataError, match=r"bad\.txt line 2: expected class c001"):
        read_classes(tmp_path / "bad.txt")
    videos = read_metadata(charades_data / "CharadesEgo_v1_test_only1st.csv", len(ids))
    assert [v.id for v in videos] == [v[0] for v in TEST_VIDEOS]
    second = TEST_VIDEOS[4][1][1][0]
    assert [(a.cls, a.start, a.end) for a in videos[4].actions] == [(0, 0.0, 1.0), (second, 1.0, 2.3)]
    with pytest.raises(DataError, match="2 class"):  # class c002 in the metadata, only 2 classes known
        read_metadata(charades_data / "CharadesEgo_v1_test_only1st.csv", 2)


def test_training_segments_are_clamped_to_the_video(charades_data):
    ids, names = read_classes(charades_data / "Charades_v1_classes.txt")
    videos = read_metadata(charades_data / "CharadesEgo_v1_train_only1st.csv", len(ids))
    dataset = CharadesSegmentDataset(videos, find_videos(charades_data / "videos", [v.id for v in videos]), names, 4,
                                     transform=lambda v: v, tokenizer=None, max_length=15)
    assert len(dataset) == sum(len(actions) for _, actions in TRAIN_VIDEOS)  # one item per (video, action)
    video_id, actions = TRAIN_VIDEOS[4]
    index = [i for i, (vid, a) in enumerate(dataset.segments) if vid == video_id and a.cls == actions[1][0]][0]
    assert dataset.span(index) == pytest.approx((1.0, 2.0))  # annotated 1.0-2.3 s in a 2 s video


def _ap_by_hand(scores: np.ndarray, labels: np.ndarray) -> float:
    """Per-class average precision (mean of precision at each positive), averaged over classes with positives."""
    aps = []
    for c in range(labels.shape[1]):
        if labels[:, c].sum() == 0:
            continue
        order = sorted(range(len(scores)), key=lambda i: -scores[i, c])
        hits, precisions = 0, []
        for rank, i in enumerate(order, start=1):
            if labels[i, c]:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / len(precisions))
    return float(np.mean(aps))


@pytest.fixture(scope="module")
def zero_shot(charades_checkpoint, charades_data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("charades-eval")
    run_cli("eval", "charades-ego", "--ckpt", charades_checkpoint, "--data", charades_data, "-o", out,
            "num_frames=4", "num_workers=0")
    return json.loads((out / "charades-ego_results.json").read_text())


def test_zero_shot_eval_matches_an_independent_computation(zero_shot, charades_checkpoint, charades_data):
    import egokit
    from egokit.tasks.api import EvalTransform, normalize_video, probe_video, read_clip

    model = egokit.load_model(charades_checkpoint, num_frames=4)
    tokenizer = egokit.load_tokenizer(charades_checkpoint / "tokenizer")
    pre = model.config.preprocess
    clips, labels = [], np.zeros((len(TEST_VIDEOS), 4))
    for i, (video_id, actions) in enumerate(TEST_VIDEOS):
        path = charades_data / "videos" / f"{video_id}.mp4"
        frames = read_clip(path, 0.0, probe_video(path).duration, 4, sampling="uniform")
        clips.append(normalize_video(EvalTransform(pre.image_size)(frames), pre.mean, pre.std))
        labels[i, [cls for cls, _, _ in actions]] = 1
    names = (charades_data / "Charades_v1_classes.txt").read_text().splitlines()
    # class names padded to 30 tokens, capped to the micro model's 24 positions minus the 2 RoBERTa offsets
    enc = tokenizer([line[5:] for line in names], padding="max_length", max_length=22, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        scores = F.normalize(model.encode_video(torch.stack(clips)), dim=-1) @ F.normalize(
            model.encode_text(enc["input_ids"], enc["attention_mask"]), dim=-1).T
    assert zero_shot["metrics"]["num_videos"] == 8
    assert zero_shot["metrics"]["mAP"] == pytest.approx(100 * _ap_by_hand(scores.numpy(), labels), abs=1e-3)


def test_finetuning_improves_map_and_saves_the_best_checkpoint(zero_shot, charades_checkpoint, charades_data, tmp_path):
    run_cli("train", "charades-ego", "--ckpt", charades_checkpoint, "--data", charades_data, "-o", tmp_path / "train",
            "num_frames=4", "num_workers=0", "finetune.epochs=8", "finetune.batch_size=4", "finetune.lr=2e-3",
            "finetune.warmup=0")
    best = json.loads((tmp_path / "train" / "charades-ego_train_results.json").read_text())["metrics"]["best"]
    run_cli("eval", "charades-ego", "--ckpt", tmp_path / "train" / "checkpoint", "--data", charades_data,
            "-o", tmp_path / "after", "num_frames=4", "num_workers=0")
    after = json.loads((tmp_path / "after" / "charades-ego_results.json").read_text())["metrics"]["mAP"]
    assert after > zero_shot["metrics"]["mAP"] + 5
    assert after == pytest.approx(best["mAP"], abs=1e-3)
