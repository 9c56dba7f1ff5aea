"""The shared Ego4D episodic-memory helpers: annotation walking, time checks, feature folders, padding."""

from __future__ import annotations

import json

import pytest
import torch

from egokit.errors import ConfigError, DataError
from egokit.tasks.episodic import FeatureFolder, check_time_window, pad_sequences, read_episodic_annotations
from egokit.tasks.options import DataOptions


def _file(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_clips_are_read_in_file_order_with_their_duration(tmp_path):
    path = _file(tmp_path, {"videos": [{"clips": [{"clip_uid": "a", "video_start_sec": 2.0, "video_end_sec": 10.0},
                                                  {"clip_uid": "b", "video_start_sec": 0, "video_end_sec": 4}]},
                                       {"clips": [{"clip_uid": "c", "video_start_sec": 1, "video_end_sec": 2.5}]}]})
    data, out = read_episodic_annotations(path, "NLQ", lambda clip, duration, where: (clip["clip_uid"], duration, where))
    assert [(uid, d) for uid, d, _ in out] == [("a", 8.0), ("b", 4.0), ("c", 1.5)]
    assert out[2][2] == f"{path}: videos[1].clips[0]"
    assert data["videos"][0]["clips"][0]["clip_uid"] == "a"


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ({"clips": []}, "not an official MQ file"),
    ({"videos": [{"clips": [{"clip_uid": "a", "video_start_sec": 0}]}]}, r"videos\[0\]\.clips\[0\]: malformed clip"),
    ({"videos": [{"clips": [{"clip_uid": "a", "video_start_sec": "x", "video_end_sec": 1}]}]}, "malformed clip"),
])
def test_bad_files_are_errors_naming_the_file_and_clip(tmp_path, content, message):
    path = _file(tmp_path, content)
    with pytest.raises(DataError, match=message) as info:
        read_episodic_annotations(path, "MQ", lambda clip, duration, where: clip["clip_uid"])
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="MQ annotation file not found"):
        read_episodic_annotations(tmp_path / "missing.json", "MQ", lambda *a: None)


def test_time_windows_use_the_files_field_names_and_a_frame_of_slack():
    check_time_window(0.0, 20.04, 20.0, "here")  # within 0.05 s of the end: a rounded frame time
    with pytest.raises(DataError, match="here: end_time 1.0 is before start_time 2.0"):
        check_time_window(2.0, 1.0, 20.0, "here", fields=("start_time", "end_time"))
    with pytest.raises(DataError, match=r"here: moment \[0.0, 20.1\] s is outside the clip \(0 to 20 s"):
        check_time_window(0.0, 20.1, 20.0, "here", noun="moment")
    with pytest.raises(DataError, match="must be finite"):
        check_time_window(float("nan"), 1.0, 20.0, "here")


def _features(tmp_path, mode="dual", **entries):
    folder = tmp_path / "features"
    folder.mkdir(parents=True)
    videos = {}
    for uid, (tensor, queries) in entries.items():
        torch.save(tensor, folder / f"{uid}.pt")
        videos[uid] = {"file": f"{uid}.pt", **({"queries": queries} if queries else {})}
    (folder / "embed_meta.json").write_text(json.dumps({"recipe": {"mode": mode}, "videos": videos}))
    return folder


def test_feature_folder_loads_clips_and_query_rows(tmp_path):
    dual = FeatureFolder(_features(tmp_path, a=(torch.arange(6.0).reshape(3, 2).half(), None)))
    assert dual.load("a").dtype == torch.float32 and dual.load("a").tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(DataError, match="no features for clip b"):
        dual.load("b")
    fused = FeatureFolder(_features(tmp_path / "f", "fusion", c=(torch.stack([torch.zeros(2, 2), torch.ones(2, 2)]),
                                                                    ["q:0", "q:1"])))
    assert fused.load("c", "q:1").tolist() == [[1, 1], [1, 1]]
    with pytest.raises(DataError, match="no features for query q:7"):
        fused.load("c", "q:7")
    with pytest.raises(DataError, match="embed_meta.json not found: run it"):
        FeatureFolder(tmp_path / "nothing", "run it")


def test_pad_sequences_pads_and_masks():
    out, mask = pad_sequences([torch.ones(2, 3), torch.full((4, 3), 2.0)], fill=-1.0)
    assert out.shape == (2, 4, 3) and mask.tolist() == [[True, True, False, False], [True] * 4]
    assert out[0, 2:].eq(-1).all() and out[1].eq(2).all()


def test_data_path_prefers_the_explicit_option():
    assert str(DataOptions(data="d").data_path(None, "x.json", "x")) == "d/x.json"
    assert str(DataOptions(data="d").data_path("elsewhere.json", "x.json", "x")) == "elsewhere.json"
    with pytest.raises(ConfigError, match=r"set data=<folder holding x.json> \(or --data\), or x=<path>"):
        DataOptions().data_path(None, "x.json", "x")
