"""``egokit pretrain`` from Python: the training loop (:mod:`egokit.engine.pretrain`) with the recipe's
``eval.tasks`` evaluated by their task plugins (:mod:`egokit.tasks.inrun`).

The loop and the task plugins do not import each other; this module, above both, joins them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from egokit.engine.pretrain import PretrainResult
from egokit.engine.pretrain import pretrain as _loop

__all__ = ["PretrainResult", "pretrain"]


def pretrain(recipe: str | Path | dict[str, Any] | None, overrides: Sequence[str] = (), **kwargs: Any) -> PretrainResult:
    """Run (or resume: ``resume="latest"``) a pretraining recipe; see :func:`egokit.engine.pretrain.pretrain`."""
    from egokit.tasks.inrun import TaskEvaluator

    return _loop(recipe, overrides, evaluator=TaskEvaluator, **kwargs)
