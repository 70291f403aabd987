"""One pattern for compared runs (course_lib.recording): summaries over seeds, best and final
over training, the verdict helper, and one Recording type for every track (the shipped CIFAR
and few-shot recordings load through it)."""
import pytest

from course_lib import recording as R
from course_lib.experiments import load_recording
from course_lib.fewshot import WAY_LABELS, load_fewshot_recording


def test_summarize_is_mean_sample_sd_and_range():
    s = R.summarize([10.0, 12.0, None, 14.0])
    assert (s.mean, s.std, s.low, s.high, s.n) == (12.0, 2.0, 10.0, 14.0, 3)
    assert R.summarize([5.0]).std == 0.0
    with pytest.raises(ValueError):
        R.summarize([])


def test_best_and_final():
    b = R.best_and_final([100, 200, 300, 400], [0.5, 0.26, 0.3, 0.45])
    assert b == pytest.approx({"best_step": 200, "best": 0.26, "final_step": 400, "final": 0.45,
                               "rise": 0.45 / 0.26 - 1})


@pytest.mark.parametrize("baseline, candidate, lower, word", [
    ([0.45, 0.50, 0.40], [0.30, 0.28, 0.34], True, "better"),       # separate ranges
    ([0.45, 0.50, 0.40], [0.30, 0.28, 0.42], True, "inconclusive"),  # 0.42 inside 0.40-0.50
    ([0.30, 0.28, 0.34], [0.45, 0.50, 0.40], True, "worse"),
    ([0.30, 0.28, 0.34], [0.45, 0.50, 0.40], False, "better"),      # higher is better (coverage)
    ([0.45], [0.30], True, "inconclusive"),                          # one seed has no range
    ([0.40, 0.45], [0.40, 0.30], True, "inconclusive"),              # touching ranges overlap
])
def test_verdict(baseline, candidate, lower, word):
    v = R.verdict(baseline, candidate, lower_is_better=lower)
    assert v.word == word, str(v)
    assert v.baseline.n == len(baseline) and v.candidate.n == len(candidate)


def test_thin_history_keeps_evaluations_whole():
    h = {"step": list(range(1, 101)), "loss_d": list(range(100)), "r_t_batch": [0.0] * 100,
         "eval_step": [50, 100], "fd": [1.0, 0.5]}
    t = R.thin_history(h, every=10)
    assert len(t["step"]) == len(t["loss_d"]) == len(t["r_t_batch"]) == 10
    assert t["fd"] == [1.0, 0.5] and t["eval_step"] == [50, 100]


def test_the_cifar_recording_through_the_one_type():
    rec = load_recording("ci")
    assert rec.track == "cifar" and rec.factors == ("fraction", "augment")
    run = rec.find(0.1, "none", 0)
    assert run is rec.find(0.1, "none", seed=0) and run["augment"] == "none"
    assert rec.mean_final(0.1, "none", "fd") == pytest.approx(
        sum(r["final"]["fd"] for r in rec.select(0.1, "none")) / len(rec.select(0.1, "none")))
    assert rec.summaries("fd")[(0.1, "none")].mean == rec.mean_final(0.1, "none", "fd")
    steps, mean, low, high = rec.curve(0.1, "none", key="fd")
    assert len(steps) == len(mean) and all(lo <= m <= hi for lo, m, hi in zip(low, mean, high))
    assert rec.compare((0.1, "none"), (0.1, "diffaugment")).word in ("better", "worse", "inconclusive")
    with pytest.raises(KeyError, match="fraction=0.5"):
        rec.find(0.5, "none")


@pytest.mark.parametrize("preset", ["ci", "class"])
def test_the_fewshot_recording_through_the_one_type(preset):
    rec = load_fewshot_recording(preset)
    assert rec.track == "fewshot" and rec.factors == ("way",)
    rows = rec.table(keys=("fd", "kid"), labels=WAY_LABELS)
    assert [r["way"] for r in rows] == list(WAY_LABELS)
    for r in rows:
        assert r["label"] == WAY_LABELS[r["way"]] and r["n_seeds"] == len(rec.seeds)
        assert r["fd"] == pytest.approx(sum(r["fd_per_seed"]) / len(r["fd_per_seed"]))
    assert rec.settings["steps"] > 0 and "final" in rec.pretrain
    assert rec.images("pretrained").shape[1] == 3
    assert rec.find("finetune", 0) is rec.find("finetune", seed=0)
