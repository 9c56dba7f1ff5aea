"""``egokit train nlq`` / ``egokit eval nlq``: features via ``egokit embed``, VSLNet head, official submission.

Flow: (1) the clips of the annotation files are embedded with the feature recipe (official: ``egovlpv2-nlq``,
query-conditioned fusion features) into ``features/<recipe>/`` -- resumable, shared by later runs; (2) query token
states come from the same model in dual mode (unprojected RoBERTa states, 30 tokens, as officially); (3) the head is
trained on the train split and evaluated once on val at the end. ``head_type`` picks the head: ``vslnet`` (default,
the official head re-implemented, ``egokit_nlq.vslnet.VSLNetHead``) or ``span`` (egokit's joint-attention span head,
``egokit_nlq.head.SpanHead``); the default follows ``bench/heads.py``, where VSLNet is clearly better on the same
features. ``heads``, ``layers``, ``dropout`` and ``lr`` left unset (``None``) take the chosen head's own defaults
(:data:`HEAD_DEFAULTS`). Evaluation rebuilds whichever head was saved. Deliberate difference from the official
recipe: no model selection on the reported split (the official code reports the best of 100 evaluations on val),
and the seed is set (official seeding is commented out, spec §8.1 item 21).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from egokit.embed import embed_to_folder, get_recipe, items_from_annotations
from egokit.engine.finetune import fit_epochs
from egokit.embed.extract import embed_texts
from egokit.errors import ConfigError
from egokit.metrics import nlq_recall
from egokit.recipes import build, read_yaml, to_dict
from egokit.results import write_json_atomic
from egokit_nlq.data import NLQFeatures, NLQQuery, collate, read_annotations
from egokit_nlq.head import SpanHead, span_loss, top_spans
from egokit_nlq.vslnet import VSLNetHead

HEAD_DIR = "nlq_head"
HEAD_TYPES = {"vslnet": VSLNetHead, "span": SpanHead}
DEFAULT_HEAD = "vslnet"
# What a head folder saved before head.json recorded ``head_type`` holds: the default head of that time. Fixed on
# purpose -- it must not follow DEFAULT_HEAD, or old folders would be rebuilt as the wrong class.
LEGACY_HEAD = "span"
# Each head's own sizes and learning rate, used for the options left unset (None). VSLNet: the official sizes
# (8 heads at dim 128, 4 conv layers per encoder block, dropout 0.2); span: egokit's. lr: the rate each head won
# bench/heads.py's sweep with at the default width (``--dim 128 --lrs 3e-4,1e-3,3e-3,1e-2``; the best rate falls as
# the width grows: at width 64 it is 1e-2 / 3e-3). The official VSLNet recipe uses 1e-3 for 50 epochs; sweep it on
# real features.
HEAD_DEFAULTS = {
    "vslnet": {"heads": 8, "layers": 4, "dropout": 0.2, "lr": 3e-3},
    "span": {"heads": 4, "layers": 2, "dropout": 0.1, "lr": 1e-3},
}


@dataclass
class NLQOptions:
    data: Optional[str] = None  # folder with nlq_train.json, nlq_val.json and videos/<video_uid>.mp4
    train_annotations: Optional[str] = None
    val_annotations: Optional[str] = None
    video_root: Optional[str] = None
    features: Optional[str] = None  # feature cache root (default <output>/features)
    feature_recipe: str = "egovlpv2-nlq"
    embed_batch_size: int = 32
    head: Optional[str] = None  # trained head folder (eval; default <output>/nlq_head)
    head_type: str = DEFAULT_HEAD  # vslnet (official head, re-implemented) | span (joint-attention transformer)
    text_length: int = 30
    max_len: int = 256
    dim: int = 128
    # None = the head's own default (HEAD_DEFAULTS): vslnet 8 / 4 / 0.2, span 4 / 2 / 0.1
    heads: Optional[int] = None  # attention heads (vslnet: of its encoders)
    layers: Optional[int] = None  # span: transformer layers; vslnet: conv layers per encoder block
    dropout: Optional[float] = None
    epochs: int = 30
    batch_size: int = 32
    lr: Optional[float] = None  # None = the head's own default: vslnet 3e-3, span 1e-3
    weight_decay: float = 0.01
    highlight_weight: float = 5.0
    top_k: int = 5
    limit: Optional[int] = None  # use only the first N queries of each split (smoke tests)

    def annotation(self, split: str) -> Path:
        explicit = self.train_annotations if split == "train" else self.val_annotations
        if explicit:
            return Path(explicit)
        if self.data is None:
            raise ConfigError(f"nlq needs data=<folder with nlq_{split}.json and videos/> or {split}_annotations=")
        return Path(self.data) / f"nlq_{split}.json"

    def videos(self) -> Path:
        if self.video_root:
            return Path(self.video_root)
        if self.data is None:
            raise ConfigError("nlq needs video_root= (folder of <video_uid>.mp4) or data=")
        return Path(self.data) / "videos"

    def resolved(self) -> "NLQOptions":
        """A copy with the options left unset (None) filled from the head's own defaults (:data:`HEAD_DEFAULTS`)."""
        if self.head_type not in HEAD_TYPES:
            raise ConfigError(f"nlq: head_type must be one of {', '.join(HEAD_TYPES)}, not {self.head_type!r}")
        own = HEAD_DEFAULTS[self.head_type]
        return replace(self, **{k: v for k, v in own.items() if getattr(self, k) is None})


def default_options() -> dict:
    return read_yaml(Path(__file__).with_name("nlq.yaml"))


def _options(ctx) -> NLQOptions:
    return build(NLQOptions, {**default_options(), **ctx.options}, where="nlq").resolved()


def build_head(options: NLQOptions, video_dim: int, text_dim: int) -> SpanHead | VSLNetHead:
    """The head named by ``options.head_type``, sized by the options (unset sizes: the head's own defaults)."""
    options = options.resolved()
    if options.head_type == "vslnet":
        return VSLNetHead(video_dim, text_dim, options.dim, options.heads, options.layers, max_len=options.max_len,
                          max_text=options.text_length, dropout=options.dropout)
    return SpanHead(video_dim, text_dim, options.dim, options.heads, options.layers, options.max_len,
                    options.text_length, options.dropout)


def head_loss(head, batch: dict[str, torch.Tensor], highlight_weight: float) -> torch.Tensor:
    """The training loss of either head on one collated batch (VSLNet widens the highlight target)."""
    s, e, h = head(batch["video"], batch["video_mask"], batch["text"], batch["text_mask"])
    return span_loss(s, e, h, batch["video_mask"], batch["start"], batch["end"], highlight_weight,
                     extend=getattr(head, "highlight_extend", 0.0))


def _split(ctx, options: NLQOptions, model, tokenizer, split: str) -> tuple[dict, list[NLQQuery], NLQFeatures]:
    """Annotations, queries and a feature dataset of one split (embedding missing clips first)."""
    data, queries = read_annotations(options.annotation(split))
    if options.limit is not None:
        queries = queries[:options.limit]
    recipe = get_recipe(options.feature_recipe)
    folder = Path(options.features or ctx.output_dir / "features") / options.feature_recipe
    wanted = {q.clip_uid for q in queries}
    items = [it for it in items_from_annotations(data, options.videos(), str(options.annotation(split)))
             if it.uid in wanted]
    embed_to_folder(model, items, recipe, folder, tokenizer=tokenizer, batch_size=options.embed_batch_size,
                    state=ctx.accelerator, console=ctx.console, show_progress=ctx.is_main)
    text, mask = embed_texts(model, tokenizer, [q.text.strip().lower() for q in queries], mode="backbone",
                             max_length=options.text_length)
    return data, queries, NLQFeatures(queries, folder, text.half(), mask, options.max_len)


def build_dataset(ctx, split: str = "train") -> NLQFeatures:
    options = _options(ctx)
    model = ctx.load_model(num_frames=get_recipe(options.feature_recipe).frames_per_window)
    return _split(ctx, options, model, ctx.load_tokenizer(model), split)[2]


@torch.no_grad()
def predict(head: SpanHead | VSLNetHead, dataset: NLQFeatures, batch_size: int = 64,
            top_k: int = 5) -> list[dict[str, Any]]:
    """Official submission records: top-k ``predicted_times`` (clip-relative seconds) per query."""
    head.eval()
    device = next(head.parameters()).device
    results = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        mask = batch["video_mask"].to(device)
        s, e, _ = head(batch["video"].to(device), mask, batch["text"].to(device), batch["text_mask"].to(device))
        spans, _ = top_spans(s, e, mask, k=top_k)
        lengths = mask.sum(-1).tolist()
        for row, index, steps in zip(spans.cpu(), batch["index"].tolist(), lengths):
            q = dataset.queries[index]
            unit = q.duration / steps  # step i covers [i, i + 1) * unit s of the clip (see data.py)
            results.append({"clip_uid": q.clip_uid, "annotation_uid": q.annotation_uid, "query_idx": q.query_idx,
                            "predicted_times": [[round(float(a) * unit, 4), round(float(b + 1) * unit, 4)]
                                                for a, b in row.tolist()]})
    return results


def _write_submission(path: Path, results: list[dict[str, Any]]) -> Path:
    return write_json_atomic(path, {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": results})


def num_steps(options: NLQOptions, train_set) -> int:
    """Optimizer steps of :func:`fit_head` (for progress bars)."""
    return options.epochs * -(-len(train_set) // options.batch_size)


def fit_head(options: NLQOptions, train_set, *, device: torch.device | str = "cpu", seed: int = 0,
             on_step: Callable[[float], None] | None = None) -> tuple[SpanHead | VSLNetHead, float]:
    """Train the head named by ``options`` on ``train_set`` (AdamW, linear decay, clip 1.0); returns it and the
    last loss. ``egokit train nlq`` and ``bench/heads.py`` both train through here."""
    sample = train_set[0]
    head = build_head(options, sample["video"].shape[1], sample["text"].shape[1]).to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    loader = DataLoader(train_set, batch_size=options.batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    total = options.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / max(total, 1)))

    def loss_fn(h, b):
        return head_loss(h, b, options.highlight_weight)

    last = fit_epochs(head, loader, loss_fn, optimizer, schedule, epochs=options.epochs, device=device,
                      clip_norm=1.0, on_step=on_step)
    return head, last


def train(ctx) -> dict:
    options = _options(ctx)
    torch.manual_seed(ctx.seed)
    model = ctx.load_model(num_frames=get_recipe(options.feature_recipe).frames_per_window)
    tokenizer = ctx.load_tokenizer(model)
    _, _, train_set = _split(ctx, options, model, tokenizer, "train")
    val_data, _, val_set = _split(ctx, options, model, tokenizer, "val")
    if not ctx.is_main:
        return {"metrics": {}, "config": to_dict(options)}
    with ctx.progress("NLQ head", total=num_steps(options, train_set)) as bar:
        head, last = fit_head(options, train_set, device=ctx.device, seed=ctx.seed,
                              on_step=lambda loss: bar.advance(1, loss=loss))
    folder = save_head(head, ctx.output_dir / HEAD_DIR, options)
    results = predict(head, val_set, top_k=options.top_k)
    _write_submission(ctx.output_dir / "nlq_predictions.json", results)
    metrics = nlq_recall(results, val_data)
    return {"metrics": {**metrics, "final_loss": last}, "config": to_dict(options),
            "checkpoint": {"head": str(folder)}}


def save_head(head: SpanHead | VSLNetHead, folder: Path, options: NLQOptions) -> Path:
    from egokit.checkpoint import save_head as save

    head_type = next(name for name, cls in HEAD_TYPES.items() if isinstance(head, cls))
    return save(folder, head, {"head_type": head_type, "config": head.config,
                               "feature_recipe": options.feature_recipe, "text_length": options.text_length})


def load_head(folder: str | Path) -> tuple[SpanHead | VSLNetHead, dict]:
    """The saved head, rebuilt as the class recorded in ``head.json`` (:data:`LEGACY_HEAD`, ``span``, for heads saved
    before it was recorded -- whatever the current default)."""
    from egokit.checkpoint import load_head as load

    return load(folder, HEAD_TYPES, "egokit train nlq", legacy_type=LEGACY_HEAD)


def evaluate(ctx) -> dict:
    options = _options(ctx)
    head, info = load_head(options.head or ctx.output_dir / HEAD_DIR)
    if info["feature_recipe"] != options.feature_recipe:
        raise ConfigError(f"the head was trained on {info['feature_recipe']} features, not "
                          f"{options.feature_recipe}; pass feature_recipe={info['feature_recipe']}")
    model = ctx.load_model(num_frames=get_recipe(options.feature_recipe).frames_per_window)
    val_data, _, val_set = _split(ctx, options, model, ctx.load_tokenizer(model), "val")
    if not ctx.is_main:
        return {"metrics": {}, "config": to_dict(options)}
    results = predict(head.to(ctx.device), val_set, top_k=options.top_k)
    _write_submission(ctx.output_dir / "nlq_predictions.json", results)
    return {"metrics": nlq_recall(results, val_data), "config": {**to_dict(options), "head_info": info}}
