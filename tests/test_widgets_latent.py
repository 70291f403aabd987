"""The latent explorer and the re-run panel, headless: set control values, check state."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib.latent import latent_for_seed, slerp
from course_lib.models import DCGANGenerator
from course_lib.widgets.latent import (ExplorerState, copy_verdict, explorer_view, frame_latent,
                                       latent_explorer, render_frame, render_rows, rerun_panel)


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return DCGANGenerator(z_dim=16, ngf=8, image_size=32).eval()


@pytest.fixture(scope="module")
def train_images():
    g = torch.Generator().manual_seed(2)
    return torch.rand(10, 3, 32, 32, generator=g) * 2 - 1


def decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_frame_latent_ends_are_the_seeds_latents():
    assert torch.allclose(frame_latent(3, 7, 0.0, 16)[0], latent_for_seed(3, 16))
    assert torch.allclose(frame_latent(3, 7, 1.0, 16)[0], latent_for_seed(7, 16), atol=1e-6)
    mid = frame_latent(3, 7, 0.5, 16)
    assert torch.allclose(mid[0], slerp(latent_for_seed(3, 16), latent_for_seed(7, 16), 0.5))
    lerped = frame_latent(3, 7, 0.5, 16, interpolate=lambda a, b, t: (1 - t) * a + t * b)
    assert not torch.allclose(mid, lerped)


def test_render_frame_keeps_training_mode(G):
    G.train()
    image = render_frame(G, frame_latent(0, 1, 0.5, 16))
    assert G.training and image.shape == (1, 3, 32, 32)
    G.eval()


def test_explorer_view_finds_a_planted_copy(G, train_images):
    # Plant the frame itself into the training set: it must come out nearest, at distance 0.
    frame = render_frame(G, frame_latent(4, 5, 0.25, 16))
    train = torch.cat([train_images, frame])
    rows, state = explorer_view(G, train, 4, 5, 0.25, k=3, spaces=("pixel", "feature"))
    assert rows.shape == (2, 4, 3, 32, 32)
    assert isinstance(state, ExplorerState)
    for space in ("pixel", "feature"):
        assert state.neighbours[space][0] == 10
        assert state.distances[space][0] == pytest.approx(0.0, abs=1e-6)
        assert state.ratio[space] == pytest.approx(0.0, abs=1e-6)
    assert "looks like a copy" in state.caption
    assert torch.equal(rows[0, 1], train[10])
    png, width, height = render_rows(rows)
    assert decode(png).shape[:2] == (height, width)


def test_copy_verdict_words():
    assert "copy" in copy_verdict(0.1)
    assert "not a copy" in copy_verdict(1.3)


def test_explorer_sliders_update_state_and_image(G, train_images):
    explorer = latent_explorer(G, train_images, k=2, spaces=("pixel",))
    first_png, first = explorer.output.value, explorer.state
    assert (first.seed_a, first.seed_b, first.t) == (0, 1, 0.5)
    assert len(first.neighbours["pixel"]) == 2
    explorer.controls["t"].value = 0.0
    assert explorer.state.t == 0.0 and explorer.output.value != first_png
    explorer.controls["seed_a"].value = 5
    assert explorer.state.seed_a == 5
    explorer.controls["seed_b"].value = 9
    assert explorer.state.seed_b == 9
    assert "seed A 5" in explorer.caption.value
    # t = 0 shows seed A's sample whatever seed B is
    rows, _ = explorer_view(G, train_images, 5, 2, 0.0, k=2)
    assert torch.allclose(rows[0, 0], render_frame(G, latent_for_seed(5, 16)[None])[0])


def test_explorer_rejects_bad_k(G, train_images):
    with pytest.raises(ValueError, match="k must be"):
        latent_explorer(G, train_images, k=11)


def test_rerun_panel_runs_the_chosen_way():
    calls = []

    def run(way, seed):
        calls.append((way, seed))
        return torch.zeros(4, 3, 8, 8), {"fd": 1.5, "kid": 0.01}

    panel = rerun_panel(run, ways=("baseline", "diffaugment"), seeds=(0, 1),
                        recorded=lambda way, seed: {"fd": 2.0})
    panel.controls["way"].value = "baseline"
    panel.controls["seed"].value = 1
    assert calls == []                       # nothing trains until the button is pressed
    panel.controls["run"].click()
    assert calls == [("baseline", 1)]
    assert panel.state.figures == {"fd": 1.5, "kid": 0.01} and panel.state.recorded == {"fd": 2.0}
    assert "recorded 2" in panel.state.message
    assert decode(panel.output.value).shape[2] == 3
    assert not panel.controls["run"].disabled
