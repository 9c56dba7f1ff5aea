"""EK-100 multi-instance retrieval: zero-shot evaluation and fine-tuning, on egokit's retrieval family.

Evaluation embeds every test clip (segment-middle frames, Resize + CenterCrop) and every caption column once,
scores ``S = (cos(video, text) + 1) / 2`` (videos x sentence columns of ``EPIC_100_retrieval_test_sentence.csv``; a
column is embedded from the narration of the clip with that ``narration_id``) and reports mAP and nDCG,
video-to-text, text-to-video and their average, in 0-100. Relevancy: the official pickle when present (or given),
otherwise rebuilt from the CSVs with :func:`egokit_ek100.relevancy.relevancy_from_csv`.

Fine-tuning: jittered clips with RandomResizedCrop(scale 0.5-1) and no flip, a caption drawn among the clip's
relevant train sentences (relevancy > 0.1), the adaptive max-margin ranking loss (margin 0.2 x relevancy) over the
all-gathered batch, AdamW (0.9, 0.98) with cosine decay after 10 % warm-up, validation on ``split`` after every
epoch (the official "val" is the test split). Differences from the official trainer: egokit does not reproduce
``_adjust_learning_rate`` (which sets lr to 2e-4 for the first step of every epoch after the first), and it keeps
the best epoch by ``finetune.select`` instead of the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from egokit.tasks.api import (ConfigError, DataError, FinetuneOptions, MetricSpec, RetrievalData, RetrievalOptions,
                              RetrievalTask, fit_text_length)

__all__ = ["EK100Finetune", "EK100Options", "EK100Retrieval", "load_split_relevancy"]


@dataclass
class EK100Finetune(FinetuneOptions):
    epochs: int = 100
    batch_size: int = 16             # clips per process (official: 16 x 8 GPUs)
    lr: Optional[float] = 2e-4
    select: Optional[str] = "map.avg"
    margin: float = 0.2              # adaptive max-margin ranking loss: margin x relevancy
    positive_threshold: float = 0.1  # captions with relevancy above it are a clip's positives
    split: str = "train"
    relevancy: str = "auto"
    limit: Optional[int] = None      # train on the first N clips only


@dataclass
class EK100Options(RetrievalOptions):
    annotations: Optional[str] = None   # defaults to <data>
    videos: Optional[str] = None        # defaults to <data>/videos (<participant>/<video_id>.MP4)
    split: str = "test"                 # evaluation (and validation) split
    relevancy: str = "auto"             # auto (official pickle if present, else CSV-built) | csv | .pkl/.npy path
    max_text_length: int = 30
    finetune: EK100Finetune = field(default_factory=EK100Finetune)

    def folders(self) -> tuple[Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("ek100-mir needs data=<folder with EPIC_100_retrieval_*.csv and videos/> "
                              "(or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data)
        videos = Path(self.videos) if self.videos else Path(self.data or annotations) / "videos"
        return annotations, videos


def load_split_relevancy(choice: str, annotations: Path, split: str):
    """The relevancy matrix of ``split`` and where it came from (see ``EK100Options.relevancy``)."""
    from egokit_ek100.data import split_files
    from egokit_ek100.relevancy import relevancy_from_csv
    from egokit_ek100.relevancy_io import load_relevancy

    if choice == "auto":
        official = annotations / "relevancy" / f"caption_relevancy_EPIC_100_retrieval_{split}.pkl"
        choice = str(official) if official.is_file() else "csv"
    if choice == "csv":
        matrix, _, _ = relevancy_from_csv(*split_files(annotations, split))
        return matrix, "csv"
    return load_relevancy(choice), choice


class EK100Retrieval(RetrievalTask):
    name = "ek100-mir"
    description = "EPIC-KITCHENS-100 multi-instance retrieval: mAP and nDCG (video-to-text, text-to-video, avg)"
    metrics = tuple(MetricSpec(f"{m}.{d}") for m in ("map", "ndcg") for d in ("avg", "v2t", "t2v"))
    Options = EK100Options
    recipe = "ek100_mir.yaml"

    def retrieval_data(self, ctx, options: EK100Options, model) -> RetrievalData:
        import numpy as np

        from egokit.tasks.api import EvalTransform
        from egokit_ek100.data import EK100ClipDataset, find_videos, read_clips, read_sentences, split_files

        annotations, videos = options.folders()
        clips_csv, sentences_csv = split_files(annotations, options.split)
        clips = read_clips(clips_csv)
        sentence_ids, sentence_texts = read_sentences(sentences_csv)
        matrix, source = load_split_relevancy(options.relevancy, annotations, options.split)
        if matrix.shape != (len(clips), len(sentence_ids)):
            raise DataError(f"relevancy ({source}) has shape {matrix.shape} but {clips_csv.name} has "
                            f"{len(clips)} clips and {sentences_csv.name} {len(sentence_ids)} sentences")
        columns = np.arange(len(sentence_ids))
        if options.limit is not None:
            clips = clips[: options.limit]
            kept = {c.narration_id for c in clips}
            columns = np.array([j for j, sid in enumerate(sentence_ids) if sid in kept], dtype=np.int64)
            matrix = matrix[: len(clips)][:, columns]
        narration_of = {c.narration_id: c.narration for c in clips}
        # A column is represented by the narration of the clip with its narration_id (official evaluation).
        texts = [narration_of.get(sentence_ids[j], sentence_texts[j]) for j in columns]
        size = model.config.preprocess.image_size
        dataset = EK100ClipDataset(clips, find_videos(videos, clips), options.num_frames,
                                   transform=EvalTransform(size), short_side=size)
        return RetrievalData(dataset, texts, truth=matrix, text_length=fit_text_length(options.max_text_length, model),
                             text_padding="longest", details={"relevancy_source": source})

    def similarity(self, video, text):
        from egokit.tasks.api import cosine_similarity

        return (cosine_similarity(video, text) + 1) / 2

    def score(self, similarity, data: RetrievalData, carried: dict[str, Any]) -> dict[str, Any]:
        from egokit.tasks.api import mir_map, mir_ndcg

        scale = lambda d: {k: 100.0 * v for k, v in d.items()}  # noqa: E731
        return {"map": scale(mir_map(similarity, data.truth)), "ndcg": scale(mir_ndcg(similarity, data.truth)),
                "num_clips": int(similarity.shape[0]), "num_sentences": int(similarity.shape[1])}

    def train_data(self, ctx, options: EK100Options, model, tokenizer):
        from egokit.tasks.api import TrainTransform
        from egokit_ek100.data import (EK100ClipDataset, EK100TrainDataset, Positives, find_videos, read_clips,
                                       read_sentences, split_files)

        ft = options.finetune
        annotations, videos = options.folders()
        clips_csv, sentences_csv = split_files(annotations, ft.split)
        clips = read_clips(clips_csv)
        _, sentences = read_sentences(sentences_csv)
        relevancy, source = load_split_relevancy(ft.relevancy, annotations, ft.split)
        if relevancy.shape[0] != len(clips):
            raise DataError(f"train relevancy ({source}) has {relevancy.shape[0]} rows for {len(clips)} clips")
        positives = Positives.from_matrix(relevancy, ft.positive_threshold)
        del relevancy
        if ft.limit is not None:
            clips = clips[: ft.limit]
            positives = Positives(positives.indptr[: len(clips) + 1], positives.indices, positives.values)
        size = model.config.preprocess.image_size
        train_clips = EK100ClipDataset(clips, find_videos(videos, clips), options.num_frames, jitter=True,
                                       transform=TrainTransform(size, scale=(0.5, 1.0), hflip=0.0))
        return EK100TrainDataset(train_clips, sentences, positives, tokenizer,
                                 fit_text_length(options.max_text_length, model))

    def loss(self, text, video, extras: dict[str, Any], options: EK100Options):
        from egokit.tasks.api import max_margin_ranking_loss

        return max_margin_ranking_loss(text, video, extras["relation"], options.finetune.margin)

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        from egokit_ek100.synth import generate

        return generate(out, seed=seed)
