"""Presets, the model zoo, atomic writes and the results report."""
import json

import pytest
import torch

import course_lib
from course_lib import presets, report, zoo
from course_lib.fileio import atomic_path, atomic_torch_save, load_checkpoint


def test_preset_env_var_overrides_the_notebook(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    assert presets.get_preset("class").name == "class"
    assert presets.get_preset().name == "class"
    monkeypatch.setenv(presets.ENV_VAR, "ci")
    assert presets.get_preset("class").name == "ci"


def test_unknown_preset_says_what_to_choose(monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="ci, class, full"):
        presets.get_preset("huge")


def test_presets_grow_from_ci_to_full():
    ci, cls, full = (presets.PRESETS[n] for n in ("ci", "class", "full"))
    assert ci.gan_steps < cls.gan_steps < full.gan_steps
    assert ci.compare_steps < cls.compare_steps <= full.compare_steps
    assert all(p.compare_steps >= p.gan_steps for p in (ci, cls, full))
    assert ci.n_eval < cls.n_eval < full.n_eval


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
