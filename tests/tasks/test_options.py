"""Task options: packaged recipe < recipe file < key=value overrides, deep-merged and validated before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pathlib import Path

import pytest

from egokit.tasks.api import ConfigError, FinetuneOptions, MetricSpec, Task, TaskResult
from egokit.tasks.options import resolve_options, selection_metric


@dataclass
class _Finetune(FinetuneOptions):
    epochs: int = 4
    margin: float = 0.2


@dataclass
class _Options:
    data: Optional[str] = None
    num_frames: int = 4
    finetune: _Finetune = field(default_factory=_Finetune)


class _Toy(Task):
    name = "toy"
    description = "a toy task"
    metrics = (MetricSpec("r1.v2t"), MetricSpec("loss", higher_is_better=False))
    Options = _Options

    def evaluate(self, ctx, options):
        return TaskResult({})


def test_nested_override_keeps_the_rest_of_the_section(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("finetune:\n  lr: 0.5\n", encoding="utf-8")
    options = resolve_options(_Toy(), recipe=recipe, overrides=["finetune.margin=0.7"])
    assert options.finetune.lr == 0.5 and options.finetune.margin == 0.7
    assert options.finetune.epochs == 4 and options.num_frames == 4  # untouched keys keep their defaults


def test_later_layers_win_and_data_is_last(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("num_frames: 8\ndata: from-recipe\n", encoding="utf-8")
    options = resolve_options(_Toy(), recipe=recipe, options={"num_frames": 16}, overrides=["num_frames=2"],
                              data="from-flag")
    assert options.num_frames == 2 and options.data == "from-flag"


@pytest.mark.parametrize("override,message", [
    ("finetune.epocs=3", "did you mean finetune.epochs"),
    ("epochs=3", "did you mean finetune.epochs"),          # right name, wrong level
    ("num_frame=3", "did you mean num_frames"),
])
def test_misspelt_keys_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_options(_Toy(), overrides=[override])


def test_selection_metric_must_be_one_of_the_tasks_metrics():
    with pytest.raises(ConfigError, match=r"finetune.select='r1\.t2v' is not one of its metrics"):
        resolve_options(_Toy(), overrides=["finetune.select=r1.t2v"])
    options = resolve_options(_Toy(), overrides=["finetune.select=loss"])
    spec = selection_metric(_Toy(), options)
    assert spec.name == "loss" and spec.better(0.1, 0.2) and not spec.better(0.3, 0.2)
    assert selection_metric(_Toy(), resolve_options(_Toy())).name == "r1.v2t"  # the headline metric


def test_metric_spec_nan_never_improves():
    spec = MetricSpec("a")
    assert spec.better(1.0, None) and not spec.better(float("nan"), 1.0) and spec.better(1.0, float("nan"))
    assert spec.format(3) == "3" and spec.format(3.14159) == "3.14"


def test_relative_data_in_a_recipe_file_is_relative_to_the_file(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("data: ../datasets/acme\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # from here, ../datasets/acme would be a different folder
    options = resolve_options(_Toy(), recipe=recipe)
    assert Path(options.data).resolve() == (tmp_path / "datasets" / "acme").resolve()
    assert resolve_options(_Toy(), recipe=recipe, data="here").data == "here"  # --data: as given
