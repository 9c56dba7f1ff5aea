"""One EgoVLPv2 pretraining step (EgoNCE + MLM + VTM, forward + backward + AdamW) on this machine.

    python bench/train_step.py [--models tiny base] [--precisions fp32 bf16] [--steps 3] [--json out.json]

Each (model, precision) runs in a fresh subprocess so its peak RSS is its own. Batch: 2 clips x 4 frames x 224 px
(tiny: its own 96 px), 15-token captions, as the official figures in shared/reference/baseline-cpu.md
(official base step: 19.9 s fp32 / 10.8 s bf16 autocast, peak 14.2 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

OFFICIAL = {("base", "fp32"): (19.9, 14.2), ("base", "bf16"): (10.8, 10.7)}


def one(model_name: str, precision: str, steps: int, checkpointing: bool) -> dict:
    import torch

    from egokit.engine.objective import PretrainObjective
    from egokit.engine.optim import adamw, param_groups
    from egokit.models import create_model

    name = {"tiny": "egovlpv2-tiny", "base": "egovlpv2-base"}[model_name]
    model = create_model(name, attention="matmul").train()
    model.set_grad_checkpointing(checkpointing)
    cfg = model.config
    objective = PretrainObjective(model, doubled=False)
    optimizer = adamw(param_groups(model, 3e-5, 0.01, lr_mult_head=4, lr_mult_cross=4), lr=3e-5,
                      device=torch.device("cpu"))
    b = 2
    g = torch.Generator().manual_seed(0)
    video = torch.randn(b, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(5, min(cfg.vocab_size, 50000), (b, 15), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)
    labels[:, 3:5] = ids[:, 3:5]
    verb = torch.zeros(b, 118)
    noun = torch.zeros(b, 582)
    verb[:, 0] = noun[:, 0] = 1

    def step(i: int) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = objective(video, ids, mask, ids, labels, verb, noun, i)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step(0)  # warm-up: allocator, oneDNN kernel choice
    times = [step(i + 1) for i in range(steps)]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"model": model_name, "precision": precision, "checkpointing": checkpointing,
            "seconds_per_step": min(times), "steps_per_s": 1 / min(times), "peak_rss_gb": peak_gb,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "base"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--checkpointing", action="store_true", help="per-block activation checkpointing")
    parser.add_argument("--json", default=None)
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._one:
        print(json.dumps(one(args._one[0], args._one[1], args.steps, args.checkpointing)))
        return
    rows = []
    for model in args.models:
        for precision in args.precisions:
            cmd = [sys.executable, __file__, "--_one", model, precision, "--steps", str(args.steps)]
            if args.checkpointing:
                cmd.append("--checkpointing")
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            official = OFFICIAL.get((model, precision))
            if official:
                row["official_seconds"], row["official_peak_gb"] = official
                row["speedup_vs_official"] = official[0] / row["seconds_per_step"]
            rows.append(row)
            extra = (f"  official {official[0]} s, {official[1]} GB -> {row['speedup_vs_official']:.2f}x faster"
                     if official else "")
            print(f"{model:5s} {precision}: {row['seconds_per_step']:.3f} s/step ({row['steps_per_s']:.2f} steps/s), "
                  f"peak {row['peak_rss_gb']:.2f} GB{extra}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
