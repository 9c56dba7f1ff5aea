"""EPIC-KITCHENS-100 multi-instance retrieval plugin for egokit."""

from __future__ import annotations

from egokit_ek100.relevancy import relevancy_from_csv

__all__ = ["relevancy_from_csv"]
