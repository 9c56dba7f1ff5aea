"""``egokit train mq`` / ``egokit eval mq``: dual features via ``egokit embed``, a detection head, official metrics.

Flow: the clips of the annotation files are embedded with the feature recipe (official ``egovlpv2-mq``: projected
dual features, 16 frames per window, 1.87 windows/s) into ``features/<recipe>/`` (resumable, shared by later
runs); the head is trained on train and evaluated once on val at the end. ``head_type`` picks the head (see
:mod:`egokit_mq.heads`): ``vsgn`` (default, the official baseline re-implemented) or ``anchor-free`` (egokit's
transformer detector); the default follows ``bench/heads.py``, where VSGN is clearly better on the same features.
``layers`` and ``finetune.lr`` left unset take the chosen head's own defaults. Evaluation rebuilds whichever head
was saved (folders saved before ``head.json`` recorded ``head_type`` hold the anchor-free head, the only head of
that time). Detections are written in the official submission format to ``mq_detections.json``. Deliberate
difference from the official recipe: no hyper-parameter grid search and no checkpoint selection on the reported
split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import (FeatureHeadOptions, FeatureHeadTask, FeatureSplit, HeadTraining,
                              MetricSpec)

__all__ = ["MQOptions", "MQTask", "MQTraining", "PREDICTIONS"]

PREDICTIONS = "mq_detections.json"


@dataclass
class MQTraining(HeadTraining):
    """AdamW (PyTorch betas), cosine decay to 0 without warm-up (evaluated in float32, as egokit 0.1 did: VSGN's
    results depend on it), gradients clipped at 1; ``lr`` unset: the head's own (vsgn 1e-3, anchor-free 1e-2)."""

    batch_size: int = 8
    weight_decay: float = 0.05
    schedule: str = "cosine-float32"


@dataclass
class MQOptions(FeatureHeadOptions):
    train_annotations: Optional[str] = None  # default <data>/moments_train.json
    val_annotations: Optional[str] = None    # default <data>/moments_val.json
    classes: Optional[str] = None            # default <data>/moment_classes_idx.json
    video_root: Optional[str] = None         # default <data>/videos (<video_uid>.mp4)
    feature_recipe: str = "egovlpv2-mq"
    dim: int = 128                  # head width (official vsgn: 256)
    heads: int = 4                  # anchor-free only
    layers: Optional[int] = None    # None = the head's own: vsgn 2 conv layers per head tower, anchor-free 2 layers
    dropout: float = 0.1            # anchor-free only
    nms_threshold: float = 0.5
    max_detections: int = 100
    finetune: MQTraining = field(default_factory=MQTraining)

    def annotation(self, split: str) -> Path:
        explicit = self.train_annotations if split == "train" else self.val_annotations
        return self.data_path(explicit, f"moments_{split}.json", f"{split}_annotations")

    def classes_file(self) -> Path:
        return self.data_path(self.classes, "moment_classes_idx.json", "classes")

    def videos(self) -> Path:
        return self.data_path(self.video_root, "videos", "video_root")


class MQTask(FeatureHeadTask):
    name = "mq"
    description = "EgoMQ: detect and classify moments (110 classes) in clips; mAP over tIoU 0.1-0.5 and recall"
    fusion_mode = "dual"
    metrics = (
        MetricSpec("average_mAP", description="detection mAP (%) averaged over tIoU 0.1, 0.2, 0.3, 0.4, 0.5"),
        MetricSpec("mAP@0.1", description="detection mAP (%) at tIoU 0.1"),
        MetricSpec("mAP@0.3", description="detection mAP (%) at tIoU 0.3"),
        MetricSpec("mAP@0.5", description="detection mAP (%) at tIoU 0.5"),
        MetricSpec("R@1 tIoU=0.5", description="recall (%) of the top detection per clip and class at tIoU 0.5"),
        MetricSpec("R@5 tIoU=0.5", description="recall (%) of the top 5 detections per clip and class at tIoU 0.5"),
    )
    Options = MQOptions
    recipe = "mq.yaml"
    head_dir = "mq_head"
    legacy_head = "anchor-free"  # what head folders saved before head.json recorded head_type hold
    uses_text = False            # video features only: no tokenizer needed (official .pth checkpoints work offline)

    @property
    def heads(self):
        from egokit_mq.heads import HEADS

        return HEADS

    def feature_split(self, ctx, options: MQOptions, model, tokenizer, split: str,
                      head_info: dict | None = None) -> FeatureSplit:
        """The clips of ``moments_<split>.json`` with their features; classes from the saved head when evaluating
        (so the class indices are the ones it was trained with), else from the class map."""
        from egokit_mq.data import MQFeatures, read_annotations, read_classes

        classes = head_info["classes"] if head_info else read_classes(options.classes_file())
        data, clips = read_annotations(options.annotation(split))
        if options.limit is not None:
            clips = clips[:options.limit]
        folder = self.embed_clips(ctx, options, model, data, str(options.annotation(split)), options.videos(),
                                  {c.clip_uid for c in clips})
        return self.split_of(MQFeatures(clips, folder, classes))

    @staticmethod
    def split_of(dataset) -> FeatureSplit:
        """A :class:`FeatureSplit` of an MQ dataset (``clips``, ``classes``, items as ``MQFeatures``'s)."""
        from egokit_mq.data import collate

        return FeatureSplit(dataset, collate, truth=dataset.clips, info={"classes": list(dataset.classes)})

    def score(self, predictions: list, split: FeatureSplit, options: MQOptions) -> dict[str, Any]:
        from egokit.tasks.api import mq_map, mq_recall
        from egokit_mq.data import ground_truth

        gt = ground_truth(split.truth)
        return {**mq_map(predictions, gt),
                **mq_recall(predictions, gt, top_k=(1, 5), tiou_thresholds=(0.3, 0.5, 0.7))}

    def head_info(self, options: MQOptions, split: FeatureSplit) -> dict[str, Any]:
        return {"classes": split.info["classes"]}

    def write_predictions(self, ctx, predictions: list, fold) -> Path:
        from egokit.tasks.api import write_json_atomic

        return write_json_atomic(ctx.path(PREDICTIONS), {"version": "1.0", "results": predictions})

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_mq.synth import generate

        return generate(out, seed=seed)
