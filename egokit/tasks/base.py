"""What a task plugin is: a :class:`Task` subclass with a name, a fusion mode, typed options and metrics.

The core owns everything a task would otherwise repeat (options from the packaged recipe, a recipe file and
``key=value`` overrides; validation; the results file; best-checkpoint selection; progress and logging; loading
the model in the task's fusion mode). A task implements only ``evaluate`` (and optionally ``train`` and
``synth``), receiving a :class:`~egokit.tasks.context.TaskContext` and its validated options object.

This module is imported when tasks are listed, so it (and the module that defines a task class) must not import
torch: heavy imports belong inside the methods.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from egokit.errors import ConfigError, PluginError

__all__ = ["FUSION_MODES", "MetricSpec", "Task", "TaskResult"]

#: How a task uses the model. ``dual``: the two towers with the gates off (the core loads the model without its
#: fusion layers and heads); ``fusion``: cross-attention on; ``ensemble``: both (e.g. EgoMCQ's cosine + VTM).
FUSION_MODES = ("dual", "fusion", "ensemble")


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: ``name`` is its dotted path in the metrics mapping (``"map.avg"``)."""

    name: str
    higher_is_better: bool = True
    fmt: str = ".2f"
    description: str = ""

    def format(self, value: Any) -> str:
        if isinstance(value, (bool, int)) or not isinstance(value, float):
            return str(value)
        return format(value, self.fmt)

    def better(self, new: float, old: float | None) -> bool:
        """Whether ``new`` improves on ``old`` (``None``: nothing yet). NaN never improves."""
        if new != new:  # NaN
            return False
        if old is None or old != old:
            return True
        return new > old if self.higher_is_better else new < old


@dataclass
class TaskResult:
    """What ``Task.evaluate`` / ``Task.train`` return.

    ``metrics`` may nest (``{"map": {"avg": ...}}``); the results file stores it as returned. ``artifacts`` names
    the files and folders the run wrote (``{"checkpoint": path, "predictions": path}``). ``details`` is
    provenance recorded beside the resolved options (``{"relevancy_source": "csv"}``). ``history`` holds
    per-epoch training records."""

    metrics: dict[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class Task:
    """Base class of every task; a plugin's entry point names its subclass (``acme-x = "acme_tasks:AcmeTask"``).

    Class attributes:

    ``name``          the command-line name, equal to the entry-point name
    ``description``   one line for listings
    ``fusion_mode``   ``"dual"``, ``"fusion"`` or ``"ensemble"`` (see :data:`FUSION_MODES`)
    ``metrics``       :class:`MetricSpec` of the reported metrics; the first is the headline (and the default
                      for model selection)
    ``Options``       a dataclass of the task's options (nest :class:`egokit.tasks.api.FinetuneOptions` as
                      ``finetune`` for training settings)
    ``recipe``        YAML file *inside the task's package* holding the default options (``None``: the dataclass
                      defaults alone)
    ``trained_model`` the sub-folder of ``egokit train``'s output that ``egokit eval`` then takes as ``--ckpt``,
                      for tasks whose evaluation needs the fine-tuned model (``None``: the same ``--ckpt`` as training,
                      the task finds what it trained under the output folder)
    ``needs_training`` whether evaluation needs what ``egokit train`` wrote (a trained head): listings and
                      ``egokit synth --task`` then show training first
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    fusion_mode: ClassVar[str] = "dual"
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    Options: ClassVar[type | None] = None
    recipe: ClassVar[str | None] = None
    trained_model: ClassVar[str | None] = None
    needs_training: ClassVar[bool] = False  # evaluation reads what `egokit train` wrote (a head, a fine-tuned model)

    # ------------------------------------------------------------------------------------------ task methods
    def evaluate(self, ctx, options) -> TaskResult:
        raise NotImplementedError(f"task {self.name!r} does not implement evaluate()")

    def train(self, ctx, options) -> TaskResult:
        raise PluginError(f"task {self.name!r} has no training (evaluation only)")

    def synth(self, out: Path, *, seed: int = 0) -> dict[str, Any]:
        """Write a small synthetic dataset in the task's official format to ``out``; return a summary
        (counts, the options to pass: ``{"data": str(out)}``...)."""
        raise PluginError(f"task {self.name!r} ships no synthetic dataset")

    def validate(self, options) -> None:
        """Cross-field checks of the options, run before any work starts; raise :class:`ConfigError`."""

    # ---------------------------------------------------------------------------------------------- queries
    @property
    def trainable(self) -> bool:
        return type(self).train is not Task.train

    @property
    def has_synth(self) -> bool:
        return type(self).synth is not Task.synth

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def metric(self, name: str | None = None) -> MetricSpec:
        """The spec of ``name`` (default: the headline metric); a name the task does not report is an error."""
        if name is None:
            return self.metrics[0]
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise ConfigError(f"{self.name}: {name!r} is not one of its metrics ({', '.join(self.metric_names)})")

    @property
    def package(self) -> str:
        """The import package holding the task class (where its recipe lives): that of the class in the MRO that
        sets ``recipe``, so a subclass defined elsewhere still finds the packaged recipe."""
        owner = next((c for c in type(self).__mro__ if "recipe" in c.__dict__ and c.__dict__["recipe"]), type(self))
        module = sys.modules.get(owner.__module__)
        return (getattr(module, "__package__", None) or owner.__module__).split(".")[0]

    def recipe_text(self) -> str | None:
        """The packaged default recipe, as text (``None`` when the task has none)."""
        if self.recipe is None:
            return None
        from importlib import resources

        resource = resources.files(self.package).joinpath(self.recipe)
        if not resource.is_file():
            raise PluginError(f"task {self.name!r}: its recipe {self.recipe} is missing from package {self.package} "
                              "(ship it as package data)")
        return resource.read_text(encoding="utf-8")

    def check_declaration(self) -> None:
        """What must hold for the core to run the task (checked when a plugin is loaded)."""
        where = f"task {self.name or type(self).__name__!r}"
        if not self.name or not isinstance(self.name, str):
            raise PluginError(f"{where}: set the class attribute name")
        if self.fusion_mode not in FUSION_MODES:
            raise PluginError(f"{where}: fusion_mode must be one of {FUSION_MODES}, got {self.fusion_mode!r}")
        if not self.metrics or not all(isinstance(m, MetricSpec) for m in self.metrics):
            raise PluginError(f"{where}: metrics must be a non-empty tuple of MetricSpec")
        if self.Options is None or not dataclasses.is_dataclass(self.Options):
            raise PluginError(f"{where}: Options must be a dataclass of the task's options")
        if type(self).evaluate is Task.evaluate:
            raise PluginError(f"{where}: implement evaluate(ctx, options)")

    def import_modules(self) -> list[str]:
        """Import every module of the task's package (``egokit tasks --check``); returns their names."""
        import pkgutil

        package = importlib.import_module(self.package)
        names = [package.__name__]
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{package.__name__}."):
            importlib.import_module(info.name)
            names.append(info.name)
        return names


def flat_metric(metrics: dict[str, Any], name: str) -> Any:
    """The value at dotted path ``name`` of a (nested) metrics mapping, or ``None``."""
    node: Any = metrics
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            flat = metrics.get(name) if isinstance(metrics, dict) else None
            return flat
        node = node[part]
    return node


def metric_table(specs: Sequence[MetricSpec], metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, formatted value)`` for each declared metric present, then any other scalar, in order."""
    from egokit.results import flatten_metrics

    flat = flatten_metrics(metrics)
    rows = [(s.name, s.format(flat[s.name])) for s in specs if s.name in flat]
    declared = {s.name for s in specs}
    rows += [(k, MetricSpec(k).format(v)) for k, v in flat.items() if k not in declared]
    return rows
