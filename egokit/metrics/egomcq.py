"""EgoMCQ accuracy: 5-way multiple choice, reported separately for inter- and intra-video questions.

Follows ``egomcq_accuracy_metrics_*`` in the official ``model/metric.py`` after its PR #14 label fix: type 1 is
inter-video (the five candidates come from different videos), type 2 is intra-video (all from the same video).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["egomcq_accuracy"]

_TYPE_NAMES = {1: "inter", 2: "intra"}


def egomcq_accuracy(scores: Any, answers: Any, types: Any) -> dict[str, float]:
    """Percent of questions whose highest-scoring candidate is the answer, per question type.

    Args:
        scores: (N, 5) candidate scores (numpy array, CPU tensor or nested list).
        answers: (N,) index of the correct candidate.
        types: (N,) 1 = inter-video, 2 = intra-video.

    Returns:
        ``{"inter": %, "intra": %}`` in 0-100. The predicted candidate is the *first* maximum (``argmax``), as in
        the official code. A type with no question gets NaN rather than a made-up 0 (the official code would
        instead mislabel the groups, since it zips the types present with a fixed name list).
    """
    scores = np.asarray(scores, dtype=np.float64)
    answers = np.asarray(answers).reshape(-1)
    types = np.asarray(types).reshape(-1)
    if scores.ndim != 2 or not (len(scores) == len(answers) == len(types)):
        raise ValueError(
            f"expected scores (N, C), answers (N,), types (N,); got {scores.shape}, {answers.shape}, {types.shape}"
        )
    unknown = set(np.unique(types).tolist()) - set(_TYPE_NAMES)
    if unknown:
        raise ValueError(f"EgoMCQ types must be 1 (inter-video) or 2 (intra-video); got {sorted(unknown)}")
    correct = scores.argmax(axis=1) == answers
    out: dict[str, float] = {}
    for code, name in _TYPE_NAMES.items():
        mask = types == code
        out[name] = float(correct[mask].mean() * 100.0) if mask.any() else float("nan")
    return out
