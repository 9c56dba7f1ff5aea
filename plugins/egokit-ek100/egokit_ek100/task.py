"""EK-100 multi-instance retrieval: zero-shot evaluation and fine-tuning (spec §5.2).

Evaluation embeds every test clip (segment-middle frames, Resize + CenterCrop) and every unique caption once,
scores ``S = (cos(video, text) + 1) / 2`` (videos x sentence columns of ``EPIC_100_retrieval_test_sentence.csv``;
a column is embedded from the narration of the clip with that ``narration_id``) and reports mAP and nDCG,
video-to-text, text-to-video and their average, in 0-100. Relevancy: the official pickle when present (or given),
otherwise rebuilt from the CSVs with :func:`egokit_ek100.relevancy.relevancy_from_csv`.

Fine-tuning: jittered clips with RandomResizedCrop(scale 0.5-1) and no flip, a caption drawn among the clip's
relevant train sentences (relevancy > 0.1), the adaptive max-margin ranking loss (margin 0.2 x relevancy) over the
all-gathered batch, AdamW (0.9, 0.98) with cosine decay after 10 % warm-up. Differences from the official trainer:
egokit does not reproduce ``_adjust_learning_rate`` (which sets lr to 2e-4 for the first step of every epoch after
the first), and it selects the best epoch by the chosen validation metric instead of keeping the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from egokit.errors import ConfigError, DataError
from egokit.recipes import build, read_yaml, to_dict

__all__ = ["EK100Options", "evaluate", "train"]


@dataclass
class EK100Options:
    data: Optional[str] = None  # folder with the retrieval annotation CSVs and videos/
    annotations: Optional[str] = None  # defaults to <data>
    videos: Optional[str] = None  # defaults to <data>/videos (<participant>/<video_id>.MP4)
    split: str = "test"  # evaluation split (the official "val" is the test split)
    relevancy: str = "auto"  # auto (official pickle if present, else CSV-built) | csv | path to .pkl/.npy
    num_frames: int = 16
    eval_batch_size: int = 8
    text_batch_size: int = 256
    max_text_length: int = 30  # training padding; evaluation pads to the longest caption, truncating here
    num_workers: int = 2
    limit: Optional[int] = None  # evaluate only the first N clips (and their sentences)
    # fine-tuning
    train_split: str = "train"
    train_relevancy: str = "auto"
    positive_threshold: float = 0.1
    margin: float = 0.2
    epochs: int = 100
    max_steps: Optional[int] = None
    batch_size: int = 16  # clips per process
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup: float = 0.1
    clip_grad: Optional[float] = None
    log_every: int = 10
    select: str = "map.avg"
    limit_train: Optional[int] = None

    def folders(self) -> tuple[Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("ek100-mir needs data=<folder with EPIC_100_retrieval_*.csv and videos/> "
                              "(or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data)
        videos = Path(self.videos) if self.videos else Path(self.data or annotations) / "videos"
        return annotations, videos


def default_options() -> dict[str, Any]:
    return read_yaml(Path(__file__).with_name("ek100_mir.yaml"))


def options_from(ctx) -> EK100Options:
    return build(EK100Options, {**default_options(), **ctx.options}, where="ek100-mir")


def text_length(options: EK100Options, model) -> int:
    """``max_text_length``, capped to the model's position table (RoBERTa positions start after the pad id)."""
    cfg = model.config
    return min(options.max_text_length, cfg.max_text_positions - cfg.pad_token_id - 1)


def load_split_relevancy(choice: str, annotations: Path, split: str) -> tuple[np.ndarray, str]:
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


class Split:
    """A split's clips, sentence columns and relevancy, optionally limited to the first ``limit`` clips."""

    def __init__(self, annotations: Path, videos: Path, split: str, relevancy: str, limit: int | None = None) -> None:
        from egokit_ek100.data import find_videos, read_clips, read_sentences, split_files

        clips_csv, sentences_csv = split_files(annotations, split)
        clips = read_clips(clips_csv)
        sentence_ids, sentence_texts = read_sentences(sentences_csv)
        matrix, self.relevancy_source = load_split_relevancy(relevancy, annotations, split)
        if matrix.shape != (len(clips), len(sentence_ids)):
            raise DataError(f"relevancy ({self.relevancy_source}) has shape {matrix.shape} but {clips_csv.name} has "
                            f"{len(clips)} clips and {sentences_csv.name} {len(sentence_ids)} sentences")
        columns = np.arange(len(sentence_ids))
        if limit is not None:
            clips = clips[:limit]
            kept = {c.narration_id for c in clips}
            columns = np.array([j for j, sid in enumerate(sentence_ids) if sid in kept], dtype=np.int64)
            matrix = matrix[: len(clips)][:, columns]
        narration_of = {c.narration_id: c.narration for c in clips}
        # A column is represented by the narration of the clip with its narration_id (official evaluation).
        self.texts = [narration_of.get(sentence_ids[j], sentence_texts[j]) for j in columns]
        self.sentence_texts = sentence_texts
        self.clips, self.relevancy = clips, matrix
        self.videos = find_videos(videos, clips)


def retrieval_metrics(model, tokenizer, accelerator, split: Split, options: EK100Options, progress=None
                      ) -> dict[str, dict[str, float]]:
    """mAP and nDCG (v2t, t2v, avg; 0-100) of ``model`` on ``split``; ``progress`` advances per clip."""
    import torch
    import torch.nn.functional as F

    from egokit.data.transforms import EvalTransform
    from egokit.engine.features import encode_texts, map_dataset, prepare_video
    from egokit.metrics import mir_map, mir_ndcg
    from egokit_ek100.data import EK100ClipDataset

    size = model.config.preprocess.image_size
    dataset = EK100ClipDataset(split.clips, split.videos, options.num_frames, transform=EvalTransform(size),
                               short_side=size)
    device = next(model.parameters()).device
    out = map_dataset(accelerator, dataset,
                      lambda batch: {"video": model.encode_video(prepare_video(batch["video"], model, device)).float()},
                      batch_size=options.eval_batch_size, num_workers=options.num_workers,
                      progress=progress)
    text = encode_texts(model, tokenizer, split.texts, max_length=text_length(options, model),
                        batch_size=options.text_batch_size, padding="longest", device=device)
    with torch.no_grad():
        similarity = (F.normalize(out["video"], dim=-1) @ F.normalize(text, dim=-1).T + 1) / 2
    similarity = similarity.numpy()
    scale = lambda d: {k: 100.0 * v for k, v in d.items()}  # noqa: E731
    return {"map": scale(mir_map(similarity, split.relevancy)), "ndcg": scale(mir_ndcg(similarity, split.relevancy))}


def evaluate(ctx) -> dict[str, Any]:
    options = options_from(ctx)
    annotations, videos = options.folders()
    split = Split(annotations, videos, options.split, options.relevancy, options.limit)
    model = ctx.load_model(num_frames=options.num_frames)
    tokenizer = ctx.load_tokenizer(model)
    with ctx.progress(f"EK-100 {options.split} clips", total=len(split.clips)) as bar:
        metrics = retrieval_metrics(model, tokenizer, ctx.accelerator, split, options, progress=bar)
    metrics["num_clips"], metrics["num_sentences"] = len(split.clips), len(split.texts)
    return {"metrics": metrics, "config": {**to_dict(options), "relevancy_source": split.relevancy_source}}


def train(ctx) -> dict[str, Any]:
    from egokit_ek100.finetuning import run_finetuning

    return run_finetuning(ctx, options_from(ctx))
