"""TopKSelection: Gumbel-top-k samples, Plackett-Luce log-probabilities, entropy, TorchRL use."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor

from hrm_rl.models.selection import (
    EXACT_ENTROPY_MAX_TUPLES,
    TopKSelection,
    greedy_path_entropy,
    inclusion_probabilities,
    num_ordered_tuples,
    plackett_luce_log_prob,
)

NEG_INF = float("-inf")


def all_ordered_tuples(num_cells: int, k: int) -> torch.Tensor:
    """int64 [N!/(N−k)!, k]: every ordered k-tuple of distinct cells."""
    return torch.tensor(list(itertools.permutations(range(num_cells), k)), dtype=torch.long)


def enumerated_entropy(scores: torch.Tensor, k: int) -> torch.Tensor:
    """−Σ p log p over all ordered tuples of valid cells, for a single row of scores [N]."""
    tuples = all_ordered_tuples(scores.shape[-1], k)
    log_p = TopKSelection(scores, k).log_prob(tuples)  # [T]
    finite = log_p > NEG_INF
    return -(log_p[finite].exp() * log_p[finite]).sum()


def random_scores(seed: int, *shape: int) -> torch.Tensor:
    """Standard-normal scores scaled by 1.5, from their own generator."""
    generator = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(*shape, generator=generator)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probabilities_over_ordered_tuples_sum_to_one(k: int, seed: int) -> None:
    scores = random_scores(seed, 5)
    tuples = all_ordered_tuples(5, k)
    total = TopKSelection(scores, k).log_prob(tuples).exp().sum()
    assert abs(total.item() - 1.0) < 1e-5


def test_probabilities_sum_to_one_with_a_masked_cell() -> None:
    scores = random_scores(3, 5)
    scores[1] = NEG_INF
    total = TopKSelection(scores, 3).log_prob(all_ordered_tuples(5, 3)).exp().sum()
    assert abs(total.item() - 1.0) < 1e-5


def test_log_prob_matches_sequential_softmax_by_hand() -> None:
    scores = torch.tensor([0.3, -1.0, 2.0, 0.5])
    value = torch.tensor([2, 0, 3])
    first = scores.log_softmax(-1)[2]
    second = scores[[0, 1, 3]].log_softmax(-1)[0]
    third = scores[[1, 3]].log_softmax(-1)[1]
    expected = first + second + third
    assert torch.allclose(plackett_luce_log_prob(scores, value), expected, atol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_gumbel_top_k_samples_follow_plackett_luce(k: int) -> None:
    scores = random_scores(10 + k, 5)
    generator = torch.Generator().manual_seed(1234)
    samples = TopKSelection(scores, k, generator=generator).sample((20_000,))  # [20000, k]
    assert samples.shape == (20_000, k) and samples.dtype == torch.long
    counts = Counter(map(tuple, samples.tolist()))
    tuples = all_ordered_tuples(5, k)
    probs = TopKSelection(scores, k).log_prob(tuples).exp()
    empirical = torch.tensor([counts[tuple(t)] / 20_000 for t in tuples.tolist()])
    assert sum(counts.values()) == 20_000 and set(counts) <= set(map(tuple, tuples.tolist()))
    total_variation = 0.5 * (empirical - probs).abs().sum().item()
    assert total_variation < 0.03


def test_deterministic_sample_is_top_k_in_descending_order() -> None:
    scores = torch.tensor([[0.1, 3.0, -2.0, 1.5, 2.2], [5.0, NEG_INF, 4.0, 6.0, -1.0]])
    dist = TopKSelection(scores, 3)
    expected = torch.tensor([[1, 4, 3], [3, 0, 2]])
    assert torch.equal(dist.deterministic_sample, expected)
    assert torch.equal(dist.mode, expected)


def test_mode_is_the_most_likely_ordered_tuple() -> None:
    scores = random_scores(7, 5)
    tuples = all_ordered_tuples(5, 3)
    dist = TopKSelection(scores, 3)
    best = tuples[dist.log_prob(tuples).argmax()]
    assert torch.equal(dist.mode, best)


@pytest.mark.parametrize("num_cells,k", [(4, 1), (5, 2), (5, 3), (6, 4)])
def test_entropy_equals_enumeration(num_cells: int, k: int) -> None:
    scores = random_scores(num_cells * 10 + k, 3, num_cells)
    entropy = TopKSelection(scores, k).entropy()
    assert entropy.shape == (3,)
    expected = torch.stack([enumerated_entropy(row, k) for row in scores])
    assert torch.allclose(entropy, expected, atol=1e-5)


def test_exact_entropy_at_the_largest_exact_size() -> None:
    assert num_ordered_tuples(16, 3) == 3360 <= EXACT_ENTROPY_MAX_TUPLES
    scores = random_scores(5, 16)
    scores[[2, 9]] = NEG_INF
    expected = enumerated_entropy(scores.double(), 3)
    assert torch.allclose(TopKSelection(scores.double(), 3).entropy(), expected, atol=1e-9)


def test_entropy_of_uniform_scores_is_log_of_tuple_count() -> None:
    entropy = TopKSelection(torch.zeros(6), 3).entropy()
    assert torch.allclose(entropy, torch.tensor(num_ordered_tuples(6, 3)).float().log())


def assert_finite_entropy_and_gradient(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Entropy and d(entropy)/d(scores) are finite; returns the entropy."""
    scores = scores.clone().requires_grad_(True)
    entropy = TopKSelection(scores, k).entropy()
    (grad,) = torch.autograd.grad(10.0 * entropy.sum(), scores)
    assert torch.isfinite(entropy).all(), entropy
    assert torch.isfinite(grad).all(), grad
    return entropy.detach()


@pytest.mark.parametrize("num_cells,k", [(5, 2), (6, 3), (20, 4)])
def test_entropy_and_gradient_finite_with_masks(num_cells: int, k: int) -> None:
    scores = random_scores(4, 4, num_cells)
    scores[0, :2] = NEG_INF
    scores[1, -3:] = NEG_INF
    scores[2, 1 : num_cells - k] = NEG_INF  # exactly k selectable cells
    entropy = assert_finite_entropy_and_gradient(scores, k)
    if num_ordered_tuples(num_cells, k) <= EXACT_ENTROPY_MAX_TUPLES:
        expected = torch.stack([enumerated_entropy(row, k) for row in scores])
        assert torch.allclose(entropy, expected, atol=1e-5)


@pytest.mark.parametrize("num_cells,k", [(5, 2), (6, 3), (20, 4)])
def test_entropy_and_gradient_finite_with_huge_scores(num_cells: int, k: int) -> None:
    scores = torch.sign(random_scores(5, 3, num_cells)) * 1e4
    scores[0, 0] = 1e4 + 1.0
    scores[1, 1] = NEG_INF
    assert_finite_entropy_and_gradient(scores, k)


def test_entropy_finite_when_too_few_cells_are_selectable() -> None:
    scores = torch.full((6,), NEG_INF)
    scores[0] = 0.5
    assert_finite_entropy_and_gradient(scores, 3)
    assert_finite_entropy_and_gradient(torch.full((6,), NEG_INF), 2)


def test_approximate_entropy_branch_for_large_n() -> None:
    assert num_ordered_tuples(20, 4) > EXACT_ENTROPY_MAX_TUPLES
    scores = random_scores(6, 5, 20)
    entropy = assert_finite_entropy_and_gradient(scores, 4)
    assert entropy.shape == (5,)
    assert torch.allclose(entropy, greedy_path_entropy(scores, 4))
    # Uniform scores: every step is uniform whatever the prefix, so the estimate is exact.
    uniform = TopKSelection(torch.zeros(20), 4).entropy()
    assert torch.allclose(uniform, torch.tensor(float(num_ordered_tuples(20, 4))).log())


def test_masked_cells_are_never_sampled() -> None:
    scores = random_scores(8, 6, 7)
    scores[:, 0] = 5.0  # a masked cell would be the favourite if it were allowed
    mask = torch.zeros(6, 7, dtype=torch.bool)
    mask[:, 0] = True
    mask[2, 3:6] = True
    scores = scores.masked_fill(mask, NEG_INF)
    generator = torch.Generator().manual_seed(0)
    samples = TopKSelection(scores, 3, generator=generator).sample((2000,))  # [2000, 6, 3]
    chosen_masked = mask.unsqueeze(0).expand(2000, -1, -1).gather(-1, samples)
    assert not chosen_masked.any()
    sorted_cells = samples.sort(dim=-1).values
    assert (sorted_cells[..., 1:] != sorted_cells[..., :-1]).all()  # distinct cells


def test_sampling_with_too_few_selectable_cells_raises() -> None:
    scores = torch.zeros(3, 5)
    scores[1, 1:] = NEG_INF
    with pytest.raises(ValueError, match="fewer than k=2"):
        TopKSelection(scores, 2).sample()


def test_invalid_k_raises() -> None:
    with pytest.raises(ValueError, match="1 <= k <= N=5"):
        TopKSelection(torch.zeros(5), 6)
    with pytest.raises(ValueError, match="1 <= k <= N=5"):
        TopKSelection(torch.zeros(5), 0)


def test_log_prob_of_masked_or_repeated_cells_is_minus_inf() -> None:
    scores = torch.tensor([0.2, NEG_INF, 1.0, -0.5, 0.7])
    dist = TopKSelection(scores, 3)
    values = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 2, 3], [0, 3, 0], [4, 2, 0]])
    log_prob = dist.log_prob(values)
    assert torch.equal(log_prob[:4], torch.full((4,), NEG_INF))
    assert torch.isfinite(log_prob[4])


def test_log_prob_gradient_is_finite_with_masks() -> None:
    scores = random_scores(9, 4, 6)
    scores[:, 0] = NEG_INF
    scores[1, 3] = NEG_INF
    scores[2, 1:3] = 1e4
    scores.requires_grad_(True)
    dist = TopKSelection(scores, 3)
    values = dist.sample((16,))  # valid tuples only
    log_prob = dist.log_prob(values)  # [16, 4]
    assert torch.isfinite(log_prob).all()
    (grad,) = torch.autograd.grad(log_prob.sum(), scores)
    assert torch.isfinite(grad).all()
    assert (grad[:, 0] == 0).all() and grad[1, 3] == 0


def test_gradient_ignores_invalid_tuples_in_the_same_batch() -> None:
    scores = torch.tensor([[0.2, NEG_INF, 1.0, -0.5], [0.1, 0.4, NEG_INF, 0.3]], requires_grad=True)
    values = torch.tensor([[0, 1], [0, 1]])  # first row holds a masked cell
    log_prob = plackett_luce_log_prob(scores, values)
    assert log_prob[0] == NEG_INF and torch.isfinite(log_prob[1])
    (grad,) = torch.autograd.grad(log_prob[1], scores)
    assert torch.isfinite(grad).all()


def test_batch_shapes() -> None:
    scores = random_scores(11, 7, 4, 6)
    dist = TopKSelection(scores, 2)
    assert dist.batch_shape == (7, 4) and dist.event_shape == (2,)
    sample = dist.sample()
    assert sample.shape == (7, 4, 2) and sample.dtype == torch.long
    assert dist.log_prob(sample).shape == (7, 4)
    many = dist.sample((3,))
    assert many.shape == (3, 7, 4, 2)
    assert dist.log_prob(many).shape == (3, 7, 4)
    assert dist.entropy().shape == (7, 4)
    assert dist.deterministic_sample.shape == (7, 4, 2)
    one_tuple = torch.tensor([0, 1])  # broadcasts over the batch
    assert dist.log_prob(one_tuple).shape == (7, 4)


def test_expand() -> None:
    scores = random_scores(12, 6)
    dist = TopKSelection(scores, 3).expand((5, 2))
    assert isinstance(dist, TopKSelection)
    assert dist.batch_shape == (5, 2) and dist.event_shape == (3,)
    assert dist.sample().shape == (5, 2, 3)
    assert torch.allclose(dist.entropy(), TopKSelection(scores, 3).entropy().expand(5, 2))


def test_same_seed_gives_same_samples() -> None:
    scores = random_scores(13, 8, 10)

    def draw(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return TopKSelection(scores, 4, generator=generator).sample((5,))

    assert torch.equal(draw(42), draw(42))
    assert not torch.equal(draw(42), draw(43))


def test_validate_args_checks_log_prob_values() -> None:
    dist = TopKSelection(torch.zeros(4), 2, validate_args=True)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        dist.log_prob(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="integer cells"):
        dist.log_prob(torch.tensor([0.0, 1.0]))


def test_inclusion_probabilities() -> None:
    scores = random_scores(14, 2, 5)
    scores[1, 2] = NEG_INF
    inclusion = inclusion_probabilities(scores, 3)  # [2, 5]
    assert torch.allclose(inclusion.sum(-1), torch.full((2,), 3.0), atol=1e-5)
    assert inclusion[1, 2] == 0
    tuples = all_ordered_tuples(5, 3)
    probs = TopKSelection(scores, 3).log_prob(tuples.unsqueeze(1)).exp()  # [T, 2]
    contains = torch.nn.functional.one_hot(tuples, 5).sum(1).float()  # [T, 5]
    expected = torch.einsum("tb,tn->bn", probs, contains)
    assert torch.allclose(inclusion, expected, atol=1e-5)
    with pytest.raises(ValueError, match="INCLUSION_MAX_TUPLES"):
        inclusion_probabilities(torch.zeros(40), 4)


@pytest.mark.parametrize("exploration", [ExplorationType.RANDOM, ExplorationType.DETERMINISTIC])
def test_torchrl_probabilistic_actor(exploration: ExplorationType) -> None:
    torch.manual_seed(0)
    net = TensorDictModule(torch.nn.Linear(8, 5), in_keys=["features"], out_keys=["scores"])
    actor = ProbabilisticActor(
        net,
        in_keys=["scores"],
        out_keys=["cells"],
        distribution_class=TopKSelection,
        distribution_kwargs={"k": 2},
        return_log_prob=True,
    )
    td = TensorDict({"features": torch.randn(4, 3, 8)}, batch_size=[4, 3])
    with set_exploration_type(exploration):
        out = actor(td)
    assert out["scores"].shape == (4, 3, 5)
    assert out["cells"].shape == (4, 3, 2) and out["cells"].dtype == torch.long
    assert out["cells_log_prob"].shape == (4, 3)
    recomputed = TopKSelection(out["scores"], 2).log_prob(out["cells"])
    assert torch.allclose(out["cells_log_prob"], recomputed)
    assert torch.allclose(actor.get_dist(out).log_prob(out["cells"]), recomputed)
    if exploration is ExplorationType.DETERMINISTIC:
        assert torch.equal(out["cells"], out["scores"].topk(2, dim=-1).indices)


# --- the law of the set (the model reads which cells, not their order) ------------------------


def all_sets(num_cells: int, k: int) -> torch.Tensor:
    """int64 [C(N, k), k]: every set of k distinct cells (ascending)."""
    return torch.tensor(list(itertools.combinations(range(num_cells), k)), dtype=torch.long)


@pytest.mark.parametrize("num_cells,k", [(4, 1), (4, 2), (5, 3), (6, 4)])
def test_set_probabilities_sum_to_one_and_ignore_order(num_cells: int, k: int) -> None:
    scores = random_scores(num_cells + k, 3, num_cells)  # [3, N]
    law = TopKSelection(scores, k, law="set")
    sets = all_sets(num_cells, k).unsqueeze(1)  # [C, 1, k]
    probs = law.log_prob(sets).exp()  # [C, 3]
    assert torch.allclose(probs.sum(dim=0), torch.ones(3), atol=1e-5)
    reversed_order = law.log_prob(sets.flip(-1)).exp()
    assert torch.allclose(probs, reversed_order, atol=1e-6)
    # the set's probability is its orders' ordered probabilities summed
    ordered = TopKSelection(scores, k)
    orders = torch.tensor(list(itertools.permutations(range(k))))
    by_hand = ordered.log_prob(sets[..., orders].squeeze(1).unsqueeze(2)).exp().sum(dim=1)
    assert torch.allclose(probs, by_hand, atol=1e-6)


def test_set_probabilities_sum_to_one_with_a_masked_cell() -> None:
    scores = torch.tensor([0.3, NEG_INF, -1.0, 2.0, 0.5])
    law = TopKSelection(scores, 2, law="set")
    log_probs = law.log_prob(all_sets(5, 2))
    assert torch.allclose(log_probs.exp().sum(), torch.tensor(1.0), atol=1e-6)
    assert (log_probs[(all_sets(5, 2) == 1).any(dim=1)] == NEG_INF).all()


@pytest.mark.parametrize("k", [2, 3])
def test_gumbel_top_k_samples_follow_the_set_law(k: int) -> None:
    scores = random_scores(20 + k, 6)
    generator = torch.Generator().manual_seed(99)
    samples = TopKSelection(scores, k, generator=generator).sample((20_000,))
    counts = Counter(tuple(sorted(s)) for s in samples.tolist())
    sets = all_sets(6, k)
    probs = TopKSelection(scores, k, law="set").log_prob(sets).exp()
    empirical = torch.tensor([counts[tuple(s)] / 20_000 for s in sets.tolist()])
    assert 0.5 * (empirical - probs).abs().sum().item() < 0.03


@pytest.mark.parametrize("num_cells,k", [(4, 2), (5, 3), (7, 4)])
def test_set_entropy_equals_enumeration_and_is_log_comb_when_uniform(num_cells: int, k: int):
    scores = random_scores(3 * num_cells, num_cells)
    law = TopKSelection(scores, k, law="set")
    log_p = law.log_prob(all_sets(num_cells, k))
    assert torch.allclose(law.entropy(), -(log_p.exp() * log_p).sum(), atol=1e-5)
    # the set's entropy is the tuple's minus what the order adds, at most log k!
    ordered = TopKSelection(scores, k).entropy()
    assert ordered - math.log(math.factorial(k)) - 1e-5 <= law.entropy() <= ordered + 1e-5
    uniform = TopKSelection(torch.zeros(num_cells), k, law="set")
    assert uniform.entropy().item() == pytest.approx(math.log(math.comb(num_cells, k)), abs=1e-5)
    assert uniform.max_entropy() == pytest.approx(math.log(math.comb(num_cells, k)))


@pytest.mark.parametrize("num_cells,k", [(5, 2), (20, 4)])
def test_set_law_entropy_log_prob_and_gradients_finite_with_masks_and_huge_scores(num_cells, k):
    scores = random_scores(7, 4, num_cells) * 1e4
    scores[:, 0] = NEG_INF
    scores.requires_grad_(True)
    law = TopKSelection(scores, k, law="set")
    sample = law.sample()
    (law.entropy().sum() + law.log_prob(sample).sum()).backward()
    assert torch.isfinite(law.entropy()).all() and torch.isfinite(law.log_prob(sample)).all()
    assert torch.isfinite(scores.grad).all()


def test_unknown_law_is_refused() -> None:
    with pytest.raises(ValueError, match="law"):
        TopKSelection(torch.zeros(4), 2, law="bag")
