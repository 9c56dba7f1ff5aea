"""``egokit train nlq`` / ``egokit eval nlq``: features via ``egokit embed``, a registered head, official submission.

Flow: (1) the clips of the annotation files are embedded with the feature recipe (official: ``egovlpv2-nlq``,
query-conditioned fusion features) into ``features/<recipe>/`` -- resumable, shared by later runs; (2) query token
states come from the same model in dual mode (unprojected RoBERTa states, 30 tokens, as officially); (3) the head is
trained on the train split and evaluated once on val at the end. ``head_type`` picks the head
(:data:`egokit_nlq.heads.HEADS`): ``vslnet`` (default, the official head re-implemented) or ``span`` (egokit's
joint-attention span head); the default follows ``bench/heads.py``, where VSLNet is clearly better on the same
features. ``heads``, ``layers``, ``dropout`` and ``finetune.lr`` left unset (``None``) take the chosen head's own
defaults. Evaluation rebuilds whichever head was saved (head folders saved before ``head.json`` recorded
``head_type`` hold the span head). Deliberate differences from the official recipe: no model selection on the
reported split (the official code reports the best of 100 evaluations on val), and the seed is set (the official
seeding is commented out).

This module does not import torch: the heads and the feature dataset are imported inside the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import (FeatureHeadOptions, FeatureHeadTask, FeatureSplit, HeadTraining,
                              MetricSpec, write_json_atomic)

__all__ = ["NLQ", "NLQOptions", "PREDICTIONS"]

PREDICTIONS = "nlq_predictions.json"  # the official submission file, in the output folder


@dataclass
class NLQOptions(FeatureHeadOptions):
    data: Optional[str] = None          # folder with nlq_train.json, nlq_val.json and videos/<video_uid>.mp4
    train_annotations: Optional[str] = None  # default <data>/nlq_train.json
    val_annotations: Optional[str] = None    # default <data>/nlq_val.json
    video_root: Optional[str] = None    # default <data>/videos
    feature_recipe: str = "egovlpv2-nlq"
    text_length: int = 30               # query tokens (official 30)
    max_len: int = 256                  # longer clips are averaged down to this many feature steps
    dim: int = 128
    heads: Optional[int] = None         # attention heads (vslnet: of its encoders); None = the head's default
    layers: Optional[int] = None        # span: transformer layers; vslnet: conv layers per encoder block
    dropout: Optional[float] = None
    highlight_weight: float = 5.0       # weight of the highlight BCE in the loss
    top_k: int = 5                      # predicted windows per query
    finetune: HeadTraining = field(default_factory=HeadTraining)

    def annotation(self, split: str) -> Path:
        explicit = self.train_annotations if split == "train" else self.val_annotations
        return self.data_path(explicit, f"nlq_{split}.json", f"{split}_annotations")

    def videos(self) -> Path:
        return self.data_path(self.video_root, "videos", "video_root")


class NLQ(FeatureHeadTask):
    name = "nlq"
    description = "EgoNLQ: localise the answer window of a natural-language query in a clip (R@k at IoU 0.3/0.5)"
    fusion_mode = "fusion"
    metrics = (MetricSpec("R@1 IoU=0.3"), MetricSpec("R@5 IoU=0.3"), MetricSpec("R@1 IoU=0.5"),
               MetricSpec("R@5 IoU=0.5"), MetricSpec("mIoU"))
    Options = NLQOptions
    recipe = "nlq.yaml"
    head_dir = "nlq_head"
    # What a head folder saved before head.json recorded ``head_type`` holds: the default head of that time. Fixed
    # on purpose -- it must not follow the registry's default, or old folders would be rebuilt as the wrong class.
    legacy_head = "span"

    @property
    def heads(self):
        """The registered heads (:data:`egokit_nlq.heads.HEADS`), imported on first use: they need torch."""
        from egokit_nlq.heads import HEADS

        return HEADS

    def feature_split(self, ctx, options: NLQOptions, model, tokenizer, split: str,
                      head_info: dict | None = None) -> FeatureSplit:
        """One split's queries over its clips' features (embedding the missing clips first) and query states."""
        from egokit.tasks.api import embed_texts
        from egokit_nlq.data import NLQFeatures, collate, read_annotations

        path = options.annotation(split)
        data, queries = read_annotations(path)
        if options.limit is not None:
            queries = queries[:options.limit]
        folder = self.embed_clips(ctx, options, model, data, str(path), options.videos(),
                                  {q.clip_uid for q in queries}, tokenizer=tokenizer)
        text, mask = embed_texts(model, tokenizer, [q.text.strip().lower() for q in queries], mode="backbone",
                                 max_length=options.text_length)
        return FeatureSplit(NLQFeatures(queries, folder, text.half(), mask, options.max_len), collate, truth=data)

    def score(self, predictions: list, split: FeatureSplit, options: NLQOptions) -> dict[str, Any]:
        from egokit.tasks.api import nlq_recall

        return nlq_recall(predictions, split.truth)

    def head_info(self, options: NLQOptions, split: FeatureSplit) -> dict[str, Any]:
        return {"text_length": options.text_length}

    def write_predictions(self, ctx, predictions: list, fold) -> Path:
        return write_json_atomic(ctx.path(PREDICTIONS), {"version": "1.0", "challenge": "ego4d_nlq_challenge",
                                                         "results": predictions})

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_nlq.synth import generate

        return generate(out, seed=seed)
