"""Small helpers of course_lib.compress: interleaved latency and hooks for one forward pass."""
import pytest
import torch
from torch import nn

from course_lib.compress.latency import compare_latency
from course_lib.compress.tracing import forward_with_hooks


def test_compare_latency_reports_medians_for_every_model():
    calls = []
    models = {"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}
    threads = torch.get_num_threads()
    result = compare_latency(models, torch.zeros(1), repeats=3, warmup=1, threads=1)
    assert calls == ["a", "b"] * 4                      # interleaved, warm-up included
    assert set(result) == {"a", "b", "load_average"}
    assert all(result[k]["ms"] >= 0 and result[k]["cpu_ms"] >= 0 for k in "ab")
    assert len(result["load_average"]) == 2
    assert torch.get_num_threads() == threads            # restored
    with pytest.raises(ValueError, match="repeats"):
        compare_latency(models, torch.zeros(1), repeats=0)


def test_compare_latency_sees_a_slower_model():
    small, big = nn.Linear(64, 64), nn.Linear(64, 4096)
    result = compare_latency({"small": small, "big": big}, torch.randn(256, 64), repeats=5)
    assert result["big"]["ms"] > result["small"]["ms"]


def test_forward_with_hooks_sees_every_layer_and_cleans_up():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    forward_with_hooks(model, torch.zeros(5, 3), [model[0], model[2]],
                       pre_hook=lambda m, i: seen.append(("pre", i[0].shape[1])),
                       hook=lambda m, i, o: seen.append(("post", o.shape[1])))
    assert seen == [("pre", 3), ("post", 4), ("pre", 4), ("post", 2)]
    assert not model[0]._forward_pre_hooks and not model[0]._forward_hooks

    def fail(module, inputs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        forward_with_hooks(model, torch.zeros(5, 3), [model[0]], pre_hook=fail)
    assert not model[0]._forward_pre_hooks                # removed even on error
