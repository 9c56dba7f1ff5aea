"""Lazy registry of task plugins (``egokit.tasks`` entry points), in the manner of lm-eval's registry.

Listing tasks reads package metadata only; a task's module is imported when the task is used. A plugin that fails
to import or declares an invalid task is reported with its package name and does not break the other tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from egokit.errors import PluginError

GROUP = "egokit.tasks"


@dataclass(frozen=True)
class TaskEntry:
    name: str
    package: str
    version: str
    target: str
    entry_point: metadata.EntryPoint

    def load(self):
        from egokit.tasks.spec import TaskSpec

        try:
            obj = self.entry_point.load()
            spec = obj() if callable(obj) and not isinstance(obj, TaskSpec) else obj
        except Exception as exc:  # a third-party plugin can raise anything on import
            raise PluginError(f"task {self.name!r} from package {self.package} failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(spec, TaskSpec):
            raise PluginError(f"task {self.name!r} from package {self.package}: {self.target} is not a TaskSpec "
                              f"(got {type(spec).__name__})")
        if spec.name != self.name:
            raise PluginError(f"package {self.package} registers {spec.name!r} under the entry-point name "
                              f"{self.name!r}; they must match")
        return spec


def discover_tasks() -> list[TaskEntry]:
    entries = []
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist
        entries.append(TaskEntry(name=ep.name, package=dist.name if dist else "?", version=dist.version if dist else "?",
                                 target=ep.value, entry_point=ep))
    return sorted(entries, key=lambda e: e.name)


def get_task(name: str):
    entries = {e.name: e for e in discover_tasks()}
    if name not in entries:
        known = ", ".join(entries) or "none installed"
        raise PluginError(f"unknown task {name!r} (installed: {known}); install its plugin package with pip")
    return entries[name].load()
