"""QFVS for egokit: query-focused summarisation of UT-Egocentric with fused shot features and a small head."""

from __future__ import annotations


def make_task():
    from egokit.summarize.head import SummaryHead
    from egokit.tasks.spec import TaskSpec

    from egokit_qfvs.data import load_video
    from egokit_qfvs.task import evaluate, train

    return TaskSpec(
        name="qfvs",
        description="QFVS (UT-Egocentric): query-focused summaries, semantic F1 per video, leave-one-video-out",
        fusion_mode="fusion",
        metrics=("P01.f1", "P02.f1", "P03.f1", "P04.f1", "average_f1"),
        evaluate=evaluate,
        train=train,
        build_dataset=load_video,
        build_head=SummaryHead,
        default_recipe="egokit_qfvs:qfvs.yaml",
    )
