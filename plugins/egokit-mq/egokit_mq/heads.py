"""The EgoMQ heads as a registry: ``vsgn`` (the default, the official baseline re-implemented) and ``anchor-free``
(egokit's transformer detector), each with its sizes, loss and decoder.

Depth and learning rate left unset take each head's ``defaults``: VSGN towers of 2 conv layers (official 4; 2 did better
in ``bench/heads.py``), lr: the rate each head won that sweep with at width 128 (the official recipe grid-searches it).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from egokit.tasks.api import HeadRegistry, HeadSpec
from egokit_mq.head import DetectionHead, decode, detection_loss
from egokit_mq.vsgn import VSGNHead, vsgn_detections, vsgn_loss

__all__ = ["HEADS", "build_head", "step_seconds"]


def step_seconds(times: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per clip, the mean spacing of its steps (seconds)."""
    n = mask.sum(-1)
    last = times.gather(1, (n - 1).clamp(min=0)[:, None])[:, 0]
    return ((last - times[:, 0]) / (n - 1).clamp(min=1)).clamp(min=1e-3)


def _vsgn(options, in_dim: int, num_classes: int, layers: int) -> VSGNHead:
    return VSGNHead(in_dim, num_classes, options.dim, head_layers=layers)


def _anchor_free(options, in_dim: int, num_classes: int, layers: int) -> DetectionHead:
    return DetectionHead(in_dim, num_classes, options.dim, options.heads, layers, dropout=options.dropout)


def build_head(options, in_dim: int, num_classes: int) -> VSGNHead | DetectionHead:
    """The head named by ``options.head_type`` (unset: the default, VSGN), sized by the options (unset depth:
    the head's own default)."""
    spec = HEADS[options.head_type or HEADS.default]
    layers = options.layers if options.layers is not None else spec.defaults["layers"]
    return _MAKE[spec.name](options, in_dim, num_classes, layers)


def _build(options, split) -> VSGNHead | DetectionHead:
    return build_head(options, split.dataset[0]["video"].shape[1], len(split.info["classes"]))


def _vsgn_loss(head: VSGNHead, batch: dict[str, torch.Tensor], options) -> torch.Tensor:
    return vsgn_loss(head(batch["video"], batch["mask"]), batch["segments"], batch["mask"])


def _anchor_free_loss(head: DetectionHead, batch: dict[str, torch.Tensor], options) -> torch.Tensor:
    logits, dist = head(batch["video"], batch["mask"])
    return detection_loss(logits, dist, batch["mask"], batch["labels"], batch["dist"],
                          step_seconds(batch["times"], batch["mask"]))


def _vsgn_found(head: VSGNHead, outputs, i: int, n: int, times, step: float, duration: float, **post):
    return vsgn_detections(outputs, i, n, times, step, duration, refine=head.refine, **post)


def _anchor_free_found(head: DetectionHead, outputs, i: int, n: int, times, step: float, duration: float, **post):
    logits, dist = outputs
    return decode(logits[i, :n].cpu(), dist[i, :n].cpu(), times, step, duration, **post)


def _predictor(found: Callable[..., list[tuple[int, float, float, float]]]):
    def predict_batch(head, batch: dict[str, torch.Tensor], split, options) -> list[dict[str, Any]]:
        """Detections of one collated batch as official result records (``clip_uid``, ``label``, ``start``,
        ``end``, ``score``): per clip the best ``max_detections`` after per-class NMS."""
        outputs = head(batch["video"], batch["mask"])
        times, mask = batch["times"].cpu(), batch["mask"].cpu()
        steps = step_seconds(times, mask)
        out = []
        for i, index in enumerate(batch["index"].tolist()):
            clip = split.dataset.clips[index]
            n = int(mask[i].sum())
            for cls, start, end, score in found(head, outputs, i, n, times[i, :n], float(steps[i]), clip.duration,
                                                nms_threshold=options.nms_threshold,
                                                max_detections=options.max_detections):
                out.append({"clip_uid": clip.clip_uid, "label": split.dataset.classes[cls],
                            "start": round(start, 4), "end": round(end, 4), "score": round(score, 6)})
        return out

    return predict_batch


_MAKE = {"vsgn": _vsgn, "anchor-free": _anchor_free}

HEADS = HeadRegistry(
    HeadSpec("vsgn", VSGNHead, _build, _vsgn_loss, _predictor(_vsgn_found), defaults={"layers": 2, "lr": 1e-3},
             description="VSGN (the official baseline, re-implemented): anchors on a graph pyramid, boundary "
                         "adjustment"),
    HeadSpec("anchor-free", DetectionHead, _build, _anchor_free_loss, _predictor(_anchor_free_found),
             defaults={"layers": 2, "lr": 1e-2},
             description="egokit's single-scale anchor-free transformer detector"),
    default="vsgn",
)
