"""load_image_folder on a corpus of awkward files, made here (the issue's bad-input table):

| input                                                   | what happens               |
| CMYK, 16-bit, palette, grayscale or alpha modes         | converted                  |
| tiny or huge images                                     | handled                    |
| nested folders                                          | handled                    |
| truncated/corrupt files, non-images, zero-byte files,   | skipped, listed in         |
| symlink loops                                           | .skipped with a reason     |
| an empty folder, or nothing usable left                 | DataError naming the folder|
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.data import DataError, load_image_folder
from course_lib.data import images as images_module

SIZE = 16


def save(path: Path, im: Image.Image, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **kw)
    return path


def jpeg_bytes(size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)  # texture, so the file is long enough to cut
    arr = np.clip(np.array(color) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    # --- usable, in awkward modes -----------------------------------------------------
    save(root / "cmyk.jpg", Image.new("CMYK", (40, 30), (0, 255, 255, 0)))   # pure red ink
    ramp16 = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    save(root / "gray16.png", Image.fromarray(ramp16))
    mid16 = np.full((20, 20), 32768, dtype=np.uint16)
    save(root / "mid16.png", Image.fromarray(mid16))
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)                        # 1 = green
    pal.paste(0, (0, 0, 20, 10))                                            # top half: 0
    save(root / "palette.png", pal, transparency=0)                        # 0 transparent
    save(root / "gray.png", Image.new("L", (30, 30), 128))
    save(root / "gray_alpha.png", Image.new("LA", (30, 30), (0, 0)))        # fully clear
    rgba = Image.new("RGBA", (30, 30), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 30, 15))
    save(root / "rgba.png", rgba)
    save(root / "tiny.png", Image.new("RGB", (1, 1), (10, 200, 10)))
    save(root / "wide.png", Image.new("RGB", (300, 2), (90, 90, 90)))
    big = np.zeros((3000, 4000, 3), dtype=np.uint8)
    big[:, :, 2] = 180
    save(root / "huge.jpg", Image.fromarray(big), quality=70)
    save(root / "nested" / "a" / "b" / "deep.png", Image.new("RGB", (20, 20), "white"))
    save(root / "nested" / "a" / "mid.bmp", Image.new("RGB", (20, 20), "black"))
    save(root / "photo.gif", Image.new("P", (20, 20), 3))
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")                # hidden: ignored
    # --- unusable: each must be skipped with a reason ---------------------------------
    whole = jpeg_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "random.png").write_bytes(np.random.default_rng(1).bytes(3000))
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("these are my holiday photos\n")
    (root / "nested" / "loop").symlink_to(root)                   # back to an ancestor
    (root / "self").symlink_to(root / "self")                     # points to itself
    (root / "dangling.png").symlink_to(root / "gone.png")
    (root / "twin.png").symlink_to(root / "gray.png")             # the same file again
    return root


USABLE = {"cmyk.jpg", "gray16.png", "mid16.png", "palette.png", "gray.png",
          "gray_alpha.png", "rgba.png", "tiny.png", "wide.png", "huge.jpg", "deep.png",
          "mid.bmp", "photo.gif"}
SKIPPED = {"truncated.jpg": "truncated", "random.png": "not an image",
           "empty.png": "empty file", "notes.txt": "not an image", "loop": "symlink loop",
           "self": "symlink loop", "dangling.png": "broken symlink"}


@pytest.fixture(scope="module")
def loaded(corpus):
    return load_image_folder(corpus, SIZE)


def by_name(ds, name: str) -> torch.Tensor:
    i = [p.name for p in ds.paths].index(name)
    return ds[i][0]


def test_every_usable_file_is_loaded(loaded):
    names = {p.name for p in loaded.paths}
    # gray.png is reached twice (once through twin.png): loaded once, whichever name.
    assert names - {"twin.png"} | {"gray.png"} == USABLE
    assert len(loaded) == len(USABLE)


def test_every_unusable_file_is_skipped_with_its_reason(loaded):
    reasons = {Path(p).name: r for p, r in loaded.skipped}
    for name, reason in SKIPPED.items():
        assert name in reasons, f"{name} not listed in .skipped"
        assert reasons[name].startswith(reason), (name, reasons[name])
    duplicate = {"gray.png", "twin.png"} & set(reasons)
    assert len(duplicate) == 1 and reasons[duplicate.pop()].startswith("duplicate")
    assert ".DS_Store" not in reasons


def test_items_are_rgb_squares_in_range(loaded):
    for i in range(len(loaded)):  # iterating never raises
        x, label = loaded[i]
        assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1
        assert isinstance(label, int)


def test_modes_are_converted_to_the_right_colours(loaded):
    red = by_name(loaded, "cmyk.jpg").mean((1, 2))
    assert red[0] > 0.8 and red[1] < -0.6 and red[2] < -0.6          # CMYK ink -> red
    gray16 = by_name(loaded, "mid16.png")
    assert torch.allclose(gray16, torch.zeros_like(gray16), atol=0.02)  # 32768/65535 ~ mid
    ramp = by_name(loaded, "gray16.png")
    assert ramp.max() - ramp.min() > 1.0                              # not clipped flat
    assert torch.equal(ramp[0], ramp[1]) and torch.equal(ramp[1], ramp[2])  # gray->3 ch
    gray = by_name(loaded, "gray.png")
    assert torch.allclose(gray, torch.full_like(gray, 128 / 127.5 - 1), atol=1e-6)
    assert torch.all(by_name(loaded, "gray_alpha.png") == 1.0)       # clear -> white
    rgba = by_name(loaded, "rgba.png")
    assert torch.all(rgba[:, :4] > 0.98)                              # clear top -> white
    assert rgba[2, -4:].mean() > 0.9 and rgba[0, -4:].mean() < -0.9   # opaque bottom blue
    pal = by_name(loaded, "palette.png")
    assert torch.all(pal[:, :4] > 0.98)                               # transparent index
    assert pal[1, -4:].mean() > 0.4 and pal[0, -4:].mean() < -0.9     # green bottom


def test_tiny_and_huge_images_are_handled(loaded):
    tiny = by_name(loaded, "tiny.png")
    assert torch.allclose(tiny[:, 0, 0], torch.tensor([10, 200, 10]) / 127.5 - 1, atol=0.01)
    huge = by_name(loaded, "huge.jpg")
    assert abs(huge[2].mean().item() - (180 / 127.5 - 1)) < 0.05
    assert by_name(loaded, "wide.png").shape == (3, SIZE, SIZE)


def test_summary_is_one_line_with_counts(loaded, corpus):
    summary = loaded.summary()
    assert "\n" not in summary
    m = re.fullmatch(r"loaded (\d+) images from (.+); skipped (\d+) \((.+)\)", summary)
    assert m, summary
    assert int(m[1]) == len(loaded) and m[2] == str(corpus)
    assert int(m[3]) == len(loaded.skipped)
    assert "2 not an image" in m[4] and "2 symlink loop" in m[4] and "1 truncated" in m[4]
    assert loaded.source.startswith("image folder") and not loaded.is_embedded


def test_nested_folders_become_labels(loaded):
    assert "nested" in loaded.classes and "." in loaded.classes
    deep = [p.name for p in loaded.paths].index("deep.png")
    assert loaded.classes[loaded[deep][1]] == "nested"


def test_empty_folder_is_a_data_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"no images in {re.escape(str(tmp_path))}.*empty"):
        load_image_folder(tmp_path / "empty", SIZE)


def test_nothing_usable_says_what_was_found(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.png").write_bytes(b"")
    (folder / "c.jpg").write_bytes(jpeg_bytes()[:300])
    with pytest.raises(DataError) as err:
        load_image_folder(folder, SIZE)
    message = str(err.value)
    assert message.startswith(f"no images in {folder}: found 3 files, none readable")
    assert "a.txt (not an image" in message and "b.png (empty file" in message
    assert "c.jpg (" in message


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nowhere", SIZE)
    (tmp_path / "photo.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "photo.png", SIZE)


def test_pixel_limit_skips_instead_of_exhausting_memory(corpus, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_PIXELS", 1_000_000)
    ds = load_image_folder(corpus, SIZE)
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert reasons["huge.jpg"].startswith("too large")


def test_pil_decompression_bomb_is_a_skip_not_a_crash(tmp_path, monkeypatch):
    save(tmp_path / "bomb.png", Image.new("RGB", (200, 200)))
    save(tmp_path / "fine.png", Image.new("RGB", (10, 10)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # 200x200 > 2x limit -> error
    ds = load_image_folder(tmp_path, SIZE)
    assert [p.name for p in ds.paths] == ["fine.png"]
    assert ds.skipped[0][1].startswith("too large")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_skipped_without_blocking(tmp_path):
    save(tmp_path / "ok.png", Image.new("RGB", (10, 10)))
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would wait forever
    ds = load_image_folder(tmp_path, SIZE)
    assert len(ds) == 1 and ds.skipped[0][1].startswith("not a regular file")
