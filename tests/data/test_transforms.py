from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egokit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    normalize_video,
    random_resized_crop_box,
)


def smooth_video(
    frames: int = 4, height: int = 256, width: int = 456, seed: int = 0, cell: int = 16
) -> torch.Tensor:
    """uint8 clip of smooth random content (noise upsampled from ``cell``-pixel cells), different per frame."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(frames, 3, max(1, height // cell), max(1, width // cell), generator=g) * 255
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).round().to(torch.uint8)


def coordinate_video(frames: int = 3, height: int = 64, width: int = 96) -> torch.Tensor:
    """Channel 0 = column, channel 1 = row, channel 2 = frame number: lets tests see where a crop came from."""
    cols = torch.arange(width).expand(height, width)
    rows = torch.arange(height)[:, None].expand(height, width)
    video = torch.stack(
        [torch.stack([cols, rows, torch.full((height, width), f)]) for f in range(frames)]
    )
    return video.to(torch.uint8)


def test_train_transform_shape_dtype_and_reproducibility() -> None:
    video = smooth_video()
    tf = TrainTransform(size=224)
    out = tf(video, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 224, 224) and out.dtype == torch.uint8
    assert torch.equal(out, tf(video, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, tf(video, torch.Generator().manual_seed(1)))


def test_train_transform_uses_one_crop_and_flip_for_all_frames() -> None:
    # Identical frames must stay identical after the transform, whatever crop/flip was drawn.
    frame = smooth_video(frames=1)
    video = frame.expand(5, -1, -1, -1).contiguous()
    for seed in range(10):
        out = TrainTransform(size=64)(video, torch.Generator().manual_seed(seed))
        assert all(torch.equal(out[0], out[f]) for f in range(1, 5))


def test_train_transform_no_scale_no_flip_is_a_plain_resize() -> None:
    # scale=(1, 1) and ratio = the frame's own aspect: the crop is the whole frame; hflip=0: no flip.
    video = coordinate_video(height=64, width=96)
    out = TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.5, 1.5), hflip=0.0)(video)
    expected = F.interpolate(video.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(out, expected.round().to(torch.uint8))
    assert out[0, 0, 0, 0] < out[0, 0, 0, -1]  # columns increase left to right: not flipped


def test_train_transform_always_flips_with_p1() -> None:
    video = coordinate_video(height=64, width=96)
    out = TrainTransform(size=32, scale=(1.0, 1.0), ratio=(1.5, 1.5), hflip=1.0)(video)
    assert out[0, 0, 0, 0] > out[0, 0, 0, -1]
    assert torch.equal(out[:, 2, 0, 0], torch.tensor([0, 1, 2], dtype=torch.uint8))  # frame order kept


def test_crop_box_respects_scale_and_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_box(256, 456, (0.5, 1.0), (3 / 4, 4 / 3), g)
        assert 0 <= top and top + h <= 256 and 0 <= left and left + w <= 456
        # rounding w and h to integers moves area and ratio a little
        assert 0.5 * 256 * 456 * 0.98 <= h * w <= 256 * 456
        assert 3 / 4 * 0.97 <= w / h <= 4 / 3 * 1.03


def test_crop_box_fallback_is_centred() -> None:
    # a 10x1000 strip cannot hold any crop with ratio <= 4/3 and area >= 50%: fallback to the centred 10x13 crop
    assert random_resized_crop_box(10, 1000, (0.5, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0)) == (
        0, 493, 10, 13
    )


def test_eval_transform_is_center_square_then_resize() -> None:
    video = smooth_video()
    out = EvalTransform(224)(video)
    assert out.shape == (4, 3, 224, 224) and out.dtype == torch.uint8
    assert torch.equal(out, EvalTransform(224)(video))
    # independent computation: the central 256x256 square of the 456x256 frame (columns 100..355), resized
    square = video[..., :, 100:356].float()
    expected = F.interpolate(square, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(out, expected.round().clamp(0, 255).to(torch.uint8))


def test_eval_transform_matches_official_torchvision_pipeline() -> None:
    tv = pytest.importorskip("torchvision.transforms", reason="torchvision is optional")
    official = tv.Compose([tv.Resize(256), tv.CenterCrop(256), tv.Resize(224)])
    for height, width in [(256, 456), (360, 640), (480, 270)]:
        video = smooth_video(frames=2, height=height, width=width, seed=height, cell=64)
        ref = official(video.float() / 255) * 255
        diff = (EvalTransform(224)(video).float() - ref).abs()
        # Same view up to interpolation: egokit resamples once, the official pipeline twice (and rounds the
        # intermediate width, which shifts its crop by a fraction of a pixel).
        assert diff.mean() < 1.0 and diff.max() < 8, (height, width, diff.mean(), diff.max())
        # The ImageNet-style eval (short side 256, centre crop 224) is a different view: far from the reference.
        imagenet = tv.Compose([tv.Resize(256), tv.CenterCrop(224)])(video.float())
        assert (imagenet - ref).abs().mean() > 4 * diff.mean()


def test_normalize_video_matches_formula_and_keeps_device() -> None:
    video = smooth_video(frames=2, height=8, width=8)
    out = normalize_video(video)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert out.dtype == torch.float32 and out.device == video.device
    torch.testing.assert_close(out, (video.float() / 255 - mean) / std)
    assert normalize_video(video, dtype=torch.bfloat16).dtype == torch.bfloat16
    batched = normalize_video(video.unsqueeze(0))
    torch.testing.assert_close(batched[0], out)


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 8, 8, dtype=torch.uint8)])
def test_transforms_reject_wrong_input(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        normalize_video(bad)
    with pytest.raises(ValueError):
        EvalTransform()(bad)
    with pytest.raises(ValueError):
        TrainTransform()(bad)
