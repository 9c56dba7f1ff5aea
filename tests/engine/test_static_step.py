"""Static-shape pretraining step: fixed MLM slots, a fixed number of VTM pairs, counter-based VTM draws, and the whole
step (forward, losses, backward) captured by ``torch.compile(fullgraph=True)``."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from egokit.data.text import IGNORE_INDEX, mask_tokens
from egokit.engine.objective import PretrainObjective, select_mlm_slots
from egokit.losses import counter_uniform, sample_vtm_pairs, vtm_key
from tests.engine.test_objective import _batch, _model


def _step(objective, batch, seed):
    objective.model.zero_grad(set_to_none=True)
    out = objective(vtm_seed=seed, **batch)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in objective.model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


def _assert_same(a, b, loss_tol=(1e-5, 1e-6), grad_tol=(1e-4, 1e-6)):
    (out_a, grads_a), (out_b, grads_b) = a, b
    for key in ("loss", "egonce", "mlm", "vtm", "vtm_pairs", "vtm_accuracy_sum"):
        torch.testing.assert_close(out_a[key], out_b[key], rtol=loss_tol[0], atol=loss_tol[1], msg=key)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=grad_tol[0], atol=grad_tol[1], msg=name)


def _two_masked_per_caption(batch, cfg):
    batch = dict(batch)
    labels, mlm_ids = batch["mlm_labels"].clone(), batch["mlm_input_ids"].clone()
    labels[:, 1] = batch["input_ids"][:, 1]
    mlm_ids[:, 1] = cfg.vocab_size - 1
    batch["mlm_labels"], batch["mlm_input_ids"] = labels, mlm_ids
    return batch


def test_static_step_equals_the_dynamic_step_and_capped_slots_lose_nothing():
    model = _model()
    batch = _two_masked_per_caption(_batch(model.config), model.config)
    dynamic = _step(PretrainObjective(model, doubled=False, static_shapes=False), batch, 7)
    for slots in (None, 2, 5):  # every position; exactly the masked count; more slots than masked tokens
        static = _step(PretrainObjective(model, doubled=False, mlm_slots=slots), batch, 7)
        _assert_same(static, dynamic)
    assert dynamic[0]["vtm_pairs"] == 4  # one process: every slot's pair is scored


def test_int_seed_and_key_tensor_draw_the_same_pairs():
    model = _model()
    batch = _batch(model.config)
    objective = PretrainObjective(model, doubled=False)
    _assert_same(_step(objective, batch, 11), _step(objective, batch, torch.tensor(vtm_key(11))),
                 loss_tol=(0, 0), grad_tol=(0, 0))
    s = torch.randn(8, 8)
    mask = torch.eye(8, dtype=torch.bool)
    a = sample_vtm_pairs(s, mask, local_rows=slice(0, 8), key=torch.tensor(vtm_key(3)))
    b = sample_vtm_pairs(s, mask, local_rows=slice(0, 8), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_vtm_draws_are_functions_of_the_global_slot_not_of_the_local_slice():
    g = torch.Generator().manual_seed(0)
    s, mask = torch.randn(8, 8, generator=g), torch.eye(8, dtype=torch.bool)
    key = torch.tensor(vtm_key(5))
    whole = sample_vtm_pairs(s, mask, local_rows=slice(0, 8), key=key)
    part = sample_vtm_pairs(s, mask, local_rows=slice(4, 8), key=key)
    # the coin and the replacement draws of slots 4..7 are the same; labels are balanced within each call
    negative = (whole.labels[4:] == 0) & (part.labels == 0)
    assert torch.equal(whole.text_index[4:][negative], part.text_index[negative])
    assert torch.equal(whole.video_index[4:][negative], part.video_index[negative])


def test_counter_gumbel_draws_follow_the_weights():
    weights = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 200_000
    cells = torch.arange(rows * 4).reshape(rows, 4)
    u = counter_uniform(torch.tensor(vtm_key(1)), 7, cells)
    assert 0 < float(u.min()) and float(u.max()) < 1
    draws = (weights.log() + -torch.log(-torch.log(u))).argmax(1)
    freq = torch.bincount(draws, minlength=4).float() / rows
    torch.testing.assert_close(freq, weights, atol=0.004, rtol=0)  # 4 standard deviations at most ~0.0011


def test_select_mlm_slots_keeps_masked_tokens_in_order_and_pads_with_ignore():
    labels = torch.tensor([[IGNORE_INDEX, 5, IGNORE_INDEX, 7, IGNORE_INDEX], [IGNORE_INDEX] * 5])
    text = torch.arange(10.0).reshape(2, 5, 1).expand(2, 5, 3)
    states, slot_labels = select_mlm_slots(text, labels, 3)
    assert slot_labels.tolist() == [[5, 7, IGNORE_INDEX], [IGNORE_INDEX] * 3]
    assert states[0, :2, 0].tolist() == [1.0, 3.0]
    assert select_mlm_slots(text, labels, None)[1] is labels


def test_collator_cap_keeps_at_most_k_masked_tokens_and_changes_nothing_below_it():
    ids = torch.randint(5, 50, (400, 15), generator=torch.Generator().manual_seed(0))
    spec = (4, 60, (0, 1, 2, 3))
    uncapped = mask_tokens(ids, spec, 0.5, generator=torch.Generator().manual_seed(1))
    capped = mask_tokens(ids, spec, 0.5, generator=torch.Generator().manual_seed(1), max_per_row=3)
    selected, kept = uncapped[1] != IGNORE_INDEX, capped[1] != IGNORE_INDEX
    assert int(kept.sum(1).max()) == 3 and bool((kept <= selected).all())
    small = selected.sum(1) <= 3
    assert torch.equal(capped[0][small], uncapped[0][small]) and torch.equal(capped[1][small], uncapped[1][small])
    dropped = selected & ~kept  # tokens over the cap are left as they were
    assert torch.equal(capped[0][dropped], ids[dropped])


def test_whole_step_compiles_with_fullgraph_and_matches_eager():
    """Backend aot_eager (dynamo + AOTAutograd's joint forward/backward graph, no C++ compiler): one graph, no
    break, no recompilation when the step's key changes; loss within 1e-5 relative, gradients within 1e-4 relative
    / 1e-6 absolute of eager (the same float32 ops, regrouped)."""
    torch._dynamo.reset()
    counters.clear()
    model = _model().train()  # the micro model has no dropout: eager and compiled see the same function
    batch = _two_masked_per_caption(_batch(model.config), model.config)
    objective = PretrainObjective(model, doubled=False, mlm_slots=4)
    compiled = torch.compile(objective, fullgraph=True, backend="aot_eager")
    for seed in (7, 8):
        key = torch.tensor(vtm_key(seed))
        with torch._dynamo.config.patch(error_on_recompile=True):
            got = _step(compiled, batch, key)
        _assert_same(got, _step(objective, batch, key))
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_slot_counts_are_rejected(bad):
    from egokit.data.text import PretrainCollator
    from egokit.errors import ConfigError

    with pytest.raises(ValueError, match="mlm_slots"):
        PretrainObjective(_model(), mlm_slots=bad)

    class Tok:
        mask_token_id, all_special_ids = 4, [0, 1, 2, 3, 4]

        def __len__(self):
            return 60

    with pytest.raises(ConfigError, match="data.mlm_slots"):
        PretrainCollator(Tok(), mlm_slots=bad)


def test_recipe_keys_reach_the_step_and_a_bad_checkpointing_value_names_its_field():
    from egokit.engine.pretrain import build_model
    from egokit.engine.pretrain_recipe import load_pretrain_recipe
    from egokit.errors import ConfigError
    from tests.conftest import MICRO_MODEL_OVERRIDES

    recipe = load_pretrain_recipe({}, [*MICRO_MODEL_OVERRIDES, "model.gradient_checkpointing=selective",
                                       "data.mlm_slots=4", "train.static_shapes=false"])
    assert recipe.data.mlm_slots == 4 and recipe.train.static_shapes is False
    assert build_model(recipe, vocab_size=None).config.gradient_checkpointing == "selective"
    assert load_pretrain_recipe({}, []).train.static_shapes is True  # the default
    bad = load_pretrain_recipe({}, [*MICRO_MODEL_OVERRIDES, "model.gradient_checkpointing=partial"])
    with pytest.raises(ConfigError, match=r"model\.gradient_checkpointing: .*none, full or selective"):
        build_model(bad, vocab_size=None)
