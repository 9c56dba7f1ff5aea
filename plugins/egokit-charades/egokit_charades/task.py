"""Charades-Ego action recognition as video-to-class-name retrieval (spec §5.3).

Evaluation: each test video is read whole (``num_frames`` = 32 uniform frames, eval transform), the class names are
tokenised (max 30 tokens) and embedded once, scores = cos(video, class) (videos x classes), and the official
approximate Charades mAP (:func:`egokit.metrics.charades_map`) is reported in 0-100.

Fine-tuning: one item per (video, action) segment with ``'rand'`` frames inside it and the class name as text
(max 15 tokens), symmetric InfoNCE (temperature 0.05) over the all-gathered batch, AdamW with warm-up + cosine.
Differences from the official trainer: no ``_adjust_learning_rate`` spike (the official first step of every epoch
after the first runs at 2e-4, 13x the 1.5e-5 recipe rate), and the best epoch by validation mAP is kept instead of
the latest. As officially, the validation data is whatever split is given (the official "val" is the test split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from egokit.errors import ConfigError
from egokit.recipes import build, read_yaml, to_dict

__all__ = ["CharadesOptions", "evaluate", "train"]


@dataclass
class CharadesOptions:
    data: Optional[str] = None  # folder with the metadata CSVs, Charades_v1_classes.txt and videos/
    annotations: Optional[str] = None  # defaults to <data>
    videos: Optional[str] = None  # defaults to <data>/videos (<id>.mp4)
    classes: Optional[str] = None  # defaults to <annotations>/Charades_v1_classes.txt
    split: str = "test"  # evaluation split: CharadesEgo_v1_<split>_only1st.csv
    num_frames: int = 32
    eval_batch_size: int = 4
    class_max_length: int = 30
    num_workers: int = 2
    limit: Optional[int] = None  # evaluate only the first N videos
    # fine-tuning
    train_split: str = "train"
    max_text_length: int = 15
    temperature: float = 0.05
    epochs: int = 20
    max_steps: Optional[int] = None
    batch_size: int = 16  # segments per process
    lr: float = 1.5e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup: float = 0.1
    clip_grad: Optional[float] = None
    log_every: int = 10
    limit_train: Optional[int] = None  # use only the first N training videos

    def folders(self) -> tuple[Path, Path, Path]:
        if self.annotations is None and self.data is None:
            raise ConfigError("charades-ego needs data=<folder with CharadesEgo_v1_*_only1st.csv, "
                              "Charades_v1_classes.txt and videos/> (or annotations= and videos=)")
        annotations = Path(self.annotations) if self.annotations else Path(self.data)
        videos = Path(self.videos) if self.videos else Path(self.data or annotations) / "videos"
        classes = Path(self.classes) if self.classes else annotations / "Charades_v1_classes.txt"
        return annotations, videos, classes


def default_options() -> dict[str, Any]:
    return read_yaml(Path(__file__).with_name("charades_ego.yaml"))


def options_from(ctx) -> CharadesOptions:
    return build(CharadesOptions, {**default_options(), **ctx.options}, where="charades-ego")


def capped_length(length: int, model) -> int:
    """A text length capped to the model's position table (RoBERTa positions start after the pad id)."""
    cfg = model.config
    return min(length, cfg.max_text_positions - cfg.pad_token_id - 1)


def metadata_path(annotations: Path, split: str) -> Path:
    return annotations / f"CharadesEgo_v1_{split}_only1st.csv"


def charades_metrics(model, tokenizer, accelerator, dataset, class_names: list[str], options: CharadesOptions,
                     progress=None) -> dict[str, Any]:
    """mAP (0-100) of class-name retrieval over ``dataset`` (a :class:`CharadesClipDataset`)."""
    import torch
    import torch.nn.functional as F

    from egokit.engine.features import encode_texts, map_dataset, prepare_video
    from egokit.metrics import charades_map

    device = next(model.parameters()).device

    def embed(batch: dict) -> dict:
        video = model.encode_video(prepare_video(batch["video"], model, device)).float()
        return {"video": video, "target": batch["target"].to(device)}

    out = map_dataset(accelerator, dataset, embed, batch_size=options.eval_batch_size,
                      num_workers=options.num_workers, progress=progress)
    text = encode_texts(model, tokenizer, class_names, max_length=capped_length(options.class_max_length, model),
                        padding="max_length", device=device)
    with torch.no_grad():
        scores = F.normalize(out["video"], dim=-1) @ F.normalize(text, dim=-1).T
    return {"mAP": 100.0 * charades_map(scores.numpy(), out["target"].numpy()), "num_videos": len(dataset)}


def eval_dataset(options: CharadesOptions, model, num_classes: int, limit: int | None):
    from egokit.data.transforms import EvalTransform
    from egokit_charades.data import CharadesClipDataset, find_videos, read_metadata

    annotations, videos, _ = options.folders()
    metadata = read_metadata(metadata_path(annotations, options.split), num_classes)[:limit]
    size = model.config.preprocess.image_size
    return CharadesClipDataset(metadata, find_videos(videos, [v.id for v in metadata]), num_classes,
                               options.num_frames, transform=EvalTransform(size))


def evaluate(ctx) -> dict[str, Any]:
    from egokit_charades.data import read_classes

    options = options_from(ctx)
    _, _, classes = options.folders()
    _, class_names = read_classes(classes)
    model = ctx.load_model(num_frames=options.num_frames)
    dataset = eval_dataset(options, model, len(class_names), options.limit)
    tokenizer = ctx.load_tokenizer(model)
    with ctx.progress(f"Charades-Ego {options.split} videos", total=len(dataset)) as bar:
        metrics = charades_metrics(model, tokenizer, ctx.accelerator, dataset, class_names, options, progress=bar)
    return {"metrics": metrics, "config": to_dict(options)}


def train(ctx) -> dict[str, Any]:
    from egokit_charades.finetuning import run_finetuning

    return run_finetuning(ctx, options_from(ctx))
