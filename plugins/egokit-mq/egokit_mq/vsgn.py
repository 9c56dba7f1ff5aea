"""VSGN-style detection head (``head_type=vsgn``): the official EgoMQ baseline, re-written from the paper.

Zhao et al., "Video Self-Stitching Graph Network for Temporal Action Localization" (ICCV 2021), as used by the
Ego4D / EgoVLPv2 EgoMQ baseline. Written from the paper's description, not from the official code.
Coordinates are in *cells*: step ``i`` of a clip covers ``[i, i + 1)`` (its centre time is ``times[i]``).

1. **xGPN** (cross-scale graph pyramid): ``Conv1d(k3)+ReLU`` input projection; an encoder of ``levels`` xGN
   blocks (level 0 at full resolution, each further level followed by max-pool /2); a decoder that up-samples
   (transposed conv) and adds a lateral conv of the encoder level of the same resolution. An **xGN** block sums a
   temporal branch (``Conv1d k3``) and a graph branch: each step is connected to its ``neighbours`` nearest steps
   in feature space (padding excluded), edge features ``[x_i, x_j - x_i]`` go through a linear layer and are
   max-aggregated (EdgeConv), then ReLU.
2. **Anchors**: at level ``l`` (stride ``2^l`` cells) one anchor per position and scale, centred on the position,
   ``2^l x scale`` cells long (official scales 1 and 10). Shared towers (``head_layers`` x [conv k3 + norm +
   ReLU]) predict per anchor ``C + 1`` class logits (0 = background) and a (centre, log-length) offset (box coder
   weights 10 and 5). Anchors with tIoU >= 0.5 with a moment (and the best anchor of every moment) are positives;
   loss = CE averaged over positives + CE averaged over negatives + GIoU of the decoded segments.
3. **Boundary adjustment** (stage 2): features of the finest decoder level sampled at each stage-1 boundary and
   at +-length/8 give a start and an end offset (in segment lengths); trained with GIoU on stage-1 segments that
   overlap a moment with tIoU >= 0.7.
4. **Score refinement**: actionness / startness / endness per step (sigmoid, class-balanced BCE, weight 0.2 each)
   from the finest level; a detection's score is ``p(class) x p_start(start) x p_end(end)``.

Simplified versus the paper / official code: **video self-stitching (VSS) is omitted** (the official EgoMQ
training script does not enable it either; without VSS the "cross-scale" graph edges connect steps of the one
scale present, so xGN is a dynamic kNN graph over the sequence); variable-length clips are padded to a multiple of
``2^(levels-1)`` and masked instead of resized to a fixed 928 steps; the tower norm is a per-step LayerNorm rather
than GroupNorm (predictions do not depend on batch padding); the stage-2 sampling uses linear interpolation;
post-processing is the same per-class NMS as the anchor-free head (no Soft-NMS).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from egokit_mq.head import select_detections


class XGN(nn.Module):
    """Temporal conv branch + kNN EdgeConv graph branch (max aggregation), summed, ReLU, optional max-pool /2."""

    def __init__(self, dim: int, neighbours: int, downsample: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.center = nn.Linear(dim, dim)  # edge function W [x_i, x_j - x_i] = center(x_i) + neighbour(x_j)
        self.neighbour = nn.Linear(dim, dim, bias=False)
        self.k, self.downsample = neighbours, downsample

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, D, n) features, (B, n) bool -> (B, D, n) (or n / 2 when down-sampling)."""
        b, d, n = x.shape
        feats = x.transpose(1, 2)  # (B, n, D)
        dist = torch.cdist(feats, feats).masked_fill(~mask[:, None, :], float("inf"))
        k = min(self.k, n)
        near_dist, near = dist.topk(k, dim=-1, largest=False)  # (B, n, k)
        proj = self.neighbour(feats)  # (B, n, D)
        gathered = proj.gather(1, near.reshape(b, n * k, 1).expand(-1, -1, d)).reshape(b, n, k, d)
        gathered = gathered.masked_fill(torch.isinf(near_dist)[..., None], float("-inf"))
        graph = (self.center(feats) - self.neighbour(feats) + gathered.amax(2)).nan_to_num(0.0, 0.0, 0.0)
        out = torch.relu(self.conv(x) + graph.transpose(1, 2)) * mask[:, None, :]
        return F.max_pool1d(out, 2) if self.downsample else out


class _ChannelNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class _Tower(nn.Module):
    """``layers`` x [conv k3 (+ norm) + ReLU], then a conv to ``out`` channels; padding re-zeroed between layers."""

    def __init__(self, dim: int, layers: int, out: int, norm: bool = True, out_kernel: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(dim, dim, 3, padding=1), _ChannelNorm(dim) if norm else nn.Identity(), nn.ReLU())
            for _ in range(layers))
        self.out = nn.Conv1d(dim, out, out_kernel, padding=out_kernel // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) * mask[:, None]
        return self.out(x)


def segment_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., N, 2) x (..., M, 2) -> (..., N, M) tIoU."""
    inter = (torch.minimum(a[..., :, None, 1], b[..., None, :, 1])
             - torch.maximum(a[..., :, None, 0], b[..., None, :, 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0])[..., :, None] + (b[..., 1] - b[..., 0])[..., None, :] - inter
    return inter / union.clamp(min=1e-6)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - generalised IoU of paired (N, 2) segments."""
    inter = (torch.minimum(pred[:, 1], target[:, 1]) - torch.maximum(pred[:, 0], target[:, 0])).clamp(min=0)
    union = (pred[:, 1] - pred[:, 0]).clamp(min=0) + (target[:, 1] - target[:, 0]) - inter
    hull = torch.maximum(pred[:, 1], target[:, 1]) - torch.minimum(pred[:, 0], target[:, 0])
    iou = inter / union.clamp(min=1e-6)
    return 1 - iou + (hull - union) / hull.clamp(min=1e-6)


def _sample(feats: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of (B, D, T) features at continuous cell coordinates (B, N) -> (B, N, D)."""
    t = feats.shape[-1]
    idx = (pos - 0.5).clamp(0, t - 1)
    lo = idx.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    w = (idx - lo.float())[..., None]
    f = feats.transpose(1, 2)
    take = lambda i: f.gather(1, i[..., None].expand(-1, -1, f.shape[-1]))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def _interp(curve: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(T,) values at continuous cell coordinates (N,) (cell centres at i + 0.5)."""
    return _sample(curve[None, None], pos[None])[0, :, 0]


class VSGNHead(nn.Module):
    """xGPN + anchor heads + boundary adjustment + supplementary scores (module docstring). Defaults follow the
    official EgoMQ configuration except the width (official 256)."""

    def __init__(self, in_dim: int, num_classes: int, dim: int = 128, levels: int = 5, neighbours: int = 12,
                 anchor_scales: tuple[float, ...] | list[float] = (1.0, 10.0), head_layers: int = 4,
                 box_weights: tuple[float, float] | list[float] = (10.0, 5.0), refine: bool = True) -> None:
        super().__init__()
        self.config = dict(in_dim=in_dim, num_classes=num_classes, dim=dim, levels=levels, neighbours=neighbours,
                           anchor_scales=list(anchor_scales), head_layers=head_layers, box_weights=list(box_weights),
                           refine=refine)
        self.num_classes, self.levels, self.refine = num_classes, levels, refine
        self.scales, self.box_weights = list(anchor_scales), list(box_weights)
        self.stem = nn.Sequential(nn.Conv1d(in_dim, dim, 3, padding=1), nn.ReLU())
        self.encoder = nn.ModuleList(XGN(dim, neighbours, downsample=level > 0) for level in range(levels))
        self.up = nn.ModuleList(nn.ConvTranspose1d(dim, dim, 2, stride=2) for _ in range(levels - 1))
        self.lateral = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=1) for _ in range(levels - 1))
        a = len(self.scales)
        self.cls_tower = _Tower(dim, head_layers, a * (num_classes + 1))
        self.reg_tower = _Tower(dim, head_layers, a * 2)
        self.actionness, self.startness, self.endness = (_Tower(dim, 1, 1, norm=False, out_kernel=1)
                                                          for _ in range(3))
        self.start_adjust = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))
        self.end_adjust = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def anchors(self, length: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchors (N, 2) in cells for a padded length, level by level (positions outer, scales inner), and the
        level index of each."""
        out, level_of = [], []
        for level in range(self.levels):
            stride = 2 ** level
            centres = (torch.arange(length // stride, device=device, dtype=torch.float32) + 0.5) * stride
            half = torch.tensor(self.scales, device=device) * stride / 2
            out.append(torch.stack([centres[:, None] - half, centres[:, None] + half], dim=-1).reshape(-1, 2))
            level_of.append(torch.full((len(out[-1]),), level, device=device))
        return torch.cat(out), torch.cat(level_of)

    def _decode(self, anchors: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
        centre, length = anchors.mean(-1), anchors[:, 1] - anchors[:, 0]
        c = centre + reg[..., 0] / self.box_weights[0] * length
        half = length * torch.exp((reg[..., 1] / self.box_weights[1]).clamp(max=math.log(1000.0))) / 2
        return torch.stack([c - half, c + half], dim=-1)

    def forward(self, video: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, D) features, (B, T) bool -> per anchor ``cls`` (B, N, C+1) logits, stage-1 ``boxes`` and
        refined ``refined`` (B, N, 2) in cells, ``anchor_mask`` (B, N), ``anchors`` (N, 2); per step ``action``,
        ``start``, ``end`` logits (B, T)."""
        b, t, _ = video.shape
        multiple = 2 ** (self.levels - 1)
        padded = math.ceil(t / multiple) * multiple
        x = F.pad(video * mask[..., None], (0, 0, 0, padded - t)).transpose(1, 2)
        m = F.pad(mask, (0, padded - t))
        masks, enc = [m], []
        x = self.stem(x) * m[:, None]
        for level, block in enumerate(self.encoder):
            x = block(x, masks[-1])
            if level > 0:
                masks.append(F.max_pool1d(masks[-1][:, None].float(), 2)[:, 0] > 0)
                x = x * masks[-1][:, None]
            enc.append(x)
        dec = [enc[-1]]
        for level in range(self.levels - 2, -1, -1):
            up = self.up[level](dec[0])
            dec.insert(0, torch.relu(up + self.lateral[level](enc[level])) * masks[level][:, None])
        a, c = len(self.scales), self.num_classes + 1
        cls = torch.cat([self.cls_tower(f, mk).transpose(1, 2).reshape(b, -1, c) for f, mk in zip(dec, masks)], 1)
        reg = torch.cat([self.reg_tower(f, mk).transpose(1, 2).reshape(b, -1, 2) for f, mk in zip(dec, masks)], 1)
        anchors, _ = self.anchors(padded, video.device)
        anchor_mask = torch.cat([mk.repeat_interleave(a, dim=1) for mk in masks], dim=1)
        boxes = self._decode(anchors, reg)
        fine = dec[0]
        stage1 = boxes.detach()
        delta = (stage1[..., 1] - stage1[..., 0]).clamp(min=1e-3)
        points = [-delta / 8, torch.zeros_like(delta), delta / 8]
        start_feats = torch.cat([_sample(fine, stage1[..., 0] + p) for p in points], dim=-1)
        end_feats = torch.cat([_sample(fine, stage1[..., 1] + p) for p in points], dim=-1)
        refined = torch.stack([stage1[..., 0] + self.start_adjust(start_feats)[..., 0] * delta,
                               stage1[..., 1] + self.end_adjust(end_feats)[..., 0] * delta], dim=-1)
        per_step = {name: head(fine, m)[:, 0, :t] for name, head in
                    (("action", self.actionness), ("start", self.startness), ("end", self.endness))}
        return {"cls": cls, "boxes": boxes, "refined": refined, "anchor_mask": anchor_mask, "anchors": anchors,
                **per_step}


def _balanced_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE with positives and negatives each weighted to half of the loss (BMN-style class balancing)."""
    pos, neg = (target > 0.5) & mask, (target <= 0.5) & mask
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = bce[pos].mean() if pos.any() else logits.sum() * 0
    return 0.5 * loss + 0.5 * (bce[neg].mean() if neg.any() else logits.sum() * 0)


def vsgn_loss(out: dict[str, torch.Tensor], segments: torch.Tensor, mask: torch.Tensor, *, pos_iou: float = 0.5,
              refine_iou: float = 0.7, supplement_weight: float = 0.2) -> torch.Tensor:
    """Training loss for one batch. ``segments`` (B, M, 3): (start cell, end cell, class), class -1 = padding."""
    b, n = out["anchor_mask"].shape
    gt, gt_class, has_gt = segments[..., :2], segments[..., 2].long(), segments[..., 2] >= 0
    usable = out["anchor_mask"][..., None] & has_gt[:, None, :]  # (B, N, M)
    # stage 1: anchors matched at tIoU >= pos_iou, plus the best anchor of every moment
    iou = segment_iou(out["anchors"].expand(b, -1, -1), gt).masked_fill(~usable, -1.0)
    best, which = iou.max(-1)
    positive = best >= pos_iou
    best_anchor = torch.zeros(b, n, device=mask.device).scatter_add_(
        1, iou.argmax(1), (has_gt & (iou.amax(1) > 0)).float())
    positive |= best_anchor > 0
    target = torch.where(positive, gt_class.gather(1, which) + 1, torch.zeros_like(which))
    ce = F.cross_entropy(out["cls"].flatten(0, 1), target.flatten(), reduction="none").view_as(target)
    negative = ~positive & out["anchor_mask"]
    zero = out["cls"].sum() * 0
    loss = (ce[positive].mean() if positive.any() else zero) + (ce[negative].mean() if negative.any() else zero)
    matched = gt.gather(1, which[..., None].expand(-1, -1, 2))
    if positive.any():
        loss = loss + giou_loss(out["boxes"][positive], matched[positive]).mean()
    # stage 2: boundary adjustment of stage-1 segments that already overlap a moment well
    iou2 = segment_iou(out["boxes"].detach(), gt).masked_fill(~usable, -1.0)
    best2, which2 = iou2.max(-1)
    good = best2 >= refine_iou
    if good.any():
        matched2 = gt.gather(1, which2[..., None].expand(-1, -1, 2))
        loss = loss + giou_loss(out["refined"][good], matched2[good]).mean()
    # supplementary actionness / startness / endness (boundary regions of width max(1, 0.1 x length) cells)
    centre = (torch.arange(mask.shape[1], device=mask.device).float() + 0.5)[None, :, None]
    half = (0.05 * (gt[..., 1] - gt[..., 0])).clamp(min=0.5)[:, None, :]
    real = has_gt[:, None, :]
    inside = ((centre >= gt[:, None, :, 0]) & (centre <= gt[:, None, :, 1]) & real).any(-1).float()
    starts = (((centre - gt[:, None, :, 0]).abs() <= half) & real).any(-1).float()
    ends = (((centre - gt[:, None, :, 1]).abs() <= half) & real).any(-1).float()
    supplement = sum(_balanced_bce(out[name], tgt, mask) for name, tgt in
                     (("action", inside), ("start", starts), ("end", ends)))
    return loss + supplement_weight * supplement


@torch.no_grad()
def vsgn_detections(out: dict[str, torch.Tensor], i: int, length: int, times: torch.Tensor, step: float,
                    duration: float, *, refine: bool = True, score_threshold: float = 0.001, pre_nms: int = 2000,
                    nms_threshold: float = 0.5, max_detections: int = 100) -> list[tuple[int, float, float, float]]:
    """Detections ``(class, start, end, score)`` in seconds for clip ``i`` of a batch (``length`` valid steps with
    centre ``times``; ``step`` seconds per step)."""
    keep = out["anchor_mask"][i]
    boxes = (out["refined"] if refine else out["boxes"])[i][keep].float().cpu()
    boxes = torch.stack([boxes.min(-1).values, boxes.max(-1).values], dim=-1).clamp(0, length)
    probs = out["cls"][i][keep].float().softmax(-1)[:, 1:].cpu()
    p_start = out["start"][i, :length].float().sigmoid().cpu()
    p_end = out["end"][i, :length].float().sigmoid().cpu()
    scores = probs * (_interp(p_start, boxes[:, 0]) * _interp(p_end, boxes[:, 1]))[:, None]
    seconds = (times[0] + (boxes - 0.5) * step).clamp(0, duration)
    return select_detections(scores, seconds, score_threshold=score_threshold, pre_nms=pre_nms,
                             nms_threshold=nms_threshold, max_detections=max_detections)
