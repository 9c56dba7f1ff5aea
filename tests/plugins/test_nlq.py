"""EgoNLQ plugin: `egokit train nlq` -> `egokit eval nlq` with the default head (VSLNet) through `egokit embed`
features and the official submission format, well above trivial baselines; the span head (``head_type=span``) learns
localisation and runs the same flow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from egokit.cli.main import app
from egokit.metrics import nlq_recall
from tests.conftest import micro_config

pytest.importorskip("egokit_nlq", reason="install with: pip install -e plugins/egokit-nlq")

from egokit_nlq.head import SpanHead, span_loss, top_spans  # noqa: E402
from egokit_nlq.task import HEAD_DEFAULTS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n: int, rng: np.random.Generator, steps: int = 32, dim: int = 6):
    """Feature sequences with 3 events (one-hot channel of their class + noise); the query names one class."""
    video = rng.normal(0, 0.3, (n, steps, dim)).astype(np.float32)
    text = np.zeros((n, 3, dim), np.float32)
    spans = []
    for i in range(n):
        cuts = np.sort(rng.choice(np.arange(2, steps - 2), 5, replace=False))
        segs = [(cuts[0] - 2, cuts[0] + 2), (cuts[1] + 1, cuts[2]), (cuts[3] + 1, cuts[4])][: 3]
        for c, (a, b) in enumerate(segs):
            video[i, a:b + 1, c] += 2.0
        q = int(rng.integers(3))
        text[i, 1, q] = 1.0
        spans.append(segs[q])
    return torch.from_numpy(video), torch.from_numpy(text), torch.tensor(spans)


def test_span_head_learns_to_localise_the_queried_event():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    video, text, spans = _toy(128, rng)
    head = SpanHead(6, 6, dim=32, heads=4, layers=2, max_len=32, max_text=3, dropout=0.0)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    vmask, tmask = torch.ones(128, 32, dtype=torch.bool), torch.ones(128, 3, dtype=torch.bool)
    for _ in range(80):
        idx = torch.randint(0, 128, (32,))
        s, e, h = head(video[idx], vmask[idx], text[idx], tmask[idx])
        loss = span_loss(s, e, h, vmask[idx], spans[idx, 0], spans[idx, 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_video, test_text, test_spans = _toy(64, np.random.default_rng(1))
    head.eval()
    s, e, _ = head(test_video, vmask[:64], test_text, tmask[:64])
    pred, _ = top_spans(s, e, vmask[:64], k=5)
    gt = {"videos": [{"clips": [{"clip_uid": "c", "annotations": [{"annotation_uid": "a", "language_queries": [
        {"clip_start_sec": float(a), "clip_end_sec": float(b + 1)} for a, b in test_spans.tolist()]}]}]}]}
    records = [{"clip_uid": "c", "annotation_uid": "a", "query_idx": i,
                "predicted_times": [[float(a), float(b + 1)] for a, b in pred[i].tolist()]} for i in range(64)]
    whole = [{**r, "predicted_times": [[0.0, 32.0]]} for r in records]
    head_r = nlq_recall(records, gt)
    base_r = nlq_recall(whole, gt)
    assert head_r["R@1 IoU=0.3"] >= base_r["R@1 IoU=0.3"] + 50.0, (head_r, base_r)


@pytest.fixture(scope="module")
def nlq_setup(tmp_path_factory):
    from egokit.checkpoint import save_pretrained
    from egokit.models import EgoVLPv2
    from egokit.tokenizer import train_bpe_tokenizer
    from tests.embed.synth_clips import NAMES, make_split

    root = tmp_path_factory.mktemp("nlq_data")
    make_split(root, "train", 12, seed=0)
    make_split(root, "val", 4, seed=1)
    texts = [f"when did i see the {n} object?" for n in NAMES] * 4
    tokenizer = train_bpe_tokenizer(texts, root / "tok", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config(vocab_size=300, max_text_positions=40))
    with torch.no_grad():
        for gate in model.gates():
            gate.fill_(0.5)
    save_pretrained(model, root / "ckpt", tokenizer=tokenizer)
    return root


def _ctx(root, out, **options):
    from accelerate import Accelerator

    from egokit.tasks.context import TaskContext

    return TaskContext(accelerator=Accelerator(cpu=True), checkpoint=str(root / "ckpt"), output_dir=out,
                       options={"data": str(root), "features": str(root / "features"), **options})


def run_cli(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None:
        raise result.exception
    assert result.exit_code == 0, result.output


def _baseline(root, results: list[dict]) -> float:
    """R@1 IoU 0.3 of the better trivial answer: the whole 20 s clip or its middle 4 s."""
    gt = json.loads((root / "nlq_val.json").read_text())
    whole = [{**r, "predicted_times": [[0.0, 20.0]]} for r in results]
    fixed = [{**r, "predicted_times": [[8.0, 12.0]]} for r in results]
    return max(nlq_recall(whole, gt)["R@1 IoU=0.3"], nlq_recall(fixed, gt)["R@1 IoU=0.3"])


def test_default_head_train_then_eval_via_the_cli(nlq_setup, tmp_path):
    """No head_type: `egokit train nlq` trains VSLNet with its own sizes and learning rate (only the width, the budget
    and dropout -- 36 training queries -- are set for the toy data); `egokit eval nlq` rebuilds it from the saved
    folder."""
    root = nlq_setup
    common = ["--ckpt", root / "ckpt", "-o", tmp_path, f"data={root}", f"features={root / 'features'}"]
    run_cli("train", "nlq", *common, "dim=32", "epochs=30", "batch_size=12", "dropout=0")
    meta = json.loads((root / "features" / "egovlpv2-nlq" / "embed_meta.json").read_text())
    assert meta["recipe"]["name"] == "egovlpv2-nlq" and len(meta["videos"]) == 16
    assert meta["videos"]["clip-val000"]["queries"] == ["ann-val000:0", "ann-val000:1", "ann-val000:2"]
    trained = json.loads((tmp_path / "nlq_train_results.json").read_text())
    options = trained["config"]["options"]
    assert options["head_type"] == "vslnet"
    assert (options["heads"], options["layers"]) == (8, 4)  # the official sizes
    assert options["lr"] == HEAD_DEFAULTS["vslnet"]["lr"]
    info = json.loads((tmp_path / "nlq_head" / "head.json").read_text())
    assert info["head_type"] == "vslnet" and info["config"]["heads"] == 8 and info["config"]["conv_layers"] == 4
    submission = json.loads((tmp_path / "nlq_predictions.json").read_text())
    assert submission["challenge"] == "ego4d_nlq_challenge" and len(submission["results"]) == 12
    first = submission["results"][0]
    assert set(first) == {"clip_uid", "annotation_uid", "query_idx", "predicted_times"}
    assert len(first["predicted_times"]) == 5
    baseline = _baseline(root, submission["results"])
    assert trained["metrics"]["R@1 IoU=0.3"] >= baseline + 30, (trained["metrics"], baseline)
    # evaluation reloads the saved head and reproduces the numbers from the cached features
    run_cli("eval", "nlq", *common)
    again = json.loads((tmp_path / "nlq_results.json").read_text())
    assert again["metrics"]["R@1 IoU=0.3"] == trained["metrics"]["R@1 IoU=0.3"]
    assert again["config"]["options"]["head_info"]["head_type"] == "vslnet"


def test_span_head_train_and_eval_on_embed_features(nlq_setup, tmp_path):
    from egokit.tasks.registry import get_task

    task = get_task("nlq")
    options = dict(head_type="span", epochs=60, batch_size=12, dim=32, dropout=0.0, lr=2e-3)
    result = task.train(_ctx(nlq_setup, tmp_path, **options))
    assert result["config"]["head_type"] == "span"
    submission = json.loads((tmp_path / "nlq_predictions.json").read_text())
    baseline = _baseline(nlq_setup, submission["results"])
    assert result["metrics"]["R@1 IoU=0.3"] >= baseline + 30, (result["metrics"], baseline)
    assert json.loads((tmp_path / "nlq_head" / "head.json").read_text())["head_type"] == "span"
    # no head_type given at evaluation: the saved head decides
    again = task.evaluate(_ctx(nlq_setup, tmp_path))
    assert again["metrics"]["R@1 IoU=0.3"] == result["metrics"]["R@1 IoU=0.3"]
