"""QFVS: leave-one-video-out training of the summarisation head on fused query-conditioned shot features.

Every ``shot_frames`` consecutive images of a UT-Egocentric video form a shot. Per query (c1, c2) the frozen model
fuses each shot with three prompts ("There is a {c1}", "There is a {c2}", "There is a {c1} and a {c2}") and keeps the
fused video CLS; the head scores the three feature sequences against the shots that carry c1, c2 (dense per-shot
tags) and the oracle summary; loss = sum of the three BCE terms. At evaluation the top ``int(0.02 * n_shots)``
shots by the "both" prompt form the summary, scored by the semantic F1 against the oracle with ``Tags.mat``
(precision, recall and F1 in percent, averaged over the video's queries; ``average_f1`` over the videos).

Training writes ``OUT/checkpoint/``: one head per held-out video (``P01/`` ...), the head trained on every video
(``head.json`` + ``head.safetensors``, used by ``egokit summarize``) and the model with its tokenizer.
``egokit eval qfvs`` scores each video with the head trained without it; it reads the heads from ``head=``, else
from ``--ckpt`` when that folder holds them, else from ``OUT/checkpoint``. Folders written by earlier releases
(``qfvs_heads/P01.safetensors`` ... and ``qfvs_head.safetensors``) still load.

Differences from the official code: deterministic frames, fixed-length segments, a boolean padding mask, the
configured ``lr`` is used (officially a hard-coded 1e-5), and the F1 of the *last* epoch is reported (officially the
maximum over epochs on the test video, best of several runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from egokit.tasks.api import ConfigError, DataOptions, FeatureHeadTask, FeatureSplit, Fold, HeadTraining, MetricSpec
from egokit_qfvs.data import VIDEOS

__all__ = ["QFVSOptions", "QFVSTask", "QFVSTraining"]

#: Where earlier releases saved the leave-one-out heads (``<video>.safetensors`` + ``<video>.json``).
LEGACY_FOLD_DIR = "qfvs_heads"


@dataclass
class QFVSTraining(HeadTraining):
    epochs: int = 20
    batch_size: int = 1               # queries per step
    lr: Optional[float] = 1e-5        # the official code hard-codes 1e-5 (its config's 1e-4 is unused)
    weight_decay: float = 0.1
    warmup: float = 0.1               # fraction of the steps (the official 2 of 20 epochs), then cosine
    schedule: str = "cosine"
    clip_grad: Optional[float] = None
    lr_mult_weights: float = 0.2      # lr of the matrices: lr x 0.2
    lr_mult_bias: float = 0.0048      # lr of the biases and norms: lr x 0.0048


@dataclass
class QFVSOptions(DataOptions):
    #: What head.json records as the features the heads were trained on (QFVS has one kind: see features.py).
    feature_recipe: ClassVar[str] = "qfvs-fused-cls"

    # data: folder with video_frames/ and [origin_data/] (Oracle_Summaries, dense tags)
    tags: Optional[str] = None        # Tags.mat; default <data>/Tags.mat
    videos: list[str] = field(default_factory=lambda: list(VIDEOS))
    shot_frames: int = 5
    segment_shots: int = 200          # fixed-length segments (official: KTS, at most 200 shots each)
    embed_batch_size: int = 16        # shots per forward pass
    summary_ratio: float = 0.02
    nhead: int = 2                    # must divide the model width
    ff_dim: int = 2048
    final_head: bool = True           # also train one head on all videos (used by `egokit summarize`)
    head: Optional[str] = None        # folder holding the heads to evaluate
    head_type: Optional[str] = None   # the registered head (one: summary)
    finetune: QFVSTraining = field(default_factory=QFVSTraining)

    def root(self) -> Path:
        if self.data is None:
            raise ConfigError("qfvs needs data=<folder with video_frames/ and origin_data/> (or --data)")
        return Path(self.data)

    def tags_path(self) -> Path:
        return self.data_path(self.tags, "Tags.mat", "tags")


def _holds_fold_heads(folder: Path, videos: list[str]) -> bool:
    return any((folder / v / "head.json").is_file() or (folder / LEGACY_FOLD_DIR / f"{v}.safetensors").is_file()
               for v in videos)


class QFVSTask(FeatureHeadTask):
    name = "qfvs"
    description = "QFVS (UT-Egocentric): query-focused summaries, semantic F1 per video, leave-one-video-out"
    fusion_mode = "fusion"
    metrics = (MetricSpec("average_f1", description="semantic F1 (%) averaged over the held-out videos"),
               *(MetricSpec(f"{v}.f1", description=f"semantic F1 (%) of {v}, head trained on the others")
                 for v in VIDEOS))
    Options = QFVSOptions
    recipe = "qfvs.yaml"
    head_dir = "checkpoint"
    trained_model = "checkpoint"  # the heads and the model: `egokit eval qfvs --ckpt OUT/checkpoint`
    legacy_head = "summary"

    @property
    def heads(self):
        from egokit_qfvs.head import HEADS

        return HEADS

    def validate(self, options: QFVSOptions) -> None:
        if options.head_type is not None:
            self.heads[options.head_type]
        unknown = [v for v in options.videos if v not in VIDEOS]
        if unknown:
            raise ConfigError(f"qfvs.videos: {unknown[0]!r} is not a UT-Egocentric video ({', '.join(VIDEOS)})")
        if len(set(options.videos)) < 2 or len(set(options.videos)) != len(options.videos):
            raise ConfigError("qfvs.videos: leave-one-video-out needs at least two distinct videos")

    def folds(self, options: QFVSOptions) -> tuple[Fold, ...]:
        folds = [Fold(v, tuple(o for o in options.videos if o != v), v) for v in options.videos]
        if options.final_head:
            folds.append(Fold("", tuple(options.videos), None))
        return tuple(folds)

    def feature_frames(self, options: QFVSOptions) -> int:
        return options.shot_frames

    def feature_split(self, ctx, options: QFVSOptions, model, tokenizer, split: str,
                      head_info: dict | None = None) -> FeatureSplit:
        from egokit.tasks.api import load_qfvs_tags
        from egokit_qfvs.data import load_video
        from egokit_qfvs.features import video_features
        from egokit_qfvs.head import query_items

        recorded = (head_info or {}).get("shot_frames")
        if recorded is not None and recorded != options.shot_frames:
            raise ConfigError(f"qfvs: the heads were trained on {recorded}-image shots; pass shot_frames={recorded}")
        video = load_video(options.root(), split, options.shot_frames)
        tags = load_qfvs_tags(options.tags_path())[VIDEOS.index(split)]
        if len(tags) < video.num_shots:
            raise ConfigError(f"Tags.mat has {len(tags)} shots for {split}, the frames give {video.num_shots}")
        prompts = sorted({p for q in video.queries for p in q.prompts()})
        with ctx.progress(f"QFVS shot features ({split})", total=video.num_shots) as bar:
            feats = video_features(model, tokenizer, video, prompts, segment_shots=options.segment_shots,
                                   batch_size=options.embed_batch_size, progress=bar)
        return FeatureSplit(query_items(video, feats), collate=list, truth=[q.oracle for q in video.queries],
                            info={"video": split, "tags": tags})

    def head_info(self, options: QFVSOptions, split: FeatureSplit) -> dict[str, Any]:
        return {"shot_frames": options.shot_frames, "segment_shots": options.segment_shots}

    def head_optimizer(self, head, options: QFVSOptions):
        """AdamW with the official two groups: matrices at lr x lr_mult_weights, biases and norms at lr x
        lr_mult_bias."""
        import torch

        ft = options.finetune
        weights = [p for p in head.parameters() if p.ndim > 1]
        biases = [p for p in head.parameters() if p.ndim <= 1]
        return torch.optim.AdamW([{"params": weights, "lr": ft.lr * ft.lr_mult_weights},
                                  {"params": biases, "lr": ft.lr * ft.lr_mult_bias}],
                                 betas=tuple(ft.betas), eps=ft.eps, weight_decay=ft.weight_decay)

    def score(self, predictions: list, split: FeatureSplit, options: QFVSOptions) -> dict[str, Any]:
        """Mean semantic precision/recall/F1 (percent) over the video's queries."""
        import numpy as np

        from egokit.tasks.api import qfvs_f1

        rows = [qfvs_f1(pred, list(oracle), split.info["tags"]) for pred, oracle in zip(predictions, split.truth)]
        return {m: 100.0 * float(np.mean([r[m] for r in rows])) for m in ("precision", "recall", "f1")}

    def combine(self, per_fold: dict[str, dict[str, Any]], options: QFVSOptions) -> dict[str, Any]:
        import numpy as np

        metrics: dict[str, Any] = {v: per_fold[v] for v in options.videos}
        metrics["average_f1"] = float(np.mean([m["f1"] for m in metrics.values()]))
        return metrics

    def head_root(self, ctx, options: QFVSOptions, action: str) -> Path:
        if (action == "eval" and not options.head and ctx.checkpoint
                and _holds_fold_heads(Path(ctx.checkpoint), options.videos)):
            return Path(ctx.checkpoint)
        return super().head_root(ctx, options, action)

    def load_head(self, folder: Path, options: QFVSOptions):
        """A head in the one head format, or an earlier release's ``qfvs_heads/<video>.safetensors``."""
        from dataclasses import asdict

        from egokit.tasks.api import has_head, load_summary_head

        legacy = folder.parent / LEGACY_FOLD_DIR / f"{folder.name}.safetensors"
        if not has_head(folder) and legacy.is_file():
            head = load_summary_head(legacy)
            return head, {"head_type": "summary", "config": asdict(head.config), "legacy_file": str(legacy)}
        return super().load_head(folder, options)

    def after_train(self, ctx, options: QFVSOptions, model, tokenizer, artifacts: dict[str, str]) -> None:
        """The model and its tokenizer beside the heads, so the folder is a checkpoint for `egokit summarize`."""
        from egokit.tasks.api import save_pretrained

        artifacts["checkpoint"] = str(save_pretrained(model, self.head_root(ctx, options, "train"),
                                                      tokenizer=tokenizer))

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_qfvs.synth import generate

        return generate(out, seed=seed)
