"""Dual-encoder throughput of egokit models on this machine (issue #2 figures).

    python bench/model_throughput.py [--batch 2] [--repeats 3] [--json out.json]

Prints clips/s for the base model's dual video+text forward (no grad) in fp32 and bf16 autocast, and the tiny
model's forward+backward time per clip. The official code measured on the reference 2-core CPU
(shared/reference/baseline-cpu.md): base dual video+text forward, batch 2 x 4 frames: 2.05 s fp32, 0.92 s bf16.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from egokit.models import create_model

OFFICIAL_S = {"fp32": 2.05, "bf16": 0.92}


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN kernel selection, allocator)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def base_dual(batch: int, repeats: int) -> dict:
    model = create_model("egovlpv2-base").eval()
    cfg = model.config
    video = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    ids = torch.randint(3, 1000, (batch, 15))
    mask = torch.ones_like(ids)
    out = {}
    for precision in ("fp32", "bf16"):
        def run():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                model.encode_video(video), model.encode_text(ids, mask)
        seconds = _time(run, repeats)
        out[precision] = {"seconds_per_batch": seconds, "clips_per_s": batch / seconds,
                          "official_seconds": OFFICIAL_S[precision], "speedup_vs_official": OFFICIAL_S[precision] / seconds}
    return out


def tiny_train(batch: int, repeats: int) -> dict:
    model = create_model("egovlpv2-tiny").train()
    cfg = model.config
    video = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    ids = torch.randint(3, cfg.vocab_size, (batch, 15))
    mask = torch.ones_like(ids)

    def run():
        model.zero_grad()
        loss = (model.encode_video(video).sum() + model.encode_text(ids, mask).sum()
                + model.vtm_logits(video, ids, mask).sum() + model.mlm_logits(video, ids, mask).sum())
        loss.backward()

    seconds = _time(run, repeats)
    return {"seconds_per_clip_fwd_bwd": seconds / batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = {"threads": torch.get_num_threads(), "base_dual_forward": base_dual(args.batch, args.repeats),
              "tiny_train": tiny_train(8, args.repeats)}
    print(f"threads: {result['threads']}")
    for precision, row in result["base_dual_forward"].items():
        print(f"base dual forward {precision}: {row['seconds_per_batch']:.3f} s/batch of {args.batch} "
              f"({row['clips_per_s']:.2f} clips/s); official {row['official_seconds']} s -> "
              f"{row['speedup_vs_official']:.2f}x")
    print(f"tiny forward+backward (dual+VTM+MLM): {result['tiny_train']['seconds_per_clip_fwd_bwd'] * 1000:.1f} ms/clip")
    if args.json:
        result["headline"] = [
            {"what": f"base dual video+text forward, {p}", "value": f"{row['clips_per_s']:.2f} clips/s",
             "note": f"{row['seconds_per_batch']:.2f} s per batch of {args.batch}; official "
                     f"{row['official_seconds']} s (baseline-cpu.md, 2 threads) -> {row['speedup_vs_official']:.2f}x"}
            for p, row in result["base_dual_forward"].items()]
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
