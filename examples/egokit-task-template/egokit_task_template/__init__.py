"""Template egokit task plugin. The entry point names :class:`TemplateRetrieval`; importing it stays cheap (torch
and video decoding are imported only when the task runs)."""

from __future__ import annotations

from egokit_task_template.task import TemplateRetrieval

__all__ = ["TemplateRetrieval"]
