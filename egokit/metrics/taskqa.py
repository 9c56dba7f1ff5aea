"""EgoTaskQA per-reasoning-type accuracy.

Follows the official ``ReasongingTypeAccCalculator`` (EgoTaskQA ``utils/util.py``): every question carries several
reasoning tags (type, category, semantic, structural, reference, split name ...) and counts once for each of them;
the accuracy of a tag is correct / count over the questions carrying it, and a tag that never occurs reports 0.
The headline "All" number is the accuracy of the tag equal to the split name (``direct`` or ``indirect``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["taskqa_accuracy"]


def _tags(entry: str | Iterable[str]) -> list[str]:
    # The official annotation stores the tags '$'-joined; accept that string as well as a list.
    return entry.split("$") if isinstance(entry, str) else [str(t) for t in entry]


def taskqa_accuracy(
    pred: Any,
    answers: Any,
    reasoning_types: Sequence[str | Iterable[str]],
    categories: Iterable[str] | None = None,
) -> dict[str, float]:
    """Accuracy (fraction) per reasoning tag.

    Args:
        pred: (N,) predicted answer indices.
        answers: (N,) ground-truth answer indices.
        reasoning_types: per question, its tags (a list of strings or one ``'$'``-joined string).
        categories: tags to report even if no question carries them (they get 0, as officially); tags that occur
            but are not listed are reported too. Output order: ``categories`` first, then tags by first occurrence.
    """
    pred = np.asarray(pred).reshape(-1)
    answers = np.asarray(answers).reshape(-1)
    if not (len(pred) == len(answers) == len(reasoning_types)):
        raise ValueError(
            f"pred, answers and reasoning_types must have the same length; got {len(pred)}, {len(answers)}, "
            f"{len(reasoning_types)}"
        )
    correct = pred == answers
    total: dict[str, int] = {c: 0 for c in (categories or ())}
    right: dict[str, int] = dict.fromkeys(total, 0)
    for ok, entry in zip(correct.tolist(), reasoning_types):
        for tag in _tags(entry):
            total[tag] = total.get(tag, 0) + 1
            right[tag] = right.get(tag, 0) + int(ok)
    return {tag: (right[tag] / n if n else 0.0) for tag, n in total.items()}
