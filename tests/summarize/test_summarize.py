"""``egokit summarize``: shots, budgets, the QFVS head's mask, and an end-to-end run on a synthetic video whose
queried object is visible in known shots (tiny model taught VTM in-process)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from egokit.summarize import Shot, SummaryHead, SummaryHeadConfig, fixed_shots, select_shots
from egokit.summarize.head import positional_table
from tests.conftest import micro_config
from tests.summarize.scenes import NOUNS, shot_video, train_vtm


def test_fixed_shots_cover_the_video() -> None:
    shots = fixed_shots(7.2, 2.0)
    assert [(s.start, s.end) for s in shots] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 7.2)]
    # a tail shorter than half a shot joins the previous one
    assert [(s.start, s.end) for s in fixed_shots(6.5, 2.0)] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.5)]


def test_select_shots_budgets_and_time_order() -> None:
    shots = [Shot(i, 2.0 * i, 2.0 * i + 2.0) for i in range(5)]
    scores = [0.1, 0.9, 0.3, 0.8, 0.9]
    assert select_shots(scores, shots, budget_shots=2) == [1, 4]  # tie 0.9: earlier first; returned in time order
    assert select_shots(scores, shots, budget_seconds=5.0) == [1, 4]
    long = [Shot(0, 0, 5), Shot(1, 5, 6), Shot(2, 6, 7)]
    assert select_shots([0.9, 0.5, 0.4], long, budget_seconds=2.0) == [1, 2]  # the 5 s shot does not fit
    assert select_shots(scores, shots) == [1]  # default: 20 % of 5 shots


def test_positional_table_official_exponents() -> None:
    table = positional_table(3, 8)
    assert table[1, 0] == pytest.approx(math.sin(1.0))
    assert table[1, 1] == pytest.approx(math.cos(1 / 10000 ** (2 / 8)))  # official: 2(i+1)/d with i = 0
    assert table[2, 2] == pytest.approx(math.sin(2 / 10000 ** (4 / 8)))  # 2i/d with i = 2
    assert table[2, 3] == pytest.approx(math.cos(2 / 10000 ** (6 / 8)))


def test_head_padding_is_masked() -> None:
    torch.manual_seed(0)
    head = SummaryHead(SummaryHeadConfig(width=16, nhead=2, ff_dim=32, max_shots=10)).eval()
    x = torch.randn(1, 6, 16)
    padded = torch.cat([x, torch.randn(1, 4, 16) * 50], dim=1)
    pad = torch.tensor([[False] * 6 + [True] * 4])
    with torch.no_grad():
        assert torch.allclose(head(x)[0], head(padded, pad)[0, :6], atol=1e-5)
    with pytest.raises(TypeError, match="boolean"):
        head(padded, pad.float())
    with pytest.raises(Exception, match="nhead"):
        SummaryHead(SummaryHeadConfig(width=30, nhead=4))


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A micro checkpoint folder whose VTM says whether a clip shows a red ball."""
    from egokit.checkpoint import save_pretrained
    from egokit.models import EgoVLPv2
    from egokit.tokenizer import train_bpe_tokenizer

    tmp = tmp_path_factory.mktemp("summarize")
    tokenizer = train_bpe_tokenizer([f"a {c} {s}" for c, s in NOUNS] * 10, tmp / "tok", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config(vocab_size=320, depth=2, fused_layers=1))
    query = train_vtm(model, tokenizer, NOUNS[0], steps=100)
    save_pretrained(model, tmp / "ckpt", tokenizer=tokenizer)
    return tmp, model, tokenizer, query


RED = {1, 4, 6}
SHOT_NOUNS = [NOUNS[0] if k in RED else NOUNS[1 + k % 3] for k in range(8)]


def test_summary_picks_shots_with_the_queried_object(taught) -> None:
    from egokit.summarize import summarize_video

    tmp, model, tokenizer, query = taught
    hits = []
    for seed in range(3):
        video = shot_video(tmp / f"v{seed}.mp4", SHOT_NOUNS, seed=10 + seed, shot_seconds=1.0, fps=8, size=64)
        summary = summarize_video(model, tokenizer, video, query, budget_shots=3, shot_seconds=1.0)
        assert len(summary.shots) == 8 and summary.scorer == "vtm" and summary.selected == sorted(summary.selected)
        hits.append(len(RED & set(summary.selected)) / 3)
    chance = len(RED) / 8
    assert np.mean(hits) > chance + 0.3, (hits, chance)


def test_cli_writes_json_contact_sheet_and_mp4(taught) -> None:
    import av
    from PIL import Image
    from typer import Typer
    from typer.testing import CliRunner

    from egokit.cli.summarize import summarize
    from egokit.data.video import read_frames_at
    from egokit.summarize.sheet import tile_box

    tmp, _, _, query = taught
    video = shot_video(tmp / "cli.mp4", SHOT_NOUNS, seed=20, shot_seconds=1.0, fps=8, size=64)
    app = Typer()
    app.command()(summarize)
    out = tmp / "out"
    result = CliRunner().invoke(app, [str(video), "--query", query, "--ckpt", str(tmp / "ckpt"), "--budget-shots", "3",
                                      "--shot-seconds", "1.0", "--out", str(out), "--mp4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "summary.json").read_text())
    chosen = data["selected"]
    assert len(chosen) == 3 and [s["selected"] for s in data["shots"]].count(True) == 3
    assert data["shots"][2]["start"] == 2.0 and data["shots"][2]["end"] == 3.0
    # the contact sheet shows the chosen shots' middle frames, in time order
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.mode == "RGB"
    frames = read_frames_at(video, [k + 0.5 for k in range(8)], short_side=160).permute(0, 2, 3, 1).numpy().astype(float)
    assert sheet.size[0] == tile_box(2, frames.shape[1:3], 3)[2] + 4
    pixels = np.asarray(sheet).astype(float)
    for k, shot in enumerate(chosen):
        left, top, right, bottom = tile_box(k, frames.shape[1:3], 3)
        tile = pixels[top:bottom, left:right]
        errors = [np.abs(tile - f).mean() for f in frames]
        assert int(np.argmin(errors)) == shot and errors[shot] < 3.0
    # label strip carries text (bright pixels on the dark background)
    assert (pixels[frames.shape[1] + 6:frames.shape[1] + 20, 4:100] > 200).any()
    with av.open(str(out / "summary.mp4")) as container:
        n = sum(1 for _ in container.decode(video=0))
    assert n == 3 * 8  # three 1 s shots at 8 fps
