"""course_lib.latent: slerp and the nearest-training-image search."""
import math

import pytest
import torch

from course_lib.latent import (latent_for_seed, lerp, nearest_distance_ratio, nearest_images,
                               slerp, typical_neighbour_distance)


def test_slerp_endpoints_keep_the_vectors():
    z0, z1 = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, -2.0, 1.0])
    assert torch.allclose(slerp(z0, z1, 0.0), z0)
    assert torch.allclose(slerp(z0, z1, 1.0), z1)


@pytest.mark.parametrize("t", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_slerp_of_orthogonal_unit_vectors_uses_cos_and_sin(t):
    out = slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), t)
    want = torch.tensor([math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)])
    assert torch.allclose(out, want, atol=1e-6)


def test_slerp_stays_on_the_sphere_and_lerp_does_not():
    a = math.radians(120)
    u, v = torch.tensor([1.0, 0.0]), torch.tensor([math.cos(a), math.sin(a)])
    assert slerp(u, v, 0.5).norm().item() == pytest.approx(1.0, abs=1e-6)
    assert lerp(u, v, 0.5).norm().item() == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("z1_of", [lambda z: z.clone(), lambda z: 2 * z, lambda z: z + 1e-8,
                                   lambda z: -z])
def test_slerp_parallel_or_opposite_falls_back_to_lerp(z1_of):
    z0 = torch.tensor([1.0, 2.0, 2.0])
    z1 = z1_of(z0)
    out = slerp(z0, z1, 0.3)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, lerp(z0, z1, 0.3), atol=1e-5)


def test_slerp_shapes_and_batches():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    assert slerp(z0, z1, 0.5).shape == (4, 16)
    t = torch.tensor([0.0, 0.3, 0.6, 1.0])
    rows = slerp(z0, z1, t)
    for i in range(4):
        assert torch.allclose(rows[i], slerp(z0[i], z1[i], float(t[i])), atol=1e-6)
    frames = slerp(z0[0], z1[0], torch.linspace(0, 1, 7))   # [D] with t [T] -> [T, D]
    assert frames.shape == (7, 16)
    assert torch.allclose(frames[0], z0[0]) and torch.allclose(frames[-1], z1[0], atol=1e-6)
    assert slerp(z0, z1, 0.5).dtype == torch.float32
    with pytest.raises(ValueError, match="same shape"):
        slerp(z0, z1[:2], 0.5)


def test_slerp_leaves_inputs_alone():
    z0, z1 = torch.randn(3, 8), torch.randn(3, 8)
    a, b = z0.clone(), z1.clone()
    slerp(z0, z1, 0.4)
    assert torch.equal(a, z0) and torch.equal(b, z1)


def test_latent_for_seed_is_reproducible():
    assert torch.equal(latent_for_seed(3, 16), latent_for_seed(3, 16))
    assert not torch.equal(latent_for_seed(3, 16), latent_for_seed(4, 16))


def flat_images(values, size=2):
    v = torch.tensor(values, dtype=torch.float32)
    return v.reshape(-1, 1, 1, 1).expand(len(v), 1, size, size).contiguous()


def test_nearest_images_exact_small_case():
    train = flat_images([0.0, 0.5, -0.5, 1.0])
    idx, dist = nearest_images(flat_images([0.4]), train, k=3)
    assert idx.tolist() == [[1, 0, 3]]
    assert torch.allclose(dist, torch.tensor([[0.2, 0.8, 1.2]], dtype=torch.float64), atol=1e-6)


def test_nearest_images_ties_keep_lower_index_and_shapes():
    train = flat_images([0.5, 0.0, 0.5, 1.0])          # #0 and #2 identical
    idx, dist = nearest_images(flat_images([0.5, 0.9]), train, k=2)
    assert idx.shape == dist.shape == (2, 2)
    assert idx[0].tolist() == [0, 2] and dist[0].tolist() == [0.0, 0.0]
    assert idx[1].tolist() == [3, 0]
    full = nearest_images(flat_images([0.1]), train, k=4)
    assert sorted(full.indices[0].tolist()) == [0, 1, 2, 3]
    assert (full.distances[0, 1:] >= full.distances[0, :-1]).all()


def test_nearest_images_is_l2_not_cosine():
    p = torch.tensor([[0.1, 0.2], [0.2, 0.1]]).reshape(1, 1, 2, 2)
    other = torch.tensor([[0.2, 0.05], [0.05, 0.25]]).reshape(1, 1, 2, 2)
    idx, _ = nearest_images(p, torch.cat([4 * p, other]), k=1)
    assert idx.item() == 1


def test_nearest_images_rejects_bad_arguments():
    train = flat_images([0.0, 1.0])
    with pytest.raises(ValueError, match="k must be"):
        nearest_images(flat_images([0.0]), train, k=3)
    with pytest.raises(ValueError, match="space"):
        nearest_images(flat_images([0.0]), train, k=1, space="cosine")
    with pytest.raises(ValueError, match="one shape"):
        nearest_images(flat_images([0.0], size=3), train, k=1)


def test_nearest_images_in_feature_space_finds_the_copy():
    from course_lib.metrics import RandomConvFeatures

    g = torch.Generator().manual_seed(1)
    train = torch.rand(12, 3, 16, 16, generator=g) * 2 - 1
    queries = (train[[5, 9]] + 0.01 * torch.randn(2, 3, 16, 16, generator=g)).clamp(-1, 1)
    extractor = RandomConvFeatures()
    idx, dist = nearest_images(queries, train, k=2, space="feature", extractor=extractor)
    assert idx[:, 0].tolist() == [5, 9]
    assert (dist[:, 0] < dist[:, 1]).all()
    # precomputed training features give the same answer
    from course_lib.latent import image_features
    again = nearest_images(queries, train, k=2, space="feature", extractor=extractor,
                           train_features=image_features(train, extractor))
    assert torch.equal(again.indices, idx)


def test_typical_distance_and_copy_ratio():
    train = flat_images([0.0, 0.5, 1.0, -1.0])     # nearest-other distances 1, 1, 1, 2 (x2 pixels)
    assert typical_neighbour_distance(train) == pytest.approx(1.0)
    ratio = nearest_distance_ratio(torch.cat([train[:1], flat_images([0.25])]), train)
    assert ratio.tolist() == pytest.approx([0.0, 0.5])
