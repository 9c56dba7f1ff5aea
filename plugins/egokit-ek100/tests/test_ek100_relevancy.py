from __future__ import annotations

import csv
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from egokit.tasks.api import DataError
from egokit_ek100 import relevancy_from_csv

EK100 = Path(__file__).resolve().parent / "fixtures"  # real EK-100 annotation files (licence in the folder)
CLIPS = EK100 / "EPIC_100_retrieval_test.csv"
SENTENCES = EK100 / "EPIC_100_retrieval_test_sentence.csv"


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, list[str], list[str]]:
    start = time.perf_counter()
    out = relevancy_from_csv(CLIPS, SENTENCES)
    print(f"\nrelevancy_from_csv on the EK-100 test CSVs: {time.perf_counter() - start:.2f} s")
    return out


def test_real_shape_and_ids(real) -> None:
    rel, clip_ids, sentence_ids = real
    assert rel.shape == (9668, 3842) and rel.dtype == np.float32
    assert clip_ids[:2] == ["P01_11_0", "P01_11_1"] and len(clip_ids) == 9668
    assert sentence_ids[:3] == ["P01_11_0", "P01_11_1", "P01_11_10"] and len(sentence_ids) == 3842


def test_real_own_narration_is_fully_relevant(real) -> None:
    rel, clip_ids, sentence_ids = real
    row_of = {c: i for i, c in enumerate(clip_ids)}
    rows = np.array([row_of[s] for s in sentence_ids])
    assert (rel[rows, np.arange(len(sentence_ids))] == 1.0).all()


def test_real_values_are_jpose_levels(real) -> None:
    rel = real[0]
    # Noun sets hold at most 4 classes, so IoU = p/q with q <= 8.
    levels = {(v + Fraction(p, q)) / 2 for v in (0, 1) for q in range(1, 9) for p in range(q + 1)}
    allowed = np.array(sorted(float(x) for x in levels), dtype=np.float32)
    assert np.isin(np.unique(rel), allowed).all()


def test_real_hand_checked_cells(real) -> None:
    rel, clip_ids, sentence_ids = real
    r, s = {c: i for i, c in enumerate(clip_ids)}, {c: i for i, c in enumerate(sentence_ids)}
    # "take plate" (verb 0, {2}) vs "put down plate" (verb 1, {2}): (0 + 1) / 2
    assert rel[r["P01_11_0"], s["P01_11_1"]] == 0.5
    # "throw paper into bin" (verb 13, {49, 36}) vs "remove bag of the bin" (verb 12, {19, 36}): (0 + 1/3) / 2
    assert rel[r["P01_11_12"], s["P01_11_132"]] == np.float32(1 / 6)
    # "put bin onto other bin" (verb 1, "[36, 36]" = {36}) vs "put bag into bin" (verb 5, {19, 36}): (0 + 1/2) / 2
    assert rel[r["P01_11_123"], s["P01_11_135"]] == 0.25
    # same verb "put" (1), disjoint nouns: (1 + 0) / 2
    assert rel[r["P01_11_123"], s["P01_11_1"]] == 0.5


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


CLIP_HEADER = ["narration_id", "narration", "verb_class", "all_noun_classes"]


def test_sentence_file_with_class_columns(tmp_path: Path) -> None:
    clips = _write(tmp_path / "c.csv", [CLIP_HEADER, ["x0", "a", "3", "[1, 2]"], ["x1", "b", "4", "[2]"]])
    sents = _write(
        tmp_path / "s.csv",
        [["narration_id", "narration", "verb_class", "noun_classes"], ["t0", "c", "3", "[2, 5, 7]"]],
    )
    rel, clip_ids, sentence_ids = relevancy_from_csv(clips, sents)
    # x0: same verb, IoU({1,2}, {2,5,7}) = 1/4 -> 5/8;  x1: other verb, IoU({2}, {2,5,7}) = 1/3 -> 1/6
    assert rel[:, 0].tolist() == [0.625, np.float32(1 / 6)]
    assert (clip_ids, sentence_ids) == (["x0", "x1"], ["t0"])


@pytest.mark.parametrize("bad", ["3, 12", "[3, 'a']", "[True]", "__import__('os')", "[-1]"])
def test_malformed_noun_classes(tmp_path: Path, bad: str) -> None:
    clips = _write(tmp_path / "c.csv", [CLIP_HEADER, ["x0", "a", "3", "[1]"], ["x1", "b", "4", bad]])
    sents = _write(tmp_path / "s.csv", [["narration_id", "narration"], ["x0", "a"]])
    with pytest.raises(DataError, match=r"c\.csv line 3 column 'all_noun_classes'"):
        relevancy_from_csv(clips, sents)


def test_sentence_without_clip_or_columns(tmp_path: Path) -> None:
    clips = _write(tmp_path / "c.csv", [CLIP_HEADER, ["x0", "a", "3", "[1]"]])
    sents = _write(tmp_path / "s.csv", [["narration_id", "narration"], ["nope", "a"]])
    with pytest.raises(DataError, match="'nope' has no clip"):
        relevancy_from_csv(clips, sents)
    with pytest.raises(DataError, match="missing column"):
        relevancy_from_csv(sents, sents)
