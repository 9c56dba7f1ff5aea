"""The feature-head family: a feature recipe -> cached features -> a registered head -> decode -> metric.

Tasks that train a small head on frozen EgoVLPv2 features (NLQ, MQ, QFVS) provide the features of each split
(:meth:`FeatureHeadTask.feature_split`, usually through :meth:`FeatureHeadTask.embed_clips`, which caches them
under ``features/<recipe>/`` and resumes), their heads as a :class:`~egokit.heads.HeadRegistry` (each head brings
its class, default sizes, loss and decoder) and a metric. The core trains the chosen head (AdamW, a per-step
schedule, optional clipping), saves it in the one head format, reloads it for evaluation (checking it was trained
on the same features), decodes predictions and scores them. Cross-validated tasks (QFVS: leave one video out)
declare several :class:`Fold`; the others use the single train -> val fold.

Interrupting and resuming: the features are the expensive part and are cached clip by clip (a stopped run keeps
every finished clip); a head trains in seconds to minutes. So the head loop writes no training checkpoints: a stop
signal during head training ends the run after the current step (exit 128 + the signal) with the "continue with:
... --resume latest" line, and ``--resume latest`` reuses the cached features and trains every head again from
the start. Head training is deterministic (its initialisation, data order and dropout are seeded from ``--seed``
and the fold), so the resumed run's heads, predictions and metrics equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from egokit.engine.finetune_options import FinetuneOptions
from egokit.errors import ConfigError
from egokit.tasks.base import Task, TaskResult
from egokit.tasks.options import DataOptions, options_dict

__all__ = ["FeatureHeadOptions", "FeatureHeadTask", "FeatureSplit", "Fold", "HeadTraining"]


@dataclass
class HeadTraining(FinetuneOptions):
    """Head training defaults: AdamW with PyTorch's betas, no warm-up, clipping at 1; ``lr`` ``None`` takes the
    chosen head's own learning rate."""

    epochs: int = 30
    batch_size: int = 32
    lr: Optional[float] = None
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = 0.0
    schedule: str = "linear"
    clip_grad: Optional[float] = 1.0


@dataclass
class FeatureHeadOptions(DataOptions):
    features: Optional[str] = None     # feature cache root (default <output>/features)
    feature_recipe: str = ""           # an `egokit embed` recipe (see `egokit embed --help`)
    embed_batch_size: int = 32
    head: Optional[str] = None         # trained head folder to evaluate (default: the one `egokit train` wrote)
    head_type: Optional[str] = None    # a registered head (default: the task's default head)
    limit: Optional[int] = None        # use only the first N items of each split (smoke tests)
    finetune: HeadTraining = field(default_factory=HeadTraining)


@dataclass
class FeatureSplit:
    """One split's head inputs: ``dataset`` items (batched with ``collate``), what the metric compares against
    (``truth``) and anything else the task wants to carry (``info``)."""

    dataset: Any
    collate: Callable | None = None
    truth: Any = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fold:
    """Train a head on the ``train`` splits, score it on ``test`` (``None``: train only, e.g. a final head on
    all data). ``name`` is the head's sub-folder and the key of its metrics (``""``: the single default fold)."""

    name: str
    train: tuple[str, ...]
    test: str | None


class FeatureHeadTask(Task):
    """Base class of the feature-head tasks (see the module docstring)."""

    Options = FeatureHeadOptions
    needs_training = True                  # evaluation loads the head `egokit train` saved
    heads: ClassVar[Any] = None            # a HeadRegistry
    head_dir: ClassVar[str] = "head"       # under the output folder
    legacy_head: ClassVar[str | None] = None  # head type of folders saved before head.json recorded it
    uses_text: ClassVar[bool] = True       # False: video-only features; no tokenizer is loaded (None)

    # ------------------------------------------------------------------------------- what a task provides
    def feature_split(self, ctx, options, model, tokenizer, split: str, head_info: dict | None = None) -> FeatureSplit:
        raise NotImplementedError

    def score(self, predictions: list, split: FeatureSplit, options) -> dict[str, Any]:
        raise NotImplementedError

    def folds(self, options) -> tuple[Fold, ...]:
        return (Fold("", ("train",), "val"),)

    def combine(self, per_fold: dict[str, dict[str, Any]], options) -> dict[str, Any]:
        """Metrics of several folds -> the reported metrics (default: the single fold's)."""
        return next(iter(per_fold.values())) if len(per_fold) == 1 else per_fold

    def head_info(self, options, split: FeatureSplit) -> dict[str, Any]:
        """What ``head.json`` records beside the head (the core adds the task and the feature recipe)."""
        return {}

    def write_predictions(self, ctx, predictions: list, fold: Fold) -> Path | None:
        """Write the predictions in the task's official format (main process); return the file."""
        return None

    def feature_frames(self, options) -> int:
        from egokit.embed import get_recipe

        return get_recipe(options.feature_recipe).frames_per_window

    def head_optimizer(self, head, options):
        import torch

        ft = options.finetune
        return torch.optim.AdamW(head.parameters(), lr=ft.lr, betas=tuple(ft.betas), eps=ft.eps,
                                 weight_decay=ft.weight_decay)

    def head_root(self, ctx, options, action: str) -> Path:
        """Where heads are written (train) and read (eval)."""
        if action == "eval" and options.head:
            return Path(options.head)
        return ctx.path(self.head_dir)

    # ------------------------------------------------------------------------------------------ options
    def resolved(self, options):
        """A copy with ``head_type`` and the options left unset (``None``) filled from the head's defaults; a
        default names an option of the task or of its ``finetune`` section."""
        head_type = options.head_type or self.heads.default
        spec = self.heads[head_type]
        top, train = {"head_type": head_type}, {}
        for key, value in spec.defaults.items():
            if hasattr(options, key):
                if getattr(options, key) is None:
                    top[key] = value
            elif hasattr(options.finetune, key):
                if getattr(options.finetune, key) is None:
                    train[key] = value
            else:
                raise ConfigError(f"{self.name}: head {head_type!r} has a default for {key!r}, which is not an option")
        return dataclasses.replace(options, **top, finetune=dataclasses.replace(options.finetune, **train))

    def validate(self, options) -> None:
        if options.head_type is not None:
            self.heads[options.head_type]  # an unknown head type names the known ones
        if not options.feature_recipe:
            raise ConfigError(f"{self.name}: set feature_recipe")

    # --------------------------------------------------------------------------------------------- the core
    def embed_clips(self, ctx, options, model, annotations: dict, source: str, video_root: Path, wanted: set[str],
                    tokenizer=None) -> Path:
        """Embed the clips of an official annotation file (those in ``wanted``) with the feature recipe into the
        shared cache ``<features>/<recipe>/`` (resumable: finished clips are skipped); returns that folder."""
        from egokit.embed import embed_to_folder, get_recipe, items_from_annotations

        recipe = get_recipe(options.feature_recipe)
        folder = Path(options.features or ctx.path("features")) / options.feature_recipe
        items = [it for it in items_from_annotations(annotations, video_root, source) if it.uid in wanted]
        embed_to_folder(model, items, recipe, folder, tokenizer=tokenizer, batch_size=options.embed_batch_size,
                        state=ctx.accelerator, console=ctx.console, show_progress=ctx.is_main,
                        on_item_done=ctx.check_stop)
        return folder

    def fit_head(self, options, train: FeatureSplit, *, device="cpu", seed: int = 0,
                 on_step: Callable[[float], None] | None = None):
        """Train the head named by ``options.head_type`` on ``train``; returns ``(head, last loss)``. Every
        ``egokit train`` of the family (and ``bench/heads.py``) trains through here."""
        import torch
        from torch.utils.data import DataLoader

        from egokit.engine.finetune import fit_epochs
        from egokit.engine.optim import warmup_cosine

        options = self.resolved(options)
        spec = self.heads[options.head_type]
        ft = options.finetune
        head = spec.build(options, train).to(device)
        optimizer = self.head_optimizer(head, options)
        loader = DataLoader(train.dataset, batch_size=ft.batch_size, shuffle=True, collate_fn=train.collate,
                            generator=torch.Generator().manual_seed(seed))
        total = ft.epochs * len(loader)
        schedule = warmup_cosine(optimizer, int(ft.warmup * total), total, ft.schedule)
        last = fit_epochs(head, loader, lambda h, b: spec.loss(h, b, options), optimizer, schedule,
                          epochs=ft.epochs, device=device, clip_norm=ft.clip_grad, on_step=on_step)
        return head, last

    def num_steps(self, options, train: FeatureSplit) -> int:
        """Optimizer steps of :meth:`fit_head` (for progress bars)."""
        ft = options.finetune
        return ft.epochs * -(-len(train.dataset) // ft.batch_size)

    def predict(self, head, split: FeatureSplit, options) -> list:
        """Decoded predictions of ``head`` on every item of ``split``, in dataset order."""
        import torch
        from torch.utils.data import DataLoader

        from egokit.engine.finetune import _to

        spec = self.heads.spec_of(head)
        options = self.resolved(options)
        device = next(head.parameters()).device
        head.eval()
        out: list = []
        with torch.no_grad():
            for batch in DataLoader(split.dataset, batch_size=options.finetune.batch_size, collate_fn=split.collate):
                out += spec.predict(head, _to(batch, device), split, options)
        return out

    def save_head(self, head, folder: Path, options, split: FeatureSplit) -> Path:
        from egokit.heads import save_head

        spec = self.heads.spec_of(head)
        return save_head(folder, head, spec.name, spec.config_of(head), task=self.name,
                         feature_recipe=options.feature_recipe, **self.head_info(options, split))

    def load_head(self, folder: Path, options) -> tuple[Any, dict[str, Any]]:
        from egokit.heads import load_head

        head, info = load_head(folder, self.heads.classes(), what=f"egokit train {self.name}",
                               legacy_type=self.legacy_head)
        recorded = info.get("feature_recipe")
        if recorded is not None and recorded != options.feature_recipe:
            raise ConfigError(f"the head in {folder} was trained on {recorded} features, not "
                              f"{options.feature_recipe}; pass feature_recipe={recorded}")
        return head, info

    def after_train(self, ctx, options, model, tokenizer, artifacts: dict[str, str]) -> None:
        """Called on the main process once every head is saved (QFVS saves the backbone beside its heads)."""

    def _splits(self, ctx, options, names, head_info=None):
        model = ctx.load_model(num_frames=self.feature_frames(options))
        tokenizer = ctx.load_tokenizer(model) if self.uses_text else None
        return {n: self.feature_split(ctx, options, model, tokenizer, n, head_info) for n in names}, model, tokenizer

    def _extract(self, ctx, options, names):
        """:meth:`_splits` with stop signals caught: a signal during feature extraction stops after the current
        clip (or progress step; each finished clip is cached) with the "continue with" message. Each process
        checks its own signal (extraction has no common step), as Slurm and torchrun signal every process."""
        from egokit.engine.interrupt import StopSignals

        with StopSignals(announce=ctx.is_main, saves=False) as stop:
            ctx.stop = stop
            try:
                return self._splits(ctx, options, names)
            finally:
                ctx.stop = None

    def train(self, ctx, options) -> TaskResult:
        from egokit.engine.interrupt import TrainingInterrupted

        if ctx.resume is not None and ctx.resume != "latest":
            raise ConfigError(f"{self.name}: --resume {ctx.resume}: a feature-head run has no training checkpoints; "
                              f"--resume latest reuses its cached features and trains the head again")
        if ctx.resume is not None and ctx.is_main:
            ctx.console.print(f"{self.name}: resuming: cached features are reused, the head is trained again from "
                              f"the start (deterministic: the same head as an uninterrupted run)", highlight=False)
        try:
            return self._train(ctx, options)
        except TrainingInterrupted as exc:
            if exc.resumable:
                raise
            # nothing to save: --resume latest redoes only the head training (see the module docstring)
            raise TrainingInterrupted(exc.step, exc.signum, None, main_process=exc.main_process,
                                      resumable=True) from None

    def _train(self, ctx, options) -> TaskResult:
        import torch

        options = self.resolved(options)
        torch.manual_seed(ctx.seed)
        folds = self.folds(options)
        names = list(dict.fromkeys(n for f in folds for n in (*f.train, *([f.test] if f.test else []))))
        splits, model, tokenizer = self._extract(ctx, options, names)
        if not ctx.is_main:
            return TaskResult({})
        root = self.head_root(ctx, options, "train")
        per_fold, artifacts, last = {}, {}, float("nan")
        for k, fold in enumerate(folds):
            train = _concat([splits[n] for n in fold.train])
            label = f"{self.name} head" + (f" ({fold.name})" if fold.name else "")
            torch.manual_seed(ctx.seed + k)  # the head's init depends on the seed, not on what loaded before it
            with ctx.progress(label, total=self.num_steps(options, train)) as bar:
                head, last = self.fit_head(options, train, device=ctx.device, seed=ctx.seed + k,
                                           on_step=lambda loss: bar.advance(1, loss=loss))
            folder = self.save_head(head, root / fold.name if fold.name else root, options, train)
            artifacts[f"head{'.' + fold.name if fold.name else ''}"] = str(folder)
            if fold.test is not None:
                predictions = self.predict(head, splits[fold.test], options)
                written = self.write_predictions(ctx, predictions, fold)
                if written is not None:
                    artifacts[f"predictions{'.' + fold.name if fold.name else ''}"] = str(written)
                per_fold[fold.name] = self.score(predictions, splits[fold.test], options)
        self.after_train(ctx, options, model, tokenizer, artifacts)
        metrics = self.combine(per_fold, options)
        # the options the heads were trained with: head_type and the sizes / lr filled from the head's defaults
        return TaskResult({**metrics, "final_loss": last}, artifacts=artifacts,
                          details={"options": options_dict(options)})

    def evaluate(self, ctx, options) -> TaskResult:
        options = self.resolved(options) if options.head_type else options
        root = self.head_root(ctx, options, "eval")
        folds = [f for f in self.folds(options) if f.test is not None]
        heads = {f.name: self.load_head(root / f.name if f.name else root, options) for f in folds}
        info = next(iter(heads.values()))[1]
        options = self.resolved(dataclasses.replace(options, head_type=info.get("head_type", self.legacy_head)))
        splits, _, _ = self._splits(ctx, options, list(dict.fromkeys(f.test for f in folds)), info)
        if not ctx.is_main:
            return TaskResult({})
        per_fold, artifacts = {}, {}
        for fold in folds:
            head = heads[fold.name][0].to(ctx.device)
            predictions = self.predict(head, splits[fold.test], options)
            written = self.write_predictions(ctx, predictions, fold)
            if written is not None:
                artifacts[f"predictions{'.' + fold.name if fold.name else ''}"] = str(written)
            per_fold[fold.name] = self.score(predictions, splits[fold.test], options)
        return TaskResult(self.combine(per_fold, options), artifacts=artifacts, details={"head_info": info})


def _concat(splits: list[FeatureSplit]) -> FeatureSplit:
    if len(splits) == 1:
        return splits[0]
    from torch.utils.data import ConcatDataset

    return FeatureSplit(ConcatDataset([s.dataset for s in splits]), splits[0].collate,
                        [s.truth for s in splits], {"parts": [s.info for s in splits]})

