"""The class jigsaw (course_lib.pool): students' runs are checked one by one, mismatches are
refused with a one-line reason, and the rest become one recording with what is missing."""
import json
import shutil

import pytest
import torch

import course_lib
from course_lib import experiments, pool
from course_lib.cli import main as cli_main
from course_lib.presets import get_preset


@pytest.fixture(scope="module")
def handed_in(tmp_path_factory):
    """Two students' zoos on the ci preset: one trained 10% none seed 0, the other 10%
    DiffAugment seed 0 (each `--monitor --cell`)."""
    root = tmp_path_factory.mktemp("class")
    mp = pytest.MonkeyPatch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for student, (fraction, augment) in (("ana", ("0.1", "none")), ("ben", ("0.1", "diffaugment"))):
            mp.setenv("COURSE_CACHE", str(root / student))
            assert experiments.main(["--monitor", "--preset", "ci", "--cell", fraction, augment, "0"]) == 0
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return root


def entry(root, student, name="dcgan-cifar-10pct-none"):
    return root / student / name / "ci-seed0.json"


def test_pooled_runs_make_a_recording_with_the_missing_listed(handed_in, tmp_path):
    rec, found = pool.pool([handed_in / "ana", handed_in / "ben"], "ci", out_dir=tmp_path / "out")
    assert not found.refused
    assert {(r["fraction"], r["augment"], r["seed"]) for r in rec.runs} == {(0.1, "none", 0),
                                                                          (0.1, "diffaugment", 0)}
    planned = set(experiments.monitor_plan(get_preset("ci")))
    assert {(m["fraction"], m["augment"], m["seed"]) for m in rec.missing} == planned - {
        (0.1, "none", 0), (0.1, "diffaugment", 0)}
    again = experiments.load_monitor_recording("ci", tmp_path / "out")
    assert again.find(0.1, "none", 0)["final"]["r_t"] == rec.find(0.1, "none", 0)["final"]["r_t"]


def tampered(handed_in, tmp_path, change) -> str:
    """A copy of ana's run with ``change(meta, payload_path)`` applied; the pool's reason."""
    src = entry(handed_in, "ana").parent
    dst = tmp_path / "eve" / src.name
    shutil.copytree(src, dst)
    meta_path = dst / "ci-seed0.json"
    meta = json.loads(meta_path.read_text())
    change(meta, meta_path.with_suffix(".pt"))
    meta_path.write_text(json.dumps(meta))
    found = pool.collect([tmp_path / "eve"], "ci")
    assert not found.accepted and len(found.refused) == 1
    reason = found.refused[0][1]
    assert "\n" not in reason
    return reason


@pytest.mark.parametrize("change, says", [
    (lambda m, p: m.update(preset="class"), "preset 'class'"),
    (lambda m, p: m.update(library_version="0.1.0"), "course_lib 0.1.0"),
    (lambda m, p: m.update(recipe=1), "recipe 1"),
    (lambda m, p: m["config"].update(ndf=64), "its ndf is 64"),
    (lambda m, p: m.update(data_source="my own photos"), "same data"),
    (lambda m, p: p.write_bytes(p.read_bytes() + b"x"), "checksum"),
    (lambda m, p: p.unlink(), "payload"),
    (lambda m, p: m.update(name="dcgan-cifar-10pct-none-99steps"), "pools"),
])
def test_a_mismatched_run_is_refused_with_one_line(handed_in, tmp_path, change, says):
    assert says in tampered(handed_in, tmp_path, change)


def test_a_second_run_of_the_same_cell_is_refused(handed_in, tmp_path):
    found = pool.collect([handed_in / "ana", handed_in / "ana"], "ci")
    assert len(found.accepted) == 1 and "second run" in found.refused[0][1]
    assert course_lib.__version__


def test_the_pool_command(handed_in, tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.json").write_text("[1, 2]")
    code = cli_main(["pool", str(handed_in / "ana"), str(tmp_path / "junk"), "--preset", "ci",
                     "--out", str(tmp_path / "pooled")])
    out = capsys.readouterr().out
    assert code == 0 and "pooled 1 run(s)" in out and "refused" in out and "notes.json" in out
    assert cli_main(["pool", str(tmp_path / "nowhere"), "--preset", "ci"]) == 1
