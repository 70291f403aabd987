"""precision/recall, density/coverage and realism: exact values on a hand-made 2-D set,
and agreement with the reference ``prdc`` package (Naeem et al.'s own code)."""
import contextlib
import io

import numpy as np
import pytest
from prdc import compute_prdc

from course_lib.metrics import density_coverage, precision_recall, realism_score

# Reals: the corners of a 2x2 square; with k = 1 every real ball has radius 2.
REAL = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
# Fakes: the centre (in all 4 real balls), a point near (0, 0) (in the balls of (0, 0) and
# (0, 2) only: 2.06 and 2.5 from the other two), and two outliers (in no real ball).
FAKE = np.array([[1.0, 1.0], [0.0, 0.5], [4.0, 4.0], [9.0, 9.0]])


def reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):   # prdc prints the sample counts
        return compute_prdc(real, fake, nearest_k=k)


def test_precision_recall_2d_by_hand():
    # precision: 2 of the 4 fakes lie in a real ball.
    # recall, fake balls (k = 1): centre and (0, 0.5) have radius sqrt(1.25) = 1.118 (each
    # other), (4, 4) has radius 4.243 (to the centre), (9, 9) 7.071 (to (4, 4)).
    # (0, 0) is 0.5 from (0, 0.5): covered; (2, 2) is 2.83 from (4, 4): covered by the
    # outlier's big ball; (2, 0) and (0, 2) are 1.414 from the centre and 4.47 from (4, 4):
    # not covered. So recall = 2/4.
    assert precision_recall(REAL, FAKE, k=1) == (0.5, 0.5)


def test_density_coverage_2d_by_hand():
    # density: (4 + 2 + 0 + 0) balls / (k * M = 4); coverage: every corner's ball holds the centre
    assert density_coverage(REAL, FAKE, k=1) == (1.5, 1.0)


def test_realism_score_2d_by_hand():
    # max over reals of radius 2 / distance: centre 2/sqrt(2); (0, 0.5): 2/0.5 (to (0, 0));
    # (4, 4): 2/sqrt(8) (to (2, 2)); (9, 9): 2/sqrt(98)
    expected = [2 / np.sqrt(2), 4.0, 2 / np.sqrt(8), 2 / np.sqrt(98)]
    assert realism_score(REAL, FAKE, k=1) == pytest.approx(expected, rel=1e-12)


def test_hand_made_set_agrees_with_prdc():
    ref = reference(REAL, FAKE, 1)
    assert (ref["precision"], ref["recall"]) == precision_recall(REAL, FAKE, k=1)
    assert (ref["density"], ref["coverage"]) == density_coverage(REAL, FAKE, k=1)


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_prdc_on_random_features(seed):
    rng = np.random.default_rng(seed)
    n_real, n_fake = rng.integers(50, 300, size=2)
    dim = [2, 16, 64, 512, 8, 128][seed]
    real = rng.normal(size=(n_real, dim))
    # fakes: shifted, rescaled, and a few collapsed onto one point (a mode collapse)
    fake = rng.normal(size=(n_fake, dim)) * rng.uniform(0.5, 1.5) + rng.uniform(0, 0.5)
    fake[:5] = fake[5]
    for k in (3, 5):
        ref = reference(real, fake, k)
        p, r = precision_recall(real, fake, k=k)
        d, c = density_coverage(real, fake, k=k)
        assert abs(p - ref["precision"]) <= 1e-9 and abs(r - ref["recall"]) <= 1e-9
        assert abs(d - ref["density"]) <= 1e-9 and abs(c - ref["coverage"]) <= 1e-9


def test_metrics_see_the_difference_between_quality_and_diversity():
    # 100 fakes collapsed onto 10 of the 400 reals (10 modes): realistic (high precision and
    # density), not diverse (low recall and coverage).
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    fake = np.repeat(real[:10], 10, axis=0) + rng.normal(scale=0.01, size=(100, 8))
    p, r = precision_recall(real, fake)
    d, c = density_coverage(real, fake)
    assert p == 1.0 and d > 0.5
    assert r < 0.1 and c < 0.25
