"""One EgoVLPv2 pretraining step (EgoNCE + MLM + VTM, forward + backward + AdamW) on this machine.

    python bench/train_step.py [--models tiny base] [--precisions fp32 bf16] [--steps 2] [--no-flops] [--json out.json]

Each (model, precision) runs in a fresh subprocess so its peak RSS is its own: one warm-up step, then ``--steps``
timed steps (median reported). Batch: 2 clips x 4 frames x 224 px (tiny: its own 96 px), 15-token captions, as the
official figures in shared/reference/baseline-cpu.md (official base step: 19.9 s fp32 / 10.8 s bf16 autocast, peak
14.2 GB). Model FLOPs per step are counted once per model (an extra, untimed step under FlopCounterMode) and the
matmul peak of this machine is measured in this process first, with the same thread count, so each row also says
which share of the peak the step achieves. For the official implementation beside egokit in one run, see
``bench/official_step.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OFFICIAL = {("base", "fp32"): (19.9, 14.2), ("base", "bf16"): (10.8, 10.7)}  # baseline-cpu.md (s, GiB)
MODELS = {"tiny": "egovlpv2-tiny", "base": "egovlpv2-base"}
MASK_TOKEN = 50264  # RoBERTa <mask>; small vocabularies use their last id


def make_batch(vocab_size: int, num_frames: int, image_size: int, batch: int = 2, tokens: int = 15, seed: int = 0):
    """Random inputs both implementations can take: pixels, RoBERTa-style ids, an MLM view, verb/noun multi-hots.

    Sample i has verb i and noun i only, so the EgoNCE positives are the diagonal (as in real batches) and VTM
    hard negatives are drawn among the other samples.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, num_frames, 3, image_size, image_size, generator=g)
    ids = torch.randint(5, min(vocab_size, 50000), (batch, tokens), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    labels[:, 3:5] = ids[:, 3:5]  # ~15 % of 15 tokens
    mlm_ids = ids.clone()
    mlm_ids[:, 3:5] = MASK_TOKEN if vocab_size > MASK_TOKEN else vocab_size - 1
    verb, noun = torch.zeros(batch, 118), torch.zeros(batch, 582)
    verb[torch.arange(batch), torch.arange(batch)] = 1
    noun[torch.arange(batch), torch.arange(batch)] = 1
    return {"video": video, "input_ids": ids, "attention_mask": mask, "mlm_input_ids": mlm_ids,
            "mlm_labels": labels, "verb": verb, "noun": noun}


def egokit_step(config, precision: str, checkpointing: bool | str = False, seed: int = 0):
    """egokit's training step as ``egokit pretrain`` runs it (PretrainObjective + fused AdamW), on one fixed batch.

    Returns ``(step, model)``; ``step()`` runs forward, backward, optimizer step and zero_grad.
    """
    import torch

    from egokit.engine.host_memory import keep_freed_host_memory
    from egokit.engine.objective import PretrainObjective
    from egokit.engine.optim import adamw, param_groups
    from egokit.models import EgoVLPv2

    keep_freed_host_memory()  # as egokit's commands do on CPU (egokit.engine.accel.make_accelerator)
    torch.manual_seed(seed)
    model = EgoVLPv2(config).train()
    model.set_grad_checkpointing(checkpointing)
    objective = PretrainObjective(model, doubled=False)
    optimizer = adamw(param_groups(model, 3e-5, 0.01, lr_mult_head=4, lr_mult_cross=4), lr=3e-5,
                      device=torch.device("cpu"))
    batch = make_batch(config.vocab_size, config.num_frames, config.image_size, seed=seed)
    counter = iter(range(1, 1 << 62))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = objective(batch["video"], batch["input_ids"], batch["attention_mask"], batch["mlm_input_ids"],
                            batch["mlm_labels"], batch["verb"], batch["noun"], next(counter))
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, model


def measure(step, steps: int, count_flops: bool, profile: str | None = None) -> dict:
    """Warm-up step, ``steps`` timed steps, peak RSS; then (untimed) FLOPs and an optional operator profile."""
    import torch

    from egokit.perf import count_flops as flop_count
    from egokit.perf import peak_rss_gib

    step()  # warm-up: allocator, oneDNN kernel choice
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    row = {"step_seconds": times, "seconds_per_step": statistics.median(times), "min_seconds": min(times),
           "peak_rss_gib": peak_rss_gib(), "threads": torch.get_num_threads()}
    if count_flops:
        row["flops_per_step"], row["flops_by_op"] = flop_count(step)
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        Path(profile).parent.mkdir(parents=True, exist_ok=True)
        Path(profile).write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        row["profile"] = profile
    return row


def one(model_name: str, precision: str, steps: int, checkpointing: str, count_flops: bool) -> dict:
    from egokit.models import get_config

    config = get_config(MODELS[model_name], attention="matmul")
    step, model = egokit_step(config, precision, checkpointing)
    row = {"model": model_name, "precision": precision, "checkpointing": checkpointing,
           "params": sum(p.numel() for p in model.parameters())}
    row.update(measure(step, steps, False))
    if count_flops:  # model FLOPs: counted without checkpointing, so recomputation never counts as useful work
        from egokit.perf import count_flops as flop_count

        model.set_grad_checkpointing(False)
        row["flops_per_step"], row["flops_by_op"] = flop_count(step)
        model.set_grad_checkpointing(checkpointing)
    row["steps_per_s"] = 1 / row["seconds_per_step"]
    return row


def machine_peaks(precisions, quick: bool = False) -> dict:
    """Matmul peak (FLOP/s) for each precision, measured here with this process's thread count."""
    import torch

    from egokit.perf import matmul_peak

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    sizes = (1024, 2048) if quick else (2048, 4096)
    return {p: matmul_peak(dtypes[p], sizes=sizes) for p in precisions}


def add_peak_share(row: dict, peaks: dict, flops: int | None) -> None:
    if flops:
        row["flops_per_step"] = flops
        row["achieved_tflops"] = flops / row["seconds_per_step"] / 1e12
        peak = peaks.get(row["precision"])
        if peak:
            row["peak_tflops"] = peak["flops_per_s"] / 1e12
            row["peak_share"] = row["achieved_tflops"] / row["peak_tflops"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "base"], choices=sorted(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--checkpointing", nargs="?", const="full", default="none",
                        choices=["none", "full", "selective"],
                        help="activation checkpointing of every block (the bare flag: full); FLOPs are counted "
                             "without it")
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting and the matmul peak")
    parser.add_argument("--json", default=None)
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._one:
        print(json.dumps(one(args._one[0], args._one[1], args.steps, args.checkpointing, args._flops)))
        return
    peaks = {} if args.no_flops else machine_peaks(args.precisions)
    for p, peak in peaks.items():
        print(f"matmul peak {p}: {peak['flops_per_s'] / 1e12:.3f} TFLOP/s ({peak['threads']} threads)", flush=True)
    rows, flops = [], {}
    for model in args.models:
        for precision in args.precisions:
            cmd = [sys.executable, __file__, "--_one", model, precision, "--steps", str(args.steps)]
            if args.checkpointing != "none":
                cmd += ["--checkpointing", args.checkpointing]
            if not args.no_flops and model not in flops:
                cmd.append("--_flops")  # FLOPs do not depend on the precision: count once per model
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"{model} {precision} failed (exit {out.returncode})")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            flops.setdefault(model, row.get("flops_per_step"))
            add_peak_share(row, peaks, flops.get(model))
            official = OFFICIAL.get((model, precision))
            if official and args.checkpointing == "none":
                row["official_seconds"], row["official_peak_gb"] = official
                row["speedup_vs_official"] = official[0] / row["seconds_per_step"]
            rows.append(row)
            extra = (f"  official (baseline-cpu.md) {official[0]} s, {official[1]} GiB -> "
                     f"{row['speedup_vs_official']:.2f}x" if "speedup_vs_official" in row else "")
            share = (f", {row['achieved_tflops']:.3f} TFLOP/s = {100 * row['peak_share']:.0f} % of peak"
                     if "peak_share" in row else "")
            print(f"{model:5s} {precision}: {row['seconds_per_step']:.3f} s/step, peak {row['peak_rss_gib']:.2f} GiB"
                  f"{share}{extra}", flush=True)
    if args.json:
        headline = [{"what": f"train step, egokit {r['model']} {r['precision']}",
                     "value": f"{r['seconds_per_step']:.3f} s, {r['peak_rss_gib']:.2f} GiB",
                     "note": (f"{r['achieved_tflops']:.3f} TFLOP/s, {100 * r['peak_share']:.0f} % of matmul peak"
                              if "peak_share" in r else "")}
                    for r in rows]
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "matmul_peak": peaks, "headline": headline}, handle, indent=2)


if __name__ == "__main__":
    main()
