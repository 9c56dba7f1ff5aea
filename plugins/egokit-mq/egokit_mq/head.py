"""egokit's anchor-free detection head for EgoMQ (``head_type=anchor-free``; ActionFormer-lite).

A temporal conv stem, a small pre-LN transformer and, per time step, a sigmoid score per class (focal loss) and the
distances to the moment's start and end (1-D IoU loss), decoded with per-class NMS: no anchors and far smaller than
VSGN. Which head is better: README, "Tasks".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class DetectionHead(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, dim: int = 128, heads: int = 4, layers: int = 2,
                 max_len: int = 2048, dropout: float = 0.1, prior: float = 0.01) -> None:
        super().__init__()
        self.config = dict(in_dim=in_dim, num_classes=num_classes, dim=dim, heads=heads, layers=layers,
                           max_len=max_len, dropout=dropout, prior=prior)
        self.norm_in = nn.LayerNorm(in_dim)
        self.stem = nn.Sequential(nn.Conv1d(in_dim, dim, 3, padding=1), nn.GELU(), nn.Conv1d(dim, dim, 3, padding=1))
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.cls = nn.Linear(dim, num_classes)
        self.reg = nn.Linear(dim, 2)
        nn.init.constant_(self.cls.bias, -torch.log(torch.tensor((1 - prior) / prior)).item())

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) features, (B, T) bool -> class logits (B, T, C) and boundary distances (B, T, 2) in steps."""
        x = self.norm_in(video) * mask[..., None]
        x = self.stem(x.transpose(1, 2)).transpose(1, 2) + self.pos[: video.shape[1]]
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        return self.cls(x), F.relu(self.reg(x))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return weight * ce * (1 - p_t) ** gamma


def iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - IoU of segments given as (distance to start, distance to end) from the same point."""
    inter = torch.minimum(pred[..., 0], target[..., 0]) + torch.minimum(pred[..., 1], target[..., 1])
    union = torch.maximum(pred[..., 0], target[..., 0]) + torch.maximum(pred[..., 1], target[..., 1])
    return 1 - inter / union.clamp(min=1e-6)


def detection_loss(logits: torch.Tensor, dist: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                   target_dist: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Focal classification over valid steps + IoU regression on positive steps, both per positive step.

    ``step`` (B,) is each clip's step period in seconds; targets are in seconds, predictions in steps.
    """
    positive = (labels.sum(-1) > 0) & mask
    n_pos = positive.sum().clamp(min=1)
    cls = (focal_loss(logits, labels).sum(-1) * mask).sum() / n_pos
    pred = dist * step[:, None, None]
    reg = (iou_loss(pred, target_dist) * positive).sum() / n_pos
    return cls + reg


def nms_1d(segments: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Indices kept by greedy NMS on (N, 2) segments (tIoU > threshold with a kept segment suppresses)."""
    order = scores.argsort(descending=True).numpy()
    seg = segments.double().numpy()[order]
    inter = (np.minimum(seg[:, None, 1], seg[None, :, 1]) - np.maximum(seg[:, None, 0], seg[None, :, 0])).clip(0)
    length = seg[:, 1] - seg[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        over = inter / (length[:, None] + length[None, :] - inter) > threshold  # 0/0 (empty union): never
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for r in range(len(order)):
        if not suppressed[r]:
            keep.append(int(order[r]))
            suppressed |= over[r]
    return keep


def select_detections(scores: torch.Tensor, segments: torch.Tensor, *, score_threshold: float = 0.001,
                      pre_nms: int = 2000, nms_threshold: float = 0.5,
                      max_detections: int = 100) -> list[tuple[int, float, float, float]]:
    """Detections ``(class, start, end, score)`` from (N, C) scores of (N, 2) candidate segments (seconds): the
    ``pre_nms`` best (candidate, class) pairs above the threshold, per-class NMS, best ``max_detections``."""
    flat = scores.flatten()
    k = min(pre_nms, int((flat > score_threshold).sum()))
    if k == 0:
        return []
    top, idx = flat.topk(k)
    n, c = idx // scores.shape[1], idx % scores.shape[1]
    out = []
    for cls in c.unique().tolist():
        sel = (c == cls).nonzero().flatten()
        for i in nms_1d(segments[n[sel]], top[sel], nms_threshold):
            j = sel[i]
            out.append((cls, float(segments[n[j], 0]), float(segments[n[j], 1]), float(top[j])))
    out.sort(key=lambda d: -d[3])
    return out[:max_detections]


@torch.no_grad()
def decode(logits: torch.Tensor, dist: torch.Tensor, times: torch.Tensor, step: float, duration: float,
           *, score_threshold: float = 0.001, pre_nms: int = 2000, nms_threshold: float = 0.5,
           max_detections: int = 100) -> list[tuple[int, float, float, float]]:
    """Detections ``(class, start, end, score)`` of one clip from its (T, C) logits, (T, 2) distances, (T,) times."""
    starts = (times - dist[:, 0] * step).clamp(min=0)
    ends = (times + dist[:, 1] * step).clamp(max=duration)
    return select_detections(logits.float().sigmoid(), torch.stack([starts, ends], dim=-1),
                             score_threshold=score_threshold, pre_nms=pre_nms, nms_threshold=nms_threshold,
                             max_detections=max_detections)
