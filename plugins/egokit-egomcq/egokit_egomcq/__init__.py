"""EgoMCQ for egokit: zero-shot multiple-choice retrieval with dual, VTM and ensemble scores."""

from __future__ import annotations


def make_task():
    from egokit.tasks.spec import TaskSpec

    from egokit_egomcq.task import evaluate

    return TaskSpec(
        name="egomcq",
        description="EgoMCQ: pick the clip (of 5) that matches a narration; inter- and intra-video accuracy",
        fusion_mode="ensemble",
        metrics=("dual.inter", "dual.intra", "vtm.inter", "vtm.intra", "ensemble.inter", "ensemble.intra"),
        evaluate=evaluate,
        default_recipe="egokit_egomcq:egomcq.yaml",
    )
