"""Fixtures of the EgoTaskQA plugin tests."""

from __future__ import annotations

import pytest

from egokit.testing import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny-model matrices gain nothing from threads; one thread avoids oversubscribing shared CI cores."""
    with one_thread():
        yield
