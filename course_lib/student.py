"""``make student``: generate the student notebooks from the instructor masters.

    python -m course_lib.student                    # solutions/*.ipynb -> notebooks/*.ipynb
    python -m course_lib.student --check            # exit 1 if notebooks/ is out of date
    python -m course_lib.student --strip-solutions  # also strip outputs from solutions/

In a cell tagged with an exercise id (``ex3.1``), every region between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes, at the marker's indentation::

    # YOUR CODE HERE
    raise NotImplementedError("ex3.1: implement rand_translation")

(the function name is the cell's first ``def``). A Markdown cell tagged with a written
question's id (``q1.2``) holds the model answer in the master and becomes
:data:`course_lib.notebook.ANSWER_PLACEHOLDER` for students. Outputs, execution counts and widget
state are stripped and the kernelspec is set, so the result depends only on the
masters: running the generator twice gives byte-identical files.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from course_lib import notebook as nbio

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)", re.MULTILINE)


class AuthoringError(ValueError):
    """A master notebook is malformed; the message names the notebook and the cell."""


@dataclass(frozen=True)
class Generated:
    source: Path    # solutions/NN_name.ipynb
    target: Path    # notebooks/NN_name.ipynb
    text: str       # the student notebook, exactly as it is written


def stub_lines(indent: str, exercise_id: str, function: str) -> list[str]:
    return [f"{indent}# YOUR CODE HERE",
            f'{indent}raise NotImplementedError("{exercise_id}: implement {function}")']


def _is_marker_mention(stripped: str) -> bool:
    return ("BEGIN SOLUTION" in stripped or "END SOLUTION" in stripped) and stripped not in (BEGIN, END)


def replace_solutions(source: str, exercise_id: str, where: str) -> str:
    """``source`` with each solution region replaced by a stub; ``where`` names the cell
    in error messages."""
    match = _DEF.search(source)
    if not match:
        raise AuthoringError(f"{where}: an exercise cell must define a function (no `def` found)")
    function = match.group(1)
    out: list[str] = []
    opened_at = None  # line number of the open BEGIN marker
    regions = 0
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if opened_at is not None:
                raise AuthoringError(f"{where}: line {number} opens a solution region inside "
                                     f"the one opened on line {opened_at}; add `{END}` first")
            opened_at = number
            regions += 1
            out += stub_lines(line[: len(line) - len(line.lstrip())], exercise_id, function)
        elif stripped == END:
            if opened_at is None:
                raise AuthoringError(f"{where}: line {number} has `{END}` without a `{BEGIN}` before it")
            opened_at = None
        elif _is_marker_mention(stripped):
            raise AuthoringError(f"{where}: line {number} mentions a solution marker but is not "
                                 f"one; put `{BEGIN}` / `{END}` alone on their lines")
        elif opened_at is None:
            out.append(line)
    if opened_at is not None:
        raise AuthoringError(f"{where}: `{BEGIN}` on line {opened_at} has no matching `{END}`")
    if regions == 0:
        raise AuthoringError(f"{where}: an exercise cell needs a `{BEGIN}` ... `{END}` region, "
                             f"otherwise its solution would be shipped to students")
    return "\n".join(out)


def _has_marker(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.split("\n"))


def student_version(nb, path: Path):
    """The student notebook made from master ``nb`` (read from ``path``), in place."""
    for index, cell in enumerate(nb["cells"]):
        where = nbio.describe_cell(path, index, cell)
        ids = nbio.exercise_tags(cell)
        source = nbio.source_of(cell)
        if len(ids) > 1:
            raise AuthoringError(f"{where}: a cell can hold only one exercise; tags {ids}")
        if ids and cell.get("cell_type") != "code":
            raise AuthoringError(f"{where}: exercise tags belong on code cells")
        questions = nbio.question_tags(cell)
        if questions and (ids or len(questions) > 1 or cell.get("cell_type") != "markdown"):
            raise AuthoringError(f"{where}: a written question's answer is one Markdown cell "
                                 f"tagged with one question id; tags {nbio.cell_tags(cell)}")
        if questions:
            cell["source"] = nbio.ANSWER_PLACEHOLDER   # the master holds a model answer
        elif ids:
            cell["source"] = replace_solutions(source, ids[0], where)
        elif _has_marker(source):
            raise AuthoringError(f"{where}: solution markers outside an exercise cell; tag the "
                                 f"cell with its exercise id (e.g. ex3.1) or remove the markers")
    nbio.strip_outputs(nb)
    nbio.normalise_metadata(nb, path.stem)
    return nb


def generate(solutions: Path, notebooks: Path) -> list[Generated]:
    """Build (in memory) the student version of every master in ``solutions``."""
    results = []
    for source in sorted(solutions.glob("*.ipynb")):
        try:
            nb = nbio.read_notebook(source)
        except Exception as exc:  # nbformat raises several types for unreadable files
            raise AuthoringError(f"{source.as_posix()}: cannot read the notebook ({exc})") from None
        student_version(nb, source)
        results.append(Generated(source, notebooks / source.name, nbio.dumps_notebook(nb)))
    return results


def strip_solutions(solutions: Path) -> list[Path]:
    """Strip outputs and normalise metadata of the masters in place; return those changed."""
    changed = []
    for path in sorted(solutions.glob("*.ipynb")):
        nb = nbio.read_notebook(path)
        nbio.strip_outputs(nb)
        nbio.normalise_metadata(nb, path.stem)
        if nbio.write_notebook(nb, path):
            changed.append(path)
    return changed


def orphans(solutions: Path, notebooks: Path) -> list[Path]:
    """Student notebooks with no master: left over after a master was renamed or removed."""
    masters = {p.name for p in solutions.glob("*.ipynb")}
    return sorted(p for p in notebooks.glob("*.ipynb") if p.name not in masters)


def out_of_date(solutions: Path, notebooks: Path) -> list[str]:
    """One line per student notebook that differs from a fresh generation."""
    problems = []
    for item in generate(solutions, notebooks):
        if not item.target.exists():
            problems.append(f"{item.target.as_posix()}: missing")
        elif item.target.read_text(encoding="utf-8") != item.text:
            problems.append(f"{item.target.as_posix()}: differs from {item.source.as_posix()}")
    problems += [f"{p.as_posix()}: has no master in {solutions.as_posix()}/" for p in orphans(solutions, notebooks)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.student",
        description="Generate the student notebooks (notebooks/) from the masters (solutions/).")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the student notebooks that are out of date")
    parser.add_argument("--strip-solutions", action="store_true",
                        help="also strip outputs and widget state from solutions/ (before committing)")
    parser.add_argument("--solutions", type=Path, default=Path("solutions"), help="default: solutions")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="default: notebooks")
    args = parser.parse_args(argv)
    if not args.solutions.is_dir():
        print(f"error: {args.solutions.as_posix()}/ is not a folder (run from the project root)", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = out_of_date(args.solutions, args.notebooks)
            for line in problems:
                print(f"out of date: {line}")
            if problems:
                print("run `make student` to regenerate notebooks/", file=sys.stderr)
            return 1 if problems else 0
        if args.strip_solutions:
            for path in strip_solutions(args.solutions):
                print(f"stripped {path.as_posix()}")
        for item in generate(args.solutions, args.notebooks):
            changed = nbio.write_text_if_changed(item.text, item.target)
            print(f"{'wrote' if changed else 'up to date'}: {item.target.as_posix()}")
        for path in orphans(args.solutions, args.notebooks):
            print(f"warning: {path.as_posix()} has no master in {args.solutions.as_posix()}/; "
                  f"delete it if the notebook was renamed or removed", file=sys.stderr)
    except AuthoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
