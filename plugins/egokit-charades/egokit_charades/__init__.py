"""Charades-Ego action recognition plugin for egokit (task ``charades-ego``)."""

from __future__ import annotations

from egokit_charades.task import CharadesEgo

__all__ = ["CharadesEgo"]
