"""Presets, the model zoo, atomic writes and the results report."""
import json

import pytest
import torch

import course_lib
from course_lib import presets, report, zoo
from course_lib.fileio import atomic_path, atomic_torch_save, load_checkpoint


def test_an_explicit_preset_wins_and_the_env_var_replaces_only_defaults(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    assert presets.get_preset("class").name == "class"
    assert presets.get_preset().name == "class"
    assert presets.notebook_preset("class").name == "class"
    monkeypatch.setenv(presets.ENV_VAR, "ci")
    assert presets.get_preset("class").name == "class"          # explicit: the env var is ignored
    assert presets.get_preset(presets.PRESETS["full"]).name == "full"
    assert presets.get_preset().name == "ci"                    # nothing chosen: the env var
    assert presets.notebook_preset("class").name == "ci"        # a notebook's default: replaced
    monkeypatch.setenv(presets.ENV_VAR, "huge")
    with pytest.raises(ValueError, match=r"\$COURSE_PRESET"):
        presets.get_preset()


def test_with_overrides_changes_one_track_field():
    cls = presets.PRESETS["class"]
    changed = presets.with_overrides(cls, cifar={"steps": 50}, repeats=1)
    assert changed.cifar.steps == 50 and changed.repeats == 1
    assert changed.cifar.batch_size == cls.cifar.batch_size and changed.fewshot == cls.fewshot
    assert cls.cifar.steps != 50                                  # frozen: the table is untouched


def test_unknown_preset_says_what_to_choose(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="ci, class, full"):
        presets.get_preset("huge")


def test_presets_grow_from_ci_to_full():
    ci, cls, full = (presets.PRESETS[n] for n in ("ci", "class", "full"))
    assert ci.cifar.steps < cls.cifar.steps < full.cifar.steps
    assert ci.cifar.compare_steps < cls.cifar.compare_steps <= full.cifar.compare_steps
    assert all(p.cifar.compare_steps >= p.cifar.steps for p in (ci, cls, full))
    assert ci.cifar.n_eval < cls.cifar.n_eval < full.cifar.n_eval
    for track in ("fewshot", "cyclegan"):
        assert getattr(ci, track).steps < getattr(cls, track).steps < getattr(full, track).steps
    assert cls.cyclegan.ngf <= 24 and full.cyclegan.ngf == 64 and full.cyclegan.image_size == 256


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    dest = tmp_path / "model.pt"
    atomic_torch_save({"w": torch.ones(2)}, dest)
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("crash while writing")
    assert torch.equal(load_checkpoint(dest)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    return tmp_path / "cache"


def _counting_trainer(calls):
    def train(preset, seed):
        calls.append((preset.name, seed))
        return {"w": torch.full((3,), float(seed)), "data_source": "test data"}
    return train


def test_zoo_trains_once_then_loads(cache, capsys):
    calls = []
    first = zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", seed=2, config={"width": 4})
    second = zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", seed=2, config={"width": 4})
    assert calls == [("ci", 2)]
    assert torch.equal(first["w"], second["w"])
    meta = json.loads((cache / "toy" / "ci-seed2.json").read_text())
    assert meta["data_source"] == "test data" and meta["library_version"] == course_lib.__version__
    assert meta["preset"] == "ci" and meta["seed"] == 2


def test_zoo_rebuilds_corrupt_entry_with_a_message(cache, capsys):
    calls = []
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci")
    payload, _ = zoo.entry_paths("toy", "ci", 0)
    payload.write_bytes(b"garbage")
    capsys.readouterr()
    out = zoo.load_or_train("toy", _counting_trainer(calls), preset="ci")
    assert len(calls) == 2 and torch.equal(out["w"], torch.zeros(3))
    assert "corrupt" in capsys.readouterr().out


def test_zoo_rebuilds_stale_entry(cache, capsys, monkeypatch):
    """Stale means another config or recipe; a library version bump alone keeps it."""
    calls = []
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", config={"width": 4})
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", config={"width": 8})
    assert len(calls) == 2
    monkeypatch.setattr(course_lib, "__version__", "9.9.9")
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", config={"width": 8})
    assert len(calls) == 2  # expensive models survive a release
    capsys.readouterr()
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci", config={"width": 8},
                      recipe=2)
    assert len(calls) == 3 and "stale" in capsys.readouterr().out


def test_zoo_entry_without_metadata_is_not_trusted(cache):
    calls = []
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci")
    _, meta = zoo.entry_paths("toy", "ci", 0)
    meta.unlink()  # as if the process died between the two writes
    zoo.load_or_train("toy", _counting_trainer(calls), preset="ci")
    assert len(calls) == 2


def test_report_merges_figures(tmp_path, monkeypatch):
    monkeypatch.setenv(report.ENV_VAR, str(tmp_path))
    report.record("03_diffaugment", fid_none=41.5, preset="ci")
    path = report.record("03_diffaugment", fid_diffaugment=torch.tensor(30.25), data_source="embedded")
    data = json.loads(path.read_text())
    assert data["fid_none"] == 41.5 and data["fid_diffaugment"] == 30.25
    assert data["preset"] == "ci" and data["notebook"] == "03_diffaugment"
    assert "| 03_diffaugment | fid_none | 41.5 |" in report.summary_table(tmp_path)


def test_report_rejects_paths_as_names(tmp_path, monkeypatch):
    monkeypatch.setenv(report.ENV_VAR, str(tmp_path))
    with pytest.raises(ValueError, match="plain name"):
        report.record("../etc/x", a=1)
