"""The egokit task plugin API: the only egokit module a task package imports (its tests add :mod:`egokit.testing`).

Everything here is stable across minor releases; ``docs/plugins.md`` documents each name with its signature (a
test keeps the two in step). The contract and the task families are imported eagerly (they are light); the
helpers that need torch or video decoding are imported on first use, so that a module defining a task class stays
cheap to import and ``egokit tasks`` can list every task without loading torch.

Groups:

* contract: :class:`Task`, :class:`TaskContext`, :class:`TaskResult`, :class:`MetricSpec`, :data:`FUSION_MODES`,
  :class:`FinetuneOptions`, :class:`DataOptions`, errors;
* families: :class:`RetrievalTask` (clips + texts -> embeddings -> similarity -> metric) and
  :class:`FeatureHeadTask` (cached features -> a registered head -> decode -> metric) with their option and data
  classes, :class:`HeadRegistry` / :class:`HeadSpec`;
* data: clip reading, transforms from the checkpoint's preprocessing, batched mapping over a dataset with progress,
  text encoding, feature recipes, Ego4D episodic-memory files and per-clip feature folders;
* training: the fine-tuning loop, best-checkpoint selection, losses, optimiser schedule, gathering across
  processes;
* files: atomic writes, heads in the one head format, checkpoint folders;
* metrics: every function of :mod:`egokit.metrics`;
* synthetic data: video writers and scenes for a task's ``synth``.
"""

from __future__ import annotations

import importlib
from typing import Any

from egokit.engine.finetune_options import FinetuneOptions
from egokit.errors import CheckpointError, ConfigError, DataError, EgokitError, PluginError, VideoDecodeError
from egokit.heads import HeadRegistry, HeadSpec
from egokit.tasks.base import FUSION_MODES, MetricSpec, Task, TaskResult
from egokit.tasks.context import TaskContext
from egokit.tasks.feature_head import FeatureHeadOptions, FeatureHeadTask, FeatureSplit, Fold, HeadTraining
from egokit.tasks.options import DataOptions
from egokit.tasks.retrieval import RetrievalData, RetrievalOptions, RetrievalTask, fit_text_length

#: name -> (module, attribute), imported on first access.
_LAZY = {
    # data
    "read_clip": ("egokit.data.video", "read_clip"),
    "read_csv_rows": ("egokit.data.csvfile", "read_csv_rows"),
    "Clip": ("egokit.data.clips", "Clip"),
    "VideoClips": ("egokit.data.clips", "VideoClips"),
    "item_rng": ("egokit.data.clips", "item_rng"),
    "read_frames_at": ("egokit.data.video", "read_frames_at"),
    "probe_video": ("egokit.data.video", "probe_video"),
    "VideoInfo": ("egokit.data.video", "VideoInfo"),
    "slot_times": ("egokit.data.sampling", "slot_times"),
    "EvalTransform": ("egokit.data.transforms", "EvalTransform"),
    "TrainTransform": ("egokit.data.transforms", "TrainTransform"),
    "normalize_video": ("egokit.data.transforms", "normalize_video"),
    "eval_transform": ("egokit.data.transforms", "eval_transform"),
    "train_transform": ("egokit.data.transforms", "train_transform"),
    "prepare_video": ("egokit.engine.features", "prepare_video"),
    "map_dataset": ("egokit.engine.features", "map_dataset"),
    "tokenize_texts": ("egokit.engine.features", "tokenize_texts"),
    "encode_texts": ("egokit.engine.features", "encode_texts"),
    "encode_clips": ("egokit.tasks.retrieval", "encode_clips"),
    "cosine_similarity": ("egokit.tasks.retrieval", "cosine_similarity"),
    "EgoMCQDataset": ("egokit.data.egomcq", "EgoMCQDataset"),
    "get_recipe": ("egokit.embed", "get_recipe"),
    "embed_texts": ("egokit.embed", "embed_texts"),
    "FEATURES_META": ("egokit.embed", "META_NAME"),
    "load_features": ("egokit.embed", "load_features"),
    "FeatureFolder": ("egokit.tasks.episodic", "FeatureFolder"),
    "pad_sequences": ("egokit.tasks.episodic", "pad_sequences"),
    "read_episodic_annotations": ("egokit.tasks.episodic", "read_episodic_annotations"),
    "check_time_window": ("egokit.tasks.episodic", "check_time_window"),
    "TIME_TOLERANCE": ("egokit.tasks.episodic", "TIME_TOLERANCE"),
    # training
    "finetune": ("egokit.engine.finetune", "finetune"),
    "pretrain_loop": ("egokit.engine.pretrain", "pretrain"),
    "BestCheckpoint": ("egokit.tasks.selection", "BestCheckpoint"),
    "selection_metric": ("egokit.tasks.options", "selection_metric"),
    "warmup_cosine": ("egokit.engine.optim", "warmup_cosine"),
    "gather_with_grad": ("egokit.distributed", "gather_with_grad"),
    "gather_no_grad": ("egokit.distributed", "gather_no_grad"),
    "info_nce_loss": ("egokit.losses", "info_nce_loss"),
    "max_margin_ranking_loss": ("egokit.losses", "max_margin_ranking_loss"),
    # files
    "atomic_path": ("egokit.io", "atomic_path"),
    "atomic_dir": ("egokit.io", "atomic_dir"),
    "write_json_atomic": ("egokit.io", "write_json_atomic"),
    "write_text_atomic": ("egokit.io", "write_text_atomic"),
    "write_csv_atomic": ("egokit.io", "write_csv_atomic"),
    "write_bytes_atomic": ("egokit.io", "write_bytes_atomic"),
    "save_head": ("egokit.heads", "save_head"),
    "load_head": ("egokit.heads", "load_head"),
    "has_head": ("egokit.heads", "has_head"),
    "save_pretrained": ("egokit.checkpoint", "save_pretrained"),
    "read_official_checkpoint": ("egokit.checkpoint", "read_official_checkpoint"),
    "flatten_metrics": ("egokit.results", "flatten_metrics"),
    # models used by tasks
    "SummaryHead": ("egokit.summarize.head", "SummaryHead"),
    "SummaryHeadConfig": ("egokit.summarize.head", "SummaryHeadConfig"),
    "load_summary_head": ("egokit.summarize.head", "load_head"),  # <name>.safetensors + <name>.json (older QFVS)
    "shot_features": ("egokit.summarize.scoring", "shot_features"),
    # metrics
    **{name: ("egokit.metrics", name) for name in (
        "charades_map", "egomcq_accuracy", "load_qfvs_tags", "mir_map", "mir_ndcg", "mq_map", "mq_recall",
        "nlq_ground_truth_windows", "nlq_recall", "qfvs_f1", "taskqa_accuracy")},
    # synthetic data
    "synth_egoclip": ("egokit.synth", "generate"),
    "SynthConfig": ("egokit.synth", "SynthConfig"),
    "COLOUR_RGB": ("egokit.synth.clips", "COLOUR_RGB"),
    "write_video": ("egokit.synth.clips", "write_video"),
    "colour_segments_video": ("egokit.synth.clips", "colour_segments_video"),
    "event_video": ("egokit.synth.clips", "event_video"),
    "one_object_scene": ("egokit.synth.clips", "one_object_scene"),
    "render_scene": ("egokit.synth.clips", "render_scene"),
    "train_bpe_tokenizer": ("egokit.tokenizer", "train_bpe_tokenizer"),
}

__all__ = [
    "FUSION_MODES", "CheckpointError", "ConfigError", "DataError", "DataOptions", "EgokitError", "FeatureHeadOptions",
    "FeatureHeadTask", "FeatureSplit", "FinetuneOptions", "Fold", "HeadRegistry", "HeadSpec", "HeadTraining",
    "MetricSpec", "PluginError", "RetrievalData", "RetrievalOptions", "RetrievalTask", "Task", "TaskContext",
    "TaskResult", "VideoDecodeError", "fit_text_length", *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"egokit.tasks.api has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
