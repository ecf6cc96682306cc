"""The memory-cell policy π_θ(A | ĥ, CLS): k of N cells, as an ordered tuple or as a set.

A selection is drawn by Gumbel-top-k: perturb every score with independent Gumbel(0, 1) noise
and keep the k largest, in decreasing order. The law of that ordered tuple is sequential sampling
without replacement, whose exact log-probability is Plackett-Luce::

    log P(i_1, ..., i_k) = Σ_j [ s_{i_j} − logsumexp_{m ∉ {i_1, ..., i_{j−1}}} s_m ]

The model only uses *which* cells were chosen, not their order, so the law of the choice is the
law of the set (``law="set"``): the Plackett-Luce probability summed over the k! orders of A,

    log P(A) = logsumexp_{π ∈ orders(A)} log P(π_1, ..., π_k)

which is exact and cheap for the k ≤ 4 the model uses. ``law="ordered"`` keeps the tuple's
law, whose log-probability also carries the (meaningless) draw order: up to log k! nats of noise
per draw in a policy-gradient ratio.

A score of ``-inf`` marks a cell that may not be chosen. Masked scores are replaced by a large
negative finite number wherever a softmax needs them, and log-probabilities are floored at
``LOG_PROB_FLOOR`` inside entropies (where ``p = 0`` already), so no ``NaN`` reaches a value or
a gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
from torch.distributions import Distribution

EXACT_ENTROPY_MAX_TUPLES = 4096  # entropy() enumerates ordered tuples up to this many
INCLUSION_MAX_TUPLES = 65536  # inclusion_probabilities() refuses more ordered tuples
LOG_PROB_FLOOR = -1000.0  # exp(-1000) is 0 in every float dtype, so flooring changes no value
LAWS = ("ordered", "set")


def num_ordered_tuples(num_cells: int, k: int) -> int:
    """N! / (N − k)!: how many ordered k-tuples of distinct cells there are."""
    return math.perm(num_cells, k)


def _masked_to_finite(scores: torch.Tensor) -> torch.Tensor:
    """Scores with ``-inf`` replaced by a large negative finite number (zero gradient there)."""
    fill = torch.finfo(scores.dtype).min / 2
    return scores.masked_fill(scores == float("-inf"), fill)


def _chosen_before(value: torch.Tensor, num_cells: int) -> torch.Tensor:
    """bool [..., k, N]: whether cell m was drawn before step j of the tuple ``value`` [..., k]."""
    drawn = torch.nn.functional.one_hot(value, num_cells)  # [..., k, N]
    return (drawn.cumsum(dim=-2) - drawn) > 0


def plackett_luce_log_prob(scores: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Exact log-probability of the ordered tuple ``value`` under Plackett-Luce with ``scores``.

    ``scores`` is float ``[..., N]`` (``-inf`` = not selectable) and ``value`` integer
    ``[..., k]`` with cell indices in draw order; the leading dimensions broadcast. Returns
    ``[...]``. A tuple holding a masked or a repeated cell gets ``-inf``; every other tuple a
    finite value whose gradient with respect to ``scores`` is finite, masks or not.
    """
    value = value.long()
    num_cells, k = scores.shape[-1], value.shape[-1]
    batch = torch.broadcast_shapes(scores.shape[:-1], value.shape[:-1])
    scores = scores.expand(*batch, num_cells)  # [..., N]
    value = value.expand(*batch, k)  # [..., k]

    before = _chosen_before(value, num_cells)  # [..., k, N]
    finite = _masked_to_finite(scores)
    remaining = finite.unsqueeze(-2).masked_fill(before, float("-inf"))  # [..., k, N]
    step_log_probs = remaining.log_softmax(dim=-1)  # [..., k, N]
    picked = step_log_probs.gather(-1, value.unsqueeze(-1)).squeeze(-1)  # [..., k]
    log_prob = picked.sum(dim=-1)  # [...]

    masked = scores.gather(-1, value) == float("-inf")  # [..., k]
    repeated = before.gather(-1, value.unsqueeze(-1)).squeeze(-1)  # [..., k]
    valid = ~(masked | repeated).any(dim=-1)
    return log_prob.masked_fill(~valid, float("-inf"))


def _orders(k: int, device: torch.device) -> torch.Tensor:
    """int64 ``[k!, k]``: every order of k slots."""
    return torch.tensor(list(itertools.permutations(range(k))), device=device).view(-1, k)


def set_log_prob(scores: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Exact log-probability of the *set* of cells in ``value`` ``[..., k]`` (any order):
    the Plackett-Luce probability summed over its k! orders. ``[...]``; ``-inf`` (with zero,
    finite gradient) for a set holding a masked or a repeated cell."""
    value = value.long()
    k = value.shape[-1]
    orders = value[..., _orders(k, value.device)]  # [..., k!, k]
    log_probs = plackett_luce_log_prob(scores.unsqueeze(-2), orders)  # [..., k!]
    valid = (log_probs > float("-inf")).all(dim=-1)  # every order of a valid set is valid
    safe = log_probs.masked_fill(~valid.unsqueeze(-1), 0.0).logsumexp(dim=-1)
    return safe.masked_fill(~valid, float("-inf"))


def exact_set_entropy(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Exact entropy of the chosen set, ``[...]``, from all C(N, k) sets' probabilities (each
    summed over its k! orders: N! / (N − k)! Plackett-Luce terms in one batched call)."""
    finite = _masked_to_finite(scores)
    num_cells = finite.shape[-1]
    sets = torch.tensor(list(itertools.combinations(range(num_cells), k)), device=finite.device)
    orders = sets[:, _orders(k, finite.device)]  # [C, k!, k]
    log_probs = plackett_luce_log_prob(finite[..., None, None, :], orders)  # [..., C, k!]
    set_log_probs = log_probs.logsumexp(dim=-1).clamp(min=LOG_PROB_FLOOR)  # [..., C]
    return _categorical_entropy(set_log_probs)


def _prefix_tree(scores: torch.Tensor, k: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Walk every ordered prefix of length 0..k−1 of finite ``scores`` [..., N], depth by depth.

    Yields, for depth j = 0..k−1, the probability of each prefix ``[..., P_j]`` and the
    log-probabilities of the next cell given that prefix ``[..., P_j, N]`` (floored at
    ``LOG_PROB_FLOOR``; cells already in the prefix get probability 0). P_j = N! / (N − j)!.
    """
    num_cells = scores.shape[-1]
    device = scores.device
    prefix_log_prob = scores.new_zeros(*scores.shape[:-1], 1)  # [..., P]
    in_prefix = torch.zeros(1, num_cells, dtype=torch.bool, device=device)  # [P, N]
    for depth in range(k):
        logits = scores.unsqueeze(-2).masked_fill(in_prefix, float("-inf"))  # [..., P, N]
        next_log_probs = logits.log_softmax(dim=-1).clamp(min=LOG_PROB_FLOOR)
        yield prefix_log_prob.exp(), next_log_probs
        if depth + 1 == k:
            break
        parent, cell = (~in_prefix).nonzero(as_tuple=True)  # [P'] each: extend by one free cell
        prefix_log_prob = prefix_log_prob[..., parent] + next_log_probs[..., parent, cell]
        in_prefix = in_prefix[parent].clone()
        in_prefix[torch.arange(parent.numel(), device=device), cell] = True


def _categorical_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """−Σ p log p over the last dimension, for log-probabilities floored at ``LOG_PROB_FLOOR``."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def exact_entropy(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Exact entropy of ordered Gumbel-top-k tuples, ``[...]``, by walking all prefixes.

    Uses the chain rule H = Σ_j E_{prefix of length j}[H(next cell | prefix)], which equals
    −Σ p log p over all N! / (N − k)! ordered tuples. Cost grows like that count; see
    :class:`TopKSelection` for when it is used.
    """
    finite = _masked_to_finite(scores)
    entropy = finite.new_zeros(finite.shape[:-1])
    for prefix_prob, next_log_probs in _prefix_tree(finite, k):
        entropy = entropy + (prefix_prob * _categorical_entropy(next_log_probs)).sum(dim=-1)
    return entropy


def greedy_path_entropy(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Chain-rule entropy estimate along the top-k path, ``[...]`` (deterministic, approximate).

    Σ_j H(softmax of the scores of the cells not among the j highest): the exact first-step
    entropy plus each later step's entropy conditioned on the most likely prefix instead of the
    expectation over prefixes.
    """
    finite = _masked_to_finite(scores)
    path = finite.topk(k, dim=-1).indices  # [..., k]
    before = _chosen_before(path, finite.shape[-1])  # [..., k, N]
    logits = finite.unsqueeze(-2).masked_fill(before, float("-inf"))  # [..., k, N]
    log_probs = logits.log_softmax(dim=-1).clamp(min=LOG_PROB_FLOOR)
    return _categorical_entropy(log_probs).sum(dim=-1)


def inclusion_probabilities(scores: torch.Tensor, k: int) -> torch.Tensor:
    """P(cell i is among the k chosen), ``[..., N]``, exact by enumerating ordered prefixes.

    Sums to k over the cells. Refuses (``ValueError``) when N! / (N − k)! exceeds
    ``INCLUSION_MAX_TUPLES`` (65536, e.g. N = 16 and k = 4 is 43680); estimate from samples
    beyond that. Intended for usage statistics, so it carries no special gradient care beyond
    being finite.
    """
    num_cells = scores.shape[-1]
    _check_k(k, num_cells)
    count = num_ordered_tuples(num_cells, k)
    if count > INCLUSION_MAX_TUPLES:
        raise ValueError(
            f"inclusion_probabilities: N={num_cells}, k={k} has {count} ordered tuples, more than "
            f"INCLUSION_MAX_TUPLES={INCLUSION_MAX_TUPLES}; estimate usage from samples instead"
        )
    finite = _masked_to_finite(scores)
    inclusion = torch.zeros_like(finite)
    for prefix_prob, next_log_probs in _prefix_tree(finite, k):
        inclusion = inclusion + (prefix_prob.unsqueeze(-1) * next_log_probs.exp()).sum(dim=-2)
    return inclusion


def _check_k(k: int, num_cells: int) -> None:
    """Raise unless 1 <= k <= N."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_cells:
        raise ValueError(f"TopKSelection: k must be an int with 1 <= k <= N={num_cells}, got {k!r}")


class TopKSelection(Distribution):
    """k of N cells: Gumbel-top-k samples, Plackett-Luce log-probabilities of the tuple or set.

    ``scores`` ``[..., N]`` are unnormalised log-weights; ``-inf`` marks a cell that may not be
    chosen. ``batch_shape = scores.shape[:-1]``, ``event_shape = (k,)``; a sample is an int64
    tuple of k distinct cells in draw order (highest perturbed score first).

    - ``sample`` draws by Gumbel-top-k (with ``generator`` if given); rows need at least k
      finite scores.
    - ``log_prob`` is, with ``law="ordered"`` (default), the exact ordered Plackett-Luce
      log-probability (:func:`plackett_luce_log_prob`); with ``law="set"`` the exact
      log-probability of the set of cells, whatever their order (:func:`set_log_prob`).
      Forcing given selections, e.g. replaying stored ones under new parameters, is just
      ``log_prob(stored)``.
    - ``entropy`` under ``law="set"`` is exact (:func:`exact_set_entropy`) up to the same
      ``EXACT_ENTROPY_MAX_TUPLES`` terms; above that it is the ordered estimate below minus
      log k! (floored at 0): a rough estimate, exact only when every order is equally likely.
      Under ``law="ordered"`` it is exact when N! / (N − k)! <= ``EXACT_ENTROPY_MAX_TUPLES``
      (4096; N = 16, k = 3 gives 3360), computed by the chain rule over all ordered prefixes
      (:func:`exact_entropy`). Above that it is the deterministic chain-rule estimate along the
      top-k path, Σ_j H(softmax over the cells not yet chosen at step j)
      (:func:`greedy_path_entropy`): exact for the first step, an approximation afterwards.
      Both are finite with finite gradients under ``-inf`` masks and huge scores.
    - ``deterministic_sample`` and ``mode`` are the top-k cells by score, descending, which is
      what TorchRL's ``DETERMINISTIC`` exploration uses.

    ``arg_constraints`` is empty and ``validate_args`` defaults to False: scores are any
    floats, and ``validate_args=True`` only adds a range check on ``log_prob`` values.
    Works as the ``distribution_class`` of a TorchRL ``ProbabilisticActor`` with
    ``distribution_kwargs={"k": k}``.
    """

    has_rsample = False
    arg_constraints = {}

    def __init__(
        self,
        scores: torch.Tensor,
        k: int,
        *,
        generator: torch.Generator | None = None,
        law: str = "ordered",
        validate_args: bool | None = False,
    ) -> None:
        if law not in LAWS:
            raise ValueError(f"TopKSelection: law must be one of {LAWS}, got {law!r}")
        if scores.dim() < 1 or not scores.is_floating_point():
            raise ValueError(
                "TopKSelection: scores must be a float tensor [..., N], "
                f"got dtype {scores.dtype} and shape {tuple(scores.shape)}"
            )
        _check_k(k, scores.shape[-1])
        self.scores = scores  # [..., N]
        self.k = k
        self.generator = generator
        self.law = law
        super().__init__(scores.shape[:-1], torch.Size((k,)), validate_args=validate_args)

    @property
    def num_cells(self) -> int:
        """N, the number of cells to choose from."""
        return self.scores.shape[-1]

    def expand(self, batch_shape: torch.Size, _instance: TopKSelection | None = None):
        """The same distribution broadcast to ``batch_shape`` (scores are expanded, not copied)."""
        new = self._get_checked_instance(TopKSelection, _instance)
        batch_shape = torch.Size(batch_shape)
        new.scores = self.scores.expand(*batch_shape, self.num_cells)
        new.k = self.k
        new.generator = self.generator
        new.law = self.law
        super(TopKSelection, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """int64 ``[*sample_shape, *batch, k]``: k distinct cells, highest perturbed score first."""
        selectable = (self.scores > float("-inf")).sum(dim=-1)  # [*batch]
        short = selectable < self.k
        if short.any():
            raise ValueError(
                f"TopKSelection.sample: {int(short.sum())} row(s) of scores have fewer than "
                f"k={self.k} selectable (finite) cells (fewest: {int(selectable.min())}); "
                "unmask more cells or lower k"
            )
        shape = self._extended_shape(sample_shape)[:-1] + (self.num_cells,)
        with torch.no_grad():
            exponential = torch.empty(shape, dtype=self.scores.dtype, device=self.scores.device)
            exponential.exponential_(generator=self.generator)
            gumbel = -exponential.log()  # Gumbel(0, 1) = −log Exp(1)
            perturbed = self.scores.expand(shape) + gumbel  # [*sample, *batch, N]
            return perturbed.topk(self.k, dim=-1).indices

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log-probability of ``value`` ``[..., k]`` -> ``[...]``: of the ordered tuple, or
        of its set of cells under ``law="set"``."""
        if self._validate_args:
            self._check_value(value)
        if self.law == "set":
            return set_log_prob(self.scores, value)
        return plackett_luce_log_prob(self.scores, value)

    def _check_value(self, value: torch.Tensor) -> None:
        """Raise unless ``value`` holds integer cell indices in [0, N) with k per tuple."""
        if value.is_floating_point() or value.is_complex() or value.shape[-1:] != (self.k,):
            raise ValueError(
                f"TopKSelection.log_prob: expected integer cells [..., {self.k}], "
                f"got dtype {value.dtype} and shape {tuple(value.shape)}"
            )
        if value.numel() and (value.min() < 0 or value.max() >= self.num_cells):
            raise ValueError(
                f"TopKSelection.log_prob: cell indices must lie in [0, {self.num_cells}), "
                f"got min {int(value.min())} and max {int(value.max())}"
            )

    def entropy(self) -> torch.Tensor:
        """Entropy of the tuple or set, ``[*batch]``: exact for small N, k (see class docs)."""
        exact = num_ordered_tuples(self.num_cells, self.k) <= EXACT_ENTROPY_MAX_TUPLES
        if self.law == "set":
            if exact:
                return exact_set_entropy(self.scores, self.k)
            estimate = greedy_path_entropy(self.scores, self.k) - math.lgamma(self.k + 1)
            return estimate.clamp(min=0.0)
        if exact:
            return exact_entropy(self.scores, self.k)
        return greedy_path_entropy(self.scores, self.k)

    def max_entropy(self) -> float:
        """The entropy of uniform scores: log C(N, k) for sets, log N!/(N − k)! for tuples."""
        if self.law == "set":
            return math.log(math.comb(self.num_cells, self.k))
        return math.log(num_ordered_tuples(self.num_cells, self.k))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """int64 ``[*batch, k]``: the k highest-scoring cells, in descending score order."""
        return self.scores.detach().topk(self.k, dim=-1).indices

    @property
    def mode(self) -> torch.Tensor:
        """The most likely ordered tuple: the top-k cells by score, as ``deterministic_sample``."""
        return self.deterministic_sample

    def __repr__(self) -> str:
        batch = tuple(self.batch_shape)
        return f"TopKSelection(batch_shape={batch}, N={self.num_cells}, k={self.k}, law={self.law})"
