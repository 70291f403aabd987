"""``make student`` (course_lib.student): stubs in place of solutions, stripped outputs,
deterministic output, clear errors — and the committed notebooks/ are up to date with
solutions/ and hold no solution code."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_lib import notebook as nbio
from course_lib.student import BEGIN, END, AuthoringError, generate, main, out_of_date

ROOT = Path(__file__).resolve().parents[1]

TRANSLATION = '''\
def rand_translation(x, ratio=0.125, generator=None):
    """x: [N, C, H, W] in [-1, 1] -> same shape; integer shift, zero fill."""
    n = x.shape[0]
    ### BEGIN SOLUTION
    shift = int(x.shape[2] * ratio + 0.5)
    padded = torch.nn.functional.pad(x, [shift] * 4)
    ### END SOLUTION
    if generator is not None:
        ### BEGIN SOLUTION
        offsets = torch.randint(-shift, shift + 1, (n, 2), generator=generator)
        ### END SOLUTION
    return padded'''

TRANSLATION_STUB = '''\
def rand_translation(x, ratio=0.125, generator=None):
    """x: [N, C, H, W] in [-1, 1] -> same shape; integer shift, zero fill."""
    n = x.shape[0]
    # YOUR CODE HERE
    raise NotImplementedError("ex3.1: implement rand_translation")
    if generator is not None:
        # YOUR CODE HERE
        raise NotImplementedError("ex3.1: implement rand_translation")
    return padded'''


def cell(source, *tags, cell_type="code"):
    c = new_code_cell(source) if cell_type == "code" else new_markdown_cell(source)
    if tags:
        c.metadata["tags"] = list(tags)
    return c


def master(path: Path, *extra_cells) -> Path:
    """A master notebook in the state an instructor leaves it: run, with outputs,
    execution counts, widget state, timings and no kernelspec."""
    code = cell(TRANSLATION, "ex3.1")
    code.outputs = [new_output("stream", text="solved!\n")]
    code.execution_count = 7
    code.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00"}
    nb = new_notebook(cells=[cell("# DiffAugment", cell_type="markdown"),
                             cell('PRESET = "class"', "parameters"),
                             cell("import torch", "setup"),
                             code,
                             cell('rand_translation = self_check("ex3.1", rand_translation)'),
                             *extra_cells])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path):
    master(tmp_path / "solutions" / "03_diffaugment.ipynb")
    master(tmp_path / "solutions" / "04_other.ipynb",
           cell("def helper(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION", "ex4.1"))
    return tmp_path


def run(course: Path, *args) -> int:
    return main(["--solutions", str(course / "solutions"), "--notebooks", str(course / "notebooks"), *args])


def test_solution_regions_become_stubs_at_their_indentation(course):
    assert run(course) == 0
    nb = nbformat.read(course / "notebooks" / "03_diffaugment.ipynb", as_version=4)
    assert nb.cells[3].source == TRANSLATION_STUB
    assert nb.cells[3].metadata["tags"] == ["ex3.1"]
    assert [c.source for i, c in enumerate(nb.cells) if i != 3] == [
        "# DiffAugment", 'PRESET = "class"', "import torch",
        'rand_translation = self_check("ex3.1", rand_translation)']


def test_stub_raises_not_implemented_naming_the_exercise(course):
    assert run(course) == 0
    nb = nbformat.read(course / "notebooks" / "04_other.ipynb", as_version=4)
    namespace = {}
    exec(nb.cells[-1].source, namespace)  # defining the function does not raise...
    with pytest.raises(NotImplementedError, match=r"^ex4\.1: implement helper$"):
        namespace["helper"](1)            # ...calling it does


def test_outputs_and_widget_state_are_stripped_and_kernelspec_set(course):
    assert run(course) == 0
    nb = nbformat.read(course / "notebooks" / "03_diffaugment.ipynb", as_version=4)
    assert "widgets" not in nb.metadata
    assert nb.metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                         "language": "python"}
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
        assert "execution" not in c.metadata
    assert all(c.get("id") for c in nb.cells)


def test_generation_is_deterministic_and_idempotent(course, capsys):
    assert run(course) == 0
    target = course / "notebooks" / "03_diffaugment.ipynb"
    first, mtime = target.read_bytes(), target.stat().st_mtime_ns
    assert run(course) == 0
    assert target.read_bytes() == first and target.stat().st_mtime_ns == mtime
    assert "up to date: " in capsys.readouterr().out
    # a fresh generation elsewhere gives the same bytes
    again = generate(course / "solutions", course / "elsewhere")
    assert again[0].text.encode() == first
    assert first.endswith(b"}\n")


def test_check_mode_lists_out_of_date_notebooks(course, capsys):
    assert run(course, "--check") == 1           # nothing generated yet
    assert "04_other.ipynb: missing" in capsys.readouterr().out
    assert run(course) == 0
    assert run(course, "--check") == 0
    target = course / "notebooks" / "04_other.ipynb"
    target.write_text(target.read_text().replace("implement helper", "implement helper!"))
    (course / "notebooks" / "99_stale.ipynb").write_text("{}")
    capsys.readouterr()
    assert run(course, "--check") == 1
    out = capsys.readouterr().out
    assert "out of date: " in out and "04_other.ipynb: differs from" in out
    assert "99_stale.ipynb: has no master" in out
    assert "03_diffaugment" not in out


def test_strip_solutions_keeps_the_solutions(course):
    assert run(course, "--strip-solutions") == 0
    nb = nbformat.read(course / "solutions" / "03_diffaugment.ipynb", as_version=4)
    assert nb.cells[3].source == TRANSLATION
    assert nb.cells[3].outputs == [] and "widgets" not in nb.metadata
    assert run(course, "--check") == 0


@pytest.mark.parametrize("source, tags, message", [
    pytest.param(f"def f():\n    {BEGIN}\n    return 1", ["ex1.1"],
                 f"`{BEGIN}` on line 2 has no matching `{END}`", id="unclosed"),
    pytest.param(f"def f():\n    return 1\n    {END}", ["ex1.1"],
                 f"line 3 has `{END}` without a `{BEGIN}`", id="end-without-begin"),
    pytest.param(f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}", ["ex1.1"],
                 "line 3 opens a solution region inside", id="nested"),
    pytest.param(f"def f():\n    {BEGIN}\n    return 1\n    {END}", [],
                 "solution markers outside an exercise cell", id="untagged-cell"),
    pytest.param(f"def f():\n    {BEGIN}\n    return 1\n    {END}", ["setup"],
                 "solution markers outside an exercise cell", id="setup-cell"),
    pytest.param(f"x = 1  {BEGIN}\ndef f():\n    pass", ["ex1.1"],
                 "line 1 mentions a solution marker but is not one", id="inline-marker"),
    pytest.param("def f():\n    return 1", ["ex1.1"],
                 "needs a `### BEGIN SOLUTION` ... `### END SOLUTION` region", id="no-region"),
    pytest.param(f"{BEGIN}\nx = 1\n{END}", ["ex1.1"], "must define a function", id="no-def"),
    pytest.param(f"def f():\n    {BEGIN}\n    {END}", ["ex1.1", "ex1.2"], "only one exercise",
                 id="two-exercise-tags"),
])
def test_malformed_masters_are_clear_errors(tmp_path, capsys, source, tags, message):
    master(tmp_path / "solutions" / "01_bad.ipynb", cell(source, *tags))
    with pytest.raises(AuthoringError) as info:
        generate(tmp_path / "solutions", tmp_path / "notebooks")
    assert message in str(info.value)
    assert "01_bad.ipynb, cell 6" in str(info.value)  # names the notebook and the cell
    assert main(["--solutions", str(tmp_path / "solutions"), "--notebooks", str(tmp_path / "nb")]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "nb" / "01_bad.ipynb").exists()


def test_markers_in_markdown_are_an_error(tmp_path):
    master(tmp_path / "solutions" / "01_bad.ipynb", cell(f"Write your code:\n\n{BEGIN}\n\n{END}", cell_type="markdown"))
    with pytest.raises(AuthoringError, match="cell 6.*solution markers outside an exercise cell"):
        generate(tmp_path / "solutions", tmp_path / "notebooks")


def test_missing_solutions_folder(tmp_path, capsys):
    assert main(["--solutions", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# --- the committed course ---------------------------------------------------------------

MASTERS = sorted((ROOT / "solutions").glob("*.ipynb"))
needs_masters = pytest.mark.skipif(not MASTERS, reason="solutions/ has no notebooks yet")


def solution_lines(path: Path) -> list[str]:
    """Lines inside solution regions worth hiding: not blank, not comments, not trivial
    (``return x``, ``else:``)."""
    lines, inside = [], False
    for c in nbio.read_notebook(path).cells:
        for line in nbio.source_of(c).split("\n"):
            stripped = line.strip()
            if stripped in (BEGIN, END):
                inside = stripped == BEGIN
            elif inside and len(stripped) >= 12 and not stripped.startswith("#"):
                lines.append(stripped)
    return lines


def test_solution_lines_detects_a_leak(course):
    """The leak test below is only as good as this: a master's region lines are found."""
    found = solution_lines(course / "solutions" / "03_diffaugment.ipynb")
    assert "shift = int(x.shape[2] * ratio + 0.5)" in found
    assert run(course) == 0
    student = (course / "notebooks" / "03_diffaugment.ipynb").read_text()
    assert not [line for line in found if line in student]


@needs_masters
def test_committed_notebooks_are_up_to_date():
    problems = out_of_date(ROOT / "solutions", ROOT / "notebooks")
    assert not problems, "run `make student` and commit notebooks/:\n" + "\n".join(problems)


@needs_masters
@pytest.mark.parametrize("master_path", MASTERS, ids=[p.stem for p in MASTERS])
def test_no_solution_code_in_student_notebooks(master_path):
    student_lines = set()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for c in nbio.read_notebook(path).cells:
            student_lines.update(line.strip() for line in nbio.source_of(c).split("\n"))
    leaked = [line for line in solution_lines(master_path) if line in student_lines]
    assert not leaked, f"solution lines of {master_path.name} appear in notebooks/: {leaked}"


@needs_masters
@pytest.mark.parametrize("master_path", MASTERS, ids=[p.stem for p in MASTERS])
def test_student_stubs_name_their_exercise(master_path):
    student = ROOT / "notebooks" / master_path.name
    assert student.exists(), f"{student.name} is missing from notebooks/; run `make student`"
    for c in nbio.read_notebook(student).cells:
        for ex_id in nbio.exercise_tags(c):
            assert f'raise NotImplementedError("{ex_id}: implement ' in nbio.source_of(c), (
                f"{student.name}: the cell tagged {ex_id} has no stub naming its exercise")
