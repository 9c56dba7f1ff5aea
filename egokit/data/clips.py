"""A dataset of video clips given as (file, start, end): what most retrieval-style tasks evaluate on.

Items are ``{"index": i, "video": uint8 (F, 3, H, W)}`` (plus the clip's ``extras`` tensors), the layout
:func:`egokit.engine.features.map_dataset` and the retrieval family expect. A clip without times is the whole
video. Frames are the middles of ``num_frames`` equal bins (``sampling="uniform"``, evaluation) or drawn within
each bin (``"rand"``, training; from torch's generator, so seeded runs repeat), then ``transform`` (e.g.
:func:`egokit.data.transforms.eval_transform` of the checkpoint). Per-clip ``extras`` (a class target, a caption's
token ids) ride along as tensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from egokit.data.video import probe_video, read_clip
from egokit.errors import DataError

__all__ = ["Clip", "VideoClips", "item_rng"]


def item_rng(index: int):
    """A numpy generator for one item's random draws, seeded from torch's generator and the item index: torch
    seeds each DataLoader worker and epoch, so seeded runs repeat whatever the worker count."""
    import numpy as np

    return np.random.default_rng([int(torch.randint(0, 2**62, ())), index])


@dataclass(frozen=True)
class Clip:
    """One clip: ``path`` and, optionally, ``start``/``end`` in seconds (``None``: the video's start / end)."""

    path: str | os.PathLike
    start: float | None = None
    end: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


class VideoClips(Dataset):
    """``clips`` (each a :class:`Clip` or a path) -> ``{"index", "video", **extras}`` items."""

    def __init__(self, clips: Sequence[Clip | str | os.PathLike], num_frames: int, *,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, short_side: int | None = None,
                 sampling: str = "uniform") -> None:
        self.clips = [c if isinstance(c, Clip) else Clip(c) for c in clips]
        missing = [str(c.path) for c in self.clips if not Path(c.path).is_file()]
        if missing:
            raise DataError(f"{len(missing)} video file(s) not found, first: {missing[0]}")
        self.num_frames, self.transform, self.short_side, self.sampling = num_frames, transform, short_side, sampling

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        start = clip.start or 0.0
        end = clip.end if clip.end is not None else probe_video(clip.path).duration
        rng = item_rng(index) if self.sampling == "rand" else None
        video = read_clip(clip.path, start, end, self.num_frames, sampling=self.sampling, rng=rng,
                          short_side=self.short_side)
        if self.transform is not None:
            video = self.transform(video)
        extras = {k: torch.as_tensor(v) for k, v in clip.extras.items()}
        return {"index": index, "video": video, **extras}
