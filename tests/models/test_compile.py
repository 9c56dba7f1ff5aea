"""``EgoVLPv2.compile_blocks``: compiled blocks compute what eager blocks do and keep checkpoint names."""

from __future__ import annotations

import torch
from torch._dynamo.utils import counters

from egokit.models import EgoVLPv2
from tests.conftest import micro_config
from tests.models.test_architecture import _inputs


def test_compiled_blocks_match_eager_and_keep_state_dict_names():
    counters.clear()
    torch.manual_seed(0)
    cfg = micro_config()
    eager = EgoVLPv2(cfg).eval()
    for p in eager.gates():  # open the gates so the fused layers' cross-attention counts
        torch.nn.init.constant_(p, 0.5)
    compiled = EgoVLPv2(cfg).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_blocks(backend="aot_eager")  # traced by dynamo, no C++ compiler needed
    assert list(compiled.state_dict()) == list(eager.state_dict())
    video, ids, mask = _inputs(cfg)[:3]
    with torch.no_grad():
        torch.testing.assert_close(compiled.encode_video(video), eager.encode_video(video))
        torch.testing.assert_close(compiled.encode_text(ids, mask), eager.encode_text(ids, mask))
        fused_c = compiled.fuse(compiled.fusion_video_prefix(video), compiled.fusion_text_prefix(ids, mask), mask)
        fused_e = eager.fuse(eager.fusion_video_prefix(video), eager.fusion_text_prefix(ids, mask), mask)
        torch.testing.assert_close(compiled.vtm_head(fused_c), eager.vtm_head(fused_e))
    assert counters["stats"]["unique_graphs"] >= 2  # video blocks and text layers really went through dynamo
