"""The NLQ heads as a registry (``vslnet``, the default, and ``span``): build, loss and decoding of each.

Both read a collated batch of :class:`egokit_nlq.data.NLQFeatures` items and return start / end / highlight logits;
the loss is :func:`egokit_nlq.head.span_loss` (VSLNet widens the highlight target) and decoding keeps the top-k
(start, end) step pairs by p_start x p_end, in clip-relative seconds. Sizes and learning rates left unset take each
head's ``defaults``: VSLNet's official sizes; lr: the rate each head won ``bench/heads.py``'s sweep with at width 128
(the official VSLNet recipe uses 1e-3; sweep it on real features).
"""

from __future__ import annotations

from typing import Any

import torch

from egokit.tasks.api import FeatureSplit, HeadRegistry, HeadSpec
from egokit_nlq.head import SpanHead, span_loss, top_spans
from egokit_nlq.vslnet import VSLNetHead

__all__ = ["HEADS", "build_span", "build_vslnet", "decode", "head_loss"]


def _dims(split: FeatureSplit) -> tuple[int, int]:
    item = split.dataset[0]
    return item["video"].shape[-1], item["text"].shape[-1]


def build_vslnet(options, split: FeatureSplit) -> VSLNetHead:
    video_dim, text_dim = _dims(split)
    return VSLNetHead(video_dim, text_dim, options.dim, options.heads, options.layers, max_len=options.max_len,
                      max_text=options.text_length, dropout=options.dropout)


def build_span(options, split: FeatureSplit) -> SpanHead:
    video_dim, text_dim = _dims(split)
    return SpanHead(video_dim, text_dim, options.dim, options.heads, options.layers, options.max_len,
                    options.text_length, options.dropout)


def head_loss(head, batch: dict[str, torch.Tensor], options) -> torch.Tensor:
    """The training loss of either head on one collated batch (VSLNet widens the highlight target)."""
    s, e, h = head(batch["video"], batch["video_mask"], batch["text"], batch["text_mask"])
    return span_loss(s, e, h, batch["video_mask"], batch["start"], batch["end"], options.highlight_weight,
                     extend=getattr(head, "highlight_extend", 0.0))


def decode(head, batch: dict[str, torch.Tensor], split: FeatureSplit, options) -> list[dict[str, Any]]:
    """Official submission records: the top-k ``predicted_times`` (clip-relative seconds) of each query."""
    mask = batch["video_mask"]
    s, e, _ = head(batch["video"], mask, batch["text"], batch["text_mask"])
    spans, _ = top_spans(s, e, mask, k=options.top_k)
    lengths = mask.sum(-1).tolist()
    results = []
    for row, index, steps in zip(spans.cpu(), batch["index"].tolist(), lengths):
        q = split.dataset.queries[index]
        unit = q.duration / steps  # step i covers [i, i + 1) * unit s of the clip (see data.py)
        results.append({"clip_uid": q.clip_uid, "annotation_uid": q.annotation_uid, "query_idx": q.query_idx,
                        "predicted_times": [[round(float(a) * unit, 4), round(float(b + 1) * unit, 4)]
                                            for a, b in row.tolist()]})
    return results


HEADS = HeadRegistry(
    HeadSpec("vslnet", VSLNetHead, build_vslnet, head_loss, decode,
             defaults={"heads": 8, "layers": 4, "dropout": 0.2, "lr": 3e-3},
             description="VSLNet, the official EgoNLQ head re-implemented (egokit_nlq.vslnet)"),
    HeadSpec("span", SpanHead, build_span, head_loss, decode,
             defaults={"heads": 4, "layers": 2, "dropout": 0.1, "lr": 1e-3},
             description="egokit's joint-attention transformer span head (egokit_nlq.head)"),
    default="vslnet",
)
