"""Charades-Ego action recognition plugin for egokit (task ``charades-ego``)."""

from __future__ import annotations

__all__ = ["make_task"]


def make_task():
    """The ``charades-ego`` TaskSpec; the task's modules (torch, video decoding) are imported only when it runs."""
    from egokit.tasks.spec import TaskSpec

    def evaluate(ctx):
        from egokit_charades.task import evaluate as run

        return run(ctx)

    def train(ctx):
        from egokit_charades.task import train as run

        return run(ctx)

    return TaskSpec(
        name="charades-ego",
        description="Charades-Ego action recognition as video-to-class-name retrieval (157 classes, mAP)",
        fusion_mode="dual",
        metrics=("mAP",),
        evaluate=evaluate,
        train=train,
        default_recipe="egokit_charades:charades_ego.yaml",
    )
