"""`egokit.perf` (FLOP counting, matmul peak, machine description) and the `egokit bench` runner's logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from egokit.cli.bench import SUITES, find_bench_dir, headline_table, plan
from egokit.cli.main import app
from egokit.errors import ConfigError
from egokit.perf import count_flops, machine_info, matmul_peak, peak_rss_gib

REPO = Path(__file__).parents[1]


def test_flop_counter_gives_the_analytic_count_of_a_linear_layer():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    forward, by_op = count_flops(lambda: layer(x))
    assert forward == 2 * 3 * 8 * 4 and by_op == {"addmm": forward}
    # Backward adds the gradients of the input (3x4 @ 4x8) and of the weight (4x3 @ 3x8): twice the forward.
    total, _ = count_flops(lambda: layer(x).sum().backward())
    assert total == 3 * forward


def test_matmul_peak_reports_flops_per_size():
    peak = matmul_peak(torch.float32, sizes=(64, 128), repeats=1)
    assert set(peak["per_size_flops_per_s"]) == {"64", "128"}
    assert peak["flops_per_s"] == max(peak["per_size_flops_per_s"].values()) > 0
    assert peak["dtype"] == "float32" and peak["threads"] == torch.get_num_threads()


def test_machine_description_has_the_expected_fields():
    info = machine_info()
    assert {"cpu_model", "logical_cpus", "physical_cores", "usable_cpus", "ram_gb", "platform", "python", "torch",
            "cuda_devices"} <= set(info)
    assert info["torch"]["version"] == torch.__version__ and info["torch"]["threads"] >= 1
    assert {"cuda_build", "cpu_capability", "mkldnn"} <= set(info["torch"])
    assert isinstance(info["cuda_devices"], list) and info["logical_cpus"] >= 1
    json.dumps(info)  # goes into summary.json as is
    assert peak_rss_gib() > 0


def test_bench_help_lists_the_suites():
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("--only", "--quick", "--official-repo", "train_step", "official_step"):
        assert name in result.output


def test_bench_plan_selects_skips_and_explains(tmp_path):
    for suite in ("decode.py", "train_step.py", "official_step.py"):
        (tmp_path / suite).write_text("")
    steps = {name: (argv, reason) for name, argv, reason in
             plan(["decode,train_step", "official_step", "heads"], [], None, tmp_path, quick=True)}
    assert list(steps) == ["decode", "train_step", "official_step", "heads"]
    assert steps["decode"][0][0] == str(tmp_path / "decode.py") and "--clips" in steps["decode"][0]
    assert steps["train_step"][0][1:] == list(SUITES["train_step"].quick)
    assert steps["official_step"][0] is None and "--official-repo" in steps["official_step"][1]
    assert steps["heads"][0] is None and "heads.py is not in" in steps["heads"][1]
    official = dict((n, a) for n, a, _ in plan(["official_step"], [], Path("/x/EgoVLPv2"), tmp_path, quick=False))
    assert official["official_step"][-2:] == ["--official-repo", "/x/EgoVLPv2"]
    assert [n for n, a, _ in plan([], ["decode"], None, tmp_path, quick=False) if a] == ["train_step"]
    with pytest.raises(ConfigError, match="unknown benchmark suite"):
        plan(["decod"], [], None, tmp_path, quick=False)


def test_every_suite_script_of_this_checkout_exists_except_the_pending_ones():
    folder = find_bench_dir()
    assert folder == REPO / "bench"
    missing = {name for name, suite in SUITES.items() if not (folder / suite.script).is_file()}
    assert missing <= {"prepare", "heads"}
    with pytest.raises(ConfigError, match="source checkout"):
        find_bench_dir(REPO / "no-such-folder")


def test_headline_table_shows_rows_skips_and_failures():
    summary = {"quick": True, "machine": {"cpu_model": "cpu", "torch": {"threads": 2, "version": "x"}},
               "suites": {"a": {"status": "ok", "seconds": 1.0, "json": "a.json",
                                "result": {"headline": [{"what": "w", "value": "v", "note": "n"}]}},
                          "b": {"status": "ok", "seconds": 2.0, "json": "b.json", "result": [1, 2]},
                          "c": {"status": "skipped", "reason": "why"},
                          "d": {"status": "failed", "exit_code": 3}}}
    table = headline_table(summary)
    cells = [list(col.cells) for col in table.columns]
    assert cells[0] == ["a", "b", "c", "d"] and cells[1][0] == "w" and cells[3][2] == "why"
    assert "exit code 3" in cells[3][3] and "see b.json" in cells[3][1]
