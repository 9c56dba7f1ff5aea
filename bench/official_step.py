"""The official EgoVLPv2 pretraining step and egokit's, side by side on this machine, in one run.

    python bench/official_step.py --official-repo PATH [--precisions fp32 bf16] [--steps 3] [--rounds 2]
        [--width 768 --heads 12 --depth 12 --fused 6 --projection-dim 4096] [--official-checkpointing]
        [--profile DIR] [--json out.json]

PATH is a checkout of https://github.com/facebookresearch/EgoVLPv2 (the folder holding ``EgoVLPv2/``, or that
folder itself) in a scratch location outside this repository; never copy or commit its code here. It needs the
``bench`` extra (``einops``, which the official model uses). Nothing is downloaded: both models get random
weights (the speed does not depend on them).

Same batch for both (2 clips x 4 frames x 224 px, 15-token captions, 2 masked tokens per caption, verb/noun
multi-hots with diagonal positives), same thread count, same precision (fp32, or bf16 autocast). Each
(implementation, precision) runs in a fresh subprocess so its peak RSS is its own: one warm-up step, then
``--steps`` timed steps; ``--rounds`` repeats everything, alternating which implementation goes first, and the
reported time is the median over all timed steps of all rounds (peak memory: the largest of the rounds). Model
FLOPs per step are counted once per implementation (an extra, untimed step under ``FlopCounterMode``) and the
fp32/bf16 matmul peak is measured in this process first, so every row also gives the share of the peak achieved.
``--profile DIR`` writes each run's top operators (torch.profiler, one extra step) to explain a missed target.

The official step is the one ``trainer/trainer_egoclip.py`` runs for ``--task_names EgoNCE_MLM_ITM`` with
``configs/pt/egoclip.json``: ``FrozenInTime.forward`` does the dual pass (text + video backbones, projections,
EgoNCE), the MLM fusion pass (video backbone again from the patches, text lower layers, 6 fused layers, MLM head
on every token), the VTM pairs with hard negatives and a third fusion pass (video backbone again), then
``loss.backward()`` and AdamW over the six ``set_optim_schedule`` parameter groups with the cosine warm-up
schedule stepped every iteration (on transformers >= 5, which removed ``transformers.optimization.AdamW``, torch's
single-tensor AdamW does the same update). The trainer's tokenizer and MLM collator run on the data side and are not
timed for either implementation; its ``GradScaler`` (CUDA fp16) is not used, as fp32 and bf16 need none.

The official code cannot run unmodified here (it loads weights from its authors' cluster paths and from the
Hugging Face hub, calls ``.cuda()`` and ``dist.get_rank()``, and targets transformers 4.x). What this script
changes in its own process, and nothing else, is listed in ``_patch_official`` below; none of it changes the
computation of the step.

Narrow configurations (``--width 192 --heads 3 --depth 4 --fused 2 --projection-dim 256``) build both models with
the same shapes; use them to check the script quickly (the param counts of both models are printed and must agree).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

from train_step import add_peak_share, egokit_step, machine_peaks, make_batch, measure  # noqa: E402

IMPLS = ("official", "official+keepmem", "egokit")
BASE = {"width": 768, "heads": 12, "depth": 12, "fused": 6, "projection_dim": 4096}


def official_dir(path: str | Path) -> Path:
    """The official ``EgoVLPv2/`` code folder inside ``path`` (a clone of the repository, or the folder itself)."""
    path = Path(path).expanduser().resolve()
    for candidate in (path / "EgoVLPv2", path):
        if (candidate / "model" / "model.py").is_file() and (candidate / "EgoNCE_MLM_ITM_Config.yml").is_file():
            return candidate
    raise SystemExit(f"--official-repo {path}: no official EgoVLPv2 code there (expected EgoVLPv2/model/model.py "
                     "and EgoVLPv2/EgoNCE_MLM_ITM_Config.yml). Clone https://github.com/facebookresearch/EgoVLPv2 "
                     "into a scratch folder outside this repository and pass that folder.")


# ----------------------------------------------------------------------------------------- the official model
def _patch_official(code: Path, shape: dict, checkpointing: bool):
    """Import the official model code with the changes it needs to run here; returns ``model.model`` (the module).

    Every change, and why it leaves the step's computation as the official code does it:

    1. The working directory becomes the official ``EgoVLPv2/`` folder and it goes first on ``sys.path``: its
       modules read ``./EgoNCE_MLM_ITM_Config.yml`` at import time and import each other as top-level packages.
    2. ``base`` is registered as a module holding only ``BaseModel`` (from ``base/base_model.py``): the real
       ``base/__init__`` also imports the dataset and trainer bases (decord, ffmpeg, torchvision readers), which
       the model does not use. ``humanize`` (imported by ``utils/util.py`` for log formatting) is replaced by an
       empty module if it is not installed.
    3. transformers >= 5 removed helpers the official ``roberta.py`` (written for transformers 4.x) uses:
       ``find_pruneable_heads_and_indices``/``prune_linear_layer`` (only for head pruning, never called) get
       placeholders; ``get_extended_attention_mask``/``get_head_mask`` are restored on the official
       ``RobertaModel`` with their transformers 4.x code (padding mask -> additive float32 mask; no head mask);
       its ``init_weights`` (which on transformers 5 needs ``post_init`` state the 4.x-era class never sets up)
       does what 4.x did, ``self.apply(self._init_weights)`` with the official ``_init_weights``.
    4. ``RobertaModel.from_pretrained("roberta-base")`` (a hub download) returns the same architecture with random
       weights from a roberta-base ``RobertaConfig``.
    5. ``torch.load`` of the ImageNet ViT-B/16 file at the authors' cluster path returns an empty placeholder, which
       the official code loads with ``strict=False``: the video tower keeps its random initialisation.
    6. ``Tensor.cuda`` returns the tensor itself: the official loss and VTM code move two small tensors (the
       EgoNCE diagonal mask, the VTM labels) with ``.cuda()``; everything here runs on the CPU.
    7. ``torch.distributed.get_rank`` returns 0 (one process; the VTM code reads it to slice the gathered batch)
       and ``allgather`` (passed in by the trainer) is the identity, which is what ``all_gather`` over one process
       returns.
    8. ``use_checkpoint`` (activation checkpointing; ``True`` in the shipped yml) follows
       ``--official-checkpointing``; the baseline figures in shared/reference/baseline-cpu.md (19.9 s / 10.8 s)
       were measured without it.
    9. Only for narrow configurations (``--width/--depth`` other than the base model): the module constants that
       hard-code 768-wide cross-attention (``DIM_TEXT``, ``DIM_IMG``) and the fused-layer placement (``i < 6``,
       ``12 - NUM_FUSE_BLOCK``) follow the requested shape, and the video tower is built with that width/depth.
    """
    import torch
    import torch.nn as nn

    os.chdir(code)  # 1
    sys.path.insert(0, str(code))

    spec = importlib.util.spec_from_file_location("base.base_model", code / "base" / "base_model.py")  # 2
    base_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base_model)
    base = types.ModuleType("base")
    base.__path__ = [str(code / "base")]
    base.BaseModel, base.base_model = base_model.BaseModel, base_model
    sys.modules["base"], sys.modules["base.base_model"] = base, base_model
    if importlib.util.find_spec("humanize") is None:
        sys.modules["humanize"] = types.ModuleType("humanize")

    import transformers.modeling_utils as hf_modeling_utils  # 3

    for name in ("find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(hf_modeling_utils, name):
            setattr(hf_modeling_utils, name, _not_used(name))

    from model import roberta, video_transformer  # noqa: E402  (official modules)

    w, d, f = shape["width"], shape["depth"], shape["fused"]
    roberta.DIM_IMG = video_transformer.DIM_TEXT = w  # 9 (no-ops for the base model)
    roberta.NUM_FUSE_BLOCK = 12 - (d - f)  # fused text layers are those with index >= 12 - NUM_FUSE_BLOCK
    for cfg in (roberta.config_yaml, video_transformer.config_yaml):  # 8
        cfg["use_checkpoint"] = checkpointing

    official_roberta = roberta.RobertaModel
    if not hasattr(official_roberta, "get_extended_attention_mask"):  # 3: transformers >= 5
        official_roberta.get_extended_attention_mask = _extended_attention_mask
        official_roberta.get_head_mask = lambda self, head_mask, num_layers: [None] * num_layers
        official_roberta.init_weights = lambda self: self.apply(self._init_weights)
    text_config = _roberta_base_config(w, shape["heads"], d)
    official_roberta.from_pretrained = classmethod(lambda cls, *a, **k: cls(text_config))  # 4

    from model import model as module_arch  # noqa: E402

    module_arch.config.update(use_checkpoint=checkpointing, hidden_size=w, num_heads=shape["heads"],
                              num_layers=d, num_fuse_block=f, input_image_embed_size=w, input_text_embed_size=w)
    if (w, shape["heads"], d, f) != (768, 12, 12, 6):  # 9
        module_arch.SpaceTimeTransformer = _narrow_video_tower(video_transformer, w, shape["heads"], d, f, nn)

    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # 6
    torch.distributed.get_rank = lambda *args, **kwargs: 0  # 7
    return module_arch


def _not_used(name: str):
    def placeholder(*args, **kwargs):
        raise NotImplementedError(f"{name} is a placeholder in bench/official_step.py (head pruning is not used)")
    return placeholder


def _extended_attention_mask(self, attention_mask, input_shape, device=None):
    """transformers 4.x ``ModuleUtilsMixin.get_extended_attention_mask`` for an encoder's 2-D padding mask."""
    import torch

    extended = attention_mask[:, None, None, :].to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def _roberta_base_config(width: int, heads: int, depth: int):
    """roberta-base's config.json (vocab 50265, 514 positions, 1 token type, LayerNorm eps 1e-5), optionally narrower."""
    from transformers import RobertaConfig

    return RobertaConfig(vocab_size=50265, hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                         intermediate_size=4 * width, max_position_embeddings=514, type_vocab_size=1,
                         layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                         hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _narrow_video_tower(video_transformer, width: int, heads: int, depth: int, fused: int, nn):
    """The official SpaceTimeTransformer at another width/depth, with cross-attention in its top ``fused`` blocks."""
    official = video_transformer.SpaceTimeTransformer

    def build(**kwargs):
        tower = official(embed_dim=width, depth=depth, num_heads=heads, **kwargs)
        for i, block in enumerate(tower.blocks):
            if (i >= depth - fused) != hasattr(block.attn, "qkv_text_i2t"):  # official rule: i >= 6
                block.attn = video_transformer.VarAttention(width, num_heads=heads, qkv_bias=True,
                                                            dim_text=width if i >= depth - fused else None,
                                                            norm_layer=nn.LayerNorm, space_attn=True)
        return tower

    return build


def official_step(repo: str, shape: dict, precision: str, checkpointing: bool, seed: int = 0):
    """The official model, optimizer and schedule, and a ``step()`` doing what the trainer does for one batch."""
    import torch

    code = official_dir(repo)
    cwd = os.getcwd()
    module_arch = _patch_official(code, shape, checkpointing)
    from model.loss import EgoNCE  # noqa: E402  (official)

    real_load = torch.load
    torch.load = lambda *args, **kwargs: {"placeholder_for_the_imagenet_vit_weights": torch.zeros(1)}  # patch 5
    try:
        torch.manual_seed(seed)
        model = module_arch.FrozenInTime(
            video_params={"model": "SpaceTimeTransformer", "arch_config": "base_patch16_224", "num_frames": 4,
                          "pretrained": True, "time_init": "zeros"},
            text_params={"model": "roberta-base", "pretrained": True, "input": "text"},
            projection="minimal", load_checkpoint="", projection_dim=shape["projection_dim"],
            embed_dim=shape["width"], config=module_arch.config)
    finally:
        torch.load = real_load
    os.chdir(cwd)
    model.train()

    optimizer, scheduler = _official_optimizer(model, code)
    loss_fn = EgoNCE(temperature=0.05, noun=True, verb=True)  # configs/pt/egoclip.json "loss"
    run_config = {"loss": {"type": "EgoNCE"}}  # what FrozenInTime.forward reads from the json config
    b = make_batch(50265, 4, 224, seed=seed)
    data = {"video": b["video"], "text": {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]},
            "text_mlm_ids": b["mlm_input_ids"], "text_mlm_labels": b["mlm_labels"]}
    args = types.SimpleNamespace(world_size=1, rank=0)

    def allgather(tensor, n_gpu, args):  # patch 7: all_gather over one process
        return tensor

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss, _, _ = model(data, b["noun"], b["verb"], allgather, 1, args, run_config, loss_fn, 0,
                               task_names="EgoNCE_MLM_ITM")
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

    return step, model


def _official_optimizer(model, code: Path):
    """``set_optim_schedule.set_schedule`` with configs/pt/egoclip.json, or its equivalent on transformers >= 5.

    The official optimizer is ``transformers.optimization.AdamW`` (a per-parameter loop), removed in transformers
    5; there the same update is torch's single-tensor ``AdamW`` (``foreach=False``, not fused).
    """
    import torch
    import transformers.optimization as hf_optimization

    if not hasattr(hf_optimization, "AdamW"):
        hf_optimization.AdamW = lambda params, **kw: torch.optim.AdamW(params, foreach=False, fused=False, **kw)
    sys.path.insert(0, str(code))
    from set_optim_schedule import set_schedule  # noqa: E402  (official)

    config = {"optimizer": {"type": "AdamW", "args": {"lr": 3e-5, "weight_decay": 0.01, "lr_mult_head": 4,
                                                      "lr_mult_cross_modal": 4}}}
    config_yaml = {"end_lr": 1e-7, "decay_power": "cosine"}
    return set_schedule(model, config, config_yaml, max_steps=1000, warmup_steps=100)


# ----------------------------------------------------------------------------------------------- the runs
def one(impl: str, precision: str, args) -> dict:
    shape = _shape(args)
    if impl.startswith("official"):
        if impl == "official+keepmem":  # the official step with egokit's host-allocator setting
            from egokit.engine.host_memory import keep_freed_host_memory

            keep_freed_host_memory()
        step, model = official_step(args.official_repo, shape, precision, args.official_checkpointing)
    else:
        from egokit.models import get_config

        config = get_config("egovlpv2-base", attention="matmul", width=shape["width"], num_heads=shape["heads"],
                            depth=shape["depth"], fused_layers=shape["fused"], text_intermediate_size=4 * shape["width"],
                            projection_dim=shape["projection_dim"])
        step, model = egokit_step(config, precision)
    profile = str(Path(args.profile) / f"{impl}_{precision}.txt") if args.profile else None
    row = {"impl": impl, "precision": precision, "params": sum(p.numel() for p in model.parameters())}
    row.update(measure(step, args.steps, args._flops, profile))
    return row


def _shape(args) -> dict:
    return {k: getattr(args, k) for k in BASE}


def summarize(runs: list[dict], peaks: dict, flops: dict) -> list[dict]:
    rows = []
    for precision in dict.fromkeys(r["precision"] for r in runs):
        for impl in IMPLS:
            mine = [r for r in runs if r["impl"] == impl and r["precision"] == precision]
            if not mine:
                continue
            times = [t for r in mine for t in r["step_seconds"]]
            row = {"impl": impl, "precision": precision, "params": mine[0]["params"], "step_seconds": times,
                   "seconds_per_step": statistics.median(times), "min_seconds": min(times),
                   "peak_rss_gib": max(r["peak_rss_gib"] for r in mine), "threads": mine[0]["threads"],
                   "rounds": len(mine)}
            add_peak_share(row, peaks, flops.get(impl.split("+")[0]))  # the allocator changes no FLOP
            rows.append(row)
        same = {r["impl"]: r for r in rows if r["precision"] == precision}
        official, tuned, mine = same.get("official"), same.get("official+keepmem"), same.get("egokit")
        for row in (tuned, mine):
            if official and row:
                _ratios(row, official, "")
        if tuned and mine:
            _ratios(mine, tuned, "_keepmem")
    return rows


def _ratios(row: dict, base: dict, suffix: str) -> None:
    row[f"speedup_vs_official{suffix}"] = base["seconds_per_step"] / row["seconds_per_step"]
    row[f"memory_vs_official{suffix}"] = row["peak_rss_gib"] / base["peak_rss_gib"]


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("impl", "precision", "params (M)", "s / step (median)", "min s", "peak RSS GiB", "GFLOP / step",
                "TFLOP/s", "% of matmul peak", "speed-up", "memory ratio", "vs official+keepmem"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["impl"], r["precision"], f"{r['params'] / 1e6:.1f}", f"{r['seconds_per_step']:.3f}",
                      f"{r['min_seconds']:.3f}", f"{r['peak_rss_gib']:.2f}",
                      f"{r['flops_per_step'] / 1e9:.0f}" if "flops_per_step" in r else "-",
                      f"{r['achieved_tflops']:.3f}" if "achieved_tflops" in r else "-",
                      f"{100 * r['peak_share']:.0f}" if "peak_share" in r else "-",
                      f"{r['speedup_vs_official']:.2f}x" if "speedup_vs_official" in r else "",
                      f"{r['memory_vs_official']:.2f}" if "memory_vs_official" in r else "",
                      f"{r['speedup_vs_official_keepmem']:.2f}x" if "speedup_vs_official_keepmem" in r else "")
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True, help="checkout of facebookresearch/EgoVLPv2 (scratch folder)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run, after one warm-up step")
    parser.add_argument("--rounds", type=int, default=2, help="runs per (implementation, precision), interleaved")
    parser.add_argument("--width", type=int, default=BASE["width"])
    parser.add_argument("--heads", type=int, default=BASE["heads"])
    parser.add_argument("--depth", type=int, default=BASE["depth"])
    parser.add_argument("--fused", type=int, default=BASE["fused"])
    parser.add_argument("--projection-dim", type=int, default=BASE["projection_dim"])
    parser.add_argument("--official-checkpointing", action="store_true",
                        help="the official activation checkpointing (use_checkpoint: True, as shipped)")
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting and the matmul peak")
    parser.add_argument("--profile", help="folder for per-run operator profiles (one extra step each)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    official_dir(args.official_repo)  # fail early with a clear message
    if importlib.util.find_spec("einops") is None:
        raise SystemExit("the official model needs einops: pip install einops (or egokit[bench])")
    if args._one:
        print(json.dumps(one(args._one[0], args._one[1], args)))
        return

    shape = _shape(args)
    peaks = {} if args.no_flops else machine_peaks(args.precisions)
    for p, peak in peaks.items():
        print(f"matmul peak {p}: {peak['flops_per_s'] / 1e12:.3f} TFLOP/s ({peak['threads']} threads)", flush=True)
    runs, flops = [], {}
    forwarded = ["--official-repo", args.official_repo, "--steps", str(args.steps),
                 *[x for k, v in shape.items() for x in (f"--{k.replace('_', '-')}", str(v))]]
    if args.official_checkpointing:
        forwarded.append("--official-checkpointing")
    if args.profile:
        forwarded += ["--profile", str(Path(args.profile).resolve())]
    for round_ in range(args.rounds):
        for precision in args.precisions:
            order = args.impls if round_ % 2 == 0 else args.impls[::-1]
            for impl in order:
                cmd = [sys.executable, __file__, "--_one", impl, precision, *forwarded]
                if not args.no_flops and impl.split("+")[0] not in flops:
                    cmd.append("--_flops")
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.stderr.write(out.stdout[-3000:] + out.stderr[-6000:])
                    raise SystemExit(f"{impl} {precision} failed (exit {out.returncode})")
                run = json.loads(out.stdout.strip().splitlines()[-1])
                if run.get("flops_per_step"):
                    flops.setdefault(impl.split("+")[0], run["flops_per_step"])
                runs.append(run)
                print(f"round {round_ + 1}/{args.rounds} {impl:8s} {precision}: "
                      f"{', '.join(f'{t:.3f}' for t in run['step_seconds'])} s/step, "
                      f"peak {run['peak_rss_gib']:.2f} GiB, {run['params'] / 1e6:.1f} M params", flush=True)
    rows = summarize(runs, peaks, flops)
    label = "base" if shape == BASE else ", ".join(f"{k} {v}" for k, v in shape.items())
    title = (f"one pretraining step, official vs egokit ({label}; batch 2 x 4 frames x 224 px, 15 tokens; "
             f"{rows[0]['threads']} threads{'; official checkpointing' if args.official_checkpointing else ''})")
    print_table(rows, title)
    if args.json:
        size = "base" if shape == BASE else "narrow"
        headline = [{"what": f"train step, official / {r['impl']}, {size} {r['precision']}",
                     "value": f"{r['speedup_vs_official']:.2f}x faster, memory x{r['memory_vs_official']:.2f}",
                     "note": f"{r['impl']} {r['seconds_per_step']:.2f} s, {r['peak_rss_gib']:.1f} GiB"
                             + (f"; {r['speedup_vs_official_keepmem']:.2f}x vs official+keepmem"
                                if "speedup_vs_official_keepmem" in r else "")}
                    for r in rows if "speedup_vs_official" in r]
        payload = {"shape": shape, "official_checkpointing": args.official_checkpointing, "steps": args.steps,
                   "rounds": args.rounds, "official_code": str(official_dir(args.official_repo)),
                   "official_git": _official_git(args.official_repo), "matmul_peak": peaks,
                   "flops_by_op": {r["impl"]: r.get("flops_by_op") for r in runs if r.get("flops_by_op")},
                   "rows": rows, "runs": runs, "headline": headline}
        Path(args.json).write_text(json.dumps(payload, indent=2))


def _official_git(repo: str) -> str | None:
    from egokit.results import git_revision

    return git_revision(official_dir(repo))


if __name__ == "__main__":
    main()
