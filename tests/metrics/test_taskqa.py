from __future__ import annotations

import pytest

from egokit.metrics import taskqa_accuracy


def test_tag_accuracies_and_missing_categories() -> None:
    pred = [1, 2, 3, 4]
    answers = [1, 0, 3, 0]  # correct: yes, no, yes, no
    types = [["direct", "open"], "direct$binary", ["open"], ["binary", "direct"]]
    out = taskqa_accuracy(pred, answers, types, categories=["indirect", "open"])
    # direct: 1 of 3, open: 2 of 2, binary: 0 of 2, indirect: never occurs -> 0
    assert out == pytest.approx({"indirect": 0.0, "open": 1.0, "direct": 1 / 3, "binary": 0.0})
    assert list(out) == ["indirect", "open", "direct", "binary"]


def test_length_mismatch() -> None:
    with pytest.raises(ValueError):
        taskqa_accuracy([1, 2], [1], [["a"], ["b"]])
