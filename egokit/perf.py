"""Measuring helpers shared by ``egokit bench`` and the scripts in ``bench/``: FLOP counts, the machine's matmul
peak, peak memory and a description of the machine that results files carry.

FLOPs follow the usual convention (one multiply-add = 2 FLOPs) and count what ``torch.utils.flop_counter``
counts: matrix products, convolutions and attention kernels, forward and, when it runs inside the counter,
backward (activation-checkpoint recomputation included). Element-wise work (norms, softmax, the optimizer) is not
counted: it is small next to the matmuls and cannot run at matmul speed anyway, which is why the share of the
matmul peak is the figure to compare.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Iterable

import torch


def count_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """Run ``fn`` once under ``FlopCounterMode``: total FLOPs and FLOPs per operator (``aten.mm``, ``aten.bmm``...).

    (Per-module figures are not returned: the counter attributes backward work to whichever module hook ran last.)
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    by_op = {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def matmul_peak(dtype: torch.dtype = torch.float32, sizes: Iterable[int] = (2048, 4096), repeats: int = 3,
                device: str = "cpu") -> dict[str, Any]:
    """Best achieved FLOP/s of square ``n x n`` matmuls (one warm-up, best of ``repeats``), per size and overall.

    Run it in the same process and with the same thread count as the workload it is compared with.
    """
    per_size = {}
    for n in sizes:
        g = torch.Generator(device=device).manual_seed(n)
        a = torch.randn(n, n, generator=g, device=device).to(dtype)
        b = torch.randn(n, n, generator=g, device=device).to(dtype)
        torch.mm(a, b)  # warm-up: kernel choice, allocator
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
        per_size[str(n)] = 2 * n**3 / best
    return {"dtype": str(dtype).replace("torch.", ""), "flops_per_s": max(per_size.values()),
            "per_size_flops_per_s": per_size, "repeats": repeats, "threads": torch.get_num_threads()}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of tensor storage that ``fn`` allocates and holds at the same time (activations saved for
    backward, gradients, temporaries), counted op by op in a dispatch mode: independent of the allocator's caching
    and of other processes, so it compares memory plans (activation checkpointing) on any device, CPU included.
    Storages that exist before ``fn`` runs (parameters, inputs) are not counted."""
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, tuple[StorageWeakRef, int]] = {}
            self.current = self.peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for ptr in [p for p, (ref, _) in self.live.items() if ref.expired()]:
                self.current -= self.live.pop(ptr)[1]
            inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                      if isinstance(t, torch.Tensor) and t.device.type != "meta"}
            for t in tree_leaves(out):  # a storage an input already had is a view or in-place result: no new bytes
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    storage = t.untyped_storage()
                    ptr = storage.data_ptr()
                    if ptr and ptr not in inputs and ptr not in self.live:
                        self.live[ptr] = (StorageWeakRef(storage), storage.nbytes())
                        self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
            return out

    mode = LiveBytes()
    with mode:
        fn()
    return mode.peak


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (2^30 bytes, as the figures in baseline-cpu.md)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes on macOS, KiB on Linux


def machine_info() -> dict[str, Any]:
    """CPU model, cores and threads, RAM, torch version and build, accelerators: what a benchmark ran on."""
    cpu = _cpuinfo()
    info: dict[str, Any] = {
        "cpu_model": cpu.get("model") or platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": cpu.get("physical_cores"),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": _ram_gb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": {
            "version": torch.__version__,
            "git": getattr(torch.version, "git_version", None),
            "cuda_build": torch.version.cuda,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        },
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(k)},
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
    }
    return info


def _cpuinfo() -> dict[str, Any]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return {}
    model, cores = None, set()
    physical = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif not line.strip():  # end of one processor's block
            if core is not None:
                cores.add((physical, core))
            physical = core = None
    return {"model": model, "physical_cores": len(cores) or None}


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return None
