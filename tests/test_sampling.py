"""Keyed Gumbel-max sampling: the draw follows the distribution and belongs to its sequence."""

from __future__ import annotations

import pytest
import torch

from crossmath.models.sampling import (
    SeededSampler,
    gumbel_noise,
    sequence_key,
    sequence_keys,
    uniform_noise,
    uniform_noise_at,
    warp,
)
from crossmath.models.sampling_settings import SamplingSettings


def test_keys_depend_on_seed_and_identity_only():
    assert sequence_key(0, "req-1") == sequence_key(0, "req-1")
    assert len({sequence_key(0, "req-1"), sequence_key(1, "req-1"), sequence_key(0, "req-2")}) == 3
    keys = sequence_keys(3, ["a", "b"])
    assert keys.dtype == torch.int64 and keys.tolist() == [sequence_key(3, "a"), sequence_key(3, "b")]
    assert all(0 <= key < 2**63 for key in keys.tolist())


def test_noise_of_a_row_ignores_the_other_rows_and_their_order():
    keys = sequence_keys(0, [f"r{i}" for i in range(5)])
    together = uniform_noise(keys, step=7, vocab_size=50)
    alone = torch.cat([uniform_noise(keys[i:i + 1], 7, 50) for i in range(5)])
    assert torch.equal(together, alone)
    assert torch.equal(uniform_noise(keys.flip(0), 7, 50), together.flip(0))
    assert not torch.equal(uniform_noise(keys, 8, 50), together)  # each step draws afresh
    assert ((together > 0) & (together < 1)).all()


def test_uniforms_are_uniform_and_gumbels_have_the_gumbel_mean():
    keys = sequence_keys(1, [str(i) for i in range(400)])
    u = uniform_noise(keys, 3, 1000).flatten()
    histogram = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert (histogram - 0.1).abs().max() < 0.005
    g = gumbel_noise(keys, 3, 1000)
    assert abs(g.mean().item() - 0.5772) < 0.01  # Euler-Mascheroni constant


def test_gumbel_max_samples_follow_softmax_of_the_warped_logits():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    settings = SamplingSettings(temperature=0.7)
    n = 40_000
    keys = sequence_keys(0, [str(i) for i in range(n)])
    sampler = SeededSampler(keys, prompt_length=4, settings=settings)
    picks = sampler(torch.zeros(n, 4, dtype=torch.long), logits.expand(n, -1)).argmax(-1)
    frequencies = torch.bincount(picks, minlength=5).float() / n
    expected = (logits / 0.7).softmax(-1)
    assert (frequencies - expected).abs().max() < 0.01, (frequencies, expected)


def test_top_k_and_top_p_cut_the_tail_before_the_draw():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    top_k = warp(logits, SamplingSettings(top_k=2))
    assert torch.isinf(top_k[0, 2:]).all() and torch.isfinite(top_k[0, :2]).all()
    probabilities = logits.softmax(-1)[0]  # 0.636, 0.234, 0.086, ...
    top_p = warp(logits, SamplingSettings(top_p=0.8))  # 0.636 < 0.8: the second token stays
    assert torch.isfinite(top_p[0, :2]).all() and torch.isinf(top_p[0, 2:]).all()
    assert probabilities[0] < 0.8 < probabilities[:2].sum()
    shuffled = logits[:, [3, 0, 4, 1, 2]]  # the cut follows the values, not the positions
    assert torch.equal(torch.isinf(warp(shuffled, SamplingSettings(top_p=0.8))),
                       torch.tensor([[True, False, True, False, True]]))
    n = 5_000
    keys = sequence_keys(2, [str(i) for i in range(n)])
    sampler = SeededSampler(keys, 1, SamplingSettings(top_p=0.8))
    picks = sampler(torch.zeros(n, 1, dtype=torch.long), logits.expand(n, -1)).argmax(-1)
    assert set(picks.tolist()) == {0, 1}


def test_the_sampler_refuses_a_batch_that_does_not_match_its_keys():
    sampler = SeededSampler(sequence_keys(0, ["a"]), 1, SamplingSettings())
    with pytest.raises(ValueError, match="2 rows to sample but 1 keys"):
        sampler(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 5))


def test_noise_at_chosen_tokens_is_the_full_noise_there():
    keys = sequence_keys(5, ["a", "b", "c"])
    tokens = torch.tensor([[7, 0, 99], [3, 3, 50], [98, 1, 2]])
    full = uniform_noise(keys, 4, 100)
    assert torch.equal(uniform_noise_at(keys, 4, tokens), full.gather(1, tokens))


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_choosing_among_top_k_candidates_draws_what_the_full_warp_draws(top_p):
    """Noise on the candidates only: the same token as noise on the whole vocabulary, ties at
    the k-th score included (scores on a coarse grid tie often; one row ties past the margin),
    and a row's draw does not depend on the rows beside it."""
    torch.manual_seed(0)
    n, vocab = 300, 500
    scores = (torch.randn(n, vocab) * 3).round() / 2  # coarse grid: many ties
    scores[0, :80] = 9.0  # 80 tokens tie for the top: past top_k + margin
    keys = sequence_keys(1, [str(i) for i in range(n)])
    sampler = SeededSampler(keys, 2, SamplingSettings(temperature=0.8, top_k=5, top_p=top_p))
    input_ids = torch.zeros(n, 9, dtype=torch.long)
    chosen = sampler.choose(input_ids, scores)
    assert torch.equal(chosen, sampler(input_ids, scores).argmax(dim=-1))
    alone = SeededSampler(keys[:1], 2, sampler.settings).choose(input_ids[:1], scores[:1])
    assert alone.item() == chosen[0].item() and scores[0, chosen[0]] == 9.0
    assert len(set(chosen.tolist())) > 50  # rows draw differently


def test_top_p_keeps_or_cuts_tied_scores_together():
    """[2, 1, 1, 0]: probabilities 0.53, 0.20, 0.20, 0.07. At top_p 0.6 both 1s stay (the mass
    scored higher than either is 0.53), whichever way a sort orders them."""
    for logits in (torch.tensor([[2.0, 1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0, 1.0]])):
        kept = torch.isfinite(warp(logits, SamplingSettings(top_p=0.6)))
        assert kept.sum() == 3 and not kept[0, (logits[0] == 0).nonzero()[0, 0]]
