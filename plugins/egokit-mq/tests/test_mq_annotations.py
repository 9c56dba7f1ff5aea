"""Bad MQ moment times are errors naming the file, clip, annotation, label and field."""

from __future__ import annotations

import json

import pytest

from egokit.tasks.api import DataError
from egokit_mq.data import read_annotations
from egokit_mq.synth import write_split


@pytest.fixture(scope="module")
def mq_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("mq-ann")
    write_split(root, "val", 1, duration=20.0)
    return root / "moments_val.json"


def _with_label(path, tmp_path, **fields):
    data = json.loads(path.read_text())
    data["videos"][0]["clips"][0]["annotations"][0]["labels"][1].update(fields)
    bad = tmp_path / "moments_bad.json"
    bad.write_text(json.dumps(data))
    return bad


def test_valid_synthetic_annotations_read(mq_file):
    _, clips = read_annotations(mq_file)
    assert clips and all(0 <= m.start <= m.end <= c.duration for c in clips for m in c.moments)


@pytest.mark.parametrize("fields,message", [
    ({"start_time": 8.0, "end_time": 5.0}, "end_time 5.0 is before start_time 8.0"),
    ({"start_time": 15.0, "end_time": 25.0}, r"moment \[15.0, 25.0\] s is outside the clip \(0 to 20 s"),
    ({"start_time": -2.0, "end_time": 1.0}, "outside the clip"),
    ({"start_time": "inf", "end_time": 1.0}, "must be finite"),
])
def test_bad_moments_name_the_label(mq_file, tmp_path, fields, message):
    bad = _with_label(mq_file, tmp_path, **fields)
    with pytest.raises(DataError, match=message) as info:
        read_annotations(bad)
    text = str(info.value)
    assert str(bad) in text and "clip-val000" in text and "annotator-0" in text and "labels[1]" in text
