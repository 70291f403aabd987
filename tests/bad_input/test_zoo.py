"""Bad input to the model zoo (issue #11, and #9's "Checkpoints and the zoo").

What the project promises: the zoo deletes only its own entries, never the fetched data
or anything else in its folder; a broken, foreign or unreadable entry is named with its
path and rebuilt (or skipped when listing), never a crash; a cache that cannot be written
is refused before training starts; a library release does not throw away trained models.
Each test reproduces a case that failed before the fix.
"""
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from course_lib import presets, zoo
from course_lib.cli import main as course_main
from course_lib.data import data_root, status


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """A home folder of our own and default roots (no COURSE_* overrides)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CACHE_HOME", "COURSE_CACHE", "COURSE_DATA", presets.ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))
    return home


def trainer(calls, **extra):
    def train(preset, seed):
        calls.append((preset.name, seed))
        return {"w": torch.full((3,), float(seed)), "data_source": "test data", **extra}
    return train


def old_entry(root: Path, name="toy", preset="ci", seed=0, config=None) -> Path:
    """An entry exactly as course_lib 0.2.0 wrote it (library_version, no kind/recipe)."""
    folder = root / name
    folder.mkdir(parents=True)
    torch.save({"w": torch.ones(3)}, folder / f"{preset}-seed{seed}.pt")
    digest = hashlib.sha256((folder / f"{preset}-seed{seed}.pt").read_bytes()).hexdigest()
    (folder / f"{preset}-seed{seed}.json").write_text(json.dumps(dict(
        name=name, preset=preset, seed=seed, data_source="old", library_version="0.2.0",
        config=config or {}, sha256=digest)))
    return folder


def fetched_data(home: Path) -> list[Path]:
    """A fetched dataset where 0.2.0 (and this version) put it by default."""
    root = home / ".cache" / "efficient-gans-workbook" / "data"
    files = [root / "100-shot-obama" / f"{i}.png" for i in range(3)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"a photograph the user fetched by hand")
    return files


# --- separate homes; --clear deletes only zoo entries -------------------------------------

def test_the_three_roots_are_separate_by_default(isolated_home, monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS_DIR")
    cache = isolated_home / ".cache" / "efficient-gans-workbook"
    assert zoo.cache_dir() == cache / "zoo"
    assert data_root() == cache / "data"  # unchanged since 0.2.0: no download moves
    from course_lib.report import results_dir
    roots = [zoo.cache_dir(), data_root(), results_dir()]
    for a in roots:
        for b in roots:
            assert a == b or (a not in b.parents and b not in a.parents)


def test_clear_on_the_default_layout_keeps_the_fetched_data(isolated_home, capsys):
    """Reproduction: `zoo --clear` deleted ~/.cache/efficient-gans-workbook, data and all.
    The layout as 0.2.0 left it: an entry in the old zoo folder, the data inside it."""
    old_root = isolated_home / ".cache" / "efficient-gans-workbook"
    data = fetched_data(isolated_home)
    old_entry(old_root, name="made-by-0.2.0")
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    assert course_main(["zoo", "--clear", "--yes"]) == 0
    assert all(f.read_bytes().startswith(b"a photograph") for f in data)
    assert status("100-shot-obama")["present"]
    assert not list(old_root.rglob("*.pt"))  # both models are gone, the old one too
    out = capsys.readouterr().out
    assert "will delete 2 trained model" in out and "toy" in out and "made-by-0.2.0" in out


def test_clear_in_a_folder_of_user_files_deletes_only_zoo_entries(tmp_path, monkeypatch,
                                                                  capsys):
    """Reproduction: `COURSE_CACHE=. zoo --clear` in a project folder deleted the thesis
    and src/, then crashed on rmtree('.')."""
    project = tmp_path / "project"
    mine = {"thesis.tex": "chapter 1", "src/main.py": "print(1)",
            "src/config.json": '{"name": "src", "seed": 3}', "notes.json": "[1, 2]",
            "toy/README.txt": "my own file, in a folder that shares a name with an entry",
            "toy/ci-seed7.json": '{"name": "toy"}', "broken/x.json": "{not json"}
    for rel, text in mine.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    monkeypatch.chdir(project)
    monkeypatch.setenv("COURSE_CACHE", ".")
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci", seed=1)
    zoo.load_or_train("other", trainer(calls), preset="ci", seed=2)
    assert course_main(["zoo", "--clear", "--yes"]) == 0
    left = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert left == sorted(mine)
    for rel, text in mine.items():
        assert (project / rel).read_text() == text
    assert not (project / "other").exists()  # the entry's own folder, now empty, went too
    assert "deleted 2 trained model(s)" in capsys.readouterr().out


def test_clear_lists_and_asks_first(monkeypatch, capsys):
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    payload, meta = zoo.entry_paths("toy", "ci", 0)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: no answer
    assert course_main(["zoo", "--clear"]) == 1
    assert payload.exists() and meta.exists()
    assert "--yes" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert course_main(["zoo", "--clear"]) == 0
    assert payload.exists() and meta.exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert course_main(["zoo", "--clear"]) == 0
    assert not payload.exists() and not meta.exists()


def test_clear_keeps_the_records_of_fetched_weights(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"weight": torch.ones(2)}, weights)
    zoo.register_fetched("some-pretrained", weights, spec={"task": "cyclegan"}, source="test")
    zoo.load_or_train("toy", trainer([]), preset="ci")
    assert course_main(["zoo", "--clear", "--yes"]) == 0
    assert zoo.fetched_path("some-pretrained") == weights.resolve()
    assert weights.exists()


def test_listing_shows_both_roots(capsys):
    assert course_main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert f"model zoo:   {zoo.cache_dir()}" in out and f"data root:   {data_root()}" in out


# --- the old default layout: entries move, data stays --------------------------------------

def test_entries_of_the_old_layout_move_next_to_the_data_not_into_it(isolated_home, capsys):
    old_root = isolated_home / ".cache" / "efficient-gans-workbook"
    data = fetched_data(isolated_home)
    old_entry(old_root, config={"width": 4})
    calls = []
    out = zoo.load_or_train("toy", trainer(calls), preset="ci", config={"width": 4})
    assert calls == [] and torch.equal(out["w"], torch.ones(3))  # kept, not retrained
    assert (old_root / "zoo" / "toy" / "ci-seed0.pt").is_file()
    assert not (old_root / "toy").exists()
    assert all(f.is_file() for f in data)
    assert "moved 1 cached model" in capsys.readouterr().err


# --- listing never crashes -------------------------------------------------------------------

BROKEN = {
    "missing keys": lambda p: p.write_text('{"name": "toy"}'),
    "a JSON list": lambda p: p.write_text("[1, 2]"),
    "a folder named .json": lambda p: p.mkdir(),
    "corrupt JSON": lambda p: p.write_text('{"name": "toy" "preset": "ci"}'),
    "binary": lambda p: p.write_bytes(b"\xff\xfe\x00\x81" * 10),
    "another entry's": lambda p: p.write_text(json.dumps(
        dict(name="other", preset="ci", seed=5, sha256="0" * 64))),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_listing_skips_a_broken_entry_and_names_it(kind, capsys):
    """Reproduction: the listing crashed (KeyError, TypeError, IsADirectoryError) or said
    "Expecting ',' delimiter" without a file name."""
    zoo.load_or_train("good", trainer([]), preset="ci")
    bad = zoo.cache_dir() / "toy" / "ci-seed0.json"
    bad.parent.mkdir(parents=True)
    BROKEN[kind](bad)
    assert course_main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert str(bad) in out and "good" in out
    assert [m["name"] for m in zoo.entries()] == ["good"]


def test_cache_that_is_a_file_is_reported_not_crashed_on(tmp_path, monkeypatch, capsys):
    cache_file = tmp_path / "cache.txt"
    cache_file.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE", str(cache_file))
    assert course_main(["zoo"]) == 1
    assert course_main(["zoo", "--clear", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "COURSE_CACHE" in err
    assert cache_file.read_text() == "not a folder"


# --- load_or_train: refuse before training, rebuild what is broken ---------------------------

def test_cache_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch):
    """Reproduction: it trained first, then failed with NotADirectoryError."""
    cache_file = tmp_path / "cache.txt"
    cache_file.write_text("x")
    monkeypatch.setenv("COURSE_CACHE", str(cache_file))
    calls = []
    with pytest.raises(ValueError, match="is a file, not a folder.*COURSE_CACHE"):
        zoo.load_or_train("toy", trainer(calls), preset="ci")
    assert calls == []


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot create files in (root ignores permission bits, so
    then use /sys, which refuses even root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder / "cache"
        folder.chmod(0o755)
        return
    folder = Path("/sys/efficient-gans-zoo-test")
    try:
        folder.mkdir()
    except OSError:
        yield folder
        return
    folder.rmdir()
    pytest.skip("no unwritable folder available as root")


def test_unwritable_cache_is_refused_before_training(unwritable, monkeypatch):
    """Reproduction: it trained for minutes first, then failed (PermissionError)."""
    monkeypatch.setenv("COURSE_CACHE", str(unwritable))
    calls = []
    with pytest.raises(ValueError, match="not writable.*COURSE_CACHE"):
        zoo.load_or_train("toy", trainer(calls), preset="ci")
    assert calls == []


def test_a_folder_in_the_way_is_refused_before_training_and_kept():
    """Reproduction: it trained, then failed with IsADirectoryError on a .part file."""
    _, meta = zoo.entry_paths("toy", "ci", 0)
    meta.mkdir(parents=True)
    (meta / "mine.txt").write_text("keep me")
    calls = []
    with pytest.raises(ValueError, match="is a folder") as err:
        zoo.load_or_train("toy", trainer(calls), preset="ci")
    assert calls == [] and str(meta) in str(err.value)
    assert (meta / "mine.txt").read_text() == "keep me"


def test_a_read_only_zoo_still_serves_what_it_holds(monkeypatch):
    """Only training needs to write: a usable entry loads from a zoo that cannot be
    written (a shared, read-only copy), and a missing one is refused before training."""
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    monkeypatch.setattr(zoo, "writable_folder_problem", lambda folder: f"{folder} is read-only")
    assert torch.equal(zoo.load_or_train("toy", trainer(calls), preset="ci")["w"],
                       torch.zeros(3))
    with pytest.raises(ValueError, match="read-only"):
        zoo.load_or_train("toy", trainer(calls), preset="ci", seed=1)
    assert len(calls) == 1


def test_a_failed_training_leaves_no_empty_folder_behind():
    def crash(preset, seed):
        raise RuntimeError("out of memory")
    with pytest.raises(RuntimeError):
        zoo.load_or_train("toy", crash, preset="ci")
    assert not (zoo.cache_dir() / "toy").exists()


@pytest.mark.parametrize("kind", [k for k in BROKEN if k != "a folder named .json"])
def test_broken_metadata_is_named_and_rebuilt(kind, capsys):
    """Reproduction: a JSON list crashed (AttributeError); corrupt JSON and missing keys
    were rebuilt without naming the file."""
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    _, meta = zoo.entry_paths("toy", "ci", 0)
    meta.unlink()
    BROKEN[kind](meta)
    capsys.readouterr()
    out = zoo.load_or_train("toy", trainer(calls), preset="ci")
    assert len(calls) == 2 and torch.equal(out["w"], torch.zeros(3))
    assert str(meta) in capsys.readouterr().out
    assert zoo.load_or_train("toy", trainer(calls), preset="ci") is not None
    assert len(calls) == 2  # the rebuilt entry is good


def test_unsafe_payload_is_rebuilt_and_never_advises_weights_only_false(capsys):
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    payload, meta = zoo.entry_paths("toy", "ci", 0)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))
    torch.save({"w": Evil()}, payload)
    record = json.loads(meta.read_text())
    record["sha256"] = hashlib.sha256(payload.read_bytes()).hexdigest()  # checksum agrees
    meta.write_text(json.dumps(record))
    capsys.readouterr()
    zoo.load_or_train("toy", trainer(calls), preset="ci")
    out = capsys.readouterr().out
    assert len(calls) == 2 and "unreadable" in out
    assert "code ran" not in out and "weights_only=False" not in out


# --- staleness: recipes, not library versions ------------------------------------------------

def test_a_library_release_keeps_trained_models(monkeypatch):
    """Reproduction (#9): a version bump retrained every model."""
    import course_lib
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci", config={"width": 4})
    monkeypatch.setattr(course_lib, "__version__", "99.0.0")
    zoo.load_or_train("toy", trainer(calls), preset="ci", config={"width": 4})
    assert len(calls) == 1


def test_old_entries_count_as_recipe_1(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(zoo.cache_dir()))  # no migration involved
    old_entry(zoo.cache_dir(), config={"steps": 10})
    calls = []
    zoo.load_or_train("toy", trainer(calls), preset="ci", config={"steps": 10}, recipe=1)
    assert calls == []
    zoo.load_or_train("toy", trainer(calls), preset="ci", config={"steps": 10}, recipe=2)
    assert len(calls) == 1 and "recipe 1" in capsys.readouterr().out
    meta = json.loads(zoo.entry_paths("toy", "ci", 0)[1].read_text())
    assert meta["recipe"] == 2 and meta["kind"] == "trained"


def test_metadata_records_recipe_spec_and_task():
    spec = {"task": "dcgan", "models": {"G": {"class": "DCGANGenerator",
                                              "kwargs": {"ngf": (4,)}}}}
    zoo.load_or_train("toy", trainer([], spec=spec, task="dcgan"), preset="ci", recipe=3)
    meta = json.loads(zoo.entry_paths("toy", "ci", 0)[1].read_text())
    assert meta["recipe"] == 3 and meta["task"] == "dcgan"
    assert meta["spec"]["models"]["G"] == {"class": "DCGANGenerator", "kwargs": {"ngf": [4]}}


@pytest.mark.parametrize("bad", [dict(name="../up"), dict(name=""), dict(seed=-1),
                                 dict(seed=True), dict(recipe=0), dict(recipe=1.5)])
def test_bad_keys_are_refused_before_training(bad):
    calls = []
    args = {**dict(name="toy", seed=0, recipe=1), **bad}
    with pytest.raises(ValueError):
        zoo.load_or_train(args.pop("name"), trainer(calls), preset="ci", **args)
    assert calls == []


# --- fetched entries -------------------------------------------------------------------------

def test_fetched_entries_are_found_until_their_file_changes(tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"weight": torch.ones(4)}, weights)
    assert zoo.fetched_path("pretrained-x") is None
    meta = zoo.register_fetched("pretrained-x", weights, spec={"task": "cyclegan"},
                                source="https://example.org/w.pth")
    assert meta["task"] == "cyclegan" and meta["kind"] == "fetched"
    assert zoo.fetched_path("pretrained-x") == weights.resolve()
    assert zoo.fetched_entry("pretrained-x")["spec"] == {"task": "cyclegan"}
    assert zoo.entries() == [] and len(zoo.entries(None)) == 1  # not a trained model
    weights.write_bytes(b"something else")
    assert zoo.fetched_path("pretrained-x") is None
    weights.unlink()
    assert zoo.fetched_path("pretrained-x") is None
    with pytest.raises(ValueError, match="not a file"):
        zoo.register_fetched("pretrained-x", weights)
