"""A class jigsaw: every student trains one run of the comparison, the class pools them.

The comparison notebooks 02 and 03 show (data fraction x strategy x seed) is far more
than one laptop trains in a lab session, but a class of 18 trains it at once. Each
student trains one cell on their own machine::

    python -m course_lib.experiments --monitor --preset class --cell 0.1 none 1

which leaves the run in their model zoo (``$COURSE_CACHE``), as the two files
``dcgan-cifar-10pct-none-1000steps/class-seed1.json`` and ``.pt``. They hand in that
folder (or their whole zoo); the instructor pools every hand-in into one recording::

    python -m course_lib pool HANDIN_DIR... [--preset class] [--track monitor] [--out DIR]

and notebooks 02-03 show it like the shipped one. Runs nobody handed in are listed as
missing ("not recorded").

Every run file is checked before it is used, and refused with a one-line reason if it is
not a run of this comparison: its preset, the library version and training recipe that
made it, its architecture and training settings (the whole config, against what this
library would train for that cell), the data it was trained on, and the payload's
checksum. Two hand-ins of the same cell: the first one found is kept.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import course_lib
from course_lib import experiments
from course_lib.fileio import load_checkpoint
from course_lib.presets import Preset, get_preset

NAME = re.compile(r"^dcgan-cifar-(\d+)pct-([a-z_]+?)(?:-(\d+)steps)?$")
TRACK_STEPS = {"monitor": lambda p: p.cifar.steps, "cifar": lambda p: p.cifar.compare_steps}


class PoolError(ValueError):
    """A handed-in run that is not a run of this comparison (the message says why)."""


@dataclass
class Pooled:
    """What :func:`collect` found: the accepted runs by cell, and the refused files."""
    accepted: dict = field(default_factory=dict)     # (fraction, augment, seed) -> .pt path
    refused: list = field(default_factory=list)      # (path, one-line reason)


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def check_run(meta_path: str | Path, preset: Preset, track: str = "monitor",
              data_sources: dict | None = None) -> tuple[tuple, Path]:
    """The cell ``(fraction, augment, seed)`` and payload of a handed-in run, or
    :class:`PoolError` with the reason it cannot be pooled. ``data_sources``: the data
    description this machine expects per fraction (default: computed here)."""
    meta_path = Path(meta_path)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoolError(f"unreadable run metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("kind", "trained") != "trained":
        raise PoolError("not the metadata of a trained run")
    match = NAME.match(str(meta.get("name", "")))
    if not match:
        raise PoolError(f"not a run of the CIFAR comparison (name {meta.get('name')!r})")
    fraction, augment = int(match.group(1)) / 100, match.group(2)
    seed = meta.get("seed")
    if meta.get("preset") != preset.name:
        raise PoolError(f"trained with preset {meta.get('preset')!r}, the pool is {preset.name!r}")
    if meta.get("library_version") != course_lib.__version__:
        raise PoolError(f"made with course_lib {meta.get('library_version')}, this is "
                        f"{course_lib.__version__}: retrain it with this version")
    if meta.get("recipe") != experiments.RECIPE:
        raise PoolError(f"training recipe {meta.get('recipe')}, this library's is "
                        f"{experiments.RECIPE}: retrain it with this version")
    steps = TRACK_STEPS[track](preset)
    name, config = experiments.run_spec(fraction, augment, int(seed), preset, steps)
    if meta["name"] != name:
        raise PoolError(f"a run of {meta['name']!r}; the {track} track pools {name!r} "
                        f"({steps} steps)")
    want = _plain({**config.as_dict(), "fraction": fraction})
    got = meta.get("config") or {}
    for key in sorted(set(want) | set(got)):
        if got.get(key) != want.get(key):
            raise PoolError(f"its {key} is {got.get(key)!r}, this comparison trains "
                            f"{want.get(key)!r} (architecture and settings must match)")
    sources = data_sources if data_sources is not None else {}
    if fraction not in sources:
        from course_lib.data import cifar10
        sources[fraction] = cifar10(fraction=fraction, split="train", seed=int(seed)).source
    if meta.get("data_source") != sources[fraction]:
        raise PoolError(f"trained on {meta.get('data_source')!r}, this machine has "
                        f"{sources[fraction]!r}: everyone needs the same data")
    payload = meta_path.with_suffix(".pt")
    if not payload.is_file():
        raise PoolError(f"its payload {payload.name} is missing")
    if meta.get("sha256") != hashlib.sha256(payload.read_bytes()).hexdigest():
        raise PoolError(f"{payload.name} does not match its checksum (corrupt or changed)")
    return (fraction, augment, int(seed)), payload


def collect(dirs, preset: str | Preset = "class", track: str = "monitor") -> Pooled:
    """Check every run metadata file (``*.json`` next to a ``.pt``) under ``dirs``."""
    preset = get_preset(preset)
    found, sources = Pooled(), {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d} is not a folder of handed-in runs")
        for meta_path in sorted(d.rglob("*.json")):
            try:
                cell, payload = check_run(meta_path, preset, track, sources)
            except PoolError as exc:
                found.refused.append((meta_path, str(exc)))
                continue
            if cell in found.accepted:
                found.refused.append((meta_path, f"a second run of {cell}; kept "
                                                 f"{found.accepted[cell]}"))
                continue
            found.accepted[cell] = payload
    return found


def pool(dirs, preset: str | Preset = "class", track: str = "monitor",
         out_dir: str | Path | None = None, n_samples: int = 16):
    """Pool the runs handed in under ``dirs`` into a recording of ``track`` ("monitor":
    runs of ``cifar.steps``; "cifar": the long comparison) in ``out_dir``. Returns
    (Recording, Pooled). Planned runs nobody handed in are the recording's ``missing``."""
    from course_lib.recording import NotRecorded, record_runs
    from course_lib.train import TrainResult

    preset = get_preset(preset)
    found = collect(dirs, preset, track)
    if track == "monitor":
        plan = experiments.monitor_plan(preset)
    else:
        plan = experiments.recording_plan(preset)
    plan += sorted(c for c in found.accepted if c not in plan)     # extra seeds are welcome
    reference = experiments.cifar_reference(preset)

    def load(fraction, augment, seed):
        path = found.accepted.get((fraction, augment, seed))
        if path is None:
            raise NotRecorded(f"nobody handed in {fraction:.0%} {augment} seed {seed}")
        return TrainResult.from_payload(load_checkpoint(path))

    from course_lib.data import cifar10
    rec = record_runs(track, [{"fraction": f, "augment": a, "seed": s} for f, a, s in plan], load,
                      preset=preset.name, feature_extractor=reference.label,
                      data_source=cifar10(split="test").source, out_dir=out_dir,
                      n_samples=n_samples,
                      meta={"steps": TRACK_STEPS[track](preset),
                            "complete_with": "python -m course_lib pool DIR... (more hand-ins)",
                            "pooled_from": [str(d) for d in dirs],
                            "refused": [[str(p), why] for p, why in found.refused]})
    return rec, found


# --- the command line ------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders of handed-in runs")
    parser.add_argument("--preset", default="class")
    parser.add_argument("--track", choices=sorted(TRACK_STEPS), default="monitor",
                        help="monitor: runs of the notebooks' length (default); cifar: the "
                             "long comparison")
    parser.add_argument("--out", default="pooled",
                        help="where to write the recording (default: ./pooled; notebooks load it "
                             "with load_monitor_recording(directory=...))")


def run(args) -> int:
    rec, found = pool(args.dirs, args.preset, args.track, args.out)
    for path, why in found.refused:
        print(f"refused {path}: {why}")
    print(f"pooled {len(rec.runs)} run(s); {len(rec.missing)} of the plan not handed in yet")
    return 0
