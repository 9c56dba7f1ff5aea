"""EgoNLQ for egokit: features from ``egokit embed`` (official fusion recipe or dual), a VSLNet head (or egokit's span
head, ``head_type=span``), official metric."""

from __future__ import annotations


def make_task():
    from egokit.tasks.spec import TaskSpec

    from egokit_nlq.task import build_dataset, evaluate, train
    from egokit_nlq.vslnet import VSLNetHead

    return TaskSpec(
        name="nlq",
        description="EgoNLQ: localise the answer window of a natural-language query in a clip (R@k at IoU 0.3/0.5)",
        fusion_mode="fusion",
        metrics=("R@1 IoU=0.3", "R@5 IoU=0.3", "R@1 IoU=0.5", "R@5 IoU=0.5", "mIoU"),
        evaluate=evaluate,
        train=train,
        build_dataset=build_dataset,
        build_head=VSLNetHead,
        default_recipe="egokit_nlq:nlq.yaml",
    )
