"""Registry of task plugins (``egokit.tasks`` entry points), lazy in the manner of lm-eval's registry.

Finding tasks reads package metadata only. Loading one imports the module its entry point names (cheap by
contract: task classes import torch inside their methods), instantiates the :class:`~egokit.tasks.base.Task`
subclass and checks its declaration. :func:`check_task` goes further for ``egokit tasks --check``: it imports
every module of the plugin, and validates the packaged recipe against the options. A plugin that fails is
reported with its package name and never breaks the other tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from egokit.errors import EgokitError, PluginError
from egokit.tasks.base import Task

__all__ = ["GROUP", "TaskEntry", "TaskHealth", "check_task", "discover_tasks", "get_task"]

GROUP = "egokit.tasks"


@dataclass(frozen=True)
class TaskEntry:
    name: str
    package: str
    version: str
    target: str
    entry_point: metadata.EntryPoint

    def load(self) -> Task:
        try:
            obj = self.entry_point.load()
            task = obj() if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Task)) else obj
        except Exception as exc:  # a third-party plugin can raise anything on import
            raise PluginError(f"task {self.name!r} from package {self.package} failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(task, Task):
            if type(task).__name__ == "TaskSpec":  # the egokit 0.1 declaration
                raise PluginError(f"task {self.name!r} from package {self.package} uses the egokit 0.1 TaskSpec "
                                  "API, replaced in 0.2 by egokit.tasks.api.Task; port it as docs/plugins.md "
                                  "('Migrating from 0.1') shows")
            raise PluginError(f"task {self.name!r} from package {self.package}: {self.target} is not a Task "
                              f"subclass (got {type(task).__name__}); see docs/plugins.md")
        try:
            task.check_declaration()
        except PluginError as exc:
            raise PluginError(f"package {self.package}: {exc}") from None
        if task.name != self.name:
            raise PluginError(f"package {self.package} registers {task.name!r} under the entry-point name "
                              f"{self.name!r}; they must match")
        return task


def discover_tasks() -> list[TaskEntry]:
    entries = {}
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist
        entries.setdefault(ep.name, TaskEntry(name=ep.name, package=dist.name if dist else "?",
                                              version=dist.version if dist else "?", target=ep.value,
                                              entry_point=ep))
    return sorted(entries.values(), key=lambda e: e.name)


def get_task(name: str) -> Task:
    entries = {e.name: e for e in discover_tasks()}
    if name not in entries:
        import difflib

        known = ", ".join(entries) or "none installed"
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PluginError(f"unknown task {name!r}{hint}; installed: {known}. Install a task's plugin package "
                          "with pip (`egokit tasks` lists them)")
    return entries[name].load()


@dataclass
class TaskHealth:
    entry: TaskEntry
    task: Task | None
    problems: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_task(entry: TaskEntry, deep: bool = False) -> TaskHealth:
    """Load ``entry``; with ``deep`` also import all its modules and validate its packaged recipe."""
    from egokit.recipes import build
    from egokit.tasks.options import default_options, recipe_drift, selection_metric

    try:
        task = entry.load()
    except PluginError as exc:
        return TaskHealth(entry, None, [str(exc)], [])
    problems: list[str] = []
    warnings: list[str] = []
    if deep:
        try:
            task.import_modules()
        except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's problem to report
            problems.append(f"a module of package {entry.package} fails to import: {type(exc).__name__}: {exc}")
        try:
            selection_metric(task, build(task.Options, default_options(task)))  # validate() may need data=
            warnings += [f"recipe and Options disagree: {d}" for d in recipe_drift(task)]
        except EgokitError as exc:
            problems.append(f"its default options do not validate: {exc}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"its default options cannot be built: {type(exc).__name__}: {exc}")
    return TaskHealth(entry, task, problems, warnings)
