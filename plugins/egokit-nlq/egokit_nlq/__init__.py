"""EgoNLQ plugin for egokit (task ``nlq``): features from ``egokit embed`` (official fusion recipe or dual), a VSLNet
head (or egokit's span head, ``head_type=span``), the official metric and submission file.

The entry point names :class:`~egokit_nlq.task.NLQ`; importing this package does not load torch.
"""

from __future__ import annotations

from egokit_nlq.task import NLQ, NLQOptions

__all__ = ["NLQ", "NLQOptions"]
