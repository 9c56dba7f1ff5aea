"""``explain_clip``: what a caption's fused layers attend to in a clip, with the VTM match probability.

Frames are sampled exactly as for evaluation (``num_frames`` bin middles of ``[start, end)``, the eval transform's
centre crop); the caption is tokenised as given (stripped), without padding. One fusion forward runs inside a
:class:`~egokit.explain.capture.CrossAttentionCapture`; with ``rollout`` one dual video forward runs inside a
:class:`~egokit.explain.capture.DividedAttentionCapture`.

Derived maps (all head-averaged):

* ``heatmaps()`` (layers, F, gh, gw): per patch, the share of its video<-text attention that goes to the caption's
  words (every token but ``<s>``, ``</s>`` and padding); 0 = the patch reads only the special tokens;
* ``token_attention()`` (layers, L): per caption token, its mean attention from the patches (sums to 1);
* ``text_heatmaps()`` (layers, F, gh, gw): the text<-video attention of the caption's words (mean over words) over
  the patches, renormalised to sum to 1 over the patches;
* ``rollout`` (F, gh, gw): attention rollout of the dual video tower from CLS (sums to 1 with the CLS input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egokit.explain.capture import CrossAttentionCapture, DividedAttentionCapture
from egokit.explain.rollout import cls_rollout

__all__ = ["Explanation", "explain_clip", "explain_tensors"]


@dataclass
class Explanation:
    """Raw attention of one (clip, caption) pair and what is drawn from it (see the module doc)."""

    text: str
    tokens: list[str]
    token_ids: list[int]
    content: list[bool]  # True for caption words (not special tokens)
    layers: list[int]
    gates: list[float]  # video<-text gate alpha_i2t of each fused layer
    text_gates: list[float]  # text<-video gate alpha_t2i
    video_to_text: np.ndarray  # (layers, H, 1 + F*N, L) float32
    text_to_video: np.ndarray  # (layers, H, L, 1 + F*N) float32
    grid: tuple[int, int, int]  # (F, gh, gw)
    vtm: float | None  # match probability (class 1 of the VTM head); None without a VTM head
    frames: np.ndarray  # (F, S, S, 3) uint8: what the model saw
    frame_times: list[float] = field(default_factory=list)
    video: str | None = None
    start: float | None = None
    end: float | None = None
    rollout: np.ndarray | None = None  # (F, gh, gw)
    seconds: float = 0.0  # forward + capture time

    def heatmaps(self) -> np.ndarray:
        """(layers, F, gh, gw): share of each patch's video<-text attention on caption words."""
        mask = np.asarray(self.content, dtype=bool)
        patches = self.video_to_text.mean(1)[:, 1:, :]  # (layers, F*N, L)
        return patches[:, :, mask].sum(-1).reshape(len(self.layers), *self.grid)

    def mean_heatmap(self) -> np.ndarray:
        return self.heatmaps().mean(0)

    def token_attention(self) -> np.ndarray:
        """(layers, L): mean over patches of the video<-text attention to each caption token."""
        return self.video_to_text.mean(1)[:, 1:, :].mean(1)

    def text_heatmaps(self) -> np.ndarray:
        """(layers, F, gh, gw): the caption words' text<-video attention over the patches (sums to 1)."""
        mask = np.asarray(self.content, dtype=bool)
        rows = self.text_to_video.mean(1)[:, mask, 1:].mean(1) if mask.any() else \
            self.text_to_video.mean(1)[:, :, 1:].mean(1)
        rows = rows / np.maximum(rows.sum(-1, keepdims=True), 1e-12)
        return rows.reshape(len(self.layers), *self.grid)

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        """JSON-ready: the head-averaged raw maps of both directions per layer, the derived maps, tokens, score."""
        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, dtype=np.float64), digits).tolist()

        f, gh, gw = self.grid
        out = {
            "video": self.video, "start": self.start, "end": self.end, "text": self.text, "vtm": self.vtm,
            "frame_times": [round(t, 6) for t in self.frame_times],
            "tokens": self.tokens, "token_ids": self.token_ids, "content": self.content,
            "layers": self.layers, "gates": self.gates, "text_gates": self.text_gates,
            "grid": {"frames": f, "height": gh, "width": gw,
                     "video_tokens": "index 0 = CLS, then frame-major, row-major patches (1 + F*gh*gw)"},
            "heads": int(self.video_to_text.shape[1]),
            "seconds": round(self.seconds, 4),
            "maps": {
                "video_to_text": {"about": "per layer (1 + F*N, L): each video token over the caption tokens, mean "
                                           "over heads; rows sum to 1", "values": r(self.video_to_text.mean(1))},
                "text_to_video": {"about": "per layer (L, 1 + F*N): each caption token over the video tokens, mean "
                                           "over heads; rows sum to 1", "values": r(self.text_to_video.mean(1))},
                "heatmaps": {"about": "per layer (F, gh, gw): share of each patch's video<-text attention on the "
                                      "caption words", "values": r(self.heatmaps())},
                "mean_heatmap": r(self.mean_heatmap()),
                "token_attention": {"about": "per layer (L,): mean over patches of the video<-text attention to "
                                             "each token", "values": r(self.token_attention()),
                                    "mean": r(self.token_attention().mean(0))},
                "text_heatmaps": {"about": "per layer (F, gh, gw): the caption words' attention over the patches",
                                  "values": r(self.text_heatmaps())},
            },
        }
        if self.rollout is not None:
            out["maps"]["rollout"] = {"about": "dual video tower, CLS rollout over the patches (F, gh, gw)",
                                      "values": r(self.rollout)}
        return out


def _token_strings(tokenizer, ids: list[int]) -> list[str]:
    out = []
    for i in ids:
        special = i in tokenizer.all_special_ids
        piece = tokenizer.convert_ids_to_tokens(i) if special else tokenizer.decode([i]).strip()
        out.append(piece or "·")
    return out


@torch.no_grad()
def explain_tensors(model, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                    rollout: bool = False) -> dict[str, Any]:
    """Attention of one normalised clip ``video`` (1, F, 3, S, S) and caption (1, L): the raw capture, without
    frames or strings (for callers that prepare inputs themselves). Keys: video_to_text, text_to_video (layers,
    H, ., .), layers, vtm, rollout (T,) or None, seconds."""
    model.eval()
    started = time.perf_counter()
    with CrossAttentionCapture(model) as cap:
        fused = model.fusion(video, input_ids, attention_mask)
    cap.check()
    vtm = float(model.vtm_head(fused).float().softmax(-1)[0, 1]) if model.config.vtm_head else None
    roll = None
    if rollout:
        with DividedAttentionCapture(model) as dual:
            model.video_features(video)
        roll = cls_rollout(dual.blocks)
    return {
        "layers": cap.layers,
        "video_to_text": torch.stack([cap.video_to_text[i][0] for i in cap.layers]),
        "text_to_video": torch.stack([cap.text_to_video[i][0] for i in cap.layers]),
        "vtm": vtm, "rollout": roll, "seconds": time.perf_counter() - started,
    }


def explain_clip(model, tokenizer, video: str | Path, text: str, *, start: float | None = None,
                 end: float | None = None, rollout: bool = False, max_length: int | None = None) -> Explanation:
    """Explain how ``model`` matches ``text`` to ``[start, end)`` s of ``video`` (default: the whole video).

    Example::

        model = egokit.load_model("EgoVLPv2.pth")
        tok = egokit.load_tokenizer("roberta-base")
        ex = explain_clip(model, tok, "kitchen.mp4", "I open the fridge", start=12, end=14)
        ex.vtm, ex.heatmaps().shape  # (fused layers, frames, 14, 14)
        write_explanation(ex, "explain_out")  # PNG panel + JSON (+ mp4)
    """
    from egokit.data.sampling import frame_range, sample_frame_indices, slot_times
    from egokit.data.transforms import EvalTransform, normalize_video
    from egokit.data.video import probe_video, read_frames_at
    from egokit.engine.features import tokenize_texts
    from egokit.errors import ConfigError, DataError

    if not model.config.fused_layers:
        raise ConfigError("the model has no fused layers (loaded in dual mode?): explain needs the full model")
    if not text or not text.strip():
        raise ConfigError("--text must be a non-empty caption")
    info = probe_video(video)
    start = 0.0 if start is None else float(start)
    end = info.duration if end is None else float(end)
    if not 0 <= start < end:
        raise DataError(f"{video}: invalid clip [{start}, {end}) s (the video is {info.duration:.2f} s long)")
    cfg = model.config
    indices = sample_frame_indices(*frame_range(start, end, info.fps), cfg.num_frames, "uniform")
    times = [float(t) for t in slot_times(indices, info.fps)]
    clip = EvalTransform(cfg.image_size)(read_frames_at(video, times))  # (F, 3, S, S) uint8
    device = next(model.parameters()).device
    pixels = normalize_video(clip[None].to(device), cfg.preprocess.mean, cfg.preprocess.std,
                             dtype=next(model.parameters()).dtype)
    ids, mask = tokenize_texts(tokenizer, [text.strip()], max_length or cfg.preprocess.max_text_length,
                               padding="longest")
    raw = explain_tensors(model, pixels, ids.to(device), mask.to(device), rollout=rollout)
    id_list = ids[0].tolist()
    special = set(tokenizer.all_special_ids)
    grid = (cfg.num_frames, cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size)
    blocks, layers = model.video_model.blocks, model.text_model.encoder.layer
    roll = raw["rollout"]
    return Explanation(
        text=text.strip(), tokens=_token_strings(tokenizer, id_list), token_ids=id_list,
        content=[i not in special for i in id_list], layers=raw["layers"],
        gates=[float(blocks[i].attn.alpha_i2t.detach()) for i in raw["layers"]],
        text_gates=[float(layers[i].alpha_t2i.detach()) for i in raw["layers"]],
        video_to_text=raw["video_to_text"].numpy(), text_to_video=raw["text_to_video"].numpy(), grid=grid,
        vtm=raw["vtm"], frames=clip.permute(0, 2, 3, 1).contiguous().numpy(), frame_times=times, video=str(video),
        start=start, end=end, rollout=None if roll is None else roll[1:].reshape(grid).numpy(),
        seconds=raw["seconds"],
    )
