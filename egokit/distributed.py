"""All-gathers for losses computed over the global batch, with a gradient scale that matches one process.

Gradient convention. Every rank gathers the embeddings of all ranks and computes the *same* global loss L;
DDP then averages the parameter gradients over the W ranks. The backward of :func:`gather_with_grad` is the
exact adjoint of all-gather, a reduce-scatter with *sum*: rank r receives ``sum_r' dL_r'/d(slice r) =
W * dL/d(slice r)``, and DDP's ``1/W`` brings the average back to ``dL/dθ`` — the gradient a single process
gets on the whole global batch (open_clip's ``gather_with_grad`` convention). The official EgoVLPv2
``AllGather_multi`` returns only the local slice in backward, so its gradients are ``dL/dθ / W``; with AdamW
that mostly cancels (scale invariance up to eps), which is why the official runs still train.
Losses that mix local and gathered tensors (open_clip's ``local_loss``) are also correct under this
convention, because it is the true adjoint.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_no_grad", "gather_with_grad", "local_rows", "world_info"]


def _active(group: dist.ProcessGroup | None) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world_info(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when no process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def local_rows(local_batch: int, group: dist.ProcessGroup | None = None) -> slice:
    """The rows of a rank-major gathered tensor that belong to this rank (``slice(r*b, (r+1)*b)``)."""
    rank, _ = world_info(group)
    return slice(rank * local_batch, (rank + 1) * local_batch)


def gather_with_grad(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0 (rank-major), differentiably; see the module docstring.

    Every rank must pass the same shape. Uses torch's functional collectives (compile-friendly, reduce-scatter
    backward) when present, else an equivalent autograd function. Without a process group (or with one rank)
    the tensor is returned unchanged.
    """
    if not _active(group):
        return tensor
    from torch.distributed import _functional_collectives as fc

    gather = getattr(fc, "all_gather_single_autograd", None) or getattr(fc, "all_gather_tensor_autograd", None)
    if gather is None:
        return _gather_with_grad_fallback(tensor, group)
    return gather(tensor.contiguous(), 0, group if group is not None else dist.group.WORLD)


def _gather_with_grad_fallback(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Autograd all-gather whose backward sums the gradient over ranks and keeps the local slice."""
    return _AllGatherSum.apply(tensor, group)


class _AllGatherSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:  # type: ignore[override]
        rank, world = world_info(group)
        ctx.group, ctx.rows = group, slice(rank * tensor.shape[0], (rank + 1) * tensor.shape[0])
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.rows], None


@torch.no_grad()
def gather_no_grad(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Rank-major concatenation along dim 0 without autograd (labels, class vectors, metrics inputs)."""
    if not _active(group):
        return tensor
    _, world = world_info(group)
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous(), group=group)
    return torch.cat(parts, dim=0)
