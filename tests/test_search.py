"""Architecture search as pure functions: synthetic scores, no training."""
import itertools
import math

import pytest
import torch

from course_lib.compress.search import (Candidate, crossover, evolutionary_search,
                                        exhaustive_search, holdout_split, mutate, pareto_front,
                                        random_search, shrink_to_budget)

# A synthetic CycleGAN-like problem: 8 positions, 5 widths each, a MACs model that grows
# with the product of neighbouring widths, and a "quality" that rewards width with
# diminishing returns, more at some positions than others.
SPACE = ((64, 48, 32, 24, 16),) * 8
IMPORTANCE = (3.0, 1.0, 4.0, 0.5, 2.0, 1.5, 1.0, 2.5)


def synthetic_macs(config):
    padded = (3,) + tuple(config) + (3,)
    return sum(a * b for a, b in zip(padded, padded[1:])) * 1000


def synthetic_score(config):                         # lower is better, like an FID
    return sum(w / math.sqrt(c) for w, c in zip(IMPORTANCE, config))


BUDGET = synthetic_macs((32,) * 8)


def brute_force_best(space, budget):
    within = [c for c in itertools.product(*space) if synthetic_macs(c) <= budget]
    return min(within, key=lambda c: (synthetic_score(c), synthetic_macs(c)))


class Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, config):
        self.calls.append(config)
        return self.fn(config)


def test_pareto_front_by_hand():
    a, b, c, d = (Candidate((1,), 10, 5.0), Candidate((2,), 20, 3.0),
                  Candidate((3,), 25, 4.0), Candidate((4,), 30, 1.0))
    assert pareto_front([d, c, b, a]) == [a, b, d]   # c costs more than b and scores worse
    assert pareto_front([]) == []
    tie = Candidate((5,), 10, 6.0)                   # same MACs as a, worse score: dominated
    assert pareto_front([tie, a]) == [a]


def test_exhaustive_search_finds_the_best_under_budget():
    space = ((16, 32, 64),) * 4
    budget = synthetic_macs((32,) * 4)
    evaluate = Counting(synthetic_score)
    result = exhaustive_search(space, evaluate, synthetic_macs, budget)
    assert result.best.config == brute_force_best(space, budget)
    assert all(c.macs <= budget for c in result.evaluated)
    assert len(result.evaluated) == sum(synthetic_macs(c) <= budget for c in itertools.product(*space))
    assert len(evaluate.calls) == len(set(evaluate.calls))          # each config scored once
    assert result.front[0].macs == min(c.macs for c in result.evaluated)
    with pytest.raises(ValueError, match="evolutionary_search"):
        exhaustive_search(SPACE, synthetic_score, synthetic_macs, BUDGET)   # 390,625 configs


def test_evolution_finds_the_optimum_within_budget_and_beats_random():
    evaluate = Counting(synthetic_score)
    result = evolutionary_search(SPACE, evaluate, synthetic_macs, BUDGET, seed=0)
    optimum = brute_force_best(SPACE, BUDGET)
    assert all(c.macs <= BUDGET for c in result.evaluated)
    assert result.best.macs <= BUDGET
    assert result.best.score <= synthetic_score(optimum) * 1.01
    assert len(evaluate.calls) == len(set(evaluate.calls))
    assert all(b <= a for a, b in zip(result.history, result.history[1:]))   # never gets worse
    assert len(result.history) == 10 + 1
    # the same number of random evaluations does worse on this problem
    rand = random_search(SPACE, synthetic_score, synthetic_macs, BUDGET,
                         n=len(result.evaluated), seed=0)
    assert all(c.macs <= BUDGET for c in rand.evaluated)
    assert result.best.score < rand.best.score
    # seeded: the same search twice gives the same answer
    again = evolutionary_search(SPACE, synthetic_score, synthetic_macs, BUDGET, seed=0)
    assert again.best == result.best


def test_the_budget_binds():
    loose = evolutionary_search(SPACE, synthetic_score, synthetic_macs, synthetic_macs((64,) * 8),
                                seed=1)
    tight = evolutionary_search(SPACE, synthetic_score, synthetic_macs, synthetic_macs((24,) * 8),
                                generations=3, seed=1)
    assert loose.best.config == (64,) * 8            # everything fits: the widest wins
    assert tight.best.macs <= synthetic_macs((24,) * 8) < loose.best.macs
    with pytest.raises(ValueError, match="no config fits the budget"):
        evolutionary_search(SPACE, synthetic_score, synthetic_macs, synthetic_macs((16,) * 8) - 1)
    with pytest.raises(ValueError, match="no config fits the budget"):
        random_search(SPACE, synthetic_score, synthetic_macs, 0)


def test_a_tight_budget_few_configs_meet_is_searched_quickly():
    import random
    budget = synthetic_macs((16,) * 7 + (24,))        # only a handful of the 390,625 configs fit
    macs = Counting(synthetic_macs)
    result = evolutionary_search(SPACE, synthetic_score, macs, budget, generations=3, seed=0)
    assert result.best.macs <= budget and all(c.macs <= budget for c in result.evaluated)
    assert len(macs.calls) < 20_000                   # pure rejection would need millions
    shrunk = shrink_to_budget((64,) * 8, SPACE, synthetic_macs, budget, random.Random(0))
    assert synthetic_macs(shrunk) <= budget and all(w in s for w, s in zip(shrunk, SPACE))
    assert shrink_to_budget((16,) * 8, SPACE, synthetic_macs, budget, random.Random(0)) == (16,) * 8


def test_mutation_and_crossover():
    import random
    rng = random.Random(0)
    parent = (64,) * 8
    assert mutate(parent, SPACE, rng, prob=0.0) == parent
    changed = [mutate(parent, SPACE, rng, prob=1.0) for _ in range(20)]
    assert all(all(w in s for w, s in zip(c, SPACE)) for c in changed)
    assert any(c != parent for c in changed)
    a, b = (64,) * 8, (16,) * 8
    children = [crossover(a, b, rng) for _ in range(20)]
    assert all(set(c) <= {16, 64} for c in children) and len(set(children)) > 1


def test_a_nan_score_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        exhaustive_search(((1, 2),), lambda c: float("nan"), lambda c: 0, 10)


def test_holdout_split_of_the_training_set():
    data = torch.utils.data.TensorDataset(torch.arange(200))
    train, held = holdout_split(data, 120, seed=0)
    assert len(held) == 120 and len(train) == 80
    assert set(train.indices).isdisjoint(held.indices)
    assert sorted(train.indices + held.indices) == list(range(200))
    train2, held2 = holdout_split(data, 120, seed=0)
    assert held2.indices == held.indices              # the same split every run (and rank)
    assert holdout_split(data, 120, seed=1)[1].indices != held.indices
    assert held.indices != list(range(120))           # shuffled, not the first items
    assert len(holdout_split(data, 0.1)[1]) == 20
    with pytest.raises(ValueError, match="cannot hold out"):
        holdout_split(data, 200)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        holdout_split(data, 1.5)
