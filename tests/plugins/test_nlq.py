"""EgoNLQ plugin: the span head learns localisation; train/eval through `egokit embed` features and the official
submission format, well above trivial baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egokit.metrics import nlq_recall
from tests.conftest import micro_config

pytest.importorskip("egokit_nlq", reason="install with: pip install -e plugins/egokit-nlq")

from egokit_nlq.head import SpanHead, span_loss, top_spans  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread is faster than two on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.mark.parametrize("head_type", ["span", "vslnet"])
def test_nlq_train_and_eval_on_embed_features(nlq_setup, tmp_path, head_type):
    from egokit.tasks.registry import get_task

    task = get_task("nlq")
    options = dict(feature_recipe="egovlpv2-nlq", epochs=60, batch_size=12, dim=32, heads=4, layers=2, dropout=0.0,
                   lr=2e-3, head_type=head_type)
    result = task.train(_ctx(nlq_setup, tmp_path, **options))
    meta = json.loads((nlq_setup / "features" / "egovlpv2-nlq" / "embed_meta.json").read_text())
    assert meta["recipe"]["name"] == "egovlpv2-nlq" and len(meta["videos"]) == 16
    assert meta["videos"]["clip-val000"]["queries"] == ["ann-val000:0", "ann-val000:1", "ann-val000:2"]
    submission = json.loads((tmp_path / "nlq_predictions.json").read_text())
    assert submission["challenge"] == "ego4d_nlq_challenge" and len(submission["results"]) == 12
    first = submission["results"][0]
    assert set(first) == {"clip_uid", "annotation_uid", "query_idx", "predicted_times"}
    assert len(first["predicted_times"]) == 5
    gt = json.loads((nlq_setup / "nlq_val.json").read_text())
    whole = [{**r, "predicted_times": [[0.0, 20.0]]} for r in submission["results"]]
    fixed = [{**r, "predicted_times": [[8.0, 12.0]]} for r in submission["results"]]
    baseline = max(nlq_recall(whole, gt)["R@1 IoU=0.3"], nlq_recall(fixed, gt)["R@1 IoU=0.3"])
    assert result["metrics"]["R@1 IoU=0.3"] >= baseline + 30, (result["metrics"], baseline)
    assert json.loads((tmp_path / "nlq_head" / "head.json").read_text())["head_type"] == head_type
    # evaluation reloads the saved head (whatever its type) and reproduces the numbers from the cached features
    again = task.evaluate(_ctx(nlq_setup, tmp_path, feature_recipe="egovlpv2-nlq"))
    assert again["metrics"]["R@1 IoU=0.3"] == result["metrics"]["R@1 IoU=0.3"]
