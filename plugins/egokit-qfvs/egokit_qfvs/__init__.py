"""QFVS for egokit (task ``qfvs``): query-focused summarisation of UT-Egocentric with fused shot features and a small
head, leave-one-video-out. The entry point names :class:`~egokit_qfvs.task.QFVSTask`; importing this package loads
neither torch nor numpy."""

from __future__ import annotations

from egokit_qfvs.task import QFVSOptions, QFVSTask

__all__ = ["QFVSOptions", "QFVSTask"]
