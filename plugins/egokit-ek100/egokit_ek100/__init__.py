"""EPIC-KITCHENS-100 multi-instance retrieval plugin for egokit (task ``ek100-mir``)."""

from __future__ import annotations

from egokit_ek100.relevancy import relevancy_from_csv

__all__ = ["make_task", "relevancy_from_csv"]


def make_task():
    """The ``ek100-mir`` TaskSpec; the task's modules (torch, video decoding) are imported only when it runs."""
    from egokit.tasks.spec import TaskSpec

    def evaluate(ctx):
        from egokit_ek100.task import evaluate as run

        return run(ctx)

    def train(ctx):
        from egokit_ek100.task import train as run

        return run(ctx)

    return TaskSpec(
        name="ek100-mir",
        description="EPIC-KITCHENS-100 multi-instance retrieval: mAP and nDCG (video-to-text, text-to-video, avg)",
        fusion_mode="dual",
        metrics=("map.v2t", "map.t2v", "map.avg", "ndcg.v2t", "ndcg.t2v", "ndcg.avg"),
        evaluate=evaluate,
        train=train,
        default_recipe="egokit_ek100:ek100_mir.yaml",
    )
