"""Searching a supernet for the best subnet under a MACs budget (GAN Compression).

Every search here is a pure function of two callables:

- ``evaluate(config) -> float``: the subnet's quality, **lower is better** (an FID or FD).
  Score candidates on a held-out part of the *training* data (:func:`holdout_split`;
  GAN Compression holds out 120 of horse2zebra's training horses), never on the test set:
  the search picks the winner by this score, so a test-set score would be tuned to the
  test set and no longer be an honest final figure.
- ``macs(config) -> int``: its cost (``course_lib.compress.supernet.config_macs``).

and of the search ``space``: for each config position, the widths it may take (a
supernet's ``space``). A config is a tuple of ints, one per position. ``evaluate`` is
called at most once per config (results are remembered), since each call may cost a pass
over the held-out images.

- :func:`exhaustive_search` tries every config within budget (small spaces only);
- :func:`random_search` tries ``n`` random configs within budget;
- :func:`evolutionary_search` evolves a population: keep the best ``parents``, add
  ``mutations`` children (each position re-drawn with probability ``mutate_prob``) and
  ``crossovers`` children (each position taken from one of two parents), all within the
  budget. GAN Compression's settings: population 100, 25 parents, 50 + 50 children.

A random config or child over budget is drawn again, up to 20 times (GAN Compression
redraws until one fits); after that it is shrunk to fit (:func:`shrink_to_budget`), so a
tight budget that few configs meet does not take thousands of draws.

Each returns a :class:`SearchResult`: the best config within budget and the Pareto front
(MACs vs score) of everything it evaluated.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, Subset

Config = tuple[int, ...]
Space = Sequence[Sequence[int]]


@dataclass(frozen=True)
class Candidate:
    """One evaluated subnet: its config, its MACs and its score (lower is better)."""
    config: Config
    macs: int
    score: float


@dataclass
class SearchResult:
    """What a search found.

    best: the lowest-scoring candidate within ``budget`` (None if none was evaluated);
    front: the Pareto front of ``evaluated``, cheapest first (see :func:`pareto_front`);
    evaluated: every candidate evaluated, in the order they were first evaluated;
    history: the best score after each generation (evolutionary search) or evaluation.
    """
    best: Candidate | None
    front: list[Candidate]
    evaluated: list[Candidate]
    budget: float
    history: list[float] = field(default_factory=list)


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other candidate beats on both MACs and score, cheapest first.

    Walking from the cheapest up, a candidate joins the front when its score is strictly
    lower than every cheaper one's; so along the front MACs rise and the score falls.
    """
    front: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.macs, c.score)):
        if not front or c.score < front[-1].score:
            front.append(c)
    return front


class _Evaluator:
    """``evaluate`` and ``macs`` with memory, and the list of candidates in evaluation order."""

    def __init__(self, evaluate: Callable[[Config], float], macs: Callable[[Config], int]):
        self._evaluate = evaluate
        self._macs = macs
        self._macs_cache: dict[Config, int] = {}
        self.scored: dict[Config, Candidate] = {}

    def macs(self, config: Config) -> int:
        if config not in self._macs_cache:
            self._macs_cache[config] = int(self._macs(config))
        return self._macs_cache[config]

    def __call__(self, config: Config) -> Candidate:
        if config not in self.scored:
            score = float(self._evaluate(config))
            if math.isnan(score):
                raise ValueError(f"evaluate({config}) returned NaN; a score must be a number "
                                 "(lower is better)")
            self.scored[config] = Candidate(config, self.macs(config), score)
        return self.scored[config]

    def result(self, budget: float, history: list[float]) -> SearchResult:
        evaluated = list(self.scored.values())
        within = [c for c in evaluated if c.macs <= budget]
        best = min(within, key=lambda c: (c.score, c.macs)) if within else None
        return SearchResult(best, pareto_front(evaluated), evaluated, budget, history)


def _check_space(space: Space) -> tuple[tuple[int, ...], ...]:
    space = tuple(tuple(widths) for widths in space)
    if not space or any(not widths for widths in space):
        raise ValueError(f"the search space needs at least one width at every position, got {space}")
    return space


def _check_budget(space, evaluator: _Evaluator, budget: float) -> None:
    """A ValueError if even the cheapest config is over budget (no search could succeed)."""
    cheapest = tuple(min(widths) for widths in space)
    if evaluator.macs(cheapest) > budget:
        raise ValueError(f"no config fits the budget of {budget:,.0f} MACs: the smallest one, "
                         f"{cheapest}, costs {evaluator.macs(cheapest):,}. Raise the budget.")


def shrink_to_budget(config: Config, space: Space, macs: Callable[[Config], int], budget: float,
                     rng: random.Random) -> Config:
    """``config`` made to fit ``budget``: while it costs too much, a random position that is
    not yet at its smallest width steps down to the next smaller width of ``space``.
    Ends within budget whenever the smallest config fits (each step lowers the MACs)."""
    config = list(config)
    while macs(tuple(config)) > budget:
        wider = [i for i, w in enumerate(config) if w > min(space[i])]
        if not wider:
            break
        i = rng.choice(wider)
        config[i] = max(w for w in space[i] if w < config[i])
    return tuple(config)


def _draw_within_budget(draw: Callable[[], Config], space, evaluator: _Evaluator, budget: float,
                        rng: random.Random, tries: int = 20) -> Config:
    """A config from ``draw()`` within budget: up to ``tries`` draws (rejection, as GAN
    Compression does), then the last draw is shrunk to fit. A tight budget that few configs
    meet would otherwise take thousands of draws, each needing a MACs count."""
    for _ in range(tries):
        config = draw()
        if evaluator.macs(config) <= budget:
            return config
    return shrink_to_budget(config, space, evaluator.macs, budget, rng)


def exhaustive_search(space: Space, evaluate: Callable[[Config], float],
                      macs: Callable[[Config], int], budget: float,
                      max_candidates: int = 5_000) -> SearchResult:
    """Evaluate every config of ``space`` whose MACs are within ``budget``.

    For small spaces only: a ValueError if the space holds more than ``max_candidates``
    configs (CycleGAN's 5 choices at 8 positions are 390,625; use evolution there).
    """
    space = _check_space(space)
    size = math.prod(len(widths) for widths in space)
    if size > max_candidates:
        raise ValueError(f"the space has {size:,} configs, more than max_candidates={max_candidates:,}; "
                         "use evolutionary_search or random_search, or fewer choices")
    evaluator = _Evaluator(evaluate, macs)
    history = []
    for config in itertools.product(*space):
        if evaluator.macs(config) <= budget:
            evaluator(config)
            history.append(min(c.score for c in evaluator.scored.values()))
    return evaluator.result(budget, history)


def random_search(space: Space, evaluate: Callable[[Config], float], macs: Callable[[Config], int],
                  budget: float, n: int = 100, seed: int = 0) -> SearchResult:
    """Evaluate ``n`` random configs within ``budget`` (uniform draws, redrawn when over
    budget, see the module docstring; repeats are evaluated once, so fewer than ``n``
    distinct configs may result)."""
    space = _check_space(space)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = random.Random(seed)
    evaluator = _Evaluator(evaluate, macs)
    _check_budget(space, evaluator, budget)
    history = []
    for _ in range(n):
        config = _draw_within_budget(lambda: tuple(rng.choice(w) for w in space), space, evaluator,
                                     budget, rng)
        evaluator(config)
        history.append(min(c.score for c in evaluator.scored.values()))
    return evaluator.result(budget, history)


def mutate(config: Config, space: Space, rng: random.Random, prob: float = 0.2) -> Config:
    """``config`` with each position re-drawn from ``space`` with probability ``prob``."""
    return tuple(rng.choice(tuple(widths)) if rng.random() < prob else w
                 for w, widths in zip(config, space))


def crossover(a: Config, b: Config, rng: random.Random) -> Config:
    """A child taking each position from ``a`` or ``b`` with equal chance."""
    return tuple(rng.choice((x, y)) for x, y in zip(a, b))


def evolutionary_search(space: Space, evaluate: Callable[[Config], float],
                        macs: Callable[[Config], int], budget: float, *, population: int = 100,
                        parents: int = 25, mutations: int = 50, crossovers: int = 50,
                        generations: int = 10, mutate_prob: float = 0.2,
                        seed: int = 0) -> SearchResult:
    """Evolve configs within ``budget`` for ``generations`` rounds.

    Start from ``population`` random configs within budget. Each generation keeps the
    ``parents`` best-scoring configs of the population and adds ``mutations`` children of
    random parents (:func:`mutate`) and ``crossovers`` children of random parent pairs
    (:func:`crossover`); a child over budget is drawn again or shrunk. Every config evaluated is in
    the result, so ``history`` (the best score after each generation) can only fall.
    """
    space = _check_space(space)
    if min(population, parents, generations) < 1 or min(mutations, crossovers) < 0:
        raise ValueError("population, parents and generations must be at least 1, and mutations "
                         f"and crossovers 0 or more; got population={population}, parents={parents}, "
                         f"generations={generations}, mutations={mutations}, crossovers={crossovers}")
    if not 0.0 <= mutate_prob <= 1.0:
        raise ValueError(f"mutate_prob must be in [0, 1], got {mutate_prob}")
    rng = random.Random(seed)
    evaluator = _Evaluator(evaluate, macs)
    _check_budget(space, evaluator, budget)
    pool = [_draw_within_budget(lambda: tuple(rng.choice(w) for w in space), space, evaluator,
                                budget, rng) for _ in range(population)]
    history = []
    for _ in range(generations):
        ranked = sorted({evaluator(c) for c in pool}, key=lambda c: (c.score, c.macs))
        elite = [c.config for c in ranked[:parents]]
        history.append(ranked[0].score)
        children = [
            _draw_within_budget(lambda: mutate(rng.choice(elite), space, rng, mutate_prob),
                                space, evaluator, budget, rng)
            for _ in range(mutations)]
        children += [
            _draw_within_budget(lambda: crossover(rng.choice(elite), rng.choice(elite), rng),
                                space, evaluator, budget, rng)
            for _ in range(crossovers)]
        pool = elite + children
    for config in pool:           # the last generation's children are scored too
        evaluator(config)
    history.append(min(evaluator(c).score for c in pool))
    return evaluator.result(budget, history)


def holdout_split(dataset: Dataset, holdout: int | float, seed: int = 0) -> tuple[Subset, Subset]:
    """Split a *training* set into (train, held-out) subsets for architecture search.

    holdout: how many items to hold out (an int, e.g. GAN Compression's 120 horses) or
    which fraction (a float in (0, 1)). The split is a seeded random permutation, so it is
    the same on every run and every DDP rank. Train the supernet on the first subset and
    score search candidates on the second; the test set stays untouched for the final
    figures.
    """
    n = len(dataset)
    if isinstance(holdout, float):
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"a fractional holdout must be in (0, 1), got {holdout}")
        k = max(1, round(holdout * n))
    else:
        k = int(holdout)
    if not 1 <= k < n:
        raise ValueError(f"cannot hold out {k} of {n} training items: keep at least one on each side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[k:])), Subset(dataset, sorted(order[:k]))


def next_generation(population: Sequence[Config], scores: Sequence[float], space: Space,
                    costs: Sequence[float], budget: float, parents: int, children: int,
                    generator: torch.Generator, tries: int = 100) -> list[Config]:
    """One round of evolution with a linear cost model (notebook 06's exercise).

    Keeps the ``parents`` lowest-scoring configs of ``population`` (best first), then adds
    ``children``: even-numbered ones by mutation (each position re-drawn with probability
    0.3), odd ones by crossover of two random parents; a child costing more than
    ``budget`` (cost = Σ costs[i] * config[i]) is drawn again, up to ``tries`` times, then
    replaced by a copy of its first parent. All draws come from ``generator``.
    """
    order = sorted(range(len(population)), key=lambda i: scores[i])
    elite = [tuple(population[i]) for i in order[:parents]]

    def pick():
        return elite[int(torch.randint(len(elite), (), generator=generator))]

    out = list(elite)
    for k in range(children):
        first = None
        for _ in range(tries):
            a = pick()
            first = first or a
            if k % 2 == 0:
                child = tuple(int(widths[int(torch.randint(len(widths), (), generator=generator))])
                              if float(torch.rand((), generator=generator)) < 0.3 else w
                              for w, widths in zip(a, space))
            else:
                b = pick()
                child = tuple(x if float(torch.rand((), generator=generator)) < 0.5 else y
                              for x, y in zip(a, b))
            if sum(c * w for c, w in zip(costs, child)) <= budget:
                break
        else:
            child = first
        out.append(child)
    return out
