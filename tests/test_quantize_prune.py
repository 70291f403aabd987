"""Simulated quantization and pruning: hand-worked values, the invariants of each
quantizer for 1-8 bits, and whole-model compression (original untouched, widths, zeros)."""
import pytest
import torch
from torch import nn

from course_lib.compress import (channel_prune, count_macs, kmeans_quantize, linear_quantize,
                                 magnitude_prune, magnitude_prune_model, prune_then_quantize,
                                 quantize_model, size_report)
from course_lib.compress.quantize import fake_quantize, quantization_params
from course_lib.models import DCGANGenerator, ResnetGenerator

# ---------------------------------------------------------------- linear quantization by hand


def test_quantize_per_tensor_by_hand():
    # 3 bits -> levels -3..3; max|w| = 1.5 so the step is 0.5
    w = torch.tensor([-1.5, -0.7, 0.2, 0.3, 1.2])
    assert torch.equal(linear_quantize(w, 3), torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.0]))


def test_quantize_per_channel_by_hand():
    w = torch.tensor([[1.0, 0.4], [-4.0, 2.2]])
    # row 0: step 1/3 -> 0.4 rounds to 1 step; row 1: step 4/3 -> 2.2 rounds to 2 steps
    expected = torch.tensor([[1.0, 1 / 3], [-4.0, 8 / 3]])
    assert torch.allclose(linear_quantize(w, 3, per_channel=True), expected)
    # per tensor the step is 4/3 everywhere: 1 -> 4/3, 0.4 -> 0
    assert torch.allclose(linear_quantize(w, 3), torch.tensor([[4 / 3, 0.0], [-4.0, 8 / 3]]))
    # channel_dim=1 (a ConvTranspose2d weight's output channels): columns get their own step
    cols = linear_quantize(w, 3, per_channel=True, channel_dim=1)
    # column 0 (1, -4): step 4/3; column 1 (0.4, 2.2): step 2.2/3, and 0.4 rounds up to 1 step
    assert torch.allclose(cols, torch.tensor([[4 / 3, 2.2 / 3], [-4.0, 2.2]]))


def test_one_bit_is_sign_times_mean_abs():
    w = torch.tensor([-2.0, -1.0, 0.0, 1.0, 4.0])           # mean |w| = 8/5
    assert torch.allclose(linear_quantize(w, 1), torch.tensor([-1.6, -1.6, 1.6, 1.6, 1.6]))
    rows = linear_quantize(torch.tensor([[1.0, -3.0], [0.5, 0.5]]), 1, per_channel=True)
    assert torch.allclose(rows, torch.tensor([[2.0, -2.0], [0.5, 0.5]]))


def test_asymmetric_by_hand():
    # 2 bits: integers 0..3. Range [-1, 2] -> step 1, zero point 1.
    w = torch.tensor([-1.0, 0.2, 0.6, 2.0])
    assert torch.equal(linear_quantize(w, 2, symmetric=False), torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    # all positive: the range is widened to include 0 (zero point 0), step 3/3 = 1
    w = torch.tensor([0.4, 1.6, 3.0])
    assert torch.equal(linear_quantize(w, 2, symmetric=False), torch.tensor([0.0, 2.0, 3.0]))


def test_clamping_outside_the_calibrated_range():
    scale, zero_point, q_min, q_max = quantization_params(-1.0, 1.0, 8, symmetric=False)
    x = torch.tensor([-5.0, 0.0, 0.5, 5.0])
    q = fake_quantize(x, scale, zero_point, q_min, q_max)
    half_step = float(scale) / 2 * 1.001     # the zero point's rounding moves the ends <= s/2
    assert q[0] == pytest.approx(-1.0, abs=half_step) and q[3] == pytest.approx(1.0, abs=half_step)
    assert q[1] == 0 and abs(q[2] - 0.5) <= half_step


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("channel_dim", [None, 0, 1])
def test_linear_quantize_invariants(bits, symmetric, channel_dim):
    torch.manual_seed(bits)
    w = torch.randn(6, 5, 3, 3) * torch.rand(6, 1, 1, 1) * 3 + 0.3 * symmetric
    per_channel = channel_dim is not None
    q = linear_quantize(w, bits, per_channel, symmetric=symmetric, channel_dim=channel_dim or 0)
    assert q.shape == w.shape and q.dtype == w.dtype
    assert torch.allclose(linear_quantize(q, bits, per_channel, symmetric=symmetric,
                                          channel_dim=channel_dim or 0), q, atol=1e-6)
    slices = [q.select(channel_dim, i) for i in range(w.shape[channel_dim])] if per_channel else [q]
    wslices = [w.select(channel_dim, i) for i in range(w.shape[channel_dim])] if per_channel else [w]
    levels = 2 ** bits - 1 if (symmetric and bits > 1) else 2 ** bits
    for qs, ws in zip(slices, wslices):
        assert len(torch.unique(qs)) <= levels
        if bits == 1 and symmetric:
            scale = ws.abs().mean()          # levels +-scale: the step between them is 2*scale
            inside = ws.abs() <= scale
            assert ((qs - ws).abs()[inside] <= scale + 1e-6).all()
            continue
        lo, hi = min(ws.min(), 0), max(ws.max(), 0)
        step = (2 * max(-lo, hi) / (2 ** bits - 2)) if symmetric else (hi - lo) / (2 ** bits - 1)
        assert (qs - ws).abs().max() <= step / 2 + 1e-5        # all values are inside the range
    if not (bits == 1 and symmetric):   # zero is always exact (pruned weights stay zero)
        z = w.clone()
        z[0, 0, 0, 0] = 0
        assert linear_quantize(z, bits, per_channel, symmetric=symmetric)[0, 0, 0, 0] == 0


def test_quantize_edge_cases():
    assert torch.equal(linear_quantize(torch.zeros(3, 2), 4, per_channel=True), torch.zeros(3, 2))
    assert torch.equal(linear_quantize(torch.zeros(3), 4, symmetric=False), torch.zeros(3))
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ValueError, match="bits"):
            linear_quantize(torch.ones(3), bad)
    with pytest.raises(ValueError, match="float"):
        linear_quantize(torch.ones(3, dtype=torch.int64), 4)


# ---------------------------------------------------------------- k-means


def test_kmeans_quantize():
    # four clusters, 2 bits: the codebook finds the four centres
    w = torch.tensor([-3.0, -3.0, -1.0, -1.0, 0.5, 0.5, 2.0, 2.0])
    assert torch.equal(kmeans_quantize(w, 2), w)
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    for bits in (1, 2, 3, 4):
        q = kmeans_quantize(w, bits)
        assert q.shape == w.shape and len(torch.unique(q)) <= 2 ** bits
        # a fitted codebook beats 2**bits evenly spaced levels on Gaussian weights
        # (at 1 bit both are about +-mean|w|)
        linear = linear_quantize(w, bits, symmetric=False) if bits > 1 else linear_quantize(w, 1)
        assert ((q - w) ** 2).mean() <= ((linear - w) ** 2).mean() * (1.01 if bits == 1 else 1)
    qc = kmeans_quantize(w, 2, per_channel=True)
    assert all(len(torch.unique(qc[i])) <= 4 for i in range(16))
    assert torch.equal(kmeans_quantize(w, 3), kmeans_quantize(w, 3))     # deterministic


# ---------------------------------------------------------------- whole models


def small_dcgan():
    torch.manual_seed(0)
    g = DCGANGenerator(z_dim=16, ngf=8, image_size=32)
    g.train()
    g(torch.randn(32, 16))      # non-trivial BatchNorm statistics
    return g.eval()


def weight_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("method", ["per_tensor", "per_channel", "kmeans"])
def test_quantize_model_weights_and_activations(method):
    g = small_dcgan()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    z = [torch.randn(8, 16) for _ in range(3)]
    q = quantize_model(g, 3, 4, method, z)
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())   # untouched
    for layer in weight_layers(q):
        if method == "per_channel":   # ConvTranspose2d: output channels are dim 1
            assert all(len(torch.unique(layer.weight[:, c])) <= 7 for c in range(layer.weight.shape[1]))
        else:
            assert len(torch.unique(layer.weight)) <= 8
    # every conv's input now takes at most 2**4 values
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(i[0])) for m in weight_layers(q)]
    q(z[0])
    for h in hooks:
        h.remove()
    assert len(seen) == 4 and all(len(torch.unique(x)) <= 16 for x in seen)
    assert 0 < (q(z[0]) - g(z[0])).abs().mean() < 0.5


def test_quantize_model_float_passthrough_and_errors():
    g = small_dcgan()
    z = torch.randn(4, 16)
    assert torch.equal(quantize_model(g, 32, None)(z), g(z))
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(g, 8, 8)
    with pytest.raises(ValueError, match="method"):
        quantize_model(g, 8, method="magic")


# ---------------------------------------------------------------- magnitude pruning


def test_prune_by_hand():
    w = torch.tensor([3.0, -1.0, 0.5, -2.0, 4.0, 0.1])
    pruned = magnitude_prune(w, 0.5)
    assert torch.equal(pruned, torch.tensor([3.0, 0.0, 0.0, -2.0, 4.0, 0.0]))
    assert torch.equal(w, torch.tensor([3.0, -1.0, 0.5, -2.0, 4.0, 0.1]))  # input untouched


def test_prune_edges_and_ties():
    w = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    pruned = magnitude_prune(w, 0.5)
    assert pruned.shape == (2, 2)
    assert int((pruned == 0).sum()) == 2                  # exactly half, despite the ties
    assert torch.equal(pruned, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert torch.equal(magnitude_prune(w, 0.0), w)
    assert torch.equal(magnitude_prune(w, 1.0), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(w, 1.5)


def test_magnitude_prune_model_layer_and_global():
    g = small_dcgan()
    layer = magnitude_prune_model(g, 0.6)
    for m in weight_layers(layer):
        assert int((m.weight == 0).sum()) == round(0.6 * m.weight.numel())
    glob = magnitude_prune_model(g, 0.6, scope="global")
    weights = torch.cat([m.weight.flatten() for m in weight_layers(glob)])
    assert int((weights == 0).sum()) == round(0.6 * weights.numel())
    kept = torch.cat([m.weight.flatten() for m in weight_layers(g)]).abs()
    threshold = kept.sort().values[round(0.6 * kept.numel())]
    assert (weights[weights != 0].abs() >= threshold).all()    # only the largest survive
    assert all((m.weight != 0).all() for m in weight_layers(g))  # original untouched
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune_model(g, 0.5, scope="row")


def test_prune_then_quantize_keeps_zeros():
    g = small_dcgan()
    for method in ("per_channel", "kmeans"):
        pq = prune_then_quantize(g, 0.7, 3, method)
        for m in weight_layers(pq):
            assert int((m.weight == 0).sum()) >= round(0.7 * m.weight.numel())
            if method == "kmeans":      # <= 2**3 codes, plus the pruned zeros
                assert len(torch.unique(m.weight)) <= 9
            else:                       # <= 2**3 - 1 codes per output channel (dim 1 here)
                assert all(len(torch.unique(m.weight[:, c])) <= 7 for c in range(m.weight.shape[1]))
    report = size_report(prune_then_quantize(g, 0.7, 4, "per_tensor"), bits=4)
    assert report["sparsity"] > 0.65 and report["bytes_dense"] == report["params"] / 2


# ---------------------------------------------------------------- channel pruning


def test_channel_prune_dcgan_shrinks_and_keeps_io():
    g = small_dcgan()
    z = torch.randn(4, 16)
    p = channel_prune(g, 0.5, z)
    assert [m.out_channels for m in weight_layers(p)] == [16, 8, 4, 3]   # 32, 16, 8 halved
    assert p(z).shape == g(z).shape
    assert count_macs(g, (1, 16)) / count_macs(p, (1, 16)) > 2.9   # z and RGB are not pruned
    assert [m.out_channels for m in weight_layers(g)] == [32, 16, 8, 3]  # original untouched


def test_channel_prune_removes_the_smallest_channels_exactly():
    # Make half of every DCGAN layer's channels dead (zero filter, BN scale and shift and
    # running mean zero, zero weights reading them): pruning 50% must remove exactly those,
    # and the output must not change at all.
    g = small_dcgan()
    convs = weight_layers(g)
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for conv, bn, nxt in zip(convs, bns, convs[1:]):
            dead = torch.arange(conv.out_channels) % 2 == 1
            conv.weight[:, dead] = 0            # ConvTranspose2d weight: [in, out, kh, kw]
            bn.weight[dead] = 0
            bn.bias[dead] = 0
            bn.running_mean[dead] = 0
            nxt.weight[dead] = 0
    z = torch.randn(4, 16)
    p = channel_prune(g, 0.5, z)
    assert torch.allclose(p(z), g(z), atol=1e-6)


def test_channel_prune_resnet_trunk_is_pruned_consistently():
    torch.manual_seed(0)
    c = ResnetGenerator(ngf=8, n_blocks=3).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    # dead channels everywhere, trunk included (the first two convs' filters, every block's
    # second conv, and all the weights reading those channels): removing them changes nothing
    convs = weight_layers(c)
    with torch.no_grad():
        for conv in convs[:-1]:
            out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
            dead = torch.arange(conv.weight.shape[out_dim]) % 2 == 1
            conv.weight[(slice(None),) * out_dim + (dead,)] = 0
            conv.bias[dead] = 0
        for conv in convs[1:]:
            in_dim = 0 if isinstance(conv, nn.ConvTranspose2d) else 1
            dead = torch.arange(conv.weight.shape[in_dim]) % 2 == 1
            conv.weight[(slice(None),) * in_dim + (dead,)] = 0
    p = channel_prune(c, 0.5, x)
    trunk = {b.conv_block[1].in_channels for b in p.model if hasattr(b, "conv_block")}
    assert trunk == {16}                         # 4 * ngf = 32 halved, the same in every block
    assert torch.allclose(p(x), c(x), atol=1e-5)
    assert count_macs(c, x) / count_macs(p, x) > 3      # the RGB ends stay 3 channels


def test_channel_prune_errors():
    with pytest.raises(ValueError, match="ratio"):
        channel_prune(small_dcgan(), 1.0, torch.randn(2, 16))


# ---------------------------------------------------------------- size report


def test_size_report_by_hand():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 1.0]))
    report = size_report(layer, bits=8)
    assert report["params"] == 10 and report["nonzeros"] == 4
    assert report["sparsity"] == pytest.approx(0.6)
    assert report["bytes_dense"] == 10 and report["bytes_sparse"] == 4
    assert report["state_dict_bytes"] > 40        # 10 float32 values plus the file's framing
