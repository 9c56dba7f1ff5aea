"""EgoMQ for egokit: dual features from ``egokit embed`` (official recipe egovlpv2-mq), a VSGN temporal detection
head (or egokit's anchor-free head, ``head_type=anchor-free``), official mAP / recall."""

from __future__ import annotations


def make_task():
    from egokit.tasks.spec import TaskSpec

    from egokit_mq.task import build_dataset, evaluate, train
    from egokit_mq.vsgn import VSGNHead

    return TaskSpec(
        name="mq",
        description="EgoMQ: detect and classify moments (110 classes) in clips; mAP over tIoU 0.1-0.5 and recall",
        fusion_mode="dual",
        metrics=("mAP@0.1", "mAP@0.3", "mAP@0.5", "average_mAP", "R@1 tIoU=0.5", "R@5 tIoU=0.5"),
        evaluate=evaluate,
        train=train,
        build_dataset=build_dataset,
        build_head=VSGNHead,
        default_recipe="egokit_mq:mq.yaml",
    )
