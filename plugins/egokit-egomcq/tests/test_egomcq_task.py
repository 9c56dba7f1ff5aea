"""`egokit eval egomcq` end to end, `egokit train egomcq` (continued pretraining with EgoMCQ model selection), and
the inter/intra labelling."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from egokit.cli.main import app


def test_eval_egomcq_writes_results_with_provenance(tiny_synth, tmp_path):
    import torch

    import egokit
    from egokit.tasks.api import save_pretrained
    from egokit.testing import tiny_model
    from egokit.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tiny_synth / "tokenizer")
    torch.manual_seed(0)
    model = tiny_model(0, vocab_size=len(tokenizer), max_text_positions=40)
    ckpt = save_pretrained(model, tmp_path / "ckpt", tokenizer=tokenizer)
    result = CliRunner().invoke(app, ["eval", "egomcq", "--ckpt", str(ckpt), "--data", str(tiny_synth),
                                      "-o", str(tmp_path / "out"), "num_frames=2", "num_workers=0", "chunk_seconds=4"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "egomcq_results.json").read_text())
    metrics = record["metrics"]
    questions = json.loads((tiny_synth / "egomcq.json").read_text())
    n_inter = sum(q["types"] == 1 for q in questions.values())
    assert metrics["num_questions"] == {"inter": n_inter, "intra": len(questions) - n_inter}
    for score in ("dual", "vtm", "ensemble"):
        assert 0.0 <= metrics[score]["inter"] <= 100.0 and 0.0 <= metrics[score]["intra"] <= 100.0
    assert record["checkpoint"]["sha256"] == egokit.load_model(ckpt).load_report.sha256
    assert record["config"]["options"]["num_frames"] == 2
    assert record["environment"]["packages"]["torch"] and "egokit_git" in record["environment"]
    assert "ensemble.inter" in result.output


def test_scores_are_combined_and_labelled_like_the_paper():
    """Ensemble = cosine + match probability; types 1 are inter-video, 2 intra-video."""
    from egokit.metrics import egomcq_accuracy

    dual = np.array([[0.9, 0.1, 0.0, 0.0, 0.0], [0.2, 0.3, 0.0, 0.0, 0.0]])
    vtm = np.array([[0.0, 0.95, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0, 0.0]])
    answers = np.array([1, 0])
    types = np.array([1, 2])
    assert egomcq_accuracy(dual + vtm, answers, types) == {"inter": 100.0, "intra": 100.0}
    assert egomcq_accuracy(dual, answers, types) == {"inter": 0.0, "intra": 0.0}


def test_train_continues_pretraining_and_keeps_the_best_egomcq_checkpoint(tiny_synth, tmp_path):
    import torch

    import egokit
    from egokit.tasks.api import save_pretrained
    from egokit.testing import run_cli, tiny_model
    from egokit.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tiny_synth / "tokenizer")
    ckpt = save_pretrained(tiny_model(0, vocab_size=len(tokenizer), max_text_positions=40), tmp_path / "ckpt",
                           tokenizer=tokenizer)
    run_cli("train", "egomcq", "--ckpt", ckpt, "--data", tiny_synth, "-o", tmp_path / "run", "num_frames=2",
            "num_workers=0", "chunk_seconds=4", "finetune.max_steps=2", "finetune.eval_every=1",
            "finetune.batch_size=4", "limit=4")
    record = json.loads((tmp_path / "run" / "egomcq_train_results.json").read_text())
    best = record["metrics"]["best"]
    assert record["metrics"]["steps"] == 2 and best["step"] in (1, 2)
    assert 0.0 <= best["ensemble.inter"] <= 100.0
    evaluated = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in evaluated if "egomcq/ensemble.inter" in r}) == [1, 2]
    kept = egokit.load_model(tmp_path / "run" / "checkpoint")
    trained = egokit.load_model(ckpt)
    changed = [k for k, v in kept.state_dict().items() if not torch.equal(v, trained.state_dict()[k])]
    assert changed  # the kept checkpoint is a trained model, not the starting one


def test_train_stopped_by_a_signal_resumes_with_the_best_so_far_to_the_same_result(tiny_synth, tmp_path):
    """`egokit train egomcq` writes the engine's training checkpoints (once per epoch by default, here every
    step); they carry the best-so-far EgoMCQ record, so a run stopped after step 2 and resumed ends as the
    uninterrupted run: the same kept checkpoint, final model and metrics."""
    import os
    import signal
    import time

    import torch
    from safetensors.torch import load_file

    from egokit.engine.interrupt import TrainingInterrupted
    from egokit.tasks.api import save_pretrained
    from egokit.tasks.runner import run_task
    from egokit.testing import tiny_model
    from egokit.tokenizer import load_tokenizer
    from egokit_egomcq import EgoMCQ

    tokenizer = load_tokenizer(tiny_synth / "tokenizer")
    ckpt = save_pretrained(tiny_model(0, vocab_size=len(tokenizer), max_text_positions=40), tmp_path / "ckpt",
                           tokenizer=tokenizer)
    common = {"checkpoint": str(ckpt), "data": str(tiny_synth),
              "overrides": ["num_frames=2", "num_workers=0", "chunk_seconds=4", "finetune.max_steps=3",
                            "finetune.eval_every=1", "finetune.batch_size=4", "limit=4", "finetune.checkpoint_every=1"]}
    ref = run_task("egomcq", "train", output_dir=tmp_path / "ref", **common)
    assert (tmp_path / "ref" / "checkpoints" / "latest").read_text().strip() == "step-00000003"

    task, evaluations = EgoMCQ(), []

    def evaluate(ctx, options):  # SIGTERM arrives during the evaluation after step 2
        result = EgoMCQ.evaluate(task, ctx, options)
        evaluations.append(result)
        if len(evaluations) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                time.sleep(0.01)
        return result

    task.evaluate = evaluate
    run = tmp_path / "run"
    try:
        run_task(task, "train", output_dir=run, **common)
        raise AssertionError("the run was not stopped")
    except TrainingInterrupted as exc:
        assert (exc.step, exc.resumable) == (2, True)
        assert exc.checkpoint == run / "checkpoints" / "step-00000002"
    saved = torch.load(run / "checkpoints" / "step-00000002" / "training_state.pt", weights_only=True)
    scores = [r.metrics["ensemble"]["inter"] for r in evaluations]
    assert saved["evaluator"]["best"]["step"] == (1 if scores[0] >= scores[1] else 2)  # the best of steps 1-2

    resumed = run_task("egomcq", "train", output_dir=run, resume="latest", **common)
    assert resumed.metrics["best"] == ref.metrics["best"] and resumed.metrics["steps"] == 3
    assert resumed.metrics["final_losses"] == ref.metrics["final_losses"]
    for folder in ("checkpoint", "model"):
        a, b = (load_file(str(r / folder / "model.safetensors")) for r in (tmp_path / "ref", run))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), folder
    history = json.loads((run / "recipe.json").read_text())["commands"]
    assert [h["resume"] for h in history] == [None, "latest"]
