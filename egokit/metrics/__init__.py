"""Evaluation metrics of the EgoVLPv2 benchmarks, each matching its official evaluation script.

Every module documents where egokit deliberately reproduces an official quirk (graded mAP numerator for EK-100,
rank-1 mIoU for NLQ, NaN for degenerate queries ...), so numbers are comparable with published results.
"""

from __future__ import annotations

from egokit.metrics.charades import charades_map
from egokit.metrics.egomcq import egomcq_accuracy
from egokit.metrics.mq import mq_map, mq_recall
from egokit.metrics.nlq import nlq_ground_truth_windows, nlq_recall
from egokit.metrics.qfvs import load_qfvs_tags, qfvs_f1
from egokit.metrics.retrieval import mir_map, mir_ndcg
from egokit.metrics.taskqa import taskqa_accuracy

__all__ = [
    "charades_map",
    "egomcq_accuracy",
    "load_qfvs_tags",
    "mir_map",
    "mir_ndcg",
    "mq_map",
    "mq_recall",
    "nlq_ground_truth_windows",
    "nlq_recall",
    "qfvs_f1",
    "taskqa_accuracy",
]
