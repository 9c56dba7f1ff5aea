"""Optimiser parameter groups and learning-rate schedules as the official EgoVLPv2 recipes define them.

Groups are chosen by substring match on parameter names, exactly as the official ``set_schedule``:
no weight decay for names containing any of ``NO_DECAY``; learning rate x ``lr_mult_head`` for names containing any
of ``HEAD``; x ``lr_mult_cross`` for ``CROSS``. (So, as officially, ``norm3``/``norm_i2t_i`` weights, the gates,
positional embeddings and CLS tokens *are* decayed.) Unlike the official code, a name matching both the head and
the cross-modal rules is not dropped from every group: it goes to the head group.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn

NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.bias", "norm1.weight",
            "norm2.bias", "norm2.weight")
HEAD = ("mlm_score", "itm_score", "txt_proj", "vid_proj")
CROSS = ("cross_modal", "i2t", "t2i")


def param_groups(model: nn.Module, lr: float, weight_decay: float, *, lr_mult_head: float = 1.0,
                 lr_mult_cross: float = 1.0, head_names: Iterable[str] = ()) -> list[dict]:
    """Six groups (backbone/head/cross x decay/no-decay); empty groups are omitted. ``head_names`` adds task heads."""
    heads = HEAD + tuple(head_names)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    names: dict[tuple[str, bool], list[str]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        kind = "head" if any(h in name for h in heads) else "cross" if any(c in name for c in CROSS) else "backbone"
        decay = not any(nd in name for nd in NO_DECAY)
        groups.setdefault((kind, decay), []).append(param)
        names.setdefault((kind, decay), []).append(name)
    mult = {"backbone": 1.0, "head": lr_mult_head, "cross": lr_mult_cross}
    out = []
    for (kind, decay), params in sorted(groups.items()):
        out.append({"params": params, "lr": lr * mult[kind], "weight_decay": weight_decay if decay else 0.0,
                    "name": f"{kind}/{'decay' if decay else 'no_decay'}", "param_names": names[(kind, decay)]})
    return out


def adamw(groups: list[dict], *, lr: float, betas=(0.9, 0.98), eps: float = 1e-8, device: torch.device | None = None,
          capturable: bool = False):
    """torch AdamW (decoupled decay, bias correction), fused where the device supports it. ``capturable`` keeps the
    step counters on the device so the update can be recorded in a CUDA graph (the learning rates are then baked
    into the graph unless they are tensors)."""
    clean = [{k: v for k, v in g.items() if k != "param_names"} for g in groups]
    fused = device is not None and device.type in ("cuda", "cpu")
    extra = {"capturable": True} if capturable else {}
    return torch.optim.AdamW(clean, lr=lr, betas=tuple(betas), eps=eps, fused=fused, **extra)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  schedule: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then half-cosine (or linear, or constant) decay to 0, per group multiplicative.
    ``cosine-float32`` is the half-cosine evaluated in float32, as egokit 0.1's EgoMQ head trainer did (its
    numbers are reproduced only with it: the VSGN head's kNN graph amplifies the 1e-7 differences)."""
    total_steps = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(progress, 1.0)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if schedule == "cosine-float32":
            return 0.5 * (1 + torch.cos(torch.tensor(math.pi * progress))).item()  # 1 + cos in float32 too
        if schedule == "linear":
            return 1.0 - progress
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
