"""Accelerator construction shared by every command.

On a machine without CUDA egokit asks Accelerate for CPU mode explicitly, so that a multi-process launch
(``accelerate launch --multi_gpu --num_processes N`` or ``torchrun``) becomes a gloo CPU job instead of N
independent single-process runs. (``accelerate launch --cpu --num_processes N`` itself only starts several
processes through MPI's ``mpirun``.)
"""

from __future__ import annotations

from typing import Any


def make_accelerator(**kwargs: Any):
    import torch
    from accelerate import Accelerator

    from egokit.engine.host_memory import keep_freed_host_memory

    kwargs.setdefault("cpu", not torch.cuda.is_available())
    accelerator = Accelerator(**kwargs)
    if accelerator.device.type == "cpu":  # the model runs on host memory: no page faults per step
        keep_freed_host_memory()
    return accelerator
