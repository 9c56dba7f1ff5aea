"""Charades-Ego action recognition as video-to-class-name retrieval, on egokit's retrieval family.

Evaluation: each test video is read whole (``num_frames`` = 32 uniform frames, eval transform), the class names are
tokenised (max 30 tokens) and embedded once, scores = cos(video, class) (videos x classes), and the official
approximate Charades mAP (``charades_map``) is reported in 0-100.

Fine-tuning: one item per (video, action) segment with ``'rand'`` frames inside it and the class name as text
(max 15 tokens), symmetric InfoNCE (temperature 0.05) over the all-gathered batch, AdamW with warm-up + cosine.
Differences from the official trainer: no ``_adjust_learning_rate`` spike (the official first step of every epoch
after the first runs at 2e-4, 13x the 1.5e-5 recipe rate), and the best epoch by validation mAP is kept instead of
the latest. As officially, the validation data is the evaluation split (the official "val" is the test split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import (ConfigError, FinetuneOptions, MetricSpec, RetrievalData, RetrievalOptions,
                              RetrievalTask, fit_text_length)

__all__ = ["CharadesEgo", "CharadesFinetune", "CharadesOptions"]


@dataclass
class CharadesFinetune(FinetuneOptions):
    epochs: int = 20
    batch_size: int = 16            # segments per process (official: 16 x 8 GPUs)
    lr: Optional[float] = 1.5e-5
    select: Optional[str] = "mAP"
    temperature: float = 0.05       # symmetric InfoNCE (official NormSoftmaxLoss)
    max_text_length: int = 15       # class names as training captions
    split: str = "train"
    limit: Optional[int] = None     # use only the first N training videos


@dataclass
class CharadesOptions(RetrievalOptions):
    annotations: Optional[str] = None   # defaults to <data>
    videos: Optional[str] = None        # defaults to <data>/videos (<id>.mp4)
    classes: Optional[str] = None       # defaults to <annotations>/Charades_v1_classes.txt
    split: str = "test"                 # evaluation split: CharadesEgo_v1_<split>_only1st.csv
    num_frames: int = 32
    eval_batch_size: int = 4
    class_max_length: int = 30
    finetune: CharadesFinetune = field(default_factory=CharadesFinetune)

    def folders(self) -> tuple[Path, Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("charades-ego needs data=<folder with CharadesEgo_v1_*_only1st.csv, "
                              "Charades_v1_classes.txt and videos/> (or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data)
        videos = Path(self.videos) if self.videos else Path(self.data or annotations) / "videos"
        classes = Path(self.classes) if self.classes else annotations / "Charades_v1_classes.txt"
        return annotations, videos, classes


def metadata_path(annotations: Path, split: str) -> Path:
    return annotations / f"CharadesEgo_v1_{split}_only1st.csv"


class CharadesEgo(RetrievalTask):
    name = "charades-ego"
    description = "Charades-Ego action recognition as video-to-class-name retrieval (157 classes, mAP)"
    metrics = (MetricSpec("mAP"),)
    Options = CharadesOptions
    recipe = "charades_ego.yaml"

    def retrieval_data(self, ctx, options: CharadesOptions, model) -> RetrievalData:
        from egokit.tasks.api import Clip, VideoClips, eval_transform
        from egokit_charades.data import find_videos, read_classes, read_metadata

        annotations, videos, classes = options.folders()
        _, names = read_classes(classes)
        metadata = read_metadata(metadata_path(annotations, options.split), len(names))[: options.limit]
        files = find_videos(videos, [v.id for v in metadata])
        # the whole video, num_frames uniform frames, with its multi-hot class target
        dataset = VideoClips([Clip(files[v.id], extras={"target": v.target(len(names))}) for v in metadata],
                             options.num_frames, transform=eval_transform(model))
        return RetrievalData(dataset, names, text_length=fit_text_length(options.class_max_length, model),
                             text_padding="max_length", carry=("target",))

    def score(self, similarity, data: RetrievalData, carried: dict[str, Any]) -> dict[str, Any]:
        from egokit.tasks.api import charades_map

        return {"mAP": 100.0 * charades_map(similarity, carried["target"].numpy()), "num_videos": len(similarity)}

    def train_data(self, ctx, options: CharadesOptions, model, tokenizer):
        from egokit.tasks.api import TrainTransform
        from egokit_charades.data import CharadesSegmentDataset, find_videos, read_classes, read_metadata

        ft = options.finetune
        annotations, videos, classes = options.folders()
        _, names = read_classes(classes)
        metadata = read_metadata(metadata_path(annotations, ft.split), len(names))[: ft.limit]
        return CharadesSegmentDataset(metadata, find_videos(videos, [v.id for v in metadata]), names,
                                      options.num_frames, transform=TrainTransform(model.config.preprocess.image_size),
                                      tokenizer=tokenizer, max_length=fit_text_length(ft.max_text_length, model))

    def loss(self, text, video, extras: dict[str, Any], options: CharadesOptions):
        """As officially, two segments of the same class in one batch are negatives of each other."""
        from egokit.tasks.api import info_nce_loss

        return info_nce_loss(text, video, options.finetune.temperature)

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_charades.synth import generate

        return generate(out, seed=seed)
