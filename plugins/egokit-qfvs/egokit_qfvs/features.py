"""Query-conditioned shot features, streamed segment by segment.

For each segment of ``segment_shots`` shots the unfused video blocks run once per shot, and their output is reused
by every prompt of the video (the prompts' unfused text layers run once each); only the fused CLS through
``cross_modal_video_transform`` is kept: (n_shots, width) per prompt. The official pipeline instead stores all
981 tokens of every shot, a (20, 200, 981, 768) float32 tensor of ~12 GB per video. egokit also splits segments
at fixed lengths rather than with KTS, and uses the deterministic eval transform (the official extraction crops at
random).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from egokit.tasks.api import EvalTransform, normalize_video, shot_features, tokenize_texts
from egokit_qfvs.data import QFVSVideo


def load_shot(paths: Sequence, size: int) -> torch.Tensor:
    """uint8 (len(paths), 3, size, size) from the shot's images (centre crop + resize)."""
    from PIL import Image

    frames = []
    for path in paths:
        with Image.open(path) as img:
            frames.append(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1))
    return EvalTransform(size)(torch.stack(frames))


@torch.no_grad()
def video_features(model, tokenizer, video: QFVSVideo, prompts: Sequence[str], *, segment_shots: int = 200,
                   batch_size: int = 16, max_length: int = 15, progress=None) -> dict[str, torch.Tensor]:
    """{prompt: float32 (n_shots, width)} on CPU."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    pre = model.config.preprocess
    ids, mask = tokenize_texts(tokenizer, list(prompts), max_length)
    ids, mask = ids.to(device), mask.to(device)
    text = model.fusion_text_prefix(ids, mask)
    out: dict[str, list[torch.Tensor]] = {p: [] for p in prompts}
    for first in range(0, video.num_shots, segment_shots):
        segment = video.shots[first:first + segment_shots]
        prefixes = []
        for b in range(0, len(segment), batch_size):
            clips = torch.stack([load_shot(s, pre.image_size) for s in segment[b:b + batch_size]])
            prefixes.append(model.fusion_video_prefix(normalize_video(clips.to(device), pre.mean, pre.std, dtype)))
        prefix = torch.cat(prefixes)
        for k, prompt in enumerate(prompts):
            for b in range(0, len(prefix), batch_size):
                v = prefix[b:b + batch_size]
                fused = model.fuse(v, text[k:k + 1].expand(len(v), -1, -1), mask[k:k + 1].expand(len(v), -1))
                out[prompt].append(shot_features(model, fused).float().cpu())
        if progress is not None:
            progress.advance(len(segment))
    return {p: torch.cat(v) for p, v in out.items()}
