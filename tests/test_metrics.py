"""Metrics: Frechet distance vs pytorch-fid, KID, precision/recall, density/coverage,
realism, and the offline feature extractor."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance

from course_lib.metrics import (InceptionFeatures, RandomConvFeatures, default_extractor,
                                density_coverage, extract_features, feature_stats, fid,
                                frechet_distance, kid, mmd2_unbiased, precision_recall,
                                realism_score)

# ---------------------------------------------------------------- Frechet distance


def random_stats(rng, n, d, scale=1.0, shift=0.0):
    return feature_stats(rng.normal(size=(n, d)) * scale + shift)


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # in pytorch-fid
@pytest.mark.parametrize("n, d", [(200, 8), (500, 64), (40, 64), (10, 32)])
def test_frechet_distance_agrees_with_pytorch_fid(n, d):
    # n < d gives singular covariances, as with few samples at 2048 dims
    rng = np.random.default_rng(d + n)
    a, b = random_stats(rng, n, d), random_stats(rng, n, d, scale=1.2, shift=0.3)
    ours = frechet_distance(*a, *b)
    theirs = calculate_frechet_distance(*a, *b)
    assert isinstance(ours, float)
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # in pytorch-fid
def test_frechet_distance_near_singular_covariances():
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 16))                 # data on a 3-D subspace of R^16
    x = rng.normal(size=(300, 3)) @ basis + 1e-6 * rng.normal(size=(300, 16))
    y = rng.normal(size=(300, 3)) @ basis * 1.5 + 1e-6 * rng.normal(size=(300, 16))
    a, b = feature_stats(x), feature_stats(y)
    assert frechet_distance(*a, *b) == pytest.approx(calculate_frechet_distance(*a, *b), rel=1e-6)


def test_frechet_distance_by_hand():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations: 3^2 + (2 - 1)^2
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0)
    # diagonal covariances: the 1-D formula summed over dimensions
    assert frechet_distance([0, 0], np.diag([1.0, 9.0]), [1, 1], np.diag([4.0, 1.0])) \
        == pytest.approx(2 + 1 + 4)


def test_identical_sets_have_zero_distance():
    rng = np.random.default_rng(0)
    stats = random_stats(rng, 100, 20)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_shape_mismatch():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- KID


def test_mmd2_unbiased_matches_the_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) + 1
    k = lambda a, b: (a @ b / 3 + 1) ** 3                # noqa: E731
    m = 4
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m ** 2
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy)


def test_kid_same_vs_shifted_distribution():
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    shifted = rng.normal(size=(300, 16)) + 0.5
    same_kid = kid(real, same, subset_size=100, n_subsets=20)
    shifted_kid = kid(real, shifted, subset_size=100, n_subsets=20)
    assert abs(same_kid.mean) < 0.01 and abs(same_kid.mean) < 3 * same_kid.std
    assert shifted_kid.mean > 0.1 and shifted_kid.mean > 10 * same_kid.std
    mean, std = shifted_kid                               # unpacks as (mean, std)
    # by default the subsets hold all 300 points: every subset is the same set
    assert kid(real, shifted, n_subsets=3).std == pytest.approx(0.0, abs=1e-12)


def test_kid_small_samples_and_seed():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(12, 4)), rng.normal(size=(9, 4))
    a = kid(real, fake)                                   # subsets of 9 = min(12, 9)
    assert np.isfinite(a.mean)
    assert kid(real, fake) == a                           # the seed fixes the subsets
    with pytest.raises(ValueError, match="subset_size"):
        kid(real, fake, subset_size=10)


# ---------------------------------------------------------------- precision/recall etc.

# 1-D points, hand-checkable. Reals 0..4 (k = 1: every real ball has radius 1).
REAL_1D = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
# Three fakes near the reals' lower end, three far away (10, 11, 12). Fake radii (k = 1):
# 0.25 -> 0.875, 1.125 -> 0.875, 2.25 -> 1.125, 10/11/12 -> 1.
FAKE_1D = np.array([[0.25], [1.125], [2.25], [10.0], [11.0], [12.0]])


def test_precision_recall_by_hand():
    # precision: 0.25, 1.125, 2.25 lie in real balls, 10, 11, 12 do not -> 3/6
    # recall: reals 0, 1, 2, 3 lie in fake balls (3 is 0.75 from 2.25 <= 1.125); 4 does not
    assert precision_recall(REAL_1D, FAKE_1D, k=1) == (0.5, 0.8)


def test_density_coverage_by_hand():
    # each near fake is in 2 real balls (e.g. 0.25 in those of 0 and 1), the far ones in none:
    # density = 6 / (k * M) = 6 / 6; coverage: balls of 0, 1, 2, 3 hold a fake, 4's does not
    assert density_coverage(REAL_1D, FAKE_1D, k=1) == (1.0, 0.8)


def test_realism_score_by_hand():
    scores = realism_score(REAL_1D, FAKE_1D, k=1)
    # 0.25: radius 1 / distance 0.25 to the real 0; 10: 1 / 6 to the real 4
    assert scores[0] == 4.0 and scores[3] == pytest.approx(1 / 6)
    assert (scores[:3] >= 1).all() and (scores[3:] < 1).all()
    assert realism_score(REAL_1D, REAL_1D[:1], k=1)[0] == np.inf


def test_balls_are_closed():
    real = np.array([[0.0], [1.0], [2.0]])
    fake = np.array([[3.0], [3.5]])   # 3 lies exactly on the border of 2's ball; 3.5 outside
    assert precision_recall(real, fake, k=1)[0] == 0.5


def test_2d_identical_and_disjoint_sets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert density_coverage(x, x)[1] == 1.0
    far = x + 100
    assert precision_recall(x, far) == (0.0, 0.0)
    assert density_coverage(x, far) == (0.0, 0.0)
    # half the fakes collapsed onto one real point: precision stays high, recall drops
    collapsed = np.repeat(x[:1], 200, axis=0)
    p, r = precision_recall(x, collapsed)
    assert p == 1.0 and r < 0.1


def test_chunking_gives_the_same_answer(monkeypatch):
    import course_lib.metrics.prdc as prdc
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 3)), rng.normal(size=(40, 3)) * 1.3
    full = (precision_recall(real, fake), density_coverage(real, fake),
            realism_score(real, fake))
    monkeypatch.setattr(prdc, "_CHUNK", 7)
    chunked = (precision_recall(real, fake), density_coverage(real, fake),
               realism_score(real, fake))
    assert full[:2] == chunked[:2] and np.array_equal(full[2], chunked[2])


# ---------------------------------------------------------------- feature extractors


def crops(size=32, n_per_image=100, seed=0):
    """Random crops of scikit-image's bundled photographs, as [N, 3, size, size] in [-1, 1]."""
    from skimage import data
    rng = np.random.default_rng(seed)
    out = []
    for img in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()):
        h, w, _ = img.shape
        for y, x in zip(rng.integers(0, h - size, n_per_image), rng.integers(0, w - size, n_per_image)):
            out.append(img[y:y + size, x:x + size])
    return torch.tensor(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1


def blur(x):
    k = torch.tensor([1.0, 4, 6, 4, 1])
    k = (k[:, None] * k[None]) / 256
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k.expand(3, 1, 5, 5), groups=3)


def test_random_conv_features_are_deterministic_and_labelled():
    x = crops(n_per_image=5)
    a, b = RandomConvFeatures(), RandomConvFeatures()
    fa = a(x)
    assert fa.shape == (20, 512) and fa.dtype == np.float64
    assert np.array_equal(fa, b(x))
    assert np.array_equal(extract_features(x, a, batch_size=3), fa)
    assert not np.array_equal(RandomConvFeatures(seed=1)(x), fa)
    assert "not FID" in a.name and "offline" in a.name


def test_random_conv_distance_ranks_degraded_images_worse():
    ex = RandomConvFeatures()
    real, held_out = crops(seed=0), crops(seed=1)
    noise = torch.randn(held_out.shape, generator=torch.Generator().manual_seed(0))
    stats = {name: feature_stats(extract_features(x, ex)) for name, x in [
        ("real", real), ("held_out", held_out), ("blurred", blur(held_out)),
        ("noisy", (held_out + 0.1 * noise).clamp(-1, 1))]}
    d = {name: frechet_distance(*stats["real"], *s) for name, s in stats.items()}
    assert d["real"] == pytest.approx(0.0, abs=1e-9)
    assert d["blurred"] > 1.5 * d["held_out"]
    assert d["noisy"] > 1.5 * d["held_out"]


def test_fid_end_to_end():
    x = crops(n_per_image=10)
    ex = RandomConvFeatures()
    assert fid(x, x, ex) == pytest.approx(0.0, abs=1e-9)
    assert fid(x[:20], x[20:], ex, batch_size=7) > 0


def test_extract_features_checks_its_input():
    ex = RandomConvFeatures()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        extract_features(torch.full((2, 3, 8, 8), 255.0), ex)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        extract_features(torch.zeros(2, 4, 8, 8), ex)
    grey = torch.zeros(2, 1, 8, 8)
    assert np.array_equal(extract_features(grey, ex), ex(grey.expand(-1, 3, -1, -1)))


def test_inception_needs_its_weights_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="get_data.py fid-inception"):
        InceptionFeatures()
    assert isinstance(default_extractor(), RandomConvFeatures)
    assert not any(tmp_path.rglob("*.pth"))


def test_inception_features_wiring_offline(tmp_path, monkeypatch):
    """With the weights file in place, InceptionFeatures gives 2048-d pool3 features.

    The real weights are not on this machine, so pytorch-fid's builder is replaced by
    torchvision's (randomly initialised) InceptionV3, which has the same block layout.
    """
    import pytorch_fid.inception as pf

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    weights.parent.mkdir(parents=True)
    weights.touch()
    monkeypatch.setattr(pf, "fid_inception_v3", lambda: pf._inception_v3(
        num_classes=1008, aux_logits=False, weights=None))
    ex = InceptionFeatures()
    assert ex.name == "FID (Inception, pytorch-fid)"
    feats = ex(torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
