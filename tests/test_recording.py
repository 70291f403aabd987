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


def test_trend_holds_only_when_every_step_says_so():
    # notebook 02's old reading: 20% (0.17) beat 100% (0.19), yet "FD rises as data shrinks"
    t = R.trend([("100%", [0.19, 0.20, 0.18]), ("20%", [0.17, 0.16, 0.165]), ("10%", [0.45, 0.5, 0.4])])
    assert t.words == ("better", "worse") and not t.holds("worse")
    assert "100% -> 20%: better" in str(t) and "20% -> 10%: worse" in str(t)
    rising = R.trend([("100%", [0.1, 0.11]), ("20%", [0.2, 0.21]), ("10%", [0.4, 0.5])])
    assert rising.holds("worse")
    assert R.trend([("a", [0.1]), ("b", [0.2])]).words == ("inconclusive",)   # one seed each
    assert not R.trend([("a", [0.1, 0.2])]).holds("worse")                    # nothing compared
    assert len(R.trend([("a", [0.1, 0.2])])) == 0 and len(t) == 2


def tiny_recording(partial=False) -> R.Recording:
    def run(augment, seed, fd):
        return {"key": f"{augment}-s{seed}", "fraction": 0.1, "augment": augment, "seed": seed,
                "history": {"eval_step": [1, 2, 3], "fd": fd}, "final": {"fd": fd[-1]}}
    runs = [run("none", 0, [0.5, 0.22, 0.50]), run("none", 1, [0.6, 0.30, 0.49]),
            run("none", 2, [0.4, 0.23, 0.38]), run("diffaugment", 0, [0.7, 0.33, 0.33]),
            run("diffaugment", 1, [0.8, 0.27, 0.27]), run("diffaugment", 2, [0.9, 0.30, 0.32])]
    meta = {"missing": [{"fraction": 0.2, "augment": "none", "seed": 0, "key": "x"}]} if partial else {}
    return R.Recording("cifar", ("fraction", "augment"), "class", "FD", "test", runs, {}, meta)


def test_final_and_best_over_seeds_can_disagree():
    rec = tiny_recording()
    assert rec.figures(0.1, "none", which="best") == [0.22, 0.30, 0.23]
    assert rec.bests(0.1, "diffaugment") == [0.33, 0.27, 0.30]
    assert rec.summary(0.1, "none", which="best").mean == pytest.approx(0.25)
    assert rec.compare((0.1, "none"), (0.1, "diffaugment")).word == "better"            # final
    assert rec.compare((0.1, "none"), (0.1, "diffaugment"), which="best").word == "inconclusive"
    with pytest.raises(ValueError, match="which"):
        rec.figures(0.1, "none", which="mean")


def test_a_partial_recording_lists_its_missing_runs(tmp_path):
    assert tiny_recording(partial=True).missing[0]["fraction"] == 0.2
    assert tiny_recording().missing == []

    class Result:
        n_train, seconds = 4, 1.0
        history = {"step": [1], "eval_step": [1], "fd": [0.5]}

        def sample(self, n):
            import torch
            return torch.zeros(n, 3, 4, 4)

    def train(fraction, augment, seed):
        if seed == 1:
            raise R.NotRecorded("not cached")
        return Result()

    plan = [{"fraction": 0.1, "augment": "none", "seed": s} for s in (0, 1)]
    rec = R.record_runs("monitor", plan, train, preset="ci", feature_extractor="FD",
                        data_source="test", out_dir=tmp_path, n_samples=2)
    assert [r["seed"] for r in rec.runs] == [0]
    assert rec.missing == [{"fraction": 0.1, "augment": "none", "seed": 1,
                            "key": "dcgan-cifar-10pct-none-s1"}]
    assert set(rec.samples) == {"dcgan-cifar-10pct-none-s0"}


def test_best_of_a_higher_is_better_figure_is_its_highest():
    # coverage or recall: compare(which="best", lower_is_better=False) must take each
    # seed's highest value, not its lowest.
    def run(way, seed, coverage):
        return {"key": f"{way}-s{seed}", "way": way, "seed": seed,
                "history": {"eval_step": [1, 2, 3], "coverage": coverage},
                "final": {"coverage": coverage[-1]}}
    runs = [run("a", 0, [0.1, 0.50, 0.2]), run("a", 1, [0.1, 0.55, 0.2]),
            run("b", 0, [0.3, 0.40, 0.3]), run("b", 1, [0.3, 0.45, 0.3])]
    rec = R.Recording("fewshot", ("way",), "class", "FD", "test", runs, {}, {})
    assert rec.figures("a", key="coverage", which="best", lower_is_better=False) == [0.50, 0.55]
    v = rec.compare(("a",), ("b",), key="coverage", lower_is_better=False, which="best")
    assert (v.word, v.baseline.high, v.candidate.high) == ("worse", 0.55, 0.45)


def test_a_recording_grows_by_its_missing_runs_only(tmp_path):
    """``keep``: runs an earlier recording holds are kept as they are (not trained again);
    only the others are trained."""
    import torch

    trained = []

    class Result:
        n_train, seconds = 4, 1.0

        def __init__(self, fd):
            self.history = {"step": [1], "eval_step": [1], "fd": [fd]}

        def sample(self, n):
            return torch.full((n, 3, 4, 4), 0.5)

    def train(fraction, augment, seed):
        trained.append(seed)
        return Result(0.1 * (seed + 1))

    def cells(seeds):
        return [{"fraction": 0.1, "augment": "none", "seed": s} for s in seeds]

    first = R.record_runs("monitor", cells([0]), train, preset="ci", feature_extractor="FD",
                          data_source="test", out_dir=tmp_path / "a", n_samples=2)
    trained.clear()
    grown = R.record_runs("monitor", cells([0, 1, 2]), train, preset="ci", feature_extractor="FD",
                          data_source="test", out_dir=tmp_path / "b", n_samples=2, keep=first)
    assert trained == [1, 2]
    assert grown.runs[0] == first.runs[0] and grown.meta["kept"] == ["dcgan-cifar-10pct-none-s0"]
    assert (grown.samples["dcgan-cifar-10pct-none-s0"] == first.samples["dcgan-cifar-10pct-none-s0"]).all()
    assert [r["final"]["fd"] for r in grown.runs] == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="record it whole"):
        R.record_runs("monitor", cells([0]), train, preset="ci", feature_extractor="other",
                      data_source="test", out_dir=tmp_path / "c", keep=first)


def test_fp16_round_trip_halves_floats_only():
    import torch

    payload = {"models": {"G": {"w": torch.randn(3, 3), "n": torch.tensor(7)}},
               "history": {"fd": [0.5]}, "spec": ("a", 1)}
    half = R.to_fp16(payload)
    assert half["models"]["G"]["w"].dtype == torch.float16
    assert half["models"]["G"]["n"].dtype == torch.int64 and half["history"] == {"fd": [0.5]}
    back = R.to_fp32(half)
    assert back["models"]["G"]["w"].dtype == torch.float32
    assert torch.allclose(back["models"]["G"]["w"], payload["models"]["G"]["w"], atol=2e-3)
    assert not torch.equal(back["models"]["G"]["w"], payload["models"]["G"]["w"])
    assert back["spec"] == ("a", 1)


def test_figures_at_an_evaluation_step():
    rec = R.Recording("fewshot", ("way",), "ci", "FD", "test", [
        {"key": f"a-s{s}", "way": "a", "seed": s,
         "history": {"eval_step": [4, 8], "fd": [0.1 * s, 1.0 + s]}, "final": {"fd": 1.0 + s}}
        for s in (0, 1)], {})
    assert rec.at_step("a", key="fd", step=4) == pytest.approx([0.0, 0.1])
    assert rec.at_step("a", key="fd", step=8) == rec.finals("a", key="fd")
    with pytest.raises(KeyError, match="not evaluated at step 5"):
        rec.at_step("a", key="fd", step=5)
