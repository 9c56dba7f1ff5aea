"""Check and time egokit's CUDA training step in one run (issues #8 and #15): SDPA kernels, bf16 autocast, fused
AdamW, the static-shape objective, whole-step ``torch.compile(fullgraph=True)``, whole-step CUDA-graph capture,
fused (one call per axis) divided attention, selective activation checkpointing, the batch that fits, the uint8
input path.

On a lent GPU machine, from the repository root (one command, under 10 minutes: train-step rows that would start
after ``--budget-s`` (420 s) are skipped and listed; the compile times of the whole-step rows on a GPU are not
known yet, so the default plan, ordered by priority, may not all fit)::

    python bench/gpu_check.py --json $OUT/gpu_check.json

No install step is needed: the script puts the checkout on ``sys.path`` and imports only ``torch`` (a CUDA build)
and, for the tables, ``rich`` (plain text without it); nothing is downloaded (random weights, random inputs). The
device machine has no internet, so ``pip install -e .`` works there only if the dependencies are preinstalled.
Without ``--json`` the results go to ``$OUT/gpu_check.json`` when ``OUT`` is set. The JSON is rewritten after each
section and row, so a run cut short still leaves what it measured. GPU memory is capped at ``--memory-cap-gb``
(80 GB) with ``torch.cuda.set_per_process_memory_fraction`` on larger cards (an H200 then answers for an 80 GB
card). Exit status: 0 all checks pass, 1 a check failed, 2 CUDA is not available (a GPU run must not silently fall
back to CPU).

CPU smoke test of every code path except the CUDA-graph capture (micro model, about two minutes on 2 cores)::

    OMP_NUM_THREADS=1 python bench/gpu_check.py --device cpu --quick

What it does, all on the ``egovlpv2-base`` configuration with random weights (``--quick``: the micro configuration
of ``tests/conftest.py``):

1. correctness under bf16 autocast with padded captions: the ``sdpa`` and ``matmul`` kernels give the same dual
   text/video embeddings, fused states, VTM and MLM logits and parameter gradients, each as close to an fp32
   ``matmul`` reference as the other (gates opened and time attention randomised so every path does real work);
   adding extra padding changes nothing (the key-padding mask is honoured);
2. step equivalence (fp32, batch 2): the dynamic objective, fixed MLM slots, full and selective checkpointing and
   the masked/flex divided attention give the default eager step's parameter gradients;
3. divided attention per axis (space, time) at the base model's shapes, bf16 forward + backward: the split kernels
   (auto/sdpa/matmul) against one masked SDPA call and one FlexAttention call, timed and checked against fp32;
4. SDPA backends: every attention call site (video space/time, their CLS queries, video<-text and text<-video
   cross-attention, masked text self-attention) is recorded once in a training-mode pass and replayed forward +
   backward with each backend forced (``sdpa_kernel([SDPBackend.X])``), and with the default choice recorded;
5. the pretraining step (EgoNCE + MLM + VTM through ``PretrainObjective``, fused AdamW, uint8 pinned clips copied
   non-blocking and normalised on the GPU, as ``egokit pretrain`` runs it) in bf16 autocast, 4 frames x 224 px,
   15-token padded captions, one row per ``BATCH:MODE:ATTENTION[:OPTIONS]`` (see :class:`Row`; default plan:
   ``DEFAULT_ROWS``, then the batch sweep ``DEFAULT_SWEEP`` until a batch does not fit): s/step, clips/s, peak
   memory and GiB per clip, model FLOPs per step (the eager, non-checkpointed step's count: MFU never counts
   recomputation or a kernel's masked-out work) and their share of the bf16 matmul peak measured in the same run;
   rows up to ``--check-max-batch`` (32) reproduce the eager reference's loss terms (step 1 and, for captured
   modes, the first graph replay after the warm-up steps) within 1e-2;
6. the input path: host->device copy of a batch as uint8 vs float32, pinned vs pageable, the on-device
   normalisation, and the patch embedding in NCHW vs channels-last.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from egokit.data.transforms import normalize_video
from egokit.engine.features import prepare_video
from egokit.engine.objective import PretrainObjective
from egokit.engine.optim import adamw, param_groups
from egokit.losses import vtm_key
from egokit.models import EgoVLPv2, EgoVLPv2Config, PreprocessConfig, get_config
from egokit.models.video import VideoPatchEmbed
from egokit.perf import count_flops, machine_info, matmul_peak, peak_rss_gib

BF16 = torch.bfloat16
SECTIONS = ["correctness", "step_equivalence", "divided_attention", "sdpa_backends", "matmul_peak_bf16", "input_path",
            "train_step"]
MASK_TOKEN = 50264  # RoBERTa <mask>; small vocabularies use their last id


def micro_config() -> EgoVLPv2Config:
    """Same as ``tests/conftest.py::micro_config`` (3 layers, 2 fused, 32 px, 2 frames)."""
    return EgoVLPv2Config(width=32, num_heads=4, depth=3, fused_layers=2, image_size=32, patch_size=16,
                          num_frames=2, vocab_size=60, max_text_positions=24, text_intermediate_size=64,
                          projection_dim=24, text_dropout=0.0, preprocess=PreprocessConfig(num_frames=2, image_size=32))


# ---------------------------------------------------------------------------------------------------- inputs
def make_inputs(cfg: EgoVLPv2Config, batch: int, *, seed: int = 0, pin: bool = False) -> dict[str, torch.Tensor]:
    """A pretraining batch on the host: uint8 clips, padded captions (lengths from full down to ~half), an MLM
    view (2 masked tokens per caption), one verb and one noun class per clip (diagonal EgoNCE positives)."""
    g = torch.Generator().manual_seed(seed)
    length = cfg.preprocess.max_text_length
    video = torch.randint(0, 256, (batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size), generator=g,
                          dtype=torch.uint8)
    ids = torch.randint(5, min(cfg.vocab_size, 50000), (batch, length), generator=g)
    lengths = [length - i % (length // 2) for i in range(batch)]
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, 0], ids[i, n - 1], mask[i, :n] = 0, 2, 1  # <s> ... </s>
        ids[i, n:] = cfg.pad_token_id
    labels = torch.full_like(ids, -100)
    labels[:, 3:5] = ids[:, 3:5]
    mlm_ids = ids.clone()
    mlm_ids[:, 3:5] = MASK_TOKEN if cfg.vocab_size > MASK_TOKEN else cfg.vocab_size - 1
    verb, noun = torch.zeros(batch, 118), torch.zeros(batch, 582)
    verb[torch.arange(batch), torch.arange(batch) % 118] = 1
    noun[torch.arange(batch), torch.arange(batch) % 582] = 1
    out = {"video": video, "input_ids": ids, "attention_mask": mask, "mlm_input_ids": mlm_ids, "mlm_labels": labels,
           "verb": verb, "noun": noun}
    return {k: v.pin_memory() for k, v in out.items()} if pin else out


def new_model(cfg: EgoVLPv2Config, device: torch.device) -> EgoVLPv2:
    """Random weights, initialised on ``device`` (seconds instead of tens of seconds for the base model on CPU)."""
    with device:
        return EgoVLPv2(cfg)


def activate(model: EgoVLPv2) -> EgoVLPv2:
    """A fresh model is a dual encoder (gates 0, zero time attention): open the gates and randomise the time
    attention so the cross-attention and time-attention paths change the outputs."""
    with torch.no_grad():
        for p in model.gates():
            p.fill_(0.5)
        for block in model.video_model.blocks:
            for lin in (block.timeattn.qkv, block.timeattn.proj):
                torch.nn.init.trunc_normal_(lin.weight, std=model.config.init_std)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_calls(fn, repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, the device synchronised around every call."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30))


# ------------------------------------------------------------------------------------------- 1. correctness
def correctness(cfg: EgoVLPv2Config, device: torch.device, batch: int) -> dict:
    torch.manual_seed(0)
    model = activate(new_model(cfg, device)).eval()
    data = make_inputs(cfg, batch, seed=1)
    video = normalize_video(data["video"].to(device), cfg.preprocess.mean, cfg.preprocess.std)
    ids, mask = data["input_ids"].to(device), data["attention_mask"].to(device)
    extra = 8  # more padding: must change nothing
    ids_x = torch.cat([ids, torch.full_like(ids[:, :extra], cfg.pad_token_id)], 1)
    mask_x = torch.cat([mask, torch.zeros_like(mask[:, :extra])], 1)
    valid = mask.bool()
    g = torch.Generator().manual_seed(2)
    weights: dict[str, torch.Tensor] = {}

    def outputs(kernel: str, bf16: bool, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        model.config.attention = kernel
        with torch.autocast(device.type, dtype=BF16, enabled=bf16):
            fused = model.fusion(video, ids, mask)
            text = fused.text[:, :valid.shape[1]][valid]  # real tokens only (the padded run has more positions)
            return {"text_embedding": model.encode_text(ids, mask), "video_embedding": model.encode_video(video),
                    "fused_video": fused.video, "fused_text": text, "vtm_logits": model.vtm_head(fused),
                    "mlm_logits": model.mlm_head(text)}

    def run(kernel: str, bf16: bool, with_grad: bool = True, padded: bool = False) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(with_grad):
            out = outputs(kernel, bf16, ids_x, mask_x) if padded else outputs(kernel, bf16, ids, mask)
        out = {k: v.float() for k, v in out.items()}
        if with_grad:  # a fixed random linear functional of every output -> gradients of all parameters
            for k, v in out.items():
                if k not in weights:
                    weights[k] = torch.randn(v.shape, generator=g).to(device)
            sum((v * weights[k]).sum() for k, v in out.items()).backward()
            out["parameter_gradients"] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            out = {k: v.detach() for k, v in out.items()}
        return out

    ref = run("matmul", bf16=False)
    mm, sd = run("matmul", bf16=True), run("sdpa", bf16=True)
    rows = {}
    for name in ref:
        base = rel_err(mm[name], ref[name])
        row = {"sdpa_vs_matmul_bf16": rel_err(sd[name], mm[name]), "matmul_bf16_vs_fp32": base,
               "sdpa_bf16_vs_fp32": rel_err(sd[name], ref[name])}
        # The same output twice in bf16 differs by rounding; sdpa passes when it is as close to fp32 as matmul is.
        row["ok"] = row["sdpa_bf16_vs_fp32"] <= 2 * base + 1e-3 and row["sdpa_vs_matmul_bf16"] <= 0.05
        rows[name] = row
    padding = {}
    for kernel in ("sdpa", "matmul"):
        plain, padded = (sd if kernel == "sdpa" else mm), run(kernel, bf16=True, with_grad=False, padded=True)
        errs = {k: rel_err(padded[k], plain[k]) for k in padded}
        worst = max(errs, key=errs.get)
        padding[kernel] = {"extra_pad_tokens": extra, "max_rel_err": errs[worst], "worst_output": worst,
                           "ok": errs[worst] <= 2 * rows[worst]["matmul_bf16_vs_fp32"] + 1e-3}
    return {"batch": batch, "caption_lengths": valid.sum(1).tolist(), "outputs": rows, "padding_invariance": padding}


# ------------------------------------------------------------------------------------------ 2. SDPA backends
class _SdpaOps(TorchDispatchMode):
    """Records which SDPA implementation runs (the aten op that ``scaled_dot_product_attention`` dispatches to)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__ if hasattr(func, "__name__") else str(func)
        if "scaled_dot_product" in name or "attention" in name:
            self.ops.append(name.split(".")[0])
        return func(*args, **(kwargs or {}))


def _backend_name(ops: list[str]) -> str:
    for key, label in (("cudnn", "cudnn"), ("flash", "flash"), ("efficient", "efficient"), ("overrideable", "other")):
        if any(key in op for op in ops):
            return label + (f" ({ops[0]})" if label == "other" else "")
    return "math"


def record_call_sites(cfg: EgoVLPv2Config, device: torch.device, batch: int) -> dict[str, dict]:
    """One training-mode (dropout on) bf16 pass through every attention call site with the ``sdpa`` kernel; returns
    the first call of each site (detached inputs, mask, dropout, scale)."""
    import egokit.models.attention as attention_mod
    import egokit.models.text as text_mod
    import egokit.models.video as video_mod
    from egokit.models.text import SelfAttention

    sites: dict[str, dict] = {}

    def site_of(frame, q: torch.Tensor, mask) -> str:
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name == "_cross":
            return "video<-text cross (i2t), masked"
        if frame.f_code.co_name == "_divided_split":  # the split divided attention: CLS query, then the groups
            return f"video {frame.f_locals['axis']} ({'CLS query' if q.shape[-2] == 1 else 'patches'})"
        if isinstance(owner, SelfAttention):
            return "text self-attention, masked" if mask is not None else "text<-video cross (t2i)"
        return f"{frame.f_code.co_name} (unknown)"

    def wrap(original):
        def recorded(q, k, v, mask=None, *, kernel="auto", dropout_p=0.0, scale=None):
            name = site_of(sys._getframe(1), q, mask)
            if name not in sites:
                sites[name] = {"q": q.detach().clone(), "k": k.detach().clone(), "v": v.detach().clone(),
                               "mask": None if mask is None else mask.clone(), "dropout_p": dropout_p, "scale": scale}
            return original(q, k, v, mask, kernel=kernel, dropout_p=dropout_p, scale=scale)
        return recorded

    torch.manual_seed(0)
    model = activate(new_model(cfg.replace(attention="sdpa"), device)).train()
    data = make_inputs(cfg, batch, seed=3)
    video = normalize_video(data["video"].to(device), cfg.preprocess.mean, cfg.preprocess.std)
    ids, mask = data["input_ids"].to(device), data["attention_mask"].to(device)
    modules = (attention_mod, video_mod, text_mod)
    originals = [m.attention for m in modules]
    for m, original in zip(modules, originals):
        m.attention = wrap(original)
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=BF16):
            model.encode_text(ids, mask), model.encode_video(video), model.fusion(video, ids, mask)
    finally:
        for m, original in zip(modules, originals):
            m.attention = original
    return sites


def probe_backends(sites: dict[str, dict]) -> dict[str, dict]:
    """Replay each call site forward + backward: with the default choice (which backend ran), then with each
    backend forced alone (ok, or the reason SDPA gives)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [b for b in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")
                if hasattr(SDPBackend, b)]
    report = {}
    for name, s in sites.items():
        def call(record: _SdpaOps | None = None):
            q, k, v = (s[x].detach().clone().requires_grad_() for x in ("q", "k", "v"))
            with record or contextlib.nullcontext():
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=s["mask"], dropout_p=s["dropout_p"],
                                                     scale=s["scale"])
            fwd = list(record.ops) if record else []
            with record or contextlib.nullcontext():
                out.float().sum().backward()
            return out.detach(), fwd, (list(record.ops[len(fwd):]) if record else [])

        row = {"q": list(s["q"].shape), "k": list(s["k"].shape), "dtype": str(s["q"].dtype).replace("torch.", ""),
               "mask": None if s["mask"] is None else f"{str(s['mask'].dtype).replace('torch.', '')} "
                                                       f"{list(s['mask'].shape)}", "dropout_p": s["dropout_p"]}
        _, fwd_ops, bwd_ops = call(_SdpaOps())
        row["default_forward"], row["default_backward"] = _backend_name(fwd_ops), _backend_name(bwd_ops)
        row["default_ops"] = sorted(set(fwd_ops + bwd_ops))
        with sdpa_kernel([SDPBackend.MATH]):
            reference = call()[0]
        for b in backends:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    with sdpa_kernel([getattr(SDPBackend, b)]):
                        out = call()[0]
                    err = rel_err(out, reference)
                    row[b] = "ok" if s["dropout_p"] else f"ok (vs math {err:.1e})"
                except RuntimeError as exc:  # SDPA warns why each kernel was ruled out, then raises
                    reasons = [" ".join(str(w.message).split()) for w in caught]
                    if not reasons and "No viable backend" in str(exc):
                        reasons = ["unavailable (not built for this device, or not for these inputs)"]
                    row[b] = "no: " + ("; ".join(reasons) or str(exc).split("\n")[0])[:400]
        row.update(time_site(s))
        report[name] = row
    return report


def time_site(s: dict, repeats: int = 10) -> dict:
    """Forward + backward time of one recorded call site with SDPA's default backend and with the explicit matmul
    kernel, and which one ``attention="auto"`` picks for it."""
    from egokit.models.attention import attention, resolve_kernel

    def run(kernel: str) -> None:
        q, k, v = (s[x].detach().clone().requires_grad_() for x in ("q", "k", "v"))
        out = attention(q, k, v, s["mask"], kernel=kernel, dropout_p=s["dropout_p"], scale=s["scale"])
        out.float().sum().backward()

    device = s["q"].device
    times = {}
    for kernel in ("sdpa", "matmul"):
        run(kernel)
        sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            run(kernel)
        sync(device)
        times[f"fwd_bwd_ms_{kernel}"] = 1e3 * (time.perf_counter() - start) / repeats
    return {**times, "auto_picks": resolve_kernel("auto", device, s["k"].shape[-2])}


# ------------------------------------------------------------------------------------- 3. pretraining step
@dataclass(frozen=True)
class Row:
    """One train-step configuration: ``BATCH:MODE:ATTENTION[:OPTION,...]`` on the command line.

    Modes: ``eager``; ``compiled`` = ``compile_blocks()`` (inductor, per block); ``cudagraphs`` = ``compile_blocks(
    mode="reduce-overhead")``; ``fullgraph`` = the whole objective (forward, losses; backward through AOTAutograd)
    as one ``torch.compile(fullgraph=True)`` graph; ``captured`` = fullgraph + the whole step (forward, backward,
    capturable fused AdamW) recorded once as a CUDA graph and replayed; ``blocks-captured`` = ``compile_blocks()`` +
    the same capture; ``eager-captured`` = the eager step captured. Options: ``dynamic`` (the boolean-indexing
    objective, ``static_shapes=False``), ``divided=split|masked|flex``, ``ckpt=none|full|selective``, ``slots=K``
    (fixed MLM slots per caption)."""

    batch: int
    mode: str
    attention: str = "auto"
    static: bool = True
    divided: str = "split"
    ckpt: str = "none"
    slots: int | None = None

    @property
    def options(self) -> list[str]:
        out = [] if self.static else ["dynamic"]
        out += [f"divided={self.divided}"] if self.divided != "split" else []
        out += [f"ckpt={self.ckpt}"] if self.ckpt != "none" else []
        return out + ([f"slots={self.slots}"] if self.slots else [])

    @property
    def spec(self) -> str:
        options = [",".join(self.options)] if self.options else []
        return ":".join([str(self.batch), self.mode, self.attention, *options])


MODES = ["eager", "compiled", "cudagraphs", "fullgraph", "captured", "blocks-captured", "eager-captured"]
CAPTURED = ("captured", "blocks-captured", "eager-captured")
WARMUP = 3  # steps before timing (captured modes: on a side stream, then the capture)


def parse_row(text: str, parser: argparse.ArgumentParser) -> Row:
    parts = text.split(":")
    if len(parts) not in (3, 4) or not parts[0].isdigit() or parts[1] not in MODES \
            or parts[2] not in ("auto", "sdpa", "matmul"):
        parser.error(f"--rows {text!r}: expected BATCH:MODE:ATTENTION[:OPTIONS], MODE one of {MODES}, ATTENTION one of "
                     "auto/sdpa/matmul, OPTIONS comma-separated dynamic, divided=split|masked|flex, "
                     "ckpt=none|full|selective, slots=K (e.g. 128:captured:auto:ckpt=selective,divided=flex)")
    fields: dict = {"batch": int(parts[0]), "mode": parts[1], "attention": parts[2]}
    for option in (parts[3].split(",") if len(parts) == 4 and parts[3] else []):
        name, _, value = option.partition("=")
        if name == "dynamic" and not value:
            fields["static"] = False
        elif name == "divided" and value in ("split", "masked", "flex"):
            fields["divided"] = value
        elif name == "ckpt" and value in ("none", "full", "selective"):
            fields["ckpt"] = value
        elif name == "slots" and value.isdigit() and int(value) > 0:
            fields["slots"] = int(value)
        else:
            parser.error(f"--rows {text!r}: unknown option {option!r} (dynamic, divided=split|masked|flex, "
                         "ckpt=none|full|selective, slots=K)")
    return Row(**fields)


def step_model(cfg: EgoVLPv2Config, device: torch.device, row: Row) -> EgoVLPv2:
    """The row's model, seeded so every row starts from the same weights, gates opened and time attention randomised
    (:func:`activate`: every path changes the losses, as in a pretrained model). Dropout is off (text_dropout 0):
    compiled and eager steps then compute the same function and can be checked against each other (its cost is
    < 0.1 % of the step)."""
    torch.manual_seed(0)
    model = new_model(cfg.replace(attention=row.attention, divided_attention=row.divided, text_dropout=0.0), device)
    model.set_grad_checkpointing(row.ckpt)
    return activate(model).train()


def build_step(cfg: EgoVLPv2Config, device: torch.device, row: Row, compile_backend: str | None):
    """``egokit pretrain``'s step: pinned uint8 batch -> non-blocking copy -> normalise on device -> objective under
    bf16 autocast -> backward -> fused AdamW. Returns ``(step, model)``; ``step()`` returns the objective's outputs.
    Step k (from 1) draws its VTM pairs with seed k in every mode, so rows can be compared step by step."""
    model = step_model(cfg, device, row)
    if row.mode in ("compiled", "cudagraphs", "blocks-captured"):
        extra = {"mode": "reduce-overhead"} if row.mode == "cudagraphs" else {}
        model.compile_blocks(backend=compile_backend, **extra)
    objective = PretrainObjective(model, doubled=False, static_shapes=row.static, mlm_slots=row.slots)
    run = objective
    if row.mode in ("fullgraph", "captured"):
        run = torch.compile(objective, fullgraph=True, backend=compile_backend)
    captured = row.mode in CAPTURED
    if captured and device.type != "cuda":
        raise RuntimeError(f"mode {row.mode} records a CUDA graph: it needs a GPU")
    optimizer = adamw(param_groups(model, 3e-5, 0.01, lr_mult_head=4, lr_mult_cross=4), lr=3e-5, device=device,
                      capturable=captured)
    host = make_inputs(cfg, row.batch, pin=device.type == "cuda")
    seeds = iter(range(1, 1 << 62))
    if captured:
        return capture_step(model, run, optimizer, host, device, seeds), model
    tensor_key = row.mode == "fullgraph"  # a Python int would be a constant of the compiled graph

    def step() -> dict[str, torch.Tensor]:
        if row.mode == "cudagraphs":  # a new training iteration: earlier graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        video = prepare_video(host["video"], model, device)
        tensors = {k: v.to(device, non_blocking=True) for k, v in host.items() if k != "video"}
        seed = next(seeds)
        key = torch.full((), vtm_key(seed), dtype=torch.long, device=device) if tensor_key else seed
        with torch.autocast(device.type, dtype=BF16):
            out = run(video=video, vtm_seed=key, **tensors)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out

    return step, model


def capture_step(model: EgoVLPv2, run, optimizer, host: dict[str, torch.Tensor], device: torch.device, seeds):
    """Record the whole training step (normalisation, objective, backward, AdamW) as one CUDA graph: the launch cost
    no longer grows with the number of kernels. Inputs go to static device buffers (non-blocking copies from pinned
    memory) and the VTM key to a device scalar before each replay. ``WARMUP`` real steps run first on a side stream
    (allocator, compilation, optimizer state); their outputs are kept in ``step.warmup_outputs``."""
    static = {k: torch.empty(v.shape, dtype=v.dtype, device=device) for k, v in host.items()}
    key = torch.zeros((), dtype=torch.long, device=device)

    def load() -> None:
        for k, v in host.items():
            static[k].copy_(v, non_blocking=True)
        key.fill_(vtm_key(next(seeds)))

    def body() -> dict[str, torch.Tensor]:
        video = prepare_video(static["video"], model, device)
        # no autocast weight cache: a cast cached outside the graph would be replayed stale after optimizer steps
        with torch.autocast(device.type, dtype=BF16, cache_enabled=False):
            out = run(video=video, vtm_seed=key, **{k: v for k, v in static.items() if k != "video"})
        out["loss"].backward()
        optimizer.step()
        return out

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    warm = []
    with torch.cuda.stream(side):
        for _ in range(WARMUP):
            load()
            optimizer.zero_grad(set_to_none=True)
            warm.append({k: v.detach().clone() for k, v in body().items()})
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # backward inside the graph allocates the gradients from its pool
    with torch.cuda.graph(graph):
        outputs = body()

    def step() -> dict[str, torch.Tensor]:
        load()
        graph.replay()
        return outputs

    step.warmup_outputs = warm
    step.graph = graph
    return step


LOSS_TERMS = ("loss", "egonce", "mlm", "vtm")


def reference_losses(cfg: EgoVLPv2Config, device: torch.device, batch: int, steps: int) -> list[dict[str, float]]:
    """Loss terms of ``steps`` eager steps (static shapes, split attention, no checkpointing, seeds 1, 2, ...) from
    the rows' common initial weights: what every row's steps must reproduce up to bf16 rounding."""
    step, model = build_step(cfg, device, Row(batch, "eager"), None)
    try:
        return [{k: float(v.detach()) for k, v in step().items() if k in LOSS_TERMS} for _ in range(steps)]
    finally:
        del step, model
        release(device)


def model_flops(cfg: EgoVLPv2Config, device: torch.device, batch: int, cache: dict, max_counted: int) -> dict:
    """Model FLOPs of one step (forward + backward, what ``FlopCounterMode`` counts) of the eager, static,
    split-attention, non-checkpointed step: the work the model needs, whatever a row recomputes or how it
    computes attention (MFU is always measured against this). Counted directly up to ``max_counted`` clips; above
    (a step that may not fit without checkpointing) extrapolated linearly from two counted batches (the only
    non-linear term, the EgoNCE similarity, is ~1e-6 of the step)."""
    def counted(b: int) -> int:
        if b not in cache:
            step, model = build_step(cfg, device, Row(b, "eager"), None)
            try:
                step()  # warm-up: the first step's lazy initialisations are not model work
                cache[b] = count_flops(step)
            finally:
                del step, model
                release(device)
        return cache[b][0]

    if batch <= max_counted:
        total = counted(batch)
        return {"flops_per_step": total, "flops_by_op": dict(list(cache[batch][1].items())[:8]),
                "flops_method": "counted"}
    lo, hi = max(1, max_counted // 4), max_counted
    f_lo, f_hi = counted(lo), counted(hi)
    total = int(f_hi + (f_hi - f_lo) * (batch - hi) / (hi - lo))
    return {"flops_per_step": total, "flops_method": f"extrapolated from batches {lo} and {hi}"}


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def profile_step(step, device: torch.device, path: Path, steps: int = 2) -> dict:
    """Profile ``steps`` warm steps (host and device activity): writes the op tables by device time and by host
    time to ``path`` and returns the device-busy share of the wall time (low = the host cannot feed the GPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    wall = time.perf_counter() - start
    averages = prof.key_averages()
    device_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    busy = sum(getattr(e, device_key, 0) for e in averages if e.device_type.name == device.type.upper()) / 1e6
    launches = sum(e.count for e in averages if e.device_type.name == device.type.upper())
    text = [f"{steps} profiled steps, wall {wall:.3f} s (profiler overhead included); device kernels {busy:.3f} s "
            f"({100 * busy / wall:.0f} % busy), {launches} kernels; host ops {sum(e.count for e in averages)}"]
    for key in (device_key, "self_cpu_time_total", "count"):
        text += [f"\n== sorted by {key}", averages.table(sort_by=key, row_limit=45, max_name_column_width=70)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text))
    return {"wall_s": wall / steps, "device_busy_s": busy / steps, "device_busy_share": busy / wall,
            "kernels_per_step": launches / steps, "table": str(path)}


def compare_losses(got: dict[str, torch.Tensor], want: dict[str, float]) -> dict:
    """Largest difference of the loss terms, relative to max(|reference|, 1); ok under 1e-2 (bf16 rounding of
    different but equivalent kernels, a few optimizer steps in)."""
    diffs = {k: abs(float(got[k]) - want[k]) / max(abs(want[k]), 1.0) for k in LOSS_TERMS if k in got and k in want}
    worst = max(diffs, key=diffs.get)
    return {"max_rel_diff": diffs[worst], "worst_term": worst, "ok": diffs[worst] <= 1e-2}


def time_step(cfg, device, row: Row, steps: int, compile_backend: str, flops: dict | None,
              reference: list[dict[str, float]] | None, profile_dir: Path | None = None) -> dict:
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    out = {"spec": row.spec, "batch": row.batch, "mode": row.mode, "attention": row.attention,
           "static_shapes": row.static, "divided_attention": row.divided, "checkpointing": row.ckpt,
           "mlm_slots": row.slots, "frames": cfg.num_frames, "image_size": cfg.image_size,
           "caption_tokens": cfg.preprocess.max_text_length}
    step = model = None
    try:
        start = time.perf_counter()
        step, model = build_step(cfg, device, row, compile_backend)
        if row.mode in CAPTURED:  # warm-up steps 1..WARMUP and the capture happened in build_step; then replay 1
            outputs = step.warmup_outputs + [{k: v.detach().clone() for k, v in step().items()}]
        else:
            outputs = [{k: v.detach().clone() for k, v in step().items()}]
            sync(device)
            out["first_step_s"] = time.perf_counter() - start  # includes compilation for the compiled modes
            outputs += [step() for _ in range(WARMUP - 1)]
        sync(device)
        out["warmup_s"] = time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times = timed_calls(step, steps, device)
        out.update(step_seconds=times, seconds_per_step=statistics.median(times))
        out["clips_per_s"] = row.batch / out["seconds_per_step"]
        if reference:  # step 1 and (captured) the first replay = step WARMUP + 1, against the eager reference
            check = compare_losses(outputs[0], reference[0])
            if row.mode in CAPTURED and len(reference) > WARMUP:
                later = compare_losses(outputs[WARMUP], reference[WARMUP])
                check = {**(later if later["max_rel_diff"] > check["max_rel_diff"] else check), "replay_checked": True}
            out["reference_check"] = check
        if device.type == "cuda":
            out["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
            out["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
            out["gib_per_clip"] = out["peak_allocated_gib"] / row.batch
        else:
            out["peak_rss_gib"] = peak_rss_gib()
        if row.mode != "eager":
            out["dynamo"] = {k: dict(counters[k]) for k in ("stats", "frames", "recompiles", "graph_break")
                             if counters.get(k)}
        if profile_dir is not None:
            out["profile"] = profile_step(step, device, profile_dir / f"profile_{row.spec.replace(':', '_')}.txt")
        if flops:
            out.update(flops)
            out["achieved_tflops"] = flops["flops_per_step"] / out["seconds_per_step"] / 1e12
    except Exception as exc:  # noqa: BLE001 - one shot on a lent machine: record it, go on with the next row
        oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)
        out["error"] = ("out of memory: " if oom else "") + f"{type(exc).__name__}: " \
                       f"{(str(exc).splitlines() or [''])[0][:300]}"
        out["oom"] = oom
    finally:
        del step, model
        release(device)
    return out


# ----------------------------------------------------------------------------- divided attention per axis
def divided_sites(cfg: EgoVLPv2Config, device: torch.device, batch: int, repeats: int) -> dict:
    """Video space and time attention as the base model runs them (q/k/v (B, H, 1 + F*N, hd), bf16): forward +
    backward time of each implementation (split with the ``auto``/``sdpa``/``matmul`` kernels, one masked SDPA
    call, one FlexAttention call; flex compiled as egokit runs it on CUDA), and its error against an fp32 split
    matmul reference (outputs and q/k/v gradients), ok when within twice the bf16 split kernel's own error + 1e-3."""
    from egokit.models.attention import divided_attention

    h, hd = cfg.num_heads, cfg.head_dim
    t = 1 + cfg.num_frames * cfg.patches_per_frame
    g = torch.Generator().manual_seed(5)
    base = [torch.randn(batch, h, t, hd, generator=g).to(device) for _ in range(3)]
    weight = torch.randn(batch, h, t, hd, generator=g).to(device)
    variants = [("split", "auto"), ("split", "sdpa"), ("split", "matmul"), ("masked", "auto"), ("flex", "auto")]
    report = {"q_shape": [batch, h, t, hd]}

    def run(divided: str, kernel: str, axis: str, dtype) -> list[torch.Tensor]:
        q, k, v = (z.detach().to(dtype).requires_grad_() for z in base)
        out = divided_attention(q, k, v, cfg.num_frames, axis, kernel=kernel, divided=divided)
        (out.float() * weight).sum().backward()
        return [out.detach().float(), q.grad.float(), k.grad.float(), v.grad.float()]

    for axis in ("space", "time"):
        ref = run("split", "matmul", axis, torch.float32)
        split_err = max(rel_err(a, b) for a, b in zip(run("split", "matmul", axis, BF16), ref))
        rows = {}
        for divided, kernel in variants:
            name = f"{divided} ({kernel})" if divided != "flex" else "flex"
            try:
                err = max(rel_err(a, b) for a, b in zip(run(divided, kernel, axis, BF16), ref))
                fn = lambda d=divided, kn=kernel: run(d, kn, axis, BF16)  # noqa: E731
                fn()
                times = timed_calls(fn, repeats, device)
                rows[name] = {"fwd_bwd_ms": 1e3 * statistics.median(times), "max_rel_err_vs_fp32": err,
                              "ok": err <= 2 * split_err + 1e-3}
            except Exception as exc:  # noqa: BLE001 - record and go on with the other implementations
                rows[name] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}",
                              "ok": False}
            release(device)
        report[axis] = {"split_bf16_rel_err": split_err, "implementations": rows}
    return report


# ------------------------------------------------------------------------------------- step equivalence
def step_equivalence(cfg: EgoVLPv2Config, device: torch.device, batch: int) -> dict:
    """Gradients of one float32 step (no autocast) with each variant against the default eager step (static
    shapes, split attention, no checkpointing) at the same weights and VTM key: the dynamic objective,
    full/selective checkpointing, masked/flex divided attention. Relative L2 error over all parameter gradients;
    ok under 1e-4 (1e-3 for the attention implementations, which reorder the softmax sums)."""
    data = make_inputs(cfg, batch, seed=1)

    def grads(row: Row) -> tuple[torch.Tensor, torch.Tensor]:
        model = step_model(cfg, device, row)
        objective = PretrainObjective(model, doubled=False, static_shapes=row.static, mlm_slots=row.slots)
        video = prepare_video(data["video"], model, device)
        tensors = {k: v.to(device) for k, v in data.items() if k != "video"}
        out = objective(video=video, vtm_seed=torch.full((), vtm_key(7), dtype=torch.long, device=device),
                        **tensors)
        out["loss"].backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).detach()
        loss = out["loss"].detach()
        del model, objective, out
        release(device)
        return flat, loss

    reference, ref_loss = grads(Row(batch, "eager"))
    variants = {"dynamic objective": (Row(batch, "eager", static=False), 1e-4),
                "mlm slots=4": (Row(batch, "eager", slots=4), 1e-4),
                "full checkpointing": (Row(batch, "eager", ckpt="full"), 1e-4),
                "selective checkpointing": (Row(batch, "eager", ckpt="selective"), 1e-4),
                "masked divided attention": (Row(batch, "eager", divided="masked"), 1e-3),
                "flex divided attention": (Row(batch, "eager", divided="flex"), 1e-3)}
    report = {}
    for name, (row, tol) in variants.items():
        try:
            flat, loss = grads(row)
            err = rel_err(flat, reference)
            report[name] = {"grad_rel_err": err, "loss_rel_err": rel_err(loss, ref_loss), "ok": err <= tol}
        except Exception as exc:  # noqa: BLE001
            report[name] = {"error": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}", "ok": False}
    return report


# ------------------------------------------------------------------------------------------ 4. input path
def input_path(cfg: EgoVLPv2Config, device: torch.device, batch: int, repeats: int) -> dict:
    cuda = device.type == "cuda"
    host_u8 = make_inputs(cfg, batch)["video"]
    host_f32 = host_u8.float()

    def best(fn) -> float:
        fn()
        return min(timed_calls(fn, repeats, device))

    out = {"batch_shape": list(host_u8.shape), "uint8_mib": host_u8.nbytes / 2**20,
           "float32_mib": host_f32.nbytes / 2**20}
    cases = {"uint8 pageable": host_u8, "float32 pageable": host_f32}
    if cuda:
        cases = {"uint8 pinned": host_u8.pin_memory(), "float32 pinned": host_f32.pin_memory(), **cases}
    copies = {}
    for name, tensor in cases.items():
        s = best(lambda t=tensor: t.to(device, non_blocking=True))
        copies[name] = {"ms": 1e3 * s, "gb_per_s": tensor.nbytes / s / 1e9 if cuda else None}
    out["host_to_device"] = copies
    on_device = host_u8.to(device)
    pre = cfg.preprocess
    out["normalise_on_device_ms"] = 1e3 * best(lambda: normalize_video(on_device, pre.mean, pre.std))
    key = "uint8 pinned" if cuda else "uint8 pageable"
    out["uint8_copy_plus_normalise_ms"] = copies[key]["ms"] + out["normalise_on_device_ms"]
    out["float32_copy_ms"] = copies["float32 pinned" if cuda else "float32 pageable"]["ms"]

    # Patch embedding (the only convolution) in NCHW vs channels-last, forward + backward under bf16 autocast.
    torch.manual_seed(0)
    conv = VideoPatchEmbed(cfg.patch_size, cfg.width).proj.to(device)
    frames = normalize_video(on_device, pre.mean, pre.std).flatten(0, 1)
    conv_times = {}
    for name, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        layer = conv.to(memory_format=fmt)
        x = frames.contiguous(memory_format=fmt).requires_grad_()

        def run(layer=layer, x=x) -> None:
            with torch.autocast(device.type, dtype=BF16):
                y = layer(x)
            y.float().sum().backward()

        conv_times[name + "_ms"] = 1e3 * best(run)
    out["patch_embed_fwd_bwd"] = conv_times
    return out


# ---------------------------------------------------------------------------------------------- reporting
def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    cells = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ModuleNotFoundError:
        print(f"\n{title}")
        widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
        for r in [headers, *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        return
    table = Table(title=title)
    for h in headers:
        table.add_column(h)
    for r in cells:
        table.add_row(*r)
    Console(width=200).print(table)


def checks_of(result: dict, device: torch.device) -> list[dict]:
    checks = []
    for name, row in result.get("correctness", {}).get("outputs", {}).items():
        checks.append({"check": f"sdpa == matmul in bf16: {name}", "ok": row["ok"],
                       "detail": f"rel err {row['sdpa_vs_matmul_bf16']:.2e}; vs fp32: sdpa "
                                 f"{row['sdpa_bf16_vs_fp32']:.2e} / matmul {row['matmul_bf16_vs_fp32']:.2e}"})
    for kernel, row in result.get("correctness", {}).get("padding_invariance", {}).items():
        checks.append({"check": f"extra padding changes nothing ({kernel})", "ok": row["ok"],
                       "detail": f"max rel err {row['max_rel_err']:.2e} ({row['worst_output']})"})
    for name, row in result.get("step_equivalence", {}).items():
        checks.append({"check": f"same gradients, fp32 step: {name}", "ok": row["ok"],
                       "detail": row.get("error") or f"grad rel err {row['grad_rel_err']:.2e}, "
                                                      f"loss rel err {row['loss_rel_err']:.2e}"})
    for axis in ("space", "time"):
        for name, row in result.get("divided_attention", {}).get(axis, {}).get("implementations", {}).items():
            checks.append({"check": f"divided attention {axis}: {name} vs fp32 split", "ok": row["ok"],
                           "detail": row.get("error") or f"max rel err {row['max_rel_err_vs_fp32']:.2e} (out, dq, dk, "
                                                          f"dv), {row['fwd_bwd_ms']:.2f} ms fwd+bwd"})
    if device.type == "cuda":  # the point of the fast path: no call site may fall back to the math kernel
        for name, row in result.get("sdpa_backends", {}).items():
            fast = row["default_forward"] != "math" and row["default_backward"] != "math"
            checks.append({"check": f"fast SDPA backend: {name}", "ok": fast,
                           "detail": f"forward {row['default_forward']}, backward {row['default_backward']}"})
    for key, text in result.get("errors", {}).items():
        checks.append({"check": f"section {key} ran", "ok": False, "detail": text.strip().splitlines()[-1]})
    for row in result.get("train_step", []):
        expected_oom = row.get("oom") and row.get("sweep")  # the batch sweep stops at the first batch that does not fit
        checks.append({"check": f"train step {row['spec']} ran", "ok": "error" not in row or bool(expected_oom),
                       "detail": row.get("error", f"{row.get('seconds_per_step', 0):.3f} s/step")})
        if "reference_check" in row:
            c = row["reference_check"]
            checks.append({"check": f"train step {row['spec']} losses == eager reference", "ok": c["ok"],
                           "detail": f"max rel diff {c['max_rel_diff']:.2e} ({c['worst_term']})"
                                     + (", first CUDA-graph replay included" if c.get("replay_checked") else "")})
    return checks


#: The default GPU plan, most informative first (rows that would start after --budget-s are skipped and listed):
#: the step before this change (dynamic shapes, eager), static shapes eager, the README baseline (compile_blocks),
#: whole-step fullgraph compile + CUDA-graph capture, 128 clips with selective (then full) checkpointing, the
#: fullgraph compile alone, capture with fused (flex) divided attention, compile_blocks + capture, then the batch
#: sweep (--sweep) until a batch does not fit the memory cap. Each compiled row compiles its own graph (inductor's
#: on-disk cache makes a repeated graph cheap), so the plan may not finish in one 10-minute call: the JSON is
#: written after every row and what was skipped is listed.
DEFAULT_ROWS = ["32:eager:auto:dynamic", "32:eager:auto", "32:compiled:auto", "32:captured:auto",
                "128:captured:auto:ckpt=selective", "128:captured:auto:ckpt=full", "32:fullgraph:auto",
                "32:captured:auto:divided=flex", "32:blocks-captured:auto"]
DEFAULT_SWEEP = "captured:auto:ckpt=selective"
DEFAULT_SWEEP_BATCHES = [96, 160, 192, 256]
QUICK_ROWS = ["4:eager:auto:dynamic", "4:eager:auto", "4:compiled:auto", "4:fullgraph:auto",
              "4:fullgraph:auto:divided=flex,ckpt=selective,slots=4", "2:eager:auto:divided=masked,ckpt=full"]
QUICK_SWEEP, QUICK_SWEEP_BATCHES = "fullgraph:auto:ckpt=selective", [8]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="micro model, tiny batches (the CPU smoke test)")
    parser.add_argument("--rows", nargs="+", default=None, metavar="BATCH:MODE:ATTENTION[:OPTIONS]",
                        help="train-step rows in this order (default: the plan in DEFAULT_ROWS); see Row for modes "
                             "and options")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="instead of --rows: batches x --attention x --modes")
    parser.add_argument("--modes", nargs="+", default=None, choices=MODES, help="with --batches (eager compiled)")
    parser.add_argument("--attention", nargs="+", default=None, choices=["auto", "sdpa", "matmul"],
                        help="with --batches (auto)")
    parser.add_argument("--sweep", default=None, metavar="MODE:ATTENTION[:OPTIONS]",
                        help=f"batch sweep after the rows, stopping at the first out-of-memory ({DEFAULT_SWEEP}); "
                             "'none' to skip")
    parser.add_argument("--sweep-batches", type=int, nargs="+", default=None,
                        help=f"batches of the sweep ({' '.join(map(str, DEFAULT_SWEEP_BATCHES))})")
    parser.add_argument("--memory-cap-gb", type=float, default=80.0,
                        help="cap this process's GPU memory at this many GB (1e9 bytes) on larger cards, with "
                             "torch.cuda.set_per_process_memory_fraction (80: the H100 80GB claim)")
    parser.add_argument("--check-max-batch", type=int, default=None,
                        help="rows up to this batch are checked against the eager reference and their FLOPs "
                             "counted directly; larger batches are extrapolated (32; quick: 4)")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps after {WARMUP} warm-up steps (5)")
    parser.add_argument("--site-batch", type=int, default=None, help="batch of the attention call sites (32; quick 4)")
    parser.add_argument("--compile-backend", default=None, help="inductor (quick mode: aot_eager, no C++ compiler)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip train-step rows that start later than this")
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS, help="what to run (all)")
    parser.add_argument("--profile", default=None, help="folder for per-row torch.profiler tables (off)")
    parser.add_argument("--json", default=None, help="results file (default $OUT/gpu_check.json when OUT is set)")
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: CUDA is not available (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
              "this check must run on a GPU. For the CPU smoke test: --device cpu --quick", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.quick:
        print("error: on CPU only the smoke test runs (--device cpu --quick); CPU timings: bench/train_step.py",
              file=sys.stderr)
        return 2
    device = torch.device(args.device)
    quick = args.quick
    cfg = micro_config() if quick else get_config("egovlpv2-base")
    if args.rows:
        rows = [parse_row(r, parser) for r in args.rows]
    elif args.batches or args.modes or args.attention:
        rows = [Row(b, m, a) for b in (args.batches or ([4, 2] if quick else [32, 2]))
                for a in (args.attention or ["auto"]) for m in (args.modes or ["eager", "compiled"])]
    else:
        rows = [parse_row(r, parser) for r in (QUICK_ROWS if quick else DEFAULT_ROWS)]
    sweep_spec = args.sweep or (QUICK_SWEEP if quick else DEFAULT_SWEEP)
    sweep = [] if sweep_spec == "none" else [
        parse_row(f"{b}:{sweep_spec}", parser) for b in (args.sweep_batches or
                                                          (QUICK_SWEEP_BATCHES if quick else DEFAULT_SWEEP_BATCHES))]
    steps = args.steps or (2 if quick else 5)
    check_max = args.check_max_batch or (4 if quick else 32)
    site_batch = args.site_batch or (4 if quick else 32)
    compile_backend = args.compile_backend or ("aot_eager" if quick else "inductor")
    json_path = args.json or (str(Path(os.environ["OUT"]) / "gpu_check.json") if os.environ.get("OUT") else None)
    started = time.perf_counter()
    result: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": quick,
                    "device": args.device, "model": "micro (tests/conftest.py)" if quick else "egovlpv2-base",
                    "machine": machine_info(), "rows_planned": [r.spec for r in rows],
                    "sweep_planned": [r.spec for r in sweep]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        result["gpu"] = {"name": props.name, "memory_gib": props.total_memory / 2**30,
                         "multiprocessors": props.multi_processor_count, "capability": f"{props.major}.{props.minor}",
                         "cudnn": torch.backends.cudnn.version(), "bf16_supported": torch.cuda.is_bf16_supported()}
        fraction = min(1.0, args.memory_cap_gb * 1e9 / props.total_memory)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        result["memory_cap"] = {"gb": args.memory_cap_gb, "gib": args.memory_cap_gb * 1e9 / 2**30,
                                "fraction_of_card": fraction}

    def save() -> None:
        result["elapsed_s"] = time.perf_counter() - started
        result["checks"] = checks_of(result, device)
        result["headline"] = [
            {"what": f"train step, egokit {result['model']} bf16 {args.device}, {r['spec']}",
             "value": f"{r['seconds_per_step']:.3f} s/step, {r['clips_per_s']:.1f} clips/s, "
                      + (f"peak {r['peak_allocated_gib']:.1f} GiB ({r['gib_per_clip']:.2f} GiB/clip)"
                         if "peak_allocated_gib" in r else f"peak RSS {r.get('peak_rss_gib', 0):.2f} GiB"),
             "note": (f"{r['achieved_tflops']:.1f} TFLOP/s of model FLOPs = {100 * r['bf16_peak_share']:.0f} % of the "
                      f"bf16 matmul peak measured in the same run" if "bf16_peak_share" in r else "")}
            for r in result.get("train_step", []) if "seconds_per_step" in r]
        if json_path:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(result, indent=2, default=str))

    def stage(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", flush=True)

    def section(key: str, title: str, fn) -> None:
        if key not in args.sections:
            return
        stage(title)
        try:
            result[key] = fn()
        except Exception:  # noqa: BLE001 - one shot on a lent machine: record it, run the other sections
            result.setdefault("errors", {})[key] = traceback.format_exc()
            print(result["errors"][key], file=sys.stderr)
        save()

    section("correctness", "correctness: sdpa vs matmul under bf16 autocast, padded captions",
            lambda: correctness(cfg, device, batch=4))
    section("step_equivalence", "same gradients: dynamic objective, checkpointing, divided attention (fp32)",
            lambda: step_equivalence(cfg, device, batch=4 if quick else 2))
    section("divided_attention", "divided attention per axis: split vs masked vs flex",
            lambda: divided_sites(cfg, device, batch=site_batch, repeats=3 if quick else 10))
    section("sdpa_backends", "SDPA backends per attention call site",
            lambda: probe_backends(record_call_sites(cfg, device, batch=site_batch)))
    sizes, repeats = ((256,), 2) if quick else ((8192,), 10)
    section("matmul_peak_bf16", "bf16 matmul peak",
            lambda: matmul_peak(BF16, device=args.device, sizes=sizes, repeats=repeats))
    section("input_path", "input path: host->device copies, normalisation, patch embedding layout",
            lambda: input_path(cfg, device, batch=rows[0].batch if rows else site_batch, repeats=3 if quick else 10))
    result["train_step"] = []
    flops_cache: dict = {}
    references: dict = {}
    profile_dir = Path(args.profile) if args.profile else None
    peak = result.get("matmul_peak_bf16", {}).get("flops_per_s")
    if "train_step" not in args.sections:
        rows, sweep = [], []
    sweep_stopped = False
    for index, row in enumerate(rows + sweep):
        in_sweep = index >= len(rows)
        if time.perf_counter() - started > args.budget_s or (in_sweep and sweep_stopped):
            why = "time budget --budget-s" if not sweep_stopped else "an earlier sweep batch did not fit"
            result.setdefault("skipped", []).append(f"{row.spec} ({why})")
            continue
        compiled = row.mode not in ("eager", "eager-captured")
        stage(f"train step {row.spec}" + (f" ({compile_backend})" if compiled else ""))
        try:
            if row.batch <= check_max and row.batch not in references:
                references[row.batch] = reference_losses(cfg, device, row.batch, WARMUP + 1)
            flops = model_flops(cfg, device, row.batch, flops_cache, check_max)
        except Exception as exc:  # noqa: BLE001 - the row itself still runs and says what it can
            references.setdefault(row.batch, None)
            flops = None
            print(f"reference/FLOPs for batch {row.batch} failed: {exc}", file=sys.stderr)
        out = time_step(cfg, device, row, steps, compile_backend, flops, references.get(row.batch),
                        profile_dir if index == 0 else None)
        out["sweep"] = in_sweep
        if "achieved_tflops" in out and peak:
            out["bf16_peak_share"] = out["achieved_tflops"] * 1e12 / peak
        if in_sweep and out.get("oom"):
            sweep_stopped = True
        result["train_step"].append(out)
        save()
    fits = [r for r in result["train_step"] if "seconds_per_step" in r]
    if fits:
        best = max(fits, key=lambda r: r["batch"])
        result["largest_batch_that_fits"] = {"spec": best["spec"], "batch": best["batch"],
                                             "peak_allocated_gib": best.get("peak_allocated_gib"),
                                             "gib_per_clip": best.get("gib_per_clip"),
                                             "memory_cap_gib": result.get("memory_cap", {}).get("gib")}
    save()
    show(result)
    if json_path:
        print(f"results: {json_path}")
    return 0 if all(c["ok"] for c in result["checks"]) else 1


def show(result: dict) -> None:
    for key in ("correctness", "sdpa_backends", "matmul_peak_bf16", "input_path", "step_equivalence",
                "divided_attention"):
        result.setdefault(key, {})
    rows = [[name, r["sdpa_vs_matmul_bf16"], r["sdpa_bf16_vs_fp32"], r["matmul_bf16_vs_fp32"],
             "ok" if r["ok"] else "FAIL"] for name, r in result["correctness"].get("outputs", {}).items()]
    print_table("correctness under bf16 autocast (relative L2 error)",
                ["output", "sdpa vs matmul", "sdpa vs fp32", "matmul vs fp32", ""], rows)
    rows = [[name, r.get("grad_rel_err", "-"), r.get("loss_rel_err", "-"), r.get("error", "ok" if r["ok"] else "FAIL")]
            for name, r in result["step_equivalence"].items()]
    print_table("same step, fp32: gradients against the default eager step", ["variant", "grad rel err",
                                                                               "loss rel err", ""], rows)
    rows = [[axis, name, r.get("fwd_bwd_ms", "-"), r.get("max_rel_err_vs_fp32", "-"),
             r.get("error", "ok" if r["ok"] else "FAIL")[:60]]
            for axis in ("space", "time")
            for name, r in result["divided_attention"].get(axis, {}).get("implementations", {}).items()]
    print_table(f"divided attention per call, bf16 forward + backward, q/k/v "
                f"{result['divided_attention'].get('q_shape', '-')}", ["axis", "implementation", "ms",
                                                                       "max rel err vs fp32", ""], rows)
    backends = [b for b in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")
                if any(b in r for r in result["sdpa_backends"].values())]
    rows = [[name, r["mask"] or "-", f"{r['default_forward']} / {r['default_backward']}",
             *[r.get(b, "-")[:48] for b in backends]] for name, r in result["sdpa_backends"].items()]
    print_table("SDPA backends per call site (default = what runs, forward / backward)",
                ["call site", "mask", "default", *[b.replace("_ATTENTION", "").lower() for b in backends]], rows)
    rows = [[name, f"{r['q'][-2]} x {r['k'][-2]}", r["q"][0] * (r["q"][1] if len(r["q"]) == 4 else 1),
             r["fwd_bwd_ms_sdpa"], r["fwd_bwd_ms_matmul"], r["auto_picks"]]
            for name, r in result["sdpa_backends"].items() if "fwd_bwd_ms_sdpa" in r]
    print_table("attention call sites, forward + backward ms (SDPA default backend vs explicit matmul)",
                ["call site", "queries x keys", "sequences", "sdpa ms", "matmul ms", "auto picks"], rows)
    peak = result["matmul_peak_bf16"].get("flops_per_s", float("nan")) / 1e12
    mem_key = "peak_allocated_gib" if result["device"] == "cuda" else "peak_rss_gib"
    rows = [[r["spec"], (r.get("error") or "")[:60] or r["seconds_per_step"], r.get("clips_per_s", "-"),
             r.get(mem_key, "-"), r.get("gib_per_clip", "-"), r.get("flops_per_step", 0) / 1e12,
             r.get("achieved_tflops", "-"), f"{100 * r['bf16_peak_share']:.1f} %" if "bf16_peak_share" in r else "-",
             r.get("first_step_s", r.get("warmup_s", "-")),
             ("ok" if r["reference_check"]["ok"] else "FAIL") if "reference_check" in r else "-"]
            for r in result["train_step"]]
    print_table(f"pretraining step, bf16 autocast (bf16 matmul peak {peak:.1f} TFLOP/s; MFU on model FLOPs)",
                ["row", "s/step", "clips/s", "peak GiB", "GiB/clip", "TFLOP/step", "TFLOP/s", "share of peak",
                 "first step / warm-up s", "vs eager"], rows)
    ip = result["input_path"]
    if ip:
        rows = [[k, v["ms"], v["gb_per_s"] or "-"] for k, v in ip["host_to_device"].items()]
        rows += [["normalise on device", ip["normalise_on_device_ms"], "-"],
                 *[[f"patch embed {k[:-3]}", v, "-"] for k, v in ip["patch_embed_fwd_bwd"].items()]]
        print_table(f"input path, batch {ip['batch_shape']}", ["what", "ms", "GB/s"], rows)
    if result.get("skipped"):
        print("skipped: " + "; ".join(result["skipped"]))
    failed = [c for c in result["checks"] if not c["ok"]]
    print(f"{len(result['checks']) - len(failed)}/{len(result['checks'])} checks passed"
          + "".join(f"\n  FAILED {c['check']}: {c['detail']}" for c in failed) + f"; {result['elapsed_s']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
