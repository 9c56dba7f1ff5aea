"""Losses against naive float64 loops of the official formulas and hand-made values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from egokit.losses import (
    LossWeights,
    cosine_similarity_matrix,
    egonce_loss,
    egonce_positives,
    info_nce_loss,
    max_margin_ranking_loss,
    mlm_loss,
    sample_vtm_pairs,
    total_loss,
    vtm_loss,
)


def _cos(a: list[float], b: list[float]) -> float:
    na = max(math.sqrt(sum(x * x for x in a)), 1e-8)
    nb = max(math.sqrt(sum(x * x for x in b)), 1e-8)
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def _naive_egonce(t: torch.Tensor, v: torch.Tensor, verb: torch.Tensor | None, noun: torch.Tensor | None,
                  tau: float) -> float:
    """Official ``EgoNCE.forward`` (softmax, mask = mask_v * mask_n + I > 0, log of masked sums) as float64 loops."""
    n = t.shape[0]
    tl, vl = t.double().tolist(), v.double().tolist()
    s = [[_cos(tl[i], vl[j]) for j in range(n)] for i in range(n)]

    def sim(x: torch.Tensor | None) -> list[list[float]] | None:
        return None if x is None else [[_cos(a, b) for b in x.double().tolist()] for a in x.double().tolist()]

    mv, mn = sim(verb), sim(noun)
    mask = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            eye = 1.0 if i == j else 0.0
            if mv is not None and mn is not None:
                mask[i][j] = mv[i][j] * mn[i][j] + eye
            elif mv is not None:
                mask[i][j] = mv[i][j] + eye
            elif mn is not None:
                mask[i][j] = mn[i][j] + eye
            else:
                mask[i][j] = eye
    loss = 0.0
    for direction in (s, [list(r) for r in zip(*s)]):
        acc = 0.0
        for i in range(n):
            z = sum(math.exp(direction[i][k] / tau) for k in range(n))
            acc += math.log(sum(math.exp(direction[i][j] / tau) / z for j in range(n) if mask[i][j] > 0))
        loss -= acc / n
    return loss


def _multi_hot(rows: list[list[int]], width: int) -> torch.Tensor:
    out = torch.zeros(len(rows), width)
    for i, cols in enumerate(rows):
        out[i, cols] = 1.0
    return out


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    t, v = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    # 0,1 share verb 0 + noun 2 (positives); 2,3 share only a verb; 4 has no verb; 5,6 share verbs and nouns.
    verb = _multi_hot([[0], [0, 1], [3], [3], [], [4, 5], [5], [2]], 6)
    noun = _multi_hot([[2], [2], [0], [1], [3], [4], [4, 0], [5]], 6)
    return t, v, verb, noun


def test_cosine_eps_rule_on_zero_rows() -> None:
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    s = cosine_similarity_matrix(a, b)
    torch.testing.assert_close(s, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_positive_mask_branches(batch) -> None:
    _, _, verb, noun = batch
    both = egonce_positives(8, verb, noun)
    expected = torch.eye(8, dtype=torch.bool)
    for i, j in [(0, 1), (5, 6)]:
        expected[i, j] = expected[j, i] = True
    assert torch.equal(both, expected)
    verb_only = egonce_positives(8, verb, None)
    assert verb_only[2, 3] and verb_only[0, 1] and not verb_only[4].sum() > 1
    assert egonce_positives(8, None, noun)[6, 2]  # noun 0 shared
    assert torch.equal(egonce_positives(8), torch.eye(8, dtype=torch.bool))


@pytest.mark.parametrize("use_verb,use_noun", [(True, True), (True, False), (False, True), (False, False)])
def test_egonce_matches_naive_official_formula(batch, use_verb: bool, use_noun: bool) -> None:
    t, v, verb, noun = batch
    verb, noun = (verb if use_verb else None), (noun if use_noun else None)
    out = egonce_loss(t, v, verb, noun, temperature=0.05)
    assert out.loss.dtype == torch.float32
    assert out.loss.item() == pytest.approx(_naive_egonce(t, v, verb, noun, 0.05), rel=1e-5)
    assert torch.equal(out.positive_mask, egonce_positives(8, verb, noun))


def test_egonce_is_symmetric_infonce_without_shared_actions(batch) -> None:
    t, v, _, _ = batch
    verb = torch.eye(8)  # every sample its own verb and noun: no off-diagonal positives
    noun = torch.eye(8)
    ego = egonce_loss(t, v, verb, noun).loss
    s = F.normalize(t.double(), dim=1) @ F.normalize(v.double(), dim=1).T / 0.05
    direct = -(s.log_softmax(1).diagonal().mean() + s.T.log_softmax(1).diagonal().mean())
    assert ego.item() == pytest.approx(direct.item(), rel=1e-5)
    assert info_nce_loss(t, v).item() == pytest.approx(direct.item(), rel=1e-5)
    assert egonce_loss(t, v).loss.item() == pytest.approx(direct.item(), rel=1e-5)


def test_egonce_fp32_under_bf16_inputs_and_autocast(batch) -> None:
    t, v, verb, noun = batch
    tb, vb = t.bfloat16(), v.bfloat16()
    ref = egonce_loss(tb.float(), vb.float(), verb, noun)
    out = egonce_loss(tb, vb, verb.bfloat16(), noun.bfloat16())
    assert out.loss.dtype == out.similarity.dtype == torch.float32
    torch.testing.assert_close(out.loss, ref.loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = egonce_loss(tb, vb, verb, noun)
    assert amp.loss.dtype == torch.float32
    torch.testing.assert_close(amp.loss, ref.loss)


def test_egonce_gradient_flows_and_is_finite_at_high_confidence() -> None:
    t = torch.eye(4, requires_grad=True)
    v = torch.eye(4) * 5
    out = egonce_loss(t, v, temperature=0.001)  # logits up to 1000: naive softmax-then-log would give log(0)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(t.grad).all()


def test_max_margin_matches_naive_loop() -> None:
    g = torch.Generator().manual_seed(1)
    t, v = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    w = torch.tensor([1.0, 0.5, 0.0, 0.25, 1.0])
    x = [[_cos(a, b) for b in v.double().tolist()] for a in t.double().tolist()]
    terms = []
    for i in range(5):
        for j in range(5):
            if i != j:
                terms.append(max(0.0, w[i].item() * 0.2 - (x[i][i] - x[i][j])))
                terms.append(max(0.0, w[i].item() * 0.2 - (x[i][i] - x[j][i])))
    assert max_margin_ranking_loss(t, v, w).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_mlm_loss_ignore_index_and_masked_positions() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 7, generator=g).bfloat16()
    labels = torch.tensor([[-100, 4, -100], [1, -100, 6]])
    lf = logits.float()
    direct = -(lf[0, 1].log_softmax(-1)[4] + lf[1, 0].log_softmax(-1)[1] + lf[1, 2].log_softmax(-1)[6]) / 3
    full = mlm_loss(logits, labels)
    assert full.dtype == torch.float32
    torch.testing.assert_close(full, direct)
    keep = labels != -100
    torch.testing.assert_close(mlm_loss(logits[keep], labels[keep]), direct)
    # a supplied denominator replaces the local count (DDP global-mean trick)
    torch.testing.assert_close(mlm_loss(logits, labels, num_targets=6), direct / 2)
    torch.testing.assert_close(mlm_loss(logits, labels, num_targets=torch.tensor(6)), direct / 2)


def test_mlm_loss_without_targets_is_zero_with_graph() -> None:
    logits = torch.randn(4, 5, requires_grad=True)
    loss = mlm_loss(logits, torch.full((4,), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(4, 5))


def test_vtm_loss_and_total_loss() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.e / (math.e + 1))) / 2
    assert vtm_loss(logits.half(), labels).item() == pytest.approx(expected, rel=1e-3)
    a, b, c = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)
    assert total_loss(a, b, c).item() == 9.0
    assert total_loss(a, None, c, LossWeights(vtm=0.5)).item() == 2.5
    with pytest.raises(ValueError):
        total_loss(None, None, None)


# --- VTM hard negatives -------------------------------------------------------------------------------------


def _orientation_case() -> tuple[torch.Tensor, torch.Tensor, dict[int, int], dict[int, int]]:
    """8 global samples, local rows 4..7. Row g of S peaks at a[g] (text g ~ video a[g]); column g at b[g]
    (text b[g] ~ video g). Everything else is -1, so only one j is possible per replacement direction."""
    s = torch.full((8, 8), -1.0)
    s.fill_diagonal_(1.0)
    a = {g: g - 4 for g in range(4, 8)}
    b = {g: (g - 3) % 4 for g in range(4, 8)}
    for g in range(4, 8):
        s[g, a[g]] = 1.0
        s[b[g], g] = 1.0
    return s, torch.eye(8, dtype=torch.bool), a, b


def test_vtm_orientation_is_official() -> None:
    s, mask, a, b = _orientation_case()
    seen_text_swap = seen_video_swap = False
    for seed in range(20):
        pairs = sample_vtm_pairs(s, mask, local_rows=slice(4, 8), generator=torch.Generator().manual_seed(seed))
        for slot in range(4):
            g, ti, vi = slot + 4, int(pairs.text_index[slot]), int(pairs.video_index[slot])
            if pairs.labels[slot] == 1:
                assert (ti, vi) == (g, g)
            elif vi != g:  # keep text g; video j weighted by cos(t_j, v_g): j = b[g]
                assert (ti, vi) == (g, b[g])
                seen_video_swap = True
            else:  # keep video g; text j weighted by cos(t_g, v_j): j = a[g]
                assert (ti, vi) == (a[g], g)
                seen_text_swap = True
    assert seen_text_swap and seen_video_swap


def test_vtm_labels_half_ones_and_permuted() -> None:
    s, mask, _, _ = _orientation_case()
    orders = set()
    for seed in range(10):
        labels = sample_vtm_pairs(s, mask, local_rows=slice(3, 8), generator=torch.Generator().manual_seed(seed)).labels
        assert labels.dtype == torch.long and int(labels.sum()) == 5 // 2
        orders.add(tuple(labels.tolist()))
    assert len(orders) > 1


def test_vtm_never_samples_a_positive() -> None:
    g = torch.Generator().manual_seed(3)
    n = 24
    s = cosine_similarity_matrix(torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g))
    s = s * 20  # very peaked weights: the most similar items are often positives
    upper = torch.rand(n, n, generator=g) < 0.3
    mask = torch.triu(upper, 1)
    mask = mask | mask.T | torch.eye(n, dtype=torch.bool)
    s = torch.where(mask, s.abs() + 20, s)  # positives are by far the most similar pairs
    for seed in range(50):
        p = sample_vtm_pairs(s, mask, local_rows=slice(8, 16), generator=torch.Generator().manual_seed(seed))
        neg = p.labels == 0
        assert not mask[p.text_index[neg], p.video_index[neg]].any()
        assert torch.equal(p.text_index[~neg], p.video_index[~neg])


def test_vtm_replacement_distribution_follows_masked_softmax() -> None:
    s = torch.tensor([[1.0, 0.2, 0.5, 0.1], [0.3, 1.0, 0.0, 0.4], [0.1, 0.6, 1.0, 0.2], [0.5, 0.9, 0.3, 1.0]])
    mask = torch.eye(4, dtype=torch.bool)
    mask[0, 3] = mask[3, 0] = True
    tau = 0.5
    w_t2v = F.softmax(s[:, 0] / tau, 0).masked_fill(mask[0], 0)  # row 0 of softmax(S^T): cos(t_j, v_0)
    w_v2t = F.softmax(s[0] / tau, 0).masked_fill(mask[0], 0)
    # 200 independent copies of the 4x4 problem on the block diagonal: slots 0, 4, 8, ... all replicate row 0
    copies = 200
    big_s = torch.block_diag(*[s] * copies) - 100 * (1 - torch.block_diag(*[torch.ones(4, 4)] * copies))
    big_mask = torch.block_diag(*[mask] * copies)
    video_counts, text_counts = torch.zeros(4), torch.zeros(4)
    gen = torch.Generator().manual_seed(4)
    for _ in range(30):
        p = sample_vtm_pairs(big_s, big_mask, temperature=tau, local_rows=slice(0, 4 * copies), generator=gen)
        slots = torch.arange(0, 4 * copies, 4)
        neg = slots[p.labels[slots] == 0]
        swapped_video = neg[p.video_index[neg] != neg]
        swapped_text = neg[p.text_index[neg] != neg]
        assert len(swapped_video) + len(swapped_text) == len(neg)
        video_counts += torch.bincount(p.video_index[swapped_video] - swapped_video, minlength=4).float()
        text_counts += torch.bincount(p.text_index[swapped_text] - swapped_text, minlength=4).float()
    torch.testing.assert_close(video_counts / video_counts.sum(), w_t2v / w_t2v.sum(), atol=0.02, rtol=0)
    torch.testing.assert_close(text_counts / text_counts.sum(), w_v2t / w_v2t.sum(), atol=0.02, rtol=0)


def test_vtm_rejects_bad_rows() -> None:
    s, mask, _, _ = _orientation_case()
    with pytest.raises(ValueError):
        sample_vtm_pairs(s, mask, local_rows=slice(6, 10))


def test_vtm_row_of_only_positives_falls_back_to_uniform() -> None:
    s = torch.eye(3)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[2, :2] = mask[:2, 2] = False
    p = sample_vtm_pairs(s, mask, local_rows=slice(0, 3), generator=torch.Generator().manual_seed(0))
    assert p.text_index.shape == p.video_index.shape == (3,)
    assert ((p.text_index >= 0) & (p.text_index < 3)).all()
