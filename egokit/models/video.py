"""SpaceTimeTransformer: the frozen-in-time divided space-time video backbone of EgoVLPv2.

Parameter names follow the official checkpoints (``video_model.*``) so released weights load without renaming.
Behaviour that matters for checkpoint parity:

* every block runs time attention first on ``norm3(x)``, then space attention on ``norm1(x + t)``, and the residual
  is added to the *block input* ``x`` (the temporal output only reaches the stream through the space attention);
* the CLS query attends to every token; patch queries attend within their frame (space) or across frames at the
  same position (time), always together with the CLS key/value;
* the top ``fused_layers`` blocks own a gated video<-text cross-attention inside their space attention;
* the time attention is initialised to zero with an all-ones output projection (starts as a per-frame ViT).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from egokit.models.attention import attention, divided_attention
from egokit.models.config import EgoVLPv2Config


class DropPath(nn.Module):
    """Stochastic depth per sample (identity when ``p == 0`` or in eval mode)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VideoPatchEmbed(nn.Module):
    """Frames -> non-overlapping patch tokens, frame-major then raster order: (B, F*N, D)."""

    def __init__(self, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, f, c, h, w = video.shape
        x = self.proj(video.reshape(b * f, c, h, w))
        return x.flatten(2).transpose(1, 2).reshape(b, -1, x.shape[1])


class DividedAttention(nn.Module):
    """Space or time attention with the frozen-in-time CLS handling (official name: ``VarAttention``)."""

    def __init__(self, width: int, num_heads: int, axis: str, cross_eps: float | None = None) -> None:
        super().__init__()
        if axis not in ("space", "time"):
            raise ValueError(axis)
        self.axis = axis
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self._has_cross = cross_eps is not None
        if self._has_cross:
            # Gated video<-text cross-attention (official names ``*_i2t``), only in the top (fused) blocks.
            self.qkv_text_i2t = nn.Linear(width, 2 * width)
            self.qkv_i2t = nn.Linear(width, width)
            self.proj_i2t = nn.Linear(width, width)
            self.alpha_i2t = nn.Parameter(torch.zeros(1))
            self.norm_i2t_i = nn.LayerNorm(width, eps=cross_eps)

    def zero_init(self) -> None:
        """Official ``time_init='zeros'``: q=k=v=0, all-ones output projection, so the branch starts at 0."""
        nn.init.zeros_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.ones_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(
        self,
        x: torch.Tensor,
        num_frames: int,
        kernel: str,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        divided: str = "split",
    ) -> torch.Tensor:
        b, t, d = x.shape
        h, hd = self.num_heads, d // self.num_heads
        q, k, v = self.qkv(x).reshape(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        out = divided_attention(q, k, v, num_frames, self.axis, kernel=kernel, divided=divided)
        x = self.proj(out.transpose(1, 2).reshape(b, t, d))
        if text is not None:
            if not self._has_cross:
                raise RuntimeError("this block has no cross-attention; text can only be passed to fused blocks")
            x = self._cross(x, text, text_mask, kernel)
        return x

    def _cross(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None, kernel: str) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        kv = self.qkv_text_i2t(text).reshape(b, text.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        q = self.qkv_i2t(self.norm_i2t_i(x)).reshape(b, n, h, d // h).transpose(1, 2)
        out = attention(q, kv[0], kv[1], text_mask, kernel=kernel)
        return x + self.alpha_i2t * self.proj_i2t(out.transpose(1, 2).reshape(b, n, d))


class SpaceTimeBlock(nn.Module):
    def __init__(self, cfg: EgoVLPv2Config, fused: bool, drop_path: float) -> None:
        super().__init__()
        w, eps = cfg.width, cfg.video_ln_eps
        self.norm1 = nn.LayerNorm(w, eps=eps)
        self.attn = DividedAttention(w, cfg.num_heads, "space", cross_eps=eps if fused else None)
        self.timeattn = DividedAttention(w, cfg.num_heads, "time")
        self.timeattn.zero_init()
        self.norm2 = nn.LayerNorm(w, eps=eps)
        self.mlp = Mlp(w, int(w * cfg.mlp_ratio))
        self.norm3 = nn.LayerNorm(w, eps=eps)
        self.drop_path = DropPath(drop_path)
        self.fused = fused

    def forward(
        self,
        x: torch.Tensor,
        num_frames: int,
        kernel: str,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        divided: str = "split",
    ) -> torch.Tensor:
        t = self.timeattn(self.norm3(x), num_frames, kernel, divided=divided)
        s = self.attn(self.norm1(x + t), num_frames, kernel, text, text_mask, divided=divided)
        x = x + self.drop_path(s)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SpaceTimeTransformer(nn.Module):
    """The video tower. ``forward`` is the dual-mode path (own CLS token and norm, no text)."""

    def __init__(self, cfg: EgoVLPv2Config) -> None:
        super().__init__()
        self.num_frames = cfg.num_frames
        self.patches_per_frame = cfg.patches_per_frame
        self.patch_embed = VideoPatchEmbed(cfg.patch_size, cfg.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patches_per_frame + 1, cfg.width))
        self.temporal_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, cfg.width))
        first_fused = cfg.depth - cfg.fused_layers
        rates = [cfg.video_drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(cfg, fused=i >= first_fused, drop_path=rates[i]) for i in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.video_ln_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def embed(self, video: torch.Tensor, cls_token: torch.Tensor) -> torch.Tensor:
        """Patch tokens + tiled spatial and repeated temporal embeddings, with ``cls_token`` prepended."""
        b, f = video.shape[:2]
        if f != self.num_frames:
            raise ValueError(
                f"video has {f} frames but the model was built for {self.num_frames}; "
                f"load it with num_frames={f} (temporal embeddings are interpolated on load)"
            )
        x = self.patch_embed(video)
        pos = self.pos_embed[:, 1:].repeat(1, f, 1) + self.temporal_embed.repeat_interleave(self.patches_per_frame, 1)
        cls = cls_token.expand(b, -1, -1) + self.pos_embed[:, :1]
        return torch.cat([cls, x + pos], dim=1)

    def run_blocks(self, x: torch.Tensor, blocks: range, kernel: str, checkpoint: bool | str,
                   divided: str = "split") -> torch.Tensor:
        for i in blocks:
            x = _maybe_checkpoint(self.blocks[i], checkpoint, x, self.num_frames, kernel, None, None, divided)
        return x

    def forward(self, video: torch.Tensor, kernel: str = "auto", checkpoint: bool | str = False,
                divided: str = "split") -> torch.Tensor:
        """Dual-mode features: token 0 after all blocks and ``norm`` -> (B, width)."""
        x = self.embed(video, self.cls_token)
        x = self.run_blocks(x, range(len(self.blocks)), kernel, checkpoint, divided)
        return self.norm(x)[:, 0]


#: Operators whose outputs selective checkpointing keeps: matrix products, attention kernels, the patch convolution.
#: Everything else in a block (LayerNorm, GELU, softmax, residual adds, reshapes and copies) is recomputed in the
#: backward pass, which costs little time (element-wise work) and frees most of a block's activations.
SELECTIVE_SAVE_OPS = tuple(
    getattr(torch.ops.aten, name).default
    for name in ("mm", "addmm", "bmm", "baddbmm", "convolution", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
                 "_scaled_dot_product_flash_attention_for_cpu", "_flash_attention_forward",
                 "_efficient_attention_forward")
    if hasattr(torch.ops.aten, name)
)


def _selective_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    if op in SELECTIVE_SAVE_OPS or op is getattr(torch.ops.higher_order, "flex_attention", None):
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _selective_context():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(_selective_policy)


def checkpoint_mode(value: bool | str | None) -> str:
    """Normalise a checkpointing setting: ``False``/``None``/``"none"`` -> ``none``, ``True``/``"full"`` ->
    ``full``, ``"selective"`` -> ``selective``."""
    if value is None or value is False or value == "none":
        return "none"
    if value is True or value == "full":
        return "full"
    if value == "selective":
        return "selective"
    raise ValueError(f"activation checkpointing must be none, full or selective (or true/false), got {value!r}")


def _maybe_checkpoint(module: nn.Module, mode: bool | str, *args):
    """Run ``module(*args)``; with ``mode`` full, recompute the whole module in backward (only its inputs are kept);
    with selective, keep the outputs of :data:`SELECTIVE_SAVE_OPS` and recompute the rest."""
    mode = checkpoint_mode(mode)
    if mode == "none" or not torch.is_grad_enabled():
        return module(*args)
    if mode == "selective":
        return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False, context_fn=_selective_context)
    return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)


def inflate_temporal_embed(embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Adapt a (1, F_ckpt, D) temporal embedding to ``num_frames`` exactly as the official loader does.

    More frames than needed: keep the first ``num_frames``. Fewer: bilinear interpolation over the (F, D) grid with
    ``align_corners=True``, i.e. linear interpolation over time with aligned endpoints.
    """
    loaded = embed.shape[1]
    if loaded == num_frames:
        return embed
    if loaded > num_frames:
        return embed[:, :num_frames].clone()
    out = F.interpolate(embed.unsqueeze(0), size=(num_frames, embed.shape[2]), mode="bilinear", align_corners=True)
    return out.squeeze(0)
