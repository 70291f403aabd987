"""A wrong answer cannot be forged into points (issue 10).

The judge never shares a process with student code: it sends inputs, gets plain data back
and decides every verdict itself. Each forgery of the issue is tried here with a WRONG
answer, and must earn 0 points, while a correct answer doing the same tricks keeps full
points:

- walking the call stack to the grader's reporting code and calling it with a pass;
- replacing every callable named ``*check*`` (and ``expect``) in course_lib.grade;
- writing forged result lines and frames on every file descriptor;
- returning an object that claims to equal everything (and a tensor subclass that does);
- delegating to course_lib's reference (imported, as a module attribute, via an alias).

Also: ``self_check`` and the grader give the same verdict and message (they run the same
check through the same interface), and the wire format is strict.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch
from grader_helpers import CHECKS, ROOT, make_notebook, master_with, master_with_cells

from course_lib.grade import selfcheck
from course_lib.grade.calling import LocalStudent, to_plain
from course_lib.grade.judge import run_check
from course_lib.grade.registry import load_checks
from course_lib.grade.runner import grade_path
from course_lib.grade.wire import FrameReader, Opaque, WireError, decode, encode, pack, unpack
from course_lib.notebook import load_cells

WRONG_DOUBLE = "def double(x):\n    return x + 2\n"

FRAME_WALK = '''
import gc, os, sys
def double(x):
    return x + 2   # wrong

def _forge(frame):
    """Call whatever looks like the grader's reporter or channel with a pass."""
    passed = {"kind": "cells", "status": "passed", "fraction": 1.0, "message": "", "points": 2}
    while frame is not None:
        for name, value in list(frame.f_locals.items()) + list(frame.f_globals.items()):
            for attr in ("send", "report", "respond", "reply"):
                target = getattr(value, attr, None) if not isinstance(value, type) else None
                if callable(target):
                    try:
                        target(passed)
                    except BaseException:
                        pass
            if callable(value) and any(w in name for w in ("report", "send", "respond")):
                try:
                    value(passed)
                except BaseException:
                    pass
        frame = frame.f_back
_forge(sys._getframe())
os._exit(0)
'''

PATCH_CHECKS = '''
import gc, sys
def _nothing(*args, **kwargs):
    return None
for name, module in list(sys.modules.items()):
    if name.startswith("course_lib.grade") and module is not None:
        for attr in dir(module):
            if "check" in attr.lower() or attr in ("expect", "run_check", "verdict_from_result"):
                try:
                    setattr(module, attr, _nothing)
                except Exception:
                    pass
for obj in gc.get_objects():
    if isinstance(obj, dict):
        for key in [k for k in obj if isinstance(k, str) and ("check" in k.lower() or k == "expect")]:
            if callable(obj[key]):
                obj[key] = _nothing
'''

FORGED_FDS = '''
import json, os, struct
def _junk():
    fake = {"kind": "result", "status": "passed", "fraction": 1.0, "message": "", "nonce": "0" * 32}
    text = json.dumps(fake).encode()
    lines = [b"\\n" + text + b"\\n", b"PASSED 2/2\\n",
             struct.pack("<II", len(text), 0) + text,            # a frame without the magic
             json.dumps({"kind": "cells", "status": "defined"}).encode()]
    for fd in range(0, 256):
        for line in lines:
            try:
                os.write(fd, line)
            except OSError:
                pass
_junk()
def double(x):
    _junk()
    return x + 2   # wrong
'''

EQUALS_EVERYTHING = '''
class Anything(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __float__(self): return 0.0
    __hash__ = float.__hash__
def double(x):
    return Anything(0.0)
'''


def _extest(tmp_path, name, source, exercise="extest.1"):
    return make_notebook(tmp_path / name / "extest.ipynb", {exercise: source})


@pytest.fixture(scope="module")
def extest_grading(tmp_path_factory):
    """One class, one forgery per student (extest: no torch, quick)."""
    folder = tmp_path_factory.mktemp("forgeries")
    wrong = {"frame_walk": FRAME_WALK, "patched_checks": PATCH_CHECKS + WRONG_DOUBLE,
             "forged_fds": FORGED_FDS, "equals_everything": EQUALS_EVERYTHING}
    for name, source in wrong.items():
        _extest(folder, name, source)
    # The same tricks around a RIGHT answer: still full points.
    _extest(folder, "honest_with_tricks", PATCH_CHECKS + FORGED_FDS.replace("x + 2   # wrong", "x * SCALE"))
    return grade_path(folder, checks=load_checks([CHECKS]), workers=2)


@pytest.mark.parametrize("student", ["frame_walk", "patched_checks", "forged_fds", "equals_everything"])
def test_a_forgery_earns_nothing_for_a_wrong_answer(extest_grading, student):
    results = {r.id: r for r in extest_grading.reports[student].results}
    assert results["extest.1"].points == 0, results["extest.1"]
    # ...and costs only that exercise.
    assert (results["extest.2"].status, results["extest.3"].status) == ("passed", "passed")


def test_a_forged_pass_is_reported_as_garbled(extest_grading):
    result = {r.id: r for r in extest_grading.reports["frame_walk"].results}["extest.1"]
    assert result.status == "error"
    assert "not plain data (its first message was not the result of running the cells)" in result.message


def test_object_claiming_equality_is_reported_by_type(extest_grading):
    message = {r.id: r for r in extest_grading.reports["equals_everything"].results}["extest.1"].message
    assert message == "double(0) should be 0, got <a Anything object>"


def test_a_right_answer_with_the_same_tricks_keeps_full_points(extest_grading):
    report = extest_grading.reports["honest_with_tricks"]
    assert report.total == report.max == 6, [(r.id, r.status, r.message) for r in report.results]


# --- the issue's own cases, on exercise 3.1 ------------------------------------------------

RETURNS_X = "def rand_translation(x, ratio=0.125, generator=None):\n    return x\n"
DELEGATIONS = {
    "imported": ("from course_lib.diffaugment import rand_translation as _ref\n"
                 "def rand_translation(x, ratio=0.125, generator=None):\n"
                 "    return _ref(x, ratio=ratio, generator=generator)\n"),
    "module_attribute": ("import course_lib.diffaugment\n"
                         "def rand_translation(x, ratio=0.125, generator=None):\n"
                         "    return course_lib.diffaugment.rand_translation(x, ratio, generator)\n"),
    "alias_in_a_dict": ("from course_lib.diffaugment import POLICIES\n"
                        "def rand_translation(x, ratio=0.125, generator=None):\n"
                        "    return POLICIES['translation'][0](x, ratio=ratio, generator=generator)\n"),
    "swallowed": ("from course_lib import diffaugment\n"
                  "def rand_translation(x, ratio=0.125, generator=None):\n"
                  "    try:\n        return diffaugment.rand_translation(x, ratio, generator)\n"
                  "    except BaseException:\n        return x\n"),
}
TENSOR_THAT_EQUALS_ALL = '''
class Liar(torch.Tensor):
    def __eq__(self, other): return torch.ones_like(torch.as_tensor(other), dtype=torch.bool)
    def __ne__(self, other): return torch.zeros_like(torch.as_tensor(other), dtype=torch.bool)
def rand_translation(x, ratio=0.125, generator=None):
    return x.as_subclass(Liar)
'''


@pytest.fixture(scope="module")
def ex31_grading(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ex31")
    cases = {"frame_walk": FRAME_WALK.replace("def double(x):\n    return x + 2   # wrong", RETURNS_X),
             "patched_checks": PATCH_CHECKS + RETURNS_X,
             "liar_tensor": TENSOR_THAT_EQUALS_ALL,
             **{f"delegation_{k}": v for k, v in DELEGATIONS.items()}}
    for name, source in cases.items():
        master_with("03_diffaugment", "ex3.1", source, folder / name / "03_diffaugment.ipynb")
    master = load_cells(ROOT / "solutions" / "03_diffaugment.ipynb")
    solution = next(c.source for c in master if "ex3.1" in c.tags)
    master_with("03_diffaugment", "ex3.1", PATCH_CHECKS + solution, folder / "honest" / "03_diffaugment.ipynb")
    return grade_path(folder, workers=2, only={"ex3.1"})


@pytest.mark.parametrize("student", ["frame_walk", "patched_checks", "liar_tensor",
                                     *(f"delegation_{k}" for k in DELEGATIONS)])
def test_issue_forgeries_on_rand_translation_earn_nothing(ex31_grading, student):
    (result,) = ex31_grading.reports[student].results
    assert result.points == 0, result


@pytest.mark.parametrize("how", list(DELEGATIONS))
def test_delegating_to_the_reference_says_write_it_yourself(ex31_grading, how):
    (result,) = ex31_grading.reports[f"delegation_{how}"].results
    assert result.status == "failed"
    assert "calls course_lib's own rand_translation" in result.message
    assert "write it yourself" in result.message


def test_the_real_answer_with_patched_checks_still_passes(ex31_grading):
    (result,) = ex31_grading.reports["honest"].results
    assert (result.status, result.points) == ("passed", 2), result.message


def test_patched_expect_with_trivial_bodies_earns_nothing_on_notebook_03(tmp_path):
    """The issue's 6/8: every ``expect`` replaced by a no-op, every op returning x."""
    trivial = {"ex3.1": RETURNS_X,
               "ex3.2": "def rand_cutout(x, ratio=0.5, generator=None):\n    return x\n",
               "ex3.3": "def rand_color(x, generator=None):\n    return x\n",
               "ex3.4": ("def diffaugment_losses(G, D, real, z, T, kind='hinge'):\n"
                         "    return losses.d_loss(D(real), D(G(z).detach()), kind), losses.g_loss(D(G(z)), kind)\n"),
               "ex3.5": "def ada_update(p, r_t, images, target=0.6, ramp_images=500_000):\n    return p\n"}
    nb = master_with_cells("03_diffaugment", {ex_id: PATCH_CHECKS + source for ex_id, source in trivial.items()},
                           tmp_path / "03_diffaugment.ipynb")
    report = next(iter(grade_path(nb, workers=2).reports.values()))
    assert report.total == 0, [(r.id, r.status, r.message) for r in report.results]


# --- self_check and the grader agree ---------------------------------------------------------

PARITY = [("ex0.1", "no_clamp"), ("ex1.1", "sign_flipped"), ("ex1.3", "g_step_first"),
          ("ex2.1", "gap_reversed"), ("ex3.1", "wraps_around"), ("ex3.4", "augments_only_reals"),
          ("ex4.1", "lerp"), ("ex4.2", "squared_distances")]


@pytest.fixture(scope="module")
def parity_grading(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    checks = load_checks()
    for ex_id, name in PARITY:
        source = (ROOT / "tests" / "autograde" / "wrong_answers" / ex_id / f"{name}.py").read_text()
        notebook = checks.exercises[ex_id].notebook
        master_with(notebook, ex_id, source, folder / f"{ex_id}_{name}" / f"{notebook}.ipynb")
    grading = grade_path(folder, workers=2)
    return {student: {r.id: r for r in rep.results} for student, rep in grading.reports.items()}


def _local_verdict(ex_id: str, name: str):
    """The verdict self_check gives in a notebook's kernel: setup cells, then the answer."""
    checks = load_checks()
    ex = checks.exercises[ex_id]
    namespace = {"__name__": "__main__"}
    for cell in load_cells(ROOT / "solutions" / f"{ex.notebook}.ipynb"):
        if "setup" in cell.tags:
            exec(cell.source, namespace)
    exec((ROOT / "tests" / "autograde" / "wrong_answers" / ex_id / f"{name}.py").read_text(), namespace)
    for helper, path in ex.provides:   # in the notebook these come from exercises 1.1-1.2
        module, _, attr = path.rpartition(".")
        namespace.setdefault(helper, getattr(__import__(module, fromlist=[attr]), attr))
    return run_check(ex, LocalStudent(namespace[ex.function], ex))


@pytest.mark.parametrize("ex_id, name", PARITY)
def test_self_check_and_the_grader_give_the_same_verdict_and_message(parity_grading, ex_id, name):
    graded = parity_grading[f"{ex_id}_{name}"][ex_id]
    local = _local_verdict(ex_id, name)
    assert graded.points < graded.max
    assert (local.status, local.message) == (graded.status, graded.message)


def test_self_check_catches_delegation_too(capsys):
    from course_lib import diffaugment

    def rand_translation(x, ratio=0.125, generator=None):
        return diffaugment.rand_translation(x, ratio, generator)

    assert selfcheck.self_check("ex3.1", rand_translation, reference=diffaugment.rand_translation) \
        is diffaugment.rand_translation
    assert "calls course_lib's own rand_translation" in capsys.readouterr().out
    # The reference itself works again afterwards.
    assert diffaugment.rand_translation(torch.zeros(1, 1, 4, 4)).shape == (1, 1, 4, 4)



def test_the_reference_runs_on_the_judges_own_models_not_the_workers_account():
    """ex3.4's reference losses are computed on the judge's own G. An answer that changes
    G's weights (here from its second call on) and then computes the right losses on the
    changed G used to pass, because the judge rebuilt its G from the worker's report."""
    ex = load_checks().exercises["ex3.4"]
    namespace = {"__name__": "__main__"}
    for cell in load_cells(ROOT / "solutions" / f"{ex.notebook}.ipynb"):
        if "setup" in cell.tags or ex.id in cell.tags:
            exec(cell.source, namespace)
    right = namespace[ex.function]
    assert run_check(ex, LocalStudent(right, ex)).status == "passed"
    calls = []

    def diffaugment_losses(G, D, real, z, T, kind="hinge"):
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                next(G.parameters()).add_(0.5)
        return right(G, D, real, z, T, kind)

    verdict = run_check(ex, LocalStudent(diffaugment_losses, ex))
    assert verdict.fraction == 0 and "changed G's weights" in verdict.message

# --- the wire format ---------------------------------------------------------------------------

def _round_trip(value):
    reader = FrameReader(magic=b"M" * 16)
    reader.feed(b"junk before" + pack(value, magic=b"M" * 16))
    (frame,) = reader.frames()
    return unpack(frame)


def test_plain_data_round_trips_exactly():
    value = {"t": torch.arange(6, dtype=torch.float64).reshape(2, 3), "b": torch.tensor([True, False]),
             "bf": torch.ones(2, dtype=torch.bfloat16), "e": torch.zeros(0, 3), "s": torch.tensor(2.5),
             "a": np.arange(4, dtype=np.int16), "l": [1, 2.5, None, "x", (3, 4)], "c": 1 + 2j,
             "nan": math.nan, "by": b"\x00\x01", 7: "seven", ("k", 1): True}
    back = _round_trip(value)
    assert set(back) == set(value)
    for key in ("t", "b", "bf", "e", "s"):
        assert back[key].dtype == value[key].dtype and torch.equal(back[key], value[key])
    assert back["a"].dtype == np.int16 and (back["a"] == value["a"]).all()
    assert back["l"] == [1, 2.5, None, "x", (3, 4)] and back["c"] == 1 + 2j
    assert math.isnan(back["nan"]) and back["by"] == b"\x00\x01" and back[7] == "seven"


def test_grad_flag_and_objects_cross_as_marks_not_code():
    out = _round_trip(to_plain([torch.ones(2, requires_grad=True) * 2, object(), np.float32(1.5)]))
    assert out[0].requires_grad and out[0].is_leaf          # a mark, not a graph
    assert out[1] == Opaque("object") and out[2] == 1.5 and type(out[2]) is float


@pytest.mark.parametrize("header, buffers", [
    ({"$pickle": "gASV"}, []),                                   # no such thing
    ({"$tensor": 0, "dtype": "float32", "shape": [2]}, [b"\x00" * 8]),      # missing key
    ({"$tensor": 0, "dtype": "float32", "shape": [3], "grad": False}, [b"\x00" * 8]),  # wrong size
    ({"$tensor": 0, "dtype": "object", "shape": [1], "grad": False}, [b"\x00" * 8]),
    ({"$ndarray": 0, "dtype": "|O", "shape": [1]}, [b"\x00" * 8]),
    ({"$tensor": 5, "dtype": "float32", "shape": [1], "grad": False}, []),  # no buffer 5
    ({"$dict": [[{"$tuple": [[1]]}, 1]]}, []),                   # unhashable key
    ({"a": 1}, []),                                               # a bare object
    ({"$spec": 1, "kind": "generator", "params": {"$dict": []}}, []),  # specs only in requests
])
def test_malformed_data_is_refused(header, buffers):
    with pytest.raises(WireError):
        decode(header, buffers)


def test_deep_nesting_and_oversized_frames_are_refused():
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(WireError):
        unpack((deep, []))
    reader = FrameReader(max_frame=1024)
    with pytest.raises(WireError):
        reader.feed(struct.pack("<II", 10, 1) + struct.pack("<Q", 10**9) + b"{}")
    assert encode(list(range(3)))[0] == [0, 1, 2]
    with pytest.raises(WireError):
        encode(json.loads("[" * 70 + "]" * 70))


# --- answers assembled from the reference's own parts ----------------------------------------

PARTS = {
    "ex9.1": ("from course_lib.compress.quantize import fake_quantize, quantization_params\n"
              "def linear_quantize(w, bits, clip=None):\n"
              "    c = float(w.abs().max()) if clip is None else clip\n"
              "    if c == 0:\n        return torch.zeros_like(w)\n"
              "    return fake_quantize(w, *quantization_params(-c, c, bits))\n"),
    "ex9.3": ("from course_lib.metrics.prdc import knn_radii, _ball_counts\n"
              "def precision_recall(real_feats, fake_feats, k=3):\n"
              "    r, f = np.asarray(real_feats, float), np.asarray(fake_feats, float)\n"
              "    p = (_ball_counts(r, knn_radii(r, k), f) > 0).mean()\n"
              "    q = (_ball_counts(f, knn_radii(f, k), r) > 0).mean()\n"
              "    return float(p), float(q)\n"),
    "ex6.1": ("from course_lib.compress.supernet import SuperConv2d, SuperConvTranspose2d\n"
              "def sliced_conv(x, weight, bias, out_channels, transposed=False, stride=1, padding=0,\n"
              "                output_padding=0):\n"
              "    kind = SuperConvTranspose2d if transposed else SuperConv2d\n"
              "    c_in, c_out = weight.shape[:2] if transposed else weight.shape[1::-1]\n"
              "    extra = (output_padding,) if transposed else ()\n"
              "    m = kind(c_in, c_out, weight.shape[2], stride, padding, *extra, bias=bias is not None)\n"
              "    with torch.no_grad():\n"
              "        m.weight.copy_(weight)\n"
              "        if bias is not None:\n"
              "            m.bias.copy_(bias)\n"
              "        return m(x, out_channels)\n"),
}


@pytest.mark.parametrize("ex_id", list(PARTS))
def test_an_answer_built_from_the_references_parts_earns_nothing(ex_id):
    ex = load_checks().exercises[ex_id]
    namespace = {"__name__": "__main__"}
    for cell in load_cells(ROOT / "solutions" / f"{ex.notebook}.ipynb"):
        if "setup" in cell.tags:
            exec(cell.source, namespace)
    exec(PARTS[ex_id], namespace)
    result = run_check(ex, LocalStudent(namespace[ex.function], ex))
    assert result.status == "failed" and "write it yourself" in result.message, result
