"""``fusion_mode`` decides what the core hands a task: a dual task gets the towers without fusion layers or heads
(same embeddings, less memory), fusion and ensemble tasks the whole model; a dual-loaded model saves complete."""

from __future__ import annotations

import torch

from egokit.tasks.api import TaskContext
from egokit.testing import cpu_accelerator, tiny_checkpoint


def _context(ckpt, mode, tmp_path):
    return TaskContext(accelerator=cpu_accelerator(), checkpoint=str(ckpt), output_dir=tmp_path, fusion_mode=mode)


def test_dual_tasks_get_the_towers_only_with_identical_embeddings(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", ["a red cup", "a blue box"])
    dual = _context(ckpt, "dual", tmp_path).load_model()
    full = _context(ckpt, "fusion", tmp_path).load_model()
    assert dual.config.fused_layers == 0 and not dual.config.mlm_head and not dual.config.vtm_head
    assert full.config.fused_layers > 0
    assert sum(p.numel() for p in dual.parameters()) < sum(p.numel() for p in full.parameters())
    assert dual.load_report.dropped and not full.load_report.dropped
    torch.manual_seed(0)
    video = torch.randn(2, full.config.num_frames, 3, full.config.image_size, full.config.image_size)
    ids, mask = torch.randint(5, 50, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    with torch.no_grad():
        assert torch.allclose(dual.encode_video(video), full.encode_video(video), atol=1e-6)
        assert torch.allclose(dual.encode_text(ids, mask), full.encode_text(ids, mask), atol=1e-6)
    assert _context(ckpt, "ensemble", tmp_path).load_model().config.vtm_head


def test_a_dual_loaded_model_is_saved_complete(tmp_path):
    import egokit

    ckpt = tiny_checkpoint(tmp_path / "ckpt", ["a red cup", "a blue box"])
    ctx = _context(ckpt, "dual", tmp_path)
    ctx.save_model(ctx.load_model(), tmp_path / "again")
    again, original = egokit.load_model(tmp_path / "again"), egokit.load_model(ckpt)
    assert again.config == original.config
    for key, value in original.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
