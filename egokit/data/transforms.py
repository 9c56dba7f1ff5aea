"""Clip transforms on uint8 ``(F, 3, H, W)`` tensors, as in EgoVLPv2, with plain torch ops (no torchvision).

Frames stay uint8 until :func:`normalize_video`, which runs on the model's device: loaders then move 4x fewer
bytes, and the float conversion happens where it is cheap.

* :class:`TrainTransform` = ``RandomResizedCropVideo(size, scale=(0.5, 1), ratio=(3/4, 4/3))`` +
  ``RandomHorizontalFlipVideo(0.5)``: one crop and one flip decision for all frames of a clip. The crop box is
  drawn like torchvision's ``RandomResizedCrop.get_params`` (10 tries, then a centred fallback).
* :class:`EvalTransform` reproduces the official ``Resize(256), CenterCrop(256), Resize(224)``: the first two steps
  keep the central square of side = short side, the last scales it to 224. So the result is the central
  short-side square resized to ``size`` -- not the ImageNet-style "resize to 256, crop 224", which would keep only
  the central 87.5 %. egokit crops first and resizes once (one resampling instead of two; for 256-px Ego4D videos
  the official first resize is a no-op, so only the interpolation of the final resize differs).

Resizing is bilinear with antialiasing (``F.interpolate(..., antialias=True)``) computed in float32 and rounded
back to uint8.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalTransform", "TrainTransform", "normalize_video", "resize_uint8"]


def _check_video(video: torch.Tensor) -> None:
    if video.dtype != torch.uint8 or video.dim() != 4 or video.shape[1] != 3:
        raise ValueError(f"expected a uint8 (F, 3, H, W) video tensor, got {video.dtype} {tuple(video.shape)}")


def resize_uint8(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 ``(F, 3, H, W)`` to ``size = (h, w)``, rounded back to uint8."""
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    out = F.interpolate(video.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _rand(rng: torch.Generator | None) -> float:
    return float(torch.rand((), generator=rng))


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random crop covering ``scale`` of the area with aspect ratio (w/h) in ``ratio``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * _rand(rng))
        aspect = math.exp(log_lo + (log_hi - log_lo) * _rand(rng))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=rng))
            left = int(torch.randint(0, width - w + 1, (), generator=rng))
            return top, left, h, w
    # Fallback: the largest centred crop whose aspect ratio is clamped into `ratio`.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class TrainTransform:
    """Random resized crop + horizontal flip, identical for every frame of the clip."""

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
    ) -> None:
        if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]) or not 0 <= hflip <= 1:
            raise ValueError(f"invalid TrainTransform(scale={scale}, ratio={ratio}, hflip={hflip})")
        self.size, self.scale, self.ratio, self.hflip = size, tuple(scale), tuple(ratio), hflip

    def __call__(self, video: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        _check_video(video)
        top, left, h, w = random_resized_crop_box(video.shape[-2], video.shape[-1], self.scale, self.ratio, rng)
        out = resize_uint8(video[..., top : top + h, left : left + w], (self.size, self.size))
        if _rand(rng) < self.hflip:
            out = out.flip(-1)
        return out

    def __repr__(self) -> str:
        return f"TrainTransform(size={self.size}, scale={self.scale}, ratio={self.ratio}, hflip={self.hflip})"


class EvalTransform:
    """Central square of side = short side, resized to ``size`` (the official val/test pipeline, see module doc)."""

    def __init__(self, size: int = 224) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        _check_video(video)
        height, width = video.shape[-2:]
        side = min(height, width)
        # Same offsets as torchvision's center_crop: int(round((H - side) / 2)).
        top, left = int(round((height - side) / 2.0)), int(round((width - side) / 2.0))
        return resize_uint8(video[..., top : top + side, left : left + side], (self.size, self.size))

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"


def eval_transform(model) -> EvalTransform:
    """The evaluation transform at the checkpoint's resolution (``config.preprocess.image_size``)."""
    return EvalTransform(model.config.preprocess.image_size)


def train_transform(model, **kwargs: Any) -> TrainTransform:
    """The training transform at the checkpoint's resolution; ``kwargs`` as :class:`TrainTransform` (scale, hflip)."""
    return TrainTransform(model.config.preprocess.image_size, **kwargs)


def normalize_video(
    video_uint8: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(..., 3, H, W)`` uint8 -> ``(x / 255 - mean) / std`` in ``dtype``, on the tensor's own device."""
    if video_uint8.dtype != torch.uint8 or video_uint8.dim() < 3 or video_uint8.shape[-3] != 3:
        raise ValueError(f"expected a uint8 (..., 3, H, W) tensor, got {video_uint8.dtype} {tuple(video_uint8.shape)}")
    device = video_uint8.device
    if device.type == "cuda":  # cached: building them per call is a pageable copy + stream sync every batch
        scale, shift = _cuda_affine(tuple(map(float, mean)), tuple(map(float, std)), device)
    else:
        scale, shift = _affine(mean, std, device)
    return torch.addcmul(shift, video_uint8.to(torch.float32), scale).to(dtype)


def _affine(mean, std, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold /255 into the affine map: x * scale + shift, computed in float32 (the result is then cast)."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
    return 1.0 / (255.0 * std_t), -mean_t / std_t


@functools.lru_cache(maxsize=16)
def _cuda_affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    with torch.inference_mode(False):  # ordinary tensors even when first called under inference_mode
        return _affine(mean, std, device)
