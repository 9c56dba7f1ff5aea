"""EK-100 multi-instance retrieval task: timing arithmetic, safe relevancy loading, zero-shot eval and fine-tuning."""

from __future__ import annotations

import csv
import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egokit.tasks.api import DataError
from egokit.testing import make_index_video, read_index, run_cli
from egokit_ek100.data import EK100ClipDataset, find_videos, read_clips
from egokit_ek100.frames import clip_frame_ids, get_frame_ids, parse_timestamp
from egokit_ek100.relevancy_io import load_relevancy


# ------------------------------------------------------------------------------------------------- timing
def test_parse_timestamp():
    assert parse_timestamp("00:00:01.89") == pytest.approx(1.89)
    assert parse_timestamp("01:02:03.50") == pytest.approx(3723.5)
    assert parse_timestamp("00:10:00") == 600.0
    with pytest.raises(DataError, match="HH:MM:SS"):
        parse_timestamp("1.5", "file.csv line 3 column 'start_timestamp'")


def test_frame_ids_follow_lavila_segments():
    # seg = (50 - 25 - 1) / 4 = 6: segments 25-31, 31-37, 37-43, 43-49 -> middles 28, 34, 40, 46.
    assert get_frame_ids(25, 50, 4, jitter=False) == [28, 34, 40, 46]
    # seg = 9 / 2 = 4.5: round(4.5) = 4 (half to even, as numpy): segments 0-4 and 4-9 -> 2 and 6.
    assert get_frame_ids(0, 10, 2, jitter=False) == [2, 6]
    rng = np.random.default_rng(0)
    draws = np.array([get_frame_ids(25, 50, 4, jitter=True, rng=rng) for _ in range(300)])
    for i, (lo, hi) in enumerate([(25, 31), (31, 37), (37, 43), (43, 49)]):
        assert set(draws[:, i]) == set(range(lo, hi + 1))  # inclusive ends, every frame reachable


def test_clip_frame_ids_round_start_ceil_stop_and_clamp():
    # fps 25: start 1.02 s -> round(25.5) = 26 (half to even), stop 2.01 s -> ceil(50.25) = 51.
    assert clip_frame_ids(1.02, 2.01, 25.0, 1, 1000, jitter=False) == [(26 + 51) // 2]
    # Frames 75..ceil(112.5) = 113, seg = 37 / 4 = 9.25: segments 75-84, 84-93 (round(18.5) = 18), 93-103 and
    # 103-112; the last middle, 107, lies past the end of a 100-frame file and is clamped to frame 99.
    assert clip_frame_ids(3.0, 4.5, 25.0, 4, 100, jitter=False) == [79, 88, 98, 99]


def test_dataset_reads_the_segment_middle_frames(tmp_path):
    (tmp_path / "videos" / "P07").mkdir(parents=True)
    make_index_video(tmp_path / "videos" / "P07" / "P07_03.mp4", 100, 25)  # lower-case suffix is accepted
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
                        "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
                        "P07_03_5,P07,P07_03,00:00:01.000,00:00:01.00,00:00:02.00,25,50,open door,open,3,door,8,"
                        "['door'],[8]\n")
    clips = read_clips(csv_path)
    dataset = EK100ClipDataset(clips, find_videos(tmp_path / "videos", clips), 4)
    item = dataset[0]
    assert [read_index(frame.numpy()) for frame in item["video"]] == [28, 34, 40, 46]
    with pytest.raises(DataError, match="P07_03.MP4"):
        find_videos(tmp_path / "elsewhere", clips)


# ------------------------------------------------------------------------------------------------ relevancy
class _Exploit:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-egokit-test",))


def test_relevancy_pickle_is_loaded_without_running_code(tmp_path):
    matrix = np.random.default_rng(0).random((3, 4))
    for protocol in (2, 4, 5):
        (tmp_path / "r.pkl").write_bytes(pickle.dumps(matrix, protocol=protocol))
        np.testing.assert_allclose(load_relevancy(tmp_path / "r.pkl"), matrix.astype(np.float32))
    np.save(tmp_path / "r.npy", matrix)
    np.testing.assert_allclose(load_relevancy(tmp_path / "r.npy"), matrix.astype(np.float32))
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(DataError, match=r"bad\.pkl.*refused.*shutil\.rmtree"):
        load_relevancy(tmp_path / "bad.pkl")
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(np.array([[1, "a"]], dtype=object)))
    with pytest.raises(DataError, match="numeric"):
        load_relevancy(tmp_path / "obj.pkl")


# --------------------------------------------------------------------------------------------- end to end
def _independent_metrics(ckpt: Path, data: Path, num_frames: int) -> dict[str, float]:
    """Recompute the zero-shot numbers from the CSVs by hand: frame ids, reading, embeddings, official metrics."""
    import egokit
    from egokit.tasks.api import EvalTransform, mir_map, mir_ndcg, normalize_video, probe_video, read_frames_at
    from egokit_ek100 import relevancy_from_csv

    model = egokit.load_model(ckpt, num_frames=num_frames)
    tokenizer = egokit.load_tokenizer(ckpt / "tokenizer")
    pre = model.config.preprocess
    with (data / "EPIC_100_retrieval_test.csv").open() as f:
        rows = list(csv.DictReader(f))
    videos = []
    for row in rows:
        path = data / "videos" / row["participant_id"] / f"{row['video_id']}.MP4"
        info = probe_video(path)
        seconds = [sum(float(x) * m for x, m in zip(row[k].split(":"), (3600, 60, 1)))
                   for k in ("start_timestamp", "stop_timestamp")]
        start, end = round(info.fps * seconds[0]), math.ceil(info.fps * seconds[1])
        seg = (end - start - 1) / num_frames
        ids = [(int(np.round(seg * i) + start) + min(int(np.round(seg * (i + 1)) + start), end)) // 2
               for i in range(num_frames)]
        frames = read_frames_at(path, [(i + 0.5) / info.fps for i in ids], short_side=pre.image_size)
        videos.append(normalize_video(EvalTransform(pre.image_size)(frames), pre.mean, pre.std))
    with (data / "EPIC_100_retrieval_test_sentence.csv").open() as f:
        sentences = [r["narration"] for r in csv.DictReader(f)]
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        v = F.normalize(model.encode_video(torch.stack(videos)), dim=-1)
        t = F.normalize(model.encode_text(enc["input_ids"], enc["attention_mask"]), dim=-1)
    sim = ((v @ t.T + 1) / 2).numpy()
    relevancy, _, _ = relevancy_from_csv(data / "EPIC_100_retrieval_test.csv",
                                         data / "EPIC_100_retrieval_test_sentence.csv")
    out = {f"map.{k}": 100 * v for k, v in mir_map(sim, relevancy).items()}
    out.update({f"ndcg.{k}": 100 * v for k, v in mir_ndcg(sim, relevancy).items()})
    return out


def _metrics(path: Path) -> dict[str, float]:
    metrics = json.loads(path.read_text())["metrics"]
    return {f"{group}.{k}": v for group in ("map", "ndcg") for k, v in metrics[group].items()}


@pytest.fixture(scope="module")
def zero_shot(ek100_checkpoint, ek100_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ek100-eval")
    run_cli("eval", "ek100-mir", "--ckpt", ek100_checkpoint, "--data", ek100_data, "-o", out,
            "num_frames=4", "num_workers=0", "eval_batch_size=3")
    return out / "ek100-mir_results.json"


def test_zero_shot_eval_matches_an_independent_computation(zero_shot, ek100_checkpoint, ek100_data):
    record = json.loads(zero_shot.read_text())
    assert record["task"] == "ek100-mir"
    assert record["metrics"]["num_clips"] == 8 and record["metrics"]["num_sentences"] == 4
    assert record["config"]["details"]["relevancy_source"] == "csv"
    expected = _independent_metrics(ek100_checkpoint, ek100_data, num_frames=4)
    assert _metrics(zero_shot) == pytest.approx(expected, abs=1e-3)


def test_official_relevancy_pickle_is_used_when_present(zero_shot, ek100_checkpoint, ek100_data, tmp_path):
    from egokit_ek100 import relevancy_from_csv

    data = tmp_path / "data"
    shutil.copytree(ek100_data, data, ignore=shutil.ignore_patterns("videos"))
    (data / "videos").symlink_to(ek100_data / "videos")
    csv_matrix, _, _ = relevancy_from_csv(data / "EPIC_100_retrieval_test.csv",
                                          data / "EPIC_100_retrieval_test_sentence.csv")
    (data / "relevancy").mkdir()
    official = data / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl"
    official.write_bytes(pickle.dumps((1.0 - csv_matrix).astype(np.float64)))  # a different answer
    np.save(tmp_path / "same.npy", csv_matrix)

    def evaluate(name: str, *extra: str) -> dict:
        run_cli("eval", "ek100-mir", "--ckpt", ek100_checkpoint, "--data", data, "-o", tmp_path / name,
                "num_frames=4", "num_workers=0", *extra)
        return json.loads((tmp_path / name / "ek100-mir_results.json").read_text())

    auto = evaluate("auto")
    assert auto["config"]["details"]["relevancy_source"] == str(official)
    assert auto["metrics"]["map"]["avg"] != pytest.approx(_metrics(zero_shot)["map.avg"])
    assert evaluate("csv", "relevancy=csv")["config"]["details"]["relevancy_source"] == "csv"
    assert _metrics(tmp_path / "csv" / "ek100-mir_results.json") == pytest.approx(_metrics(zero_shot))
    evaluate("npy", f"relevancy={tmp_path / 'same.npy'}")
    assert _metrics(tmp_path / "npy" / "ek100-mir_results.json") == pytest.approx(_metrics(zero_shot))
    np.save(tmp_path / "wrong.npy", csv_matrix[:, :3])
    with pytest.raises(DataError, match=r"shape \(8, 3\).*8 clips.*4 sentences"):
        evaluate("wrong", f"relevancy={tmp_path / 'wrong.npy'}")


def test_finetuning_improves_retrieval_and_saves_the_best_checkpoint(zero_shot, ek100_checkpoint, ek100_data,
                                                                     tmp_path):
    run_cli("train", "ek100-mir", "--ckpt", ek100_checkpoint, "--data", ek100_data, "-o", tmp_path / "train",
            "num_frames=4", "num_workers=0", "finetune.epochs=6", "finetune.batch_size=4", "finetune.lr=1e-3",
            "finetune.warmup=0")
    train = json.loads((tmp_path / "train" / "ek100-mir_train_results.json").read_text())
    best = train["metrics"]["best"]
    checkpoint = tmp_path / "train" / "checkpoint"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer").is_dir()
    run_cli("eval", "ek100-mir", "--ckpt", checkpoint, "--data", ek100_data, "-o", tmp_path / "after",
            "num_frames=4", "num_workers=0")
    before, after = _metrics(zero_shot), _metrics(tmp_path / "after" / "ek100-mir_results.json")
    assert after["map.avg"] > before["map.avg"] + 10
    assert after["map.avg"] == pytest.approx(best["map.avg"], abs=1e-3)  # the saved checkpoint is the best epoch
