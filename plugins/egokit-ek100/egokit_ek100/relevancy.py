"""Build the EPIC-KITCHENS-100 retrieval relevancy matrix from the annotation CSVs (JPoSE rule).

relevancy(clip, sentence) = (1[same verb class] + IoU(noun class sets)) / 2, so 1 means same verb and same nouns.
The official test relevancy pickle is not in the annotations repository; this rebuilds the same kind of matrix from
``EPIC_100_retrieval_test.csv`` (per clip: ``verb_class`` and ``all_noun_classes``) and
``EPIC_100_retrieval_test_sentence.csv``. The test sentence file has only ``narration_id, narration``; each sentence
then takes the classes of the clip with the same ``narration_id`` (the evaluation represents a sentence by that
clip's narration too). If the sentence file carries ``verb_class`` and ``noun_classes`` columns (as the train
sentence file does), those are used instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from egokit.tasks.api import DataError, read_csv_rows

__all__ = ["relevancy_from_csv"]

_CLIP_COLUMNS = ("narration_id", "verb_class", "all_noun_classes")
_WHAT = "EK-100 annotation file"


def _parse_int(text: str, where: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected an integer class id, got {text!r}") from None


def _parse_classes(text: str, where: str) -> list[int]:
    """Parse a class list such as ``"[3, 12]"``; anything but a list of non-negative ints is an error."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise DataError(f"{where}: expected a list of class ids like '[3, 12]', got {text!r}")
    return list(value)


def _classes(rows: list[dict[str, str]], path: Path, verb_col: str, noun_col: str) -> tuple[list[int], list[list[int]]]:
    verbs, nouns = [], []
    for i, row in enumerate(rows):
        line = i + 2  # 1-based file line, after the header
        verbs.append(_parse_int(row[verb_col], f"{path} line {line} column {verb_col!r}"))
        nouns.append(_parse_classes(row[noun_col], f"{path} line {line} column {noun_col!r}"))
    return verbs, nouns


def _one_hot(sets: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(sets), width), dtype=np.float32)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    out[rows, np.fromiter((c for s in sets for c in s), dtype=np.int64, count=len(rows))] = 1.0
    return out


def relevancy_from_csv(
    clips_csv: str | Path, sentences_csv: str | Path
) -> tuple[np.ndarray, list[str], list[str]]:
    """Return ``(relevancy, clip_ids, sentence_ids)``: float32 (n_clips, n_sentences) and the narration ids.

    Rows follow the clip CSV order and columns the sentence CSV order. Two empty noun sets have IoU 0.
    """
    clips_csv, sentences_csv = Path(clips_csv), Path(sentences_csv)
    clip_rows, _ = read_csv_rows(clips_csv, _CLIP_COLUMNS, _WHAT)
    sent_rows, sent_columns = read_csv_rows(sentences_csv, ("narration_id",), _WHAT)
    clip_ids = [r["narration_id"] for r in clip_rows]
    sentence_ids = [r["narration_id"] for r in sent_rows]
    clip_verbs, clip_nouns = _classes(clip_rows, clips_csv, "verb_class", "all_noun_classes")

    if "verb_class" in sent_columns and "noun_classes" in sent_columns:
        sent_verbs, sent_nouns = _classes(sent_rows, sentences_csv, "verb_class", "noun_classes")
    else:
        row_of = {cid: i for i, cid in enumerate(clip_ids)}
        picks = []
        for i, sid in enumerate(sentence_ids):
            if sid not in row_of:
                raise DataError(
                    f"{sentences_csv} line {i + 2} column 'narration_id': {sid!r} has no clip in {clips_csv} "
                    "and the file has no verb_class/noun_classes columns"
                )
            picks.append(row_of[sid])
        sent_verbs = [clip_verbs[j] for j in picks]
        sent_nouns = [clip_nouns[j] for j in picks]

    width = 1 + max((c for s in clip_nouns + sent_nouns for c in s), default=0)
    clip_hot, sent_hot = _one_hot(clip_nouns, width), _one_hot(sent_nouns, width)
    # (v + inter/union) / 2 == (v * union + inter) / (2 * union): numerator and denominator are small integers,
    # exact in float32, so the single division yields the correctly rounded JPoSE level.
    inter = clip_hot @ sent_hot.T
    union = clip_hot.sum(axis=1)[:, None] + sent_hot.sum(axis=1)[None, :]
    union -= inter
    same_verb = np.asarray(clip_verbs)[:, None] == np.asarray(sent_verbs)[None, :]
    np.add(inter, union, out=inter, where=same_verb)
    union *= 2.0
    relevancy = np.divide(inter, union, out=inter, where=union > 0)
    relevancy[(union == 0) & same_verb] = 0.5  # both noun sets empty: IoU 0
    return relevancy, clip_ids, sentence_ids
