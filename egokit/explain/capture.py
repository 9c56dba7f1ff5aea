"""Recording attention probabilities with module hooks, only while a capture context is open.

The model's forward is not touched: hooks are registered on entry and removed on exit, so a normal forward pass
pays nothing and computes exactly what it computes without them. The hooks record the query and key projections
the attention layers compute (the outputs of their ``nn.Linear`` modules) and the layer's mask; the probabilities
``softmax(q k^T / sqrt(d_head))`` (masked keys excluded) are formed from those in float32, after the layer ran, so
whichever attention kernel the model uses (explicit, SDPA, flash) is irrelevant.

Fusion (:class:`CrossAttentionCapture`), per fused layer ``l``:

* ``video_to_text[l]``: (B, H, 1 + F*N, L): each video token (CLS, then frame-major patches) over the caption
  tokens: the video<-text cross-attention inside the space attention of video block ``l`` (``qkv_i2t`` queries on
  ``norm_i2t_i`` of the space-attention output, ``qkv_text_i2t`` keys on the text states entering the layer);
* ``text_to_video[l]``: (B, H, L, 1 + F*N): each caption token over the video tokens (``crossattention_t2i``).

Dual video tower (:class:`DividedAttentionCapture`), per block: the space and time attention probabilities with
the frozen-in-time layout (CLS attends every token; a patch attends the CLS and the patches of its frame (space) or
of its position in the other frames (time)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["CrossAttentionCapture", "DividedAttentionCapture", "DividedProbs"]


def _probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) over the last axis in float32; ``mask`` boolean, True = may attend."""
    q, k = q.float(), k.float()
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


def _heads(z: torch.Tensor, h: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D/H)."""
    b, t, d = z.shape
    return z.reshape(b, t, h, d // h).transpose(1, 2)


class _Hooks:
    def __init__(self) -> None:
        self._handles: list = []

    def _add(self, handle) -> None:
        self._handles.append(handle)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, *exc) -> None:
        self.remove()


class CrossAttentionCapture(_Hooks):
    """``with CrossAttentionCapture(model) as cap: model.fusion(...)`` -> ``cap.video_to_text[layer]`` and
    ``cap.text_to_video[layer]`` (float32, CPU), one entry per fused layer run (the last run wins)."""

    def __init__(self, model: nn.Module, *, video_to_text: bool = True, text_to_video: bool = True) -> None:
        super().__init__()
        self.model = model
        self.want_v2t, self.want_t2v = video_to_text, text_to_video
        self.video_to_text: dict[int, torch.Tensor] = {}
        self.text_to_video: dict[int, torch.Tensor] = {}
        self.layers = list(range(model.config.depth - model.config.fused_layers, model.config.depth))

    def __enter__(self) -> "CrossAttentionCapture":
        for i in self.layers:
            if self.want_v2t:
                self._video_side(i, self.model.video_model.blocks[i].attn)
            if self.want_t2v:
                self._text_side(i, self.model.text_model.encoder.layer[i].crossattention_t2i.self)
        return self

    def _video_side(self, layer: int, attn: nn.Module) -> None:
        state: dict[str, torch.Tensor | None] = {}
        h = attn.num_heads

        def pre(module, args, kwargs):
            state.clear()
            state["mask"] = args[4] if len(args) > 4 else kwargs.get("text_mask")

        def keys(module, args, out):
            b, length, _ = out.shape
            state["k"] = out.detach().reshape(b, length, 2, h, -1)[:, :, 0].transpose(1, 2)

        def queries(module, args, out):
            state["q"] = _heads(out.detach(), h)

        def done(module, args, kwargs, out):
            if "q" not in state or "k" not in state:
                return  # no text passed: a dual-mode or unfused call of this block
            self.video_to_text[layer] = _probs(state["q"], state["k"], state["mask"]).cpu()
            state.clear()

        self._add(attn.register_forward_pre_hook(pre, with_kwargs=True))
        self._add(attn.qkv_text_i2t.register_forward_hook(keys))
        self._add(attn.qkv_i2t.register_forward_hook(queries))
        self._add(attn.register_forward_hook(done, with_kwargs=True))

    def _text_side(self, layer: int, cross: nn.Module) -> None:
        state: dict[str, torch.Tensor] = {}
        h = cross.num_heads

        def queries(module, args, out):
            state["q"] = _heads(out.detach(), h)

        def keys(module, args, out):
            state["k"] = _heads(out.detach(), h)

        def done(module, args, out):
            if "q" in state and "k" in state:
                mask = args[2] if len(args) > 2 else None
                self.text_to_video[layer] = _probs(state["q"], state["k"], mask).cpu()
            state.clear()

        self._add(cross.query.register_forward_hook(queries))
        self._add(cross.key.register_forward_hook(keys))
        self._add(cross.register_forward_hook(done))

    def check(self) -> None:
        """Raise if a fused layer ran without its attention being recorded (the model's call pattern changed)."""
        missing = [i for i in self.layers if (self.want_v2t and i not in self.video_to_text)
                   or (self.want_t2v and i not in self.text_to_video)]
        if missing:
            raise RuntimeError(f"no cross-attention was recorded for fused layer(s) {missing}: run a fusion "
                               "forward inside the capture (the layers' q/k projections must be called as modules)")


@dataclass
class DividedProbs:
    """One divided attention layer: ``cls`` (B, H, T) the CLS query over every token; ``groups`` (B, H, G, L, 1+L)
    each patch query over [CLS, its group]; space: G = frames, L = patches per frame; time: G = patch positions,
    L = frames."""

    axis: str
    num_frames: int
    cls: torch.Tensor
    groups: torch.Tensor


class DividedAttentionCapture(_Hooks):
    """``with DividedAttentionCapture(model) as cap: model.video_features(video)`` -> ``cap.blocks[i]`` =
    ``{"time": DividedProbs, "space": DividedProbs}`` for every video block run."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.blocks: dict[int, dict[str, DividedProbs]] = {}

    def __enter__(self) -> "DividedAttentionCapture":
        for i, block in enumerate(self.model.video_model.blocks):
            for name, attn in (("time", block.timeattn), ("space", block.attn)):
                self._hook(i, name, attn)
        return self

    def _hook(self, index: int, name: str, attn: nn.Module) -> None:
        state: dict[str, object] = {}
        h = attn.num_heads

        def pre(module, args, kwargs):
            state["frames"] = int(args[1] if len(args) > 1 else kwargs["num_frames"])

        def qkv(module, args, out):
            state["qkv"] = out.detach()

        def done(module, args, kwargs, out):
            x = state.pop("qkv", None)
            if x is None:
                return
            f = int(state["frames"])  # type: ignore[arg-type]
            b, t, _ = x.shape
            q, k = x.reshape(b, t, 3, h, -1).permute(2, 0, 3, 1, 4)[:2]  # (B, H, T, hd)
            n = (t - 1) // f
            cls = _probs(q[:, :, :1], k)[:, :, 0]

            def groups(z: torch.Tensor) -> torch.Tensor:
                z = z[:, :, 1:].reshape(b, h, f, n, z.shape[-1])
                return z if attn.axis == "space" else z.transpose(2, 3)

            qg, kg = groups(q), groups(k)
            kg = torch.cat([k[:, :, None, :1].expand(-1, -1, qg.shape[2], -1, -1), kg], dim=3)
            probs = DividedProbs(attn.axis, f, cls.cpu(), _probs(qg, kg).cpu())
            self.blocks.setdefault(index, {})[name] = probs

        self._add(attn.register_forward_pre_hook(pre, with_kwargs=True))
        self._add(attn.qkv.register_forward_hook(qkv))
        self._add(attn.register_forward_hook(done, with_kwargs=True))
