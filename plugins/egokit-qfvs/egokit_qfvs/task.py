"""QFVS: leave-one-video-out training of the summarisation head on fused query-conditioned shot features.

Per query (c1, c2) the head scores three feature sequences (prompts for c1, c2 and both) against the shots that
carry c1, c2 (dense per-shot tags) and the oracle summary; loss = sum of the three BCE terms. At evaluation the
top ``int(0.02 * n_shots)`` shots by the "both" prompt form the summary, scored by the semantic F1 against the
oracle with ``Tags.mat``. Differences from the official code (spec §8.1 item 24): deterministic frames, fixed-length
segments, a boolean padding mask, the configured ``lr`` is used (officially a hard-coded 1e-5), and the F1 of the
*last* epoch is reported (officially the maximum over epochs on the test video, best of several runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from egokit.engine.optim import warmup_cosine
from egokit.errors import CheckpointError, ConfigError
from egokit.metrics import load_qfvs_tags, qfvs_f1
from egokit.recipes import build, read_yaml, to_dict
from egokit.summarize.head import HEAD_WEIGHTS, SummaryHead, SummaryHeadConfig, load_head, save_head

from egokit_qfvs.data import VIDEOS, QFVSVideo, load_video
from egokit_qfvs.features import video_features

FOLD_DIR = "qfvs_heads"


@dataclass
class QFVSOptions:
    data: Optional[str] = None
    tags: Optional[str] = None  # Tags.mat; default <data>/Tags.mat
    videos: list[str] = None  # type: ignore[assignment]
    shot_frames: int = 5
    segment_shots: int = 200
    batch_size: int = 16
    summary_ratio: float = 0.02
    nhead: int = 2
    ff_dim: int = 2048
    epochs: int = 20
    lr: float = 1e-5
    lr_mult_weights: float = 0.2
    lr_mult_bias: float = 0.0048
    weight_decay: float = 0.1
    warmup_epochs: int = 2
    final_head: bool = True  # also train one head on all videos (used by `egokit summarize`)

    def check(self) -> None:
        if self.data is None:
            raise ConfigError("qfvs needs data=<folder with video_frames/ and origin_data/> (or --data)")
        self.videos = list(self.videos or VIDEOS)
        if len(self.videos) < 2:
            raise ConfigError("qfvs.videos: leave-one-video-out needs at least two videos")

    def tags_path(self) -> Path:
        return Path(self.tags) if self.tags else Path(self.data) / "Tags.mat"


def default_options() -> dict:
    return read_yaml(Path(__file__).with_name("qfvs.yaml"))


def _options(ctx) -> QFVSOptions:
    options = build(QFVSOptions, {**default_options(), **ctx.options}, where="qfvs")
    options.check()
    return options


Sample = tuple[list[torch.Tensor], list[torch.Tensor]]  # three feature sequences, three label sequences


def _features(ctx, options: QFVSOptions) -> tuple[dict[str, QFVSVideo], dict[str, dict[str, torch.Tensor]], object]:
    model = ctx.load_model(num_frames=options.shot_frames)
    tokenizer = ctx.load_tokenizer(model)
    videos = {name: load_video(options.data, name, options.shot_frames) for name in options.videos}
    feats = {}
    total = sum(v.num_shots for v in videos.values())
    with ctx.progress("QFVS shot features", total=total) as bar:
        for name, video in videos.items():
            prompts = sorted({p for q in video.queries for p in q.prompts()})
            feats[name] = video_features(model, tokenizer, video, prompts, segment_shots=options.segment_shots,
                                         batch_size=options.batch_size, progress=bar)
    return videos, feats, model


def _samples(video: QFVSVideo, feats: dict[str, torch.Tensor]) -> list[Sample]:
    out = []
    for q in video.queries:
        oracle = torch.zeros(video.num_shots)
        oracle[list(q.oracle)] = 1
        p1, p2, both = q.prompts()
        labels = [torch.tensor(video.concept_labels(q.c1)), torch.tensor(video.concept_labels(q.c2)), oracle]
        out.append(([feats[p1], feats[p2], feats[both]], labels))
    return out


def _segments(x: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, ...) -> (n_seg, length, ...) zero-padded, and the boolean padding mask (n_seg, length)."""
    n = x.shape[0]
    n_seg = -(-n // length)
    padded = x.new_zeros((n_seg * length, *x.shape[1:]))
    padded[:n] = x
    pad = torch.ones(n_seg * length, dtype=torch.bool)
    pad[:n] = False
    return padded.view(n_seg, length, *x.shape[1:]), pad.view(n_seg, length)


def head_scores(head: SummaryHead, feats: torch.Tensor, length: int) -> torch.Tensor:
    x, pad = _segments(feats, length)
    dev = next(head.parameters()).device
    return head(x.to(dev), pad.to(dev)).reshape(-1)[: feats.shape[0]]


def train_head(ctx, samples: list[Sample], options: QFVSOptions, width: int, seed: int) -> SummaryHead:
    torch.manual_seed(seed)
    head = SummaryHead(SummaryHeadConfig(width=width, nhead=options.nhead, ff_dim=options.ff_dim,
                                         max_shots=options.segment_shots)).to(ctx.device)
    weights = [p for p in head.parameters() if p.ndim > 1]
    biases = [p for p in head.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": weights, "lr": options.lr * options.lr_mult_weights},
                             {"params": biases, "lr": options.lr * options.lr_mult_bias}],
                            weight_decay=options.weight_decay)
    total = options.epochs * len(samples)
    sched = warmup_cosine(opt, options.warmup_epochs * len(samples), total)
    rng = np.random.default_rng(seed)
    with ctx.progress("QFVS head", total=total) as bar:
        for _ in range(options.epochs):
            head.train()
            for i in rng.permutation(len(samples)):
                feats, labels = samples[i]
                loss = sum(F.binary_cross_entropy_with_logits(head_scores(head, f, options.segment_shots),
                                                              y.to(ctx.device)) for f, y in zip(feats, labels))
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.advance(1)
    return head.eval()


@torch.no_grad()
def evaluate_video(head: SummaryHead, video: QFVSVideo, feats: dict[str, torch.Tensor], tags: np.ndarray,
                   options: QFVSOptions) -> dict[str, float]:
    """Mean semantic precision/recall/F1 (percent) over the video's queries."""
    if len(tags) < video.num_shots:
        raise ConfigError(f"Tags.mat has {len(tags)} shots for {video.name}, the frames give {video.num_shots}")
    k = max(1, int(video.num_shots * options.summary_ratio))
    rows = []
    for q in video.queries:
        scores = head_scores(head, feats[q.prompts()[2]], options.segment_shots).cpu()
        pred = torch.topk(scores, k).indices.tolist()
        rows.append(qfvs_f1(pred, list(q.oracle), tags))
    return {m: 100.0 * float(np.mean([r[m] for r in rows])) for m in ("precision", "recall", "f1")}


def _tags(options: QFVSOptions) -> dict[str, np.ndarray]:
    all_tags = load_qfvs_tags(options.tags_path())
    return {name: all_tags[VIDEOS.index(name)] for name in options.videos}


def train(ctx) -> dict:
    """Leave-one-video-out: one head per held-out video (reported), plus optionally one head on all videos."""
    from egokit.checkpoint import save_pretrained

    options = _options(ctx)
    tags = _tags(options)
    videos, feats, model = _features(ctx, options)
    samples = {name: _samples(videos[name], feats[name]) for name in videos}
    folder = Path(ctx.output_dir) / "checkpoint"
    metrics = {}
    for k, test in enumerate(options.videos):
        train_samples = [s for name in options.videos if name != test for s in samples[name]]
        head = train_head(ctx, train_samples, options, model.config.width, ctx.seed + k)
        metrics[test] = evaluate_video(head, videos[test], feats[test], tags[test], options)
        if ctx.is_main:
            save_head(head, folder / FOLD_DIR, f"{test}.safetensors")
    metrics["average_f1"] = float(np.mean([metrics[v]["f1"] for v in options.videos]))
    if ctx.is_main:
        save_pretrained(model, folder, tokenizer=ctx.load_tokenizer(model))
        if options.final_head:
            save_head(train_head(ctx, [s for v in samples.values() for s in v], options, model.config.width, ctx.seed),
                      folder, HEAD_WEIGHTS)
    return {"metrics": metrics, "config": to_dict(options), "checkpoint": {"path": str(folder)}}


def evaluate(ctx) -> dict:
    """F1 of each video with the head trained without it (``qfvs_heads/<video>.safetensors`` in the checkpoint)."""
    options = _options(ctx)
    if ctx.checkpoint is None or not (Path(ctx.checkpoint) / FOLD_DIR).is_dir():
        raise CheckpointError(f"{ctx.checkpoint}: no {FOLD_DIR}/ with leave-one-out QFVS heads; train them with "
                              "`egokit train qfvs recipes/qfvs.yaml --ckpt ...` and evaluate its checkpoint folder")
    tags = _tags(options)
    videos, feats, _ = _features(ctx, options)
    metrics = {}
    for name in options.videos:
        head = load_head(Path(ctx.checkpoint) / FOLD_DIR / f"{name}.safetensors").to(ctx.device)
        metrics[name] = evaluate_video(head, videos[name], feats[name], tags[name], options)
    metrics["average_f1"] = float(np.mean([metrics[v]["f1"] for v in options.videos]))
    return {"metrics": metrics, "config": to_dict(options)}
