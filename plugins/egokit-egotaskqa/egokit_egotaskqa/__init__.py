"""EgoTaskQA for egokit: fusion-mode video question answering with per-reasoning-type accuracy."""

from __future__ import annotations


def make_task():
    from egokit.tasks.spec import TaskSpec

    from egokit_egotaskqa.data import EgoTaskQADataset
    from egokit_egotaskqa.model import TaskQAHead
    from egokit_egotaskqa.task import evaluate, train

    return TaskSpec(
        name="egotaskqa",
        description="EgoTaskQA: answer questions about a clip (fusion mode); accuracy per reasoning type",
        fusion_mode="fusion",
        metrics=("all", "open", "binary", "per_tag"),
        evaluate=evaluate,
        train=train,
        build_dataset=EgoTaskQADataset,
        build_head=TaskQAHead,
        default_recipe="egokit_egotaskqa:egotaskqa.yaml",
    )
