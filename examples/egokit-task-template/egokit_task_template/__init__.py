"""Template egokit task plugin: ``make_task()`` is the entry point; it must stay cheap to import."""

from __future__ import annotations

__all__ = ["make_task"]


def make_task():
    """Return the task's TaskSpec. Heavy modules (torch, video decoding) are imported only when the task runs."""
    from egokit.tasks.spec import TaskSpec

    def evaluate(ctx):
        from egokit_task_template.task import evaluate as run

        return run(ctx)

    return TaskSpec(
        name="template-retrieval",
        description="Caption retrieval on a folder of captioned videos: recall@1 video-to-text and text-to-video",
        fusion_mode="dual",
        metrics=("v2t_r1", "t2v_r1"),
        evaluate=evaluate,
        default_recipe="egokit_task_template:template.yaml",
    )
