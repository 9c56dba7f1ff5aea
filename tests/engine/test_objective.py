"""`PretrainObjective` shares work between its passes; these tests pin that the sharing changes no number."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from egokit.engine.objective import PretrainObjective
from egokit.losses import egonce_loss, mlm_loss, sample_vtm_pairs
from egokit.models import EgoVLPv2
from tests.conftest import micro_config


def _model() -> EgoVLPv2:
    torch.manual_seed(0)
    model = EgoVLPv2(micro_config(time_init="random")).eval()  # eval: no dropout, so both sides are deterministic
    with torch.no_grad():
        for gate in model.gates():  # open the gates so the fused layers do real cross-attention
            gate.fill_(0.5)
    return model


def _batch(cfg, b: int = 4):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, cfg.vocab_size - 1, (b, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[3, 4:] = 0, 0
    ids[mask == 0] = cfg.pad_token_id
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    mlm_ids = ids.clone()
    mlm_ids[:, 2] = cfg.vocab_size - 1
    verb, noun = torch.eye(b), torch.eye(b)
    verb[0, 1] = 1  # a shared verb: EgoNCE has an off-diagonal positive
    video = torch.randn(b, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)
    return dict(video=video, input_ids=ids, attention_mask=mask, mlm_input_ids=mlm_ids, mlm_labels=labels,
                verb=verb, noun=noun)


def _reference_loss(model: EgoVLPv2, batch: dict, seed: int) -> torch.Tensor:
    """The step as the official code runs it: every pass from token ids and pixels, nothing shared."""
    video, ids, mask = batch["video"], batch["input_ids"], batch["attention_mask"]
    egonce = egonce_loss(model.encode_text(ids, mask), model.encode_video(video), batch["verb"], batch["noun"],
                         temperature=0.05)
    positions = batch["mlm_labels"] != -100
    fused = model.fusion(video, batch["mlm_input_ids"], mask)
    mlm = mlm_loss(model.mlm_head(fused.text[positions]), batch["mlm_labels"][positions],
                   num_targets=positions.sum().float())
    pairs = sample_vtm_pairs(egonce.similarity.detach(), egonce.positive_mask, temperature=0.05,
                             local_rows=slice(0, len(ids)), generator=torch.Generator().manual_seed(seed))
    t = pairs.text_index
    logits = model.vtm_head(model.fusion(video[pairs.video_index], ids[t], mask[t])).float()
    vtm = F.cross_entropy(logits, pairs.labels, reduction="sum") / len(ids)
    return egonce.loss + mlm + 2 * vtm


def test_shared_passes_give_the_reference_loss_and_gradients():
    model = _model()
    batch = _batch(model.config)
    out = PretrainObjective(model, doubled=False)(vtm_seed=7, **batch)
    out["loss"].backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    expected = _reference_loss(model, batch, seed=7)
    expected.backward()
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-6)
    want = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_text_prefix_path_equals_encode_text():
    model = _model()
    batch = _batch(model.config)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text_prefix(model.fusion_text_prefix(ids, mask), mask),
                                   model.encode_text(ids, mask), rtol=0, atol=0)


def test_mlm_logits_stay_float32_under_bf16_autocast():
    model = _model()
    batch = _batch(model.config)
    args = (batch["video"], batch["mlm_input_ids"], batch["attention_mask"])
    with torch.no_grad():
        reference = model.mlm_logits(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model.mlm_logits(*args)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference, rtol=0.05, atol=0.05)
