"""Synth-style test material: scenes showing one known object, videos made of such shots, and a tiny VTM model
trained in-process to tell which object a clip shows. Shared by the summarisation and task-plugin tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from egokit.synth.clips import one_object_scene, render_scene as render, write_video as write_mp4

__all__ = ["NOUNS", "one_object_scene", "render", "shot_video", "train_vtm", "write_mp4"]

NOUNS = (("red", "ball"), ("blue", "box"), ("green", "cup"), ("yellow", "cone"))


def shot_video(path: Path, shot_nouns, *, seed: int, shot_seconds: float = 1.0, fps: int = 8, size: int = 64) -> Path:
    """A video of consecutive shots; shot k shows only ``shot_nouns[k]`` in its own random room."""
    rng = np.random.default_rng(seed)
    per_shot = int(round(shot_seconds * fps))
    clips = [render(one_object_scene(rng, c, s), np.arange(per_shot) / fps, size) for c, s in shot_nouns]
    return write_mp4(path, np.concatenate(clips), fps)


def train_vtm(model, tokenizer, query_noun: tuple[str, str], *, steps: int = 100, seed: int = 0, batch: int = 32) -> str:
    """Teach ``model`` (in place, fusion mode) whether a one-object clip shows ``query_noun``; returns the query.

    The pool of clips and the prefixes of the unfused layers are computed once and only the fused layers and heads
    train (gates opened to 1), which makes a few dozen CPU steps enough.
    """
    from egokit.data.transforms import normalize_video

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    size, frames = model.config.image_size, model.config.num_frames
    labels = np.arange(64) % len(NOUNS)
    clips = np.stack([render(one_object_scene(rng, *NOUNS[n]), rng.uniform(0, 1, frames), size) for n in labels])
    video = normalize_video(torch.from_numpy(clips).permute(0, 1, 4, 2, 3).contiguous(),
                            model.config.preprocess.mean, model.config.preprocess.std)
    query = f"a {' '.join(query_noun)}"
    enc = tokenizer([query], return_tensors="pt")
    with torch.no_grad():
        for gate in model.gates():
            gate.fill_(1.0)
        v_prefix = model.fusion_video_prefix(video)
        t_prefix = model.fusion_text_prefix(enc["input_ids"], enc["attention_mask"])
    first = model.first_fused
    fused = [f".blocks.{i}." for i in range(first, model.config.depth)] + [f".layer.{i}." for i in range(first, model.config.depth)]
    params = [p for n, p in model.named_parameters()
              if any(k in n for k in fused) or n.startswith(("cross_modal", "itm_score", "norm."))]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    target = torch.from_numpy(labels == NOUNS.index(query_noun)).long()
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread avoids contention on the shared 2-core runners
    try:
        _steps(model, opt, v_prefix, t_prefix, enc["attention_mask"], target, rng, steps, batch)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return query


def _steps(model, opt, v_prefix, t_prefix, mask, target, rng, steps: int, batch: int) -> None:
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(len(target), size=batch))
        out = model.fuse(v_prefix[idx], t_prefix.expand(batch, -1, -1), mask.expand(batch, -1))
        loss = torch.nn.functional.cross_entropy(model.vtm_head(out), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
