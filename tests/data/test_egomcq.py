from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from egokit.data.egomcq import EgoMCQDataset, read_egomcq_json
from egokit.errors import DataError
from tests.data.videos import make_chunked_video, read_index

FPS = 10


def _clip(uid: str, start: float, end: float, text: str) -> dict:
    return {"video_uid": uid, "clip_start": start, "clip_end": end, "clip_text": text, "tag_verb": "[1]", "tag_noun": "[4]"}


def _question(answer: int = 2, types: int = 2) -> dict:
    choices = {str(k): _clip("vid", 0.5 * k, 0.5 * k + 1.0, f"#C C act {k}") for k in range(5)}
    return {"query": copy.deepcopy(choices[str(answer)]), "choices": choices, "answer": answer, "types": types}


@pytest.fixture(scope="module")
def mcq_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcq")
    make_chunked_video(root / "videos", "vid", [20, 20], FPS)  # 4 s in two 2-s chunks
    (root / "egomcq.json").write_text(json.dumps({"0": _question(2, 2), "1": _question(0, 1)}))
    return root


def test_parse_and_items(mcq_root: Path) -> None:
    questions = read_egomcq_json(mcq_root / "egomcq.json")
    assert [q.key for q in questions] == ["0", "1"] and questions[0].type == 2 and questions[1].answer == 0
    assert questions[0].choices[3].clip_start == 1.5 and questions[0].query.tag_noun == (4,)
    ds = EgoMCQDataset(mcq_root / "egomcq.json", mcq_root / "videos", num_frames=4, chunk_seconds=2.0)
    item = ds[0]
    assert item["videos"].shape == (5, 4, 3, 64, 64) and item["videos"].dtype == torch.uint8
    assert (item["text"], item["answer"], item["type"], item["index"]) == ("#C C act 2", 2, 2, 0)
    for k in range(5):  # uniform sampling: bin middles of frames [5k, 5k + 9]
        ids = [read_index(f.numpy()) for f in item["videos"][k]]
        assert ids == [5 * k, 5 * k + 3, 5 * k + 5, 5 * k + 8], (k, ids)
    assert torch.equal(ds[0]["videos"], item["videos"])
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["videos"].shape == (2, 5, 4, 3, 64, 64) and batch["type"].tolist() == [2, 1]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update({"5": d.pop("1")}), "question keys"),
        (lambda d: d["1"].pop("answer"), r"question '1': missing field 'answer'"),
        (lambda d: d["1"].update(answer=5), r"question '1'.answer"),
        (lambda d: d["0"].update(types=3), r"question '0'.types"),
        (lambda d: d["0"]["choices"].update({"7": d["0"]["choices"].pop("4")}), "choices: keys"),
        (lambda d: d["0"]["choices"]["3"].pop("clip_end"), r"choices\['3'\]: missing field 'clip_end'"),
        (lambda d: d["0"]["query"].update(tag_verb="__import__('os')"), r"query.tag_verb"),
        (lambda d: d["0"]["query"].update(clip_start="soon"), r"query.clip_start"),
        (lambda d: d["0"]["query"].update(video_uid="../etc"), r"query.video_uid"),
    ],
)
def test_validation_errors_name_key_and_field(tmp_path: Path, mutate, message: str) -> None:
    data = {"0": _question(), "1": _question(0, 1)}
    mutate(data)
    path = tmp_path / "q.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as err:
        read_egomcq_json(path)
    assert str(path) in str(err.value)


def test_not_json_or_not_object(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="top level must be an object"):
        read_egomcq_json(path)
    path.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_egomcq_json(path)
