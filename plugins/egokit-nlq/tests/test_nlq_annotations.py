"""Bad NLQ annotation windows are errors naming the file, clip, annotation, query and field."""

from __future__ import annotations

import json

import pytest

from egokit.tasks.api import DataError
from egokit_nlq.data import read_annotations
from egokit_nlq.synth import generate


@pytest.fixture(scope="module")
def nlq_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("nlq-ann")
    generate(root, videos=1, val_videos=1)
    return root / "nlq_val.json"


def _with_query(path, tmp_path, **fields):
    data = json.loads(path.read_text())
    data["videos"][0]["clips"][0]["annotations"][0]["language_queries"][1].update(fields)
    bad = tmp_path / "nlq_bad.json"
    bad.write_text(json.dumps(data))
    return bad


def test_valid_synthetic_annotations_read(nlq_file):
    _, queries = read_annotations(nlq_file)
    assert len(queries) == 3 and all(0 <= q.start <= q.end <= q.duration for q in queries)


@pytest.mark.parametrize("fields,message", [
    ({"clip_start_sec": 8.0, "clip_end_sec": 5.0}, "clip_end_sec 5.0 is before clip_start_sec 8.0"),
    ({"clip_start_sec": 15.0, "clip_end_sec": 25.0}, r"window \[15.0, 25.0\] s is outside the clip \(0 to 20 s"),
    ({"clip_start_sec": -2.0, "clip_end_sec": 1.0}, "outside the clip"),
    ({"clip_start_sec": "nan", "clip_end_sec": 1.0}, "must be finite"),
])
def test_bad_windows_name_the_query(nlq_file, tmp_path, fields, message):
    bad = _with_query(nlq_file, tmp_path, **fields)
    with pytest.raises(DataError, match=message) as info:
        read_annotations(bad)
    text = str(info.value)
    assert str(bad) in text and "clip-val000" in text and "ann-val000" in text and "language_queries[1]" in text


def test_rounding_within_a_frame_is_accepted(nlq_file, tmp_path):
    _, queries = read_annotations(_with_query(nlq_file, tmp_path, clip_start_sec=15.0, clip_end_sec=20.02))
    assert queries[1].end == 20.02
