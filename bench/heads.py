"""Localisation heads on the same features: NLQ span head vs VSLNet, MQ anchor-free head vs VSGN.

    python bench/heads.py [--seeds 3] [--lrs 1e-3,3e-3,1e-2] [--dim 64] [--nlq-epochs 12] [--mq-epochs 15]
                          [--only nlq|mq] [--verbose] [--json out.json]

Data: synthetic feature sequences built like the plugin tests' (``plugins/egokit-nlq/tests`` / ``plugins/egokit-mq/tests``:
noise plus a class-specific feature pattern inside each event), made harder so that no head saturates: N(0, 1)
noise on every one of 32 channels, a random class direction of norm 2.5 (NLQ) / 1.6 (MQ) times U(0.7, 1.3)
added inside the events, variable clip lengths (padding), events of log-uniform length. NLQ: clips of 32-64
steps with 4 events of 8 classes and one query per event (3-6 unit-norm text tokens of dim 24, one is the event
class's vector, the others filler words, + N(0, 0.1) noise). MQ: clips of 48-96 steps with 2-5 moments (2-32
steps) of 6 classes. Train / val / test are drawn with different seeds from the same class vectors.

Protocol (identical for both heads of a task): the task's own code paths (its ``HeadRegistry``: each head's
``build``, ``loss`` and ``predict``; ``FeatureHeadTask.fit_head`` / ``predict``, the official metrics) and training loop (AdamW, NLQ linear decay / MQ cosine, clip 1.0), the same
epochs and batches; width 64 for every head (``--dim``); otherwise each head's own defaults, its
``HeadSpec.defaults`` (span: 4 heads, 2 layers, dropout 0.1; VSLNet: 8 heads at width 128, scaled with the width to
keep their size (4 at 64), 4 conv layers, dropout 0.2; anchor-free: 4 heads, 2 layers, dropout 0.1; VSGN: 5 levels,
12 neighbours, anchor scales 1 and 10, head towers of 2 layers (official 4)). The learning rate is chosen per head
from the same sweep by the val metric of seed 0 (NLQ mIoU, MQ average mAP); the chosen rate is trained with
``--seeds`` seeds (seed 0 reused) and reported on **test** as mean ± std. CPU, one thread by default.

egokit's defaults follow this comparison: the official heads win both tasks, so ``head_type`` defaults to
``vslnet`` (NLQ) and ``vsgn`` (MQ), and each head's default learning rate (``HeadSpec.defaults``) is the one this sweep
chooses at the tasks' default width, ``--dim 128 --lrs 3e-4,1e-3,3e-3,1e-2`` (the best rate falls as the width grows,
so the width-64 choices do not carry over). The run ends by naming the better head of each task next to the
default.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from egokit.metrics import nlq_recall

NLQ_SIGNAL, MQ_SIGNAL = 2.5, 1.6  # norm of the class direction added inside events (noise: N(0, 1) per channel)
NLQ_TEXT_NOISE = 0.1  # std of the noise on query tokens (unit-norm word and class vectors)
NLQ_METRICS = ("R@1 IoU=0.3", "R@5 IoU=0.3", "R@1 IoU=0.5", "R@5 IoU=0.5", "mIoU")
MQ_METRICS = ("average_mAP", "mAP@0.5", "R@1 tIoU=0.5", "R@5 tIoU=0.5")


def _events(rng: np.random.Generator, steps: int, count: int, shortest: int, longest: int) -> list[tuple[int, int]]:
    """Up to ``count`` non-overlapping (start, end) step ranges (inclusive) of log-uniform length."""
    spans: list[tuple[int, int]] = []
    for _ in range(50 * count):
        if len(spans) == count:
            break
        length = int(round(math.exp(rng.uniform(math.log(shortest), math.log(min(longest, steps // 2))))))
        start = int(rng.integers(0, steps - length + 1))
        end = start + length - 1
        if all(end < a - 1 or start > b + 1 for a, b in spans):
            spans.append((start, end))
    return sorted(spans)


def _sequence(rng: np.random.Generator, steps: int, dim: int, spans, classes, directions: np.ndarray) -> np.ndarray:
    video = rng.normal(0, 1.0, (steps, dim)).astype(np.float32)
    for (a, b), c in zip(spans, classes):
        video[a:b + 1] += float(rng.uniform(0.7, 1.3)) * directions[c]
    return video


# --------------------------------------------------------------------------------------------------------- NLQ


class NLQToy(Dataset):
    """In-memory stand-in for ``egokit_nlq.data.NLQFeatures`` (1 step = 1 s)."""

    def __init__(self, n_clips: int, seed: int, world: dict, dim: int = 32, text_dim: int = 24) -> None:
        from egokit_nlq.data import NLQQuery

        rng = np.random.default_rng(seed)
        self.items, self.queries, clips = [], [], []
        for v in range(n_clips):
            steps = int(rng.integers(32, 65))
            spans = _events(rng, steps, 4, 2, 16)
            classes = rng.choice(len(world["video"]), len(spans), replace=False)
            video = torch.from_numpy(_sequence(rng, steps, dim, spans, classes, world["video"]))
            queries = []
            for q, ((a, b), c) in enumerate(zip(spans, classes)):
                length = int(rng.integers(3, 7))
                words = world["words"][rng.integers(0, len(world["words"]), length)].copy()
                words[int(rng.integers(length))] = world["text"][c]
                text = np.zeros((6, text_dim), np.float32)
                text[:length] = words + rng.normal(0, NLQ_TEXT_NOISE, words.shape)
                self.items.append({"video": video, "text": torch.from_numpy(text),
                                   "text_mask": torch.arange(6) < length, "start": a, "end": b,
                                   "index": len(self.queries)})
                self.queries.append(NLQQuery(f"clip{v}", f"ann{v}", q, "", float(a), float(b + 1), float(steps)))
                queries.append({"clip_start_sec": float(a), "clip_end_sec": float(b + 1)})
            clips.append({"clip_uid": f"clip{v}", "annotations": [{"annotation_uid": f"ann{v}",
                                                                    "language_queries": queries}]})
        self.ground_truth = {"videos": [{"clips": clips}]}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def nlq_world(seed: int = 1234, classes: int = 8, dim: int = 32, text_dim: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    return {"video": unit(rng.normal(size=(classes, dim))) * NLQ_SIGNAL,
            "text": unit(rng.normal(size=(classes, text_dim))), "words": unit(rng.normal(size=(30, text_dim)))}


def nlq_run(head_type: str, lr: float, seed: int, data: dict, args) -> dict:
    from egokit.tasks.api import FeatureSplit, HeadTraining
    from egokit_nlq import NLQ, NLQOptions
    from egokit_nlq.data import collate

    task = NLQ()
    own = {k: v for k, v in task.heads[head_type].defaults.items() if k != "lr"}  # the head's own default sizes
    if head_type == "vslnet":  # official 8 heads at width 128: keep their size (16) at other widths
        own["heads"] = max(1, own["heads"] * args.dim // 128)
    options = NLQOptions(head_type=head_type, dim=args.dim, max_len=64, text_length=6, top_k=5,
                         finetune=HeadTraining(lr=lr, batch_size=32, epochs=args.nlq_epochs), **own)
    torch.manual_seed(seed)
    start = time.perf_counter()
    head, _ = task.fit_head(options, FeatureSplit(data["train"], collate), seed=seed)
    seconds = time.perf_counter() - start
    out = {"train_s": seconds, "params": sum(p.numel() for p in head.parameters())}
    for split in ("val", "test"):
        predictions = task.predict(head, FeatureSplit(data[split], collate), options)
        metrics = nlq_recall(predictions, data[split].ground_truth)
        out[split] = {k: metrics[k] for k in NLQ_METRICS}
    return out


# ---------------------------------------------------------------------------------------------------------- MQ


class MQToy(Dataset):
    """In-memory stand-in for ``egokit_mq.data.MQFeatures`` (1 step = 1 s, step centres at i + 0.5)."""

    def __init__(self, n_clips: int, seed: int, directions: np.ndarray) -> None:
        from egokit_mq.data import MQClip, Moment, segments_in_cells, targets

        rng = np.random.default_rng(seed)
        self.classes = [f"class{c}" for c in range(len(directions))]
        index = {name: i for i, name in enumerate(self.classes)}
        self.clips, self.items = [], []
        for v in range(n_clips):
            steps = int(rng.integers(48, 97))
            spans = _events(rng, steps, int(rng.integers(2, 6)), 2, 32)
            classes = rng.integers(0, len(directions), len(spans))
            video = torch.from_numpy(_sequence(rng, steps, directions.shape[1], spans, classes, directions))
            clip = MQClip(f"clip{v}", float(steps), tuple(Moment(self.classes[c], float(a), float(b + 1))
                                                          for (a, b), c in zip(spans, classes)))
            times = np.arange(steps) + 0.5
            labels, dist = targets(clip, times, index)
            self.clips.append(clip)
            self.items.append({"video": video, "times": torch.from_numpy(times).float(), "labels": labels,
                               "dist": dist, "segments": segments_in_cells(clip, times, index), "index": v})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def mq_run(head_type: str, lr: float, seed: int, data: dict, args) -> dict:
    from egokit_mq import MQOptions, MQTask, MQTraining

    task = MQTask()
    # layers, heads, dropout: the head's own defaults (its HeadSpec.defaults / MQOptions)
    options = task.resolved(MQOptions(head_type=head_type, dim=args.dim,
                                      finetune=MQTraining(lr=lr, batch_size=8, epochs=args.mq_epochs)))
    torch.manual_seed(seed)
    start = time.perf_counter()
    head, _ = task.fit_head(options, task.split_of(data["train"]), seed=seed)
    seconds = time.perf_counter() - start
    out = {"train_s": seconds, "params": sum(p.numel() for p in head.parameters())}
    scoring = replace(options, finetune=replace(options.finetune, batch_size=16))
    for split in ("val", "test"):
        split_data = task.split_of(data[split])
        metrics = task.score(task.predict(head, split_data, scoring), split_data, scoring)
        out[split] = {k: metrics[k] for k in MQ_METRICS}
    return out


# -------------------------------------------------------------------------------------------------- protocol


def compare(task: str, heads: tuple[str, str], run, data: dict, select: str, args, log) -> dict:
    """Per head: seed 0 at every learning rate, the best on val is kept and trained with the other seeds; the
    test metrics of those ``args.seeds`` runs are reported."""
    out = {}
    for head_type in heads:
        sweep = {}
        for lr in args.lrs:
            sweep[lr] = run(head_type, lr, 0, data, args)
            log(f"{task} {head_type} lr={lr:g} val {select}={sweep[lr]['val'][select]:.2f} "
                f"({sweep[lr]['train_s']:.1f} s)")
        best = max(args.lrs, key=lambda lr: sweep[lr]["val"][select])
        runs = [sweep[best], *(run(head_type, best, seed, data, args) for seed in range(1, args.seeds))]
        test = {k: [r["test"][k] for r in runs] for k in runs[0]["test"]}
        test["train_s"] = [r["train_s"] for r in runs]
        metrics = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in test.items()}
        out[head_type] = {"lr": best, "val_sweep": {f"{lr:g}": sweep[lr]["val"][select] for lr in args.lrs},
                          "params": runs[0]["params"], "test": metrics, "test_runs": test}
        log(f"{task} {head_type}: lr {best:g}, test " + ", ".join(
            f"{k} {metrics[k]['mean']:.1f}+-{metrics[k]['std']:.1f}" for k in metrics if k != "train_s"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="learning-rate sweep (comma-separated)")
    parser.add_argument("--dim", type=int, default=64, help="width of every head")
    parser.add_argument("--nlq-epochs", type=int, default=12)
    parser.add_argument("--mq-epochs", type=int, default=15)
    parser.add_argument("--nlq-clips", type=int, nargs=3, default=(100, 30, 50), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--mq-clips", type=int, nargs=3, default=(100, 40, 60), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--only", choices=("nlq", "mq"), default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--verbose", action="store_true", help="log every run (to stderr)")
    args = parser.parse_args()
    args.lrs = [float(x) for x in args.lrs.split(",")]
    torch.set_num_threads(args.threads)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.verbose else (lambda msg: None)
    start = time.perf_counter()
    results: dict = {}
    if args.only in (None, "nlq"):
        world = nlq_world()
        data = {split: NLQToy(n, seed, world) for split, n, seed in zip(("train", "val", "test"), args.nlq_clips,
                                                                        (1, 2, 3))}
        results["nlq"] = compare("nlq", ("span", "vslnet"), nlq_run, data, "mIoU", args, log)
    if args.only in (None, "mq"):
        rng = np.random.default_rng(4321)
        directions = rng.normal(size=(6, 32))
        directions = (directions / np.linalg.norm(directions, axis=-1, keepdims=True) * MQ_SIGNAL).astype(np.float32)
        data = {split: MQToy(n, seed, directions) for split, n, seed in zip(("train", "val", "test"), args.mq_clips,
                                                                            (1, 2, 3))}
        results["mq"] = compare("mq", ("anchor-free", "vsgn"), mq_run, data, "average_mAP", args, log)
    elapsed = time.perf_counter() - start
    metrics = {"nlq": NLQ_METRICS, "mq": MQ_METRICS}
    if args.json:
        headline = [{"what": f"{task} {head} (synthetic, test)",
                     "value": f"{r['test'][metrics[task][0]]['mean']:.1f} {metrics[task][0]}",
                     "note": ", ".join(f"{k} {r['test'][k]['mean']:.1f}+-{r['test'][k]['std']:.1f}"
                                       for k in metrics[task][1:])}
                    for task, heads in results.items() for head, r in heads.items()]
        with open(args.json, "w") as handle:
            json.dump({"device": "cpu", "threads": torch.get_num_threads(), "seeds": args.seeds, "lrs": args.lrs,
                       "dim": args.dim, "elapsed_s": round(elapsed, 1), "results": results, "headline": headline,
                       "default_head": {task: _default_head(task) for task in results}}, handle, indent=2)
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    for task, heads in results.items():
        table = Table(title=f"{task}: same synthetic features, same budget, lr chosen on val; test mean ± std over "
                            f"{args.seeds} seeds")
        for col in ("head", "lr", "val sweep", "params", *metrics[task], "train s"):
            table.add_column(col, justify="right")
        for head, r in heads.items():
            table.add_row(head, f"{r['lr']:g}", " / ".join(f"{v:.1f}" for v in r["val_sweep"].values()),
                          f"{r['params']:,}",
                          *(f"{r['test'][k]['mean']:.1f} ± {r['test'][k]['std']:.1f}" for k in metrics[task]),
                          f"{r['test']['train_s']['mean']:.1f}")
        console.print(table)
    for task, heads in results.items():
        first = metrics[task][0]
        best = max(heads, key=lambda head: heads[head]["test"][first]["mean"])
        default = _default_head(task)
        console.print(f"{task}: {best} is better on {first}; egokit's default head_type is {default}"
                      + ("" if best == default else " -- this run disagrees with the default"))
    console.print(f"total {elapsed:.0f} s")


def _default_head(task: str) -> str:
    """The task's default ``head_type`` (``egokit train nlq`` / ``egokit train mq`` without one)."""
    if task == "nlq":
        from egokit_nlq import NLQ

        return NLQ().heads.default
    from egokit_mq import MQTask

    return MQTask().heads.default


if __name__ == "__main__":
    main()
