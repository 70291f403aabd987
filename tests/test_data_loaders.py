"""The loaders: embedded fallbacks (always available here), deterministic CIFAR subsets
with a disjoint held-out split, few-shot, unpaired, get_dataset and the banner."""
from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.data import (DataError, cifar10, few_shot, get_dataset, print_summary,
                             source_banner, status, unpaired, verify)
from course_lib.data import embedded
from course_lib.data.loaders import HELDOUT_PER_CLASS


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One data root for the module, so the embedded arrays are built once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def isolated(root, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(root))


# --- embedded CIFAR track ----------------------------------------------------------------

def test_embedded_cifar_track_is_big_enough_and_in_range(root):
    ds = cifar10(fraction=1.0)
    assert ds.is_embedded
    assert "embedded" in ds.source and "not CIFAR-10" in ds.source
    full = embedded.cifar_track("train", root)
    assert len(full.images) >= 1000
    assert len(ds) >= 1000
    x = ds.tensors()
    assert x.shape == (len(ds), 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.2                      # real pictures, not a flat fill
    first, label = ds[0]
    assert first.shape == (3, 32, 32) and 0 <= label < len(ds.classes)
    assert len(ds.classes) == 10 and set(ds.labels.tolist()) == set(range(10))


def test_embedded_images_differ_from_each_other(root):
    images = embedded.cifar_track("train", root).images.reshape(2000, -1)
    assert len(np.unique(images, axis=0)) == len(images)


def test_cache_is_reused_and_a_damaged_cache_is_rebuilt(root):
    first = embedded.cifar_track("train", root).images
    cache = next((root / "embedded").glob("cifar_track-*.npz"))
    t = time.perf_counter()
    again = embedded.cifar_track("train", root).images
    assert time.perf_counter() - t < 1.0 and np.array_equal(first, again)
    cache.write_bytes(b"not an npz file")
    rebuilt = embedded.cifar_track("train", root).images
    assert np.array_equal(first, rebuilt)     # same recipe, same seed, same images
    assert cache.stat().st_size > 1000        # and written back
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".part")]


def test_same_arguments_give_the_same_subset():
    a = cifar10(fraction=0.1, seed=3)
    b = cifar10(fraction=0.1, seed=3)
    assert np.array_equal(a.indices, b.indices) and torch.equal(a.images, b.images)
    c = cifar10(fraction=0.1, seed=4)
    assert not np.array_equal(a.indices, c.indices)


def test_fraction_sizes_are_per_class_shares_of_the_whole_split():
    full = embedded.cifar_track("train").labels
    per_class = np.bincount(full)                          # 200 per photograph
    for fraction in (0.05, 0.1, 0.25, 0.5):
        ds = cifar10(fraction=fraction)
        assert len(ds) == sum(max(1, round(fraction * n)) for n in per_class)
        assert np.all(np.bincount(ds.labels.numpy()) == round(fraction * per_class[0]))
    held = min(HELDOUT_PER_CLASS, per_class[0] // 10)
    assert len(cifar10(fraction=1.0)) == len(full) - 10 * held   # capped by the reserve


def test_smaller_fraction_is_a_subset_of_a_larger_one():
    small, large = cifar10(fraction=0.1, seed=7), cifar10(fraction=0.3, seed=7)
    assert set(small.indices) <= set(large.indices)


def test_heldout_is_fixed_and_disjoint_from_every_train_subset():
    heldout = cifar10(split="heldout")
    assert heldout.is_embedded and len(heldout) == 10 * min(HELDOUT_PER_CLASS, 200 // 10)
    assert np.array_equal(heldout.indices, cifar10(split="heldout", seed=99).indices)
    held = set(heldout.indices.tolist())
    for fraction in (0.1, 0.5, 1.0):
        for seed in (0, 1, 2):
            train = set(cifar10(fraction=fraction, seed=seed).indices.tolist())
            assert not held & train, (fraction, seed)


def test_classes_filter_and_test_split():
    ds = cifar10(classes=["cat", 0], fraction=0.5)
    assert set(ds.labels.tolist()) == {0, ds.classes.index("cat")}
    test = cifar10(split="test")
    assert len(test) == len(embedded.cifar_track("test").labels)


@pytest.mark.parametrize("kwargs,match", [
    (dict(split="validation"), "split must be"),
    (dict(fraction=0.0), "fraction"),
    (dict(fraction=1.5), "fraction"),
    (dict(classes=["unicorn"]), "unknown class"),
])
def test_bad_arguments_are_data_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        cifar10(**kwargs)


# --- real CIFAR-10 files (a tiny fake in torchvision's format) -------------------------------

@pytest.fixture
def fake_cifar(tmp_path, monkeypatch) -> Path:
    """cifar-10-batches-py with 10 images per class per batch; md5 checks bypassed."""
    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = list(np.repeat(np.arange(10), 10))
        data = rng.integers(0, 256, (100, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer",
                                     "dog", "frog", "horse", "ship", "truck"]}, f)
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    return tmp_path


def test_real_cifar_files_are_used_when_present(fake_cifar):
    ds = cifar10(fraction=0.2, root=fake_cifar)
    assert not ds.is_embedded and ds.source.startswith("CIFAR-10 (real")
    assert len(ds) == 10 * round(0.2 * 50)
    assert ds.classes[3] == "cat"
    held = cifar10(split="heldout", root=fake_cifar)
    assert len(held) == 10 * min(HELDOUT_PER_CLASS, 50 // 10)
    assert not set(held.indices) & set(cifar10(fraction=1.0, root=fake_cifar).indices)
    assert len(cifar10(split="test", root=fake_cifar)) == 100
    html = source_banner(ds)
    assert "Real data" in html and "CIFAR-10 (real" in html


def test_cifar_copied_by_hand_is_present_but_unverified_until_checked(fake_cifar):
    st = status("cifar10", root=fake_cifar)
    assert st["present"] and not st["verified"] and "verify" in st["check"]
    with pytest.raises(DataError, match="md5"):   # fake batches: torchvision's md5s differ
        verify("cifar10", root=fake_cifar)
    assert not status("cifar10", root=fake_cifar)["verified"]


def test_damaged_real_cifar_is_an_error_not_a_silent_fallback(fake_cifar, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: False)
    with pytest.raises(DataError, match="damaged.*--force"):
        cifar10(root=fake_cifar)


# --- few-shot ----------------------------------------------------------------------------------

def test_embedded_few_shot_is_100_faces():
    ds = few_shot("100-shot-obama", size=64)
    assert ds.is_embedded and len(ds) == 100
    assert "embedded" in ds.source and "LFW" in ds.source
    x = ds.tensors()
    assert x.shape == (100, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 1])      # grayscale faces, three equal channels
    assert len({tuple(img.flatten()[:50].tolist()) for img in ds.images}) == 100


def test_few_shot_faces_are_the_face_half_of_lfw_subset():
    import skimage.data

    lfw = np.asarray(skimage.data.lfw_subset())
    faces = embedded.lfw_faces(25)[:, 0].astype(np.float64) / 255
    first = np.abs(faces - lfw[:100]).mean()
    second = np.abs(faces - lfw[100:]).mean()
    assert first < 0.01 < second


def test_few_shot_real_folder_wins_when_present(root):
    folder = root / "100-shot-panda"
    folder.mkdir()
    for i in range(5):
        Image.new("RGB", (300, 256), (i * 40, 100, 100)).save(folder / f"{i}.jpg")
    ds = few_shot("100-shot-panda", size=32)
    assert not ds.is_embedded and len(ds) == 5 and "real" in ds.source
    assert "Real data" in source_banner(ds)


def test_unknown_few_shot_name():
    with pytest.raises(DataError, match="100-shot-obama"):
        few_shot("100-shot-unicorn")


# --- unpaired ----------------------------------------------------------------------------------

def test_embedded_unpaired_domains_are_clearly_different():
    data = unpaired("horse2zebra", "train", size=32)
    assert data.is_embedded and "embedded" in data.source
    a, b = data.domain_a.images, data.domain_b.images
    assert len(a) >= 100 and len(b) >= 100
    # B is a four-colour poster style: few distinct colours per image; A is a photo.
    colours = lambda img: len(np.unique(img.reshape(3, -1).T.numpy(), axis=0))
    assert max(colours(img) for img in b[:50]) <= 4
    assert np.median([colours(img) for img in a[:50]]) > 100
    # And their statistics differ markedly: posters are twice as saturated (max - min
    # over channels), and their red channel spreads much wider.
    saturation = lambda x: (x.float().amax(1) - x.float().amin(1)).mean()
    assert saturation(b) > 1.5 * saturation(a)
    assert b[:, 0].float().std() > a[:, 0].float().std() + 30


def test_unpaired_items_are_deterministic_and_unaligned():
    data = unpaired(size=32, seed=5)
    a0, b0 = data[3]
    a1, b1 = data[3]
    assert torch.equal(a0, a1) and torch.equal(b0, b1)
    assert a0.shape == b0.shape == (3, 32, 32)
    assert a0.min() >= -1 and b0.max() <= 1
    picks = [data.b_index(i) for i in range(50)]
    assert picks != list(range(50)) and len(set(picks)) > 25      # not paired by index
    assert picks == [unpaired(size=32, seed=5).b_index(i) for i in range(50)]
    assert picks != [unpaired(size=32, seed=6).b_index(i) for i in range(50)]
    assert len(unpaired(split="test", size=32)) < len(data)


def test_unpaired_bad_arguments():
    with pytest.raises(DataError):
        unpaired("apple2orange")
    with pytest.raises(DataError):
        unpaired(split="heldout")


# --- get_dataset and the banner ---------------------------------------------------------------

def test_get_dataset_routes_names_and_folders(tmp_path):
    ds = get_dataset("cifar10", size=32, fraction=0.1)
    assert ds.is_embedded and len(ds) == 200
    big = get_dataset("cifar10", size=64, fraction=0.1)
    assert big[0][0].shape == (3, 64, 64) and big[0][0].abs().max() <= 1
    faces = get_dataset("100-shot-grumpy_cat", size=32, fraction=0.5, seed=1)
    assert len(faces) == 50 and faces[0][0].shape == (3, 32, 32)
    for i in range(4):
        Image.new("RGB", (50, 40), (i * 60, 0, 0)).save(tmp_path / f"{i}.png")
    own = get_dataset(str(tmp_path), size=16)
    assert len(own) == 4 and not own.is_embedded
    with pytest.raises(DataError) as err:
        get_dataset("cifar100")
    assert "cifar10" in str(err.value) and "100-shot-obama" in str(err.value)


def test_banner_and_summary_say_embedded_and_how_to_fix(capsys):
    ds = cifar10(fraction=0.1)
    html = source_banner(ds)
    assert "Embedded fallback" in html and "get_data.py cifar10" in html
    assert "#f9a825" in html                      # amber
    print_summary(ds)
    out = capsys.readouterr().out
    assert "EMBEDDED" in out and "get_data.py cifar10" in out and "[-1, 1]" in out
    print_summary(unpaired(size=32))
    assert "B images" in capsys.readouterr().out
    assert "get_data.py horse2zebra" in source_banner(unpaired(size=32))
