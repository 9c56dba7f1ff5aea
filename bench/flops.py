"""This machine's matmul peak and the model FLOPs of egokit's pretraining step (what "% of peak" is measured against).

    python bench/flops.py [--models tiny base] [--quick] [--json out.json]

* Matmul peak: square fp32 and bf16 ``torch.mm`` at several sizes, one warm-up then best of 3, with this process's
  thread count (``egokit.perf.matmul_peak``).
* FLOPs per pretraining step (EgoNCE + MLM + VTM, forward + backward; batch 2 clips x 4 frames, 15 tokens) counted
  with ``torch.utils.flop_counter.FlopCounterMode`` (``egokit.perf.count_flops``), split by operator.
* Base-model forward FLOPs at batch 1 (4 frames, 15 tokens) next to the figures measured from the official code in
  shared/reference/egovlpv2-spec.md §6.2 (dual video 184.7, dual text 2.63, fusion/VTM 210.3 GFLOPs), as a check
  that the counter sees the same model.

The official step's FLOPs are counted by ``bench/official_step.py`` (it needs the official code).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from egokit.perf import count_flops, matmul_peak  # noqa: E402
from train_step import MODELS, egokit_step, make_batch  # noqa: E402

SPEC_FORWARD_GFLOPS = {"dual_video": 184.7, "dual_text": 2.63, "fusion_vtm": 210.3}  # spec §6.2, batch 1, 4 frames


def step_flops(model_name: str) -> dict:
    from egokit.models import get_config

    step, model = egokit_step(get_config(MODELS[model_name], attention="matmul"), "fp32")
    total, by_op = count_flops(step)
    return {"model": model_name, "params": sum(p.numel() for p in model.parameters()), "flops_per_step": total,
            "flops_by_op": by_op}


def base_forward_flops() -> dict:
    from egokit.models import create_model

    model = create_model("egovlpv2-base", attention="matmul").eval()
    b = make_batch(model.config.vocab_size, 4, 224, batch=1)
    ids, mask = b["input_ids"], b["attention_mask"]
    with torch.no_grad():
        counted = {"dual_video": count_flops(lambda: model.encode_video(b["video"]))[0],
                   "dual_text": count_flops(lambda: model.encode_text(ids, mask))[0],
                   "fusion_vtm": count_flops(lambda: model.vtm_logits(b["video"], ids, mask))[0]}
    return {k: {"gflops": v / 1e9, "official_gflops": SPEC_FORWARD_GFLOPS[k]} for k, v in counted.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, choices=sorted(MODELS))
    parser.add_argument("--quick", action="store_true", help="small matmuls, tiny model only, no base forward check")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    models = args.models or (["tiny"] if args.quick else ["tiny", "base"])
    sizes = (512, 1024) if args.quick else (1024, 2048, 3072, 4096)
    peaks = {name: matmul_peak(dtype, sizes=sizes) for name, dtype in (("fp32", torch.float32),
                                                                        ("bf16", torch.bfloat16))}
    for name, peak in peaks.items():
        sizes_text = ", ".join(f"{n}: {v / 1e12:.3f}" for n, v in peak["per_size_flops_per_s"].items())
        print(f"matmul peak {name}: {peak['flops_per_s'] / 1e12:.3f} TFLOP/s ({sizes_text}; "
              f"{peak['threads']} threads)", flush=True)
    steps = [step_flops(m) for m in models]
    for row in steps:
        ops = ", ".join(f"{op} {n / 1e9:.1f}" for op, n in list(row["flops_by_op"].items())[:5])
        print(f"{row['model']}: {row['flops_per_step'] / 1e9:.1f} GFLOP per pretraining step ({ops})", flush=True)
    forward = None if args.quick else base_forward_flops()
    for name, row in (forward or {}).items():
        print(f"base forward, batch 1, {name}: {row['gflops']:.2f} GFLOP (official code: {row['official_gflops']})")
    if args.json:
        headline = [{"what": f"matmul peak {name}", "value": f"{p['flops_per_s'] / 1e12:.3f} TFLOP/s",
                     "note": f"{p['threads']} threads, best of sizes {', '.join(p['per_size_flops_per_s'])}"}
                    for name, p in peaks.items()]
        headline += [{"what": f"FLOPs per pretraining step, {r['model']}",
                      "value": f"{r['flops_per_step'] / 1e9:.1f} GFLOP", "note": "fwd + bwd, batch 2 x 4 frames"}
                     for r in steps]
        Path(args.json).write_text(json.dumps({"matmul_peak": peaks, "steps": steps, "base_forward": forward,
                                               "headline": headline}, indent=2))


if __name__ == "__main__":
    main()
