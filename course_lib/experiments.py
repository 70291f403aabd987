"""The standard runs the CIFAR track compares (notebooks 01-03), and their recording.

Notebooks 02 and 03 compare many training runs (data fractions x augmentation
strategies x seeds): far more than fit in a 5-minute class. They show *recorded* runs —
curves and sample grids made by this module with the class preset and shipped in
``course_lib/recorded/`` (the ``cifar`` track of :mod:`course_lib.recording`) — and
re-run one live on demand. Recreate the recordings with::

    python -m course_lib.experiments --preset class

Every run also goes through the model zoo, so a re-run of a notebook is fast.

A second recording, the ``monitor`` track (``monitor_runs.json``), holds D's monitor
(accuracies, r_t, r_v, measured as D sees the data in training: see
:mod:`course_lib.monitor`) for runs of the notebooks' live length (``cifar.steps``) at
every fraction, with and without DiffAugment, ``cifar.n_seeds`` seeds each::

    python -m course_lib.experiments --monitor --preset class [--part 0/2] [--cached-only]

``--part K/N`` trains every N-th run (start N processes to share the work); each run is
cached in the zoo as it finishes, and ``--cached-only`` assembles the recording from the
runs cached so far, listing the others as missing.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from course_lib import recording, zoo
from course_lib.diffaugment import policy_tag
from course_lib.metrics import Reference
from course_lib.presets import Preset, get_preset
from course_lib.recording import RECORDED_DIR, NotRecorded, Recording, record_runs
from course_lib.train import TrainConfig, TrainResult, fixed_latents, generate, stack_images, train_gan

FRACTIONS = (1.0, 0.2, 0.1)
STRATEGY_LABELS = {
    "none": "no augmentation",
    "real_only": "augment reals only",
    "d_step_only": "augment in D step only",
    "diffaugment": "DiffAugment",
}
# Bump when the training of these runs changes, so their zoo entries are retrained.
# 2: the monitor's reals are drawn across the sets (not the first 256); r_t_batch is logged.
# 3: the monitor measures D as it trains (batch statistics, accumulated r_t; r_v).
RECIPE = 3
# The DiffAugment policy of the comparison: all three ops, as the paper's CIFAR-10 runs.
POLICY = "color,translation,cutout"

__all__ = ["FRACTIONS", "STRATEGY_LABELS", "RECORDED_DIR", "Recording", "Reference",
           "cifar_reference", "fd_eval_fn", "run_name", "cifar_run", "recording_plan", "record",
           "load_recording", "monitor_plan", "record_monitor", "load_monitor_recording",
           "POLICY", "record_policy", "load_policy_recording"]


def cifar_reference(preset: Preset, extractor=None) -> Reference:
    """Statistics of the first ``preset.cifar.n_eval`` test images of the CIFAR track (never
    trained on; the recordings were measured against these)."""
    from course_lib.data import cifar10

    return Reference.of(stack_images(cifar10(split="test"), limit=preset.cifar.n_eval), extractor)


def fd_eval_fn(reference: Reference, n_samples: int, seed: int = 777):
    """An ``eval_fn`` for :func:`train_gan` that adds ``fd`` of G's fixed samples."""
    def evaluate(G) -> dict:
        return {"fd": reference.distance(generate(G, fixed_latents(n_samples, G.z_dim, seed)))}

    return evaluate


def run_name(fraction: float, augment: str, steps: int | None = None,
             policy: str = POLICY) -> str:
    """The zoo name of a run; runs of another length than the recorded comparison's
    (``steps`` given) get their own entry, e.g. ``dcgan-cifar-10pct-none-1000steps``, and so
    do runs with another DiffAugment policy than :data:`POLICY`."""
    return (f"dcgan-cifar-{round(fraction * 100)}pct-{augment}"
            + (f"-{policy_tag(policy)}" if policy != POLICY else "")
            + (f"-{steps}steps" if steps else ""))


def run_spec(fraction: float, augment: str, seed: int, preset: Preset, steps: int,
             policy: str = POLICY) -> tuple[str, TrainConfig]:
    """(zoo name, training config) of a CIFAR-track run: what :func:`cifar_run` trains,
    and what :mod:`course_lib.pool` checks a handed-in run against."""
    config = TrainConfig.from_preset(preset, augment=augment, policy=policy, seed=seed, steps=steps,
                                     eval_every=max(preset.cifar.eval_every, steps // 20))
    return run_name(fraction, augment, None if steps == preset.cifar.compare_steps else steps,
                    policy), config


def cifar_run(fraction: float, augment: str, seed: int = 0, preset: str | Preset | None = None,
              policy: str = POLICY, reference: Reference | None = None,
              progress: bool = True, steps: int | None = None,
              cached_only: bool = False) -> TrainResult:
    """Train (or load from the zoo) a DCGAN on ``fraction`` of the CIFAR track for ``steps``
    steps (default: the preset's ``cifar.compare_steps``, the length of the recorded runs).

    The history holds D's accuracy on training vs held-out reals, r_t and the Fréchet
    distance to the test images, evaluated 20 times over the run (or every
    ``preset.cifar.eval_every`` steps, if that is rarer). ``cached_only``: raise
    :class:`~course_lib.recording.NotRecorded` instead of training a run the zoo lacks.
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    steps = steps or preset.cifar.compare_steps
    name, config = run_spec(fraction, augment, seed, preset, steps, policy)

    def train(p: Preset, s: int) -> dict:
        if cached_only:
            raise NotRecorded(f"{run_name(fraction, augment)} seed {s} ({steps} steps) is not cached")
        ref = reference or cifar_reference(p)
        data = cifar10(fraction=fraction, split="train", seed=s)
        heldout = cifar10(split="heldout")
        started = time.perf_counter()
        result = train_gan(data, config, heldout=heldout, eval_fn=fd_eval_fn(ref, p.cifar.n_eval),
                           progress=progress, preset=p.name)
        payload = result.to_payload()
        payload.update(feature_extractor=ref.label, n_train=len(data),
                       seconds=round(time.perf_counter() - started, 1))
        return payload

    payload = zoo.load_or_train(name, train, preset=preset, seed=seed,
                                config={**config.as_dict(), "fraction": fraction}, recipe=RECIPE,
                                verbose=not cached_only)
    return TrainResult.from_payload(payload)


def recording_plan(preset: Preset, strategies_at_10pct=("real_only", "d_step_only")) -> list[tuple]:
    """(fraction, strategy, seed) of every recorded run, the most important first."""
    seeds = range(preset.cifar.n_seeds)
    plan = [(0.1, a, s) for s in seeds for a in ("none", "diffaugment")]
    plan += [(0.1, a, 0) for a in strategies_at_10pct if a not in ("none", "diffaugment")]
    plan += [(f, a, s) for f in FRACTIONS if f != 0.1 for s in seeds for a in ("none", "diffaugment")]
    return plan


def record(preset: str | Preset = "class", out_dir: str | Path | None = None, n_samples: int = 16,
           strategies_at_10pct=("none", "real_only", "d_step_only", "diffaugment"),
           keep_recorded: bool = False, cached_only: bool = False,
           part: str | None = None) -> Path:
    """Run the comparison grid and save its curves and samples to ``out_dir``.

    The grid: fractions {100%, 20%, 10%} x {none, diffaugment} x ``preset.cifar.n_seeds``
    seeds (every printed verdict compares seeds), plus the two failing strategies at 10%
    (seed 0). Writes ``runs.json`` (configs, histories, final figures) and ``samples.npz``
    (uint8 [n_samples, 3, H, W] of each run's fixed latents at the end), through
    :func:`course_lib.recording.record_runs`.

    keep_recorded: keep the runs the recording in ``out_dir`` (default: the shipped one)
    already holds and train only the missing ones. ``cached_only``: train nothing, record
    what the zoo holds (the rest listed as missing). ``part`` "K/N": train only every N-th
    run still to train, from the K-th; with ``out_dir``, then record what the zoo holds.
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    reference = cifar_reference(preset)
    keep = None
    if keep_recorded and (recording.recording_dir(preset.name, out_dir) / "runs.json").exists():
        keep = load_recording(preset.name, out_dir)
    plan = [{"fraction": f, "augment": a, "seed": s}
            for f, a, s in recording_plan(preset, strategies_at_10pct)]
    if keep is not None:
        recorded = {r["key"] for r in keep.runs}
        todo = [c for c in plan if recording.TRACKS["cifar"].key(c) not in recorded]
    else:
        todo = plan

    def train(fraction, augment, seed):
        return cifar_run(fraction, augment, seed, preset, reference=reference,
                         cached_only=cached_only)

    if part:
        if not _train_part(todo, part, train, out_dir):
            return RECORDED_DIR / preset.name
        cached_only = True      # read by train(): the recording holds what the zoo has

    def describe(run, final):
        return (f"{run['key']}: fd {final.get('fd', float('nan')):.2f}, "
                f"gap {final.get('gap', float('nan')):.3f}")

    retired = keep.meta.get("monitor_retired") if keep is not None else None
    meta = {"monitor_retired": retired} if retired else {}
    rec = record_runs("cifar", plan, train, preset=preset.name,
                      feature_extractor=reference.label,
                      data_source=cifar10(split="test").source, out_dir=out_dir,
                      n_samples=n_samples, describe=describe, keep=keep, meta=meta)
    if meta:    # the kept runs' D figures were retired: the added runs' go too (one kind per file)
        path = recording.recording_dir(preset.name, out_dir) / "runs.json"
        _drop_monitor_figures(path, json.loads(path.read_text()), meta["monitor_retired"])
    return Path(out_dir) if out_dir else RECORDED_DIR / rec.preset


def load_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    """The CIFAR-track recording (``course_lib/recorded/<preset>/runs.json``)."""
    return recording.load_recording("cifar", preset, directory)


def record_policy(policy: str, preset: str | Preset = "class", out_dir: str | Path | None = None,
                  n_samples: int = 16, cached_only: bool = False, part: str | None = None) -> Path:
    """Record DiffAugment with another ``policy`` at 10% of the data: the comparison's
    length and seeds (``policy_runs.json``, ``policy_samples.npz``). Notebook 03 sets it
    against the comparison's runs without augmentation, on the final and the best FD.
    ``cached_only`` and ``part`` work as in :func:`record`."""
    from course_lib.data import cifar10

    preset = get_preset(preset)
    reference = cifar_reference(preset)
    plan = [{"fraction": 0.1, "augment": "diffaugment", "policy": policy, "seed": s}
            for s in range(preset.cifar.n_seeds)]

    def train(fraction, augment, policy, seed):
        return cifar_run(fraction, augment, seed, preset, policy=policy, reference=reference,
                         cached_only=cached_only)

    if part:
        if not _train_part(plan, part, train, out_dir):
            return RECORDED_DIR / preset.name
        cached_only = True      # read by train(): the recording holds what the zoo has
    record_runs("policy", plan, train, preset=preset.name, feature_extractor=reference.label,
                data_source=cifar10(split="test").source, out_dir=out_dir, n_samples=n_samples,
                meta={"steps": preset.cifar.compare_steps})
    return Path(out_dir) if out_dir else RECORDED_DIR / preset.name


def load_policy_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    """The other-policy recording (``course_lib/recorded/<preset>/policy_runs.json``)."""
    return recording.load_recording("policy", preset, directory)


def monitor_plan(preset: Preset) -> list[tuple]:
    """(fraction, strategy, seed) of every run of the monitor recording, the most important
    first: 10% with and without DiffAugment, then every fraction without, then with."""
    seeds = range(preset.cifar.n_seeds)
    plan = [(0.1, a, s) for s in seeds for a in ("none", "diffaugment")]
    plan += [(f, "none", s) for f in (0.2, 1.0) for s in seeds]
    plan += [(f, "diffaugment", s) for f in (0.2, 1.0) for s in seeds]
    return plan


def part_spec(text: str) -> str:
    """An argparse type: ``K/N`` with whole numbers 0 <= K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        k, n = -1, 0
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"must be K/N with whole numbers 0 <= K < N "
                                         f"(e.g. 0/2), got {text!r}")
    return text


def _part(plan: list, part: str | None) -> list:
    """Every N-th run of ``plan`` starting at K, for ``part`` = "K/N" (None: all)."""
    if not part:
        return plan
    try:
        part_spec(part)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"--part {exc}") from None
    k, n = (int(x) for x in part.split("/"))
    return plan[k::n]


def _train_part(cells: list, part: str, train, out_dir) -> bool:
    """``part`` "K/N": train every N-th of ``cells`` from the K-th into the zoo. Returns
    True when a recording follows (``out_dir`` given); it then holds what the zoo has."""
    for cell in _part(cells, part):
        train(**cell)
    return out_dir is not None


def record_monitor(preset: str | Preset = "class", out_dir: str | Path | None = None,
                   n_samples: int = 16, cached_only: bool = False, part: str | None = None) -> Path:
    """Record D's monitor for runs of ``preset.cifar.steps`` steps (:func:`monitor_plan`).

    Writes ``monitor_runs.json`` and ``monitor_samples.npz``. ``cached_only``: train
    nothing, assemble from the runs cached in the zoo (the others are listed in the
    recording's ``missing``). ``part`` "K/N": train only every N-th run from the K-th
    (and write the recording to ``out_dir`` only if given: the parts are assembled with
    ``cached_only``).
    """
    from course_lib.data import cifar10

    preset = get_preset(preset)
    reference = cifar_reference(preset)
    plan = [{"fraction": f, "augment": a, "seed": s}
            for f, a, s in _part(monitor_plan(preset), part)]

    def train(fraction, augment, seed):
        return cifar_run(fraction, augment, seed, preset, reference=reference,
                         steps=preset.cifar.steps, cached_only=cached_only)

    def describe(run, final):
        return (f"{run['key']}: acc_train {final['acc_train']:.3f}, held-out "
                f"{final['acc_heldout']:.3f}, r_t {final['r_t']:.3f}, r_v {final['r_v']:.2f}, "
                f"fd {final.get('fd', float('nan')):.3f}")

    if part and not out_dir:
        for cell in plan:
            train(**cell)
        return RECORDED_DIR / preset.name
    command = f"python -m course_lib.experiments --monitor --preset {preset.name}"
    rec = record_runs("monitor", plan, train, preset=preset.name,
                      feature_extractor=reference.label,
                      data_source=cifar10(split="test").source, out_dir=out_dir,
                      n_samples=n_samples, describe=describe,
                      meta={"steps": preset.cifar.steps, "complete_with": command,
                            "monitor": "D in training mode (batch statistics); acc_train and "
                                       "r_t accumulated over the training batches since the "
                                       "previous evaluation; held-out reals and fakes measured "
                                       "the same way without updating D's running statistics"})
    if rec.missing:
        print(f"{len(rec.missing)} run(s) not recorded yet; finish with `{command}`")
    return Path(out_dir) if out_dir else RECORDED_DIR / rec.preset


EVAL_MODE_KEYS = ("acc_train", "acc_heldout", "acc_fake", "gap", "r_t")


def retire_eval_mode_monitor(directory: str | Path) -> bool:
    """Drop the monitor figures of a CIFAR-track recording made before recipe 3 (measured
    with D in eval mode, not the classifier being trained: see :mod:`course_lib.monitor`),
    keeping its FD curves, which do not depend on how D is watched; the monitor recording
    holds D's figures instead. Returns True if the file changed."""
    path = Path(directory) / "runs.json"
    body = json.loads(path.read_text())
    if body.get("monitor_retired"):
        return False
    _drop_monitor_figures(path, body, "D's accuracies, gap and r_t were measured in eval mode "
                                      "(BatchNorm running statistics) and are dropped; see "
                                      "monitor_runs.json")
    return True


def _drop_monitor_figures(path: Path, body: dict, why: str) -> None:
    """Write ``body`` to ``path`` without D's figures (:data:`EVAL_MODE_KEYS`), saying ``why``."""
    from course_lib.fileio import atomic_path

    for run in body["runs"]:
        for part in ("history", "final"):
            for key in EVAL_MODE_KEYS:
                run[part].pop(key, None)
    body["monitor_retired"] = why
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, indent=1))


def load_monitor_recording(preset: str = "class", directory: str | Path | None = None) -> Recording:
    """The monitor recording (``course_lib/recorded/<preset>/monitor_runs.json``)."""
    return recording.load_recording("monitor", preset, directory)


def main(argv=None) -> int:
    from course_lib.cli import Parser   # argparse with a one-line error

    parser = Parser(prog="python -m course_lib.experiments",
                    description=record.__doc__.splitlines()[0])
    parser.add_argument("--preset", default="class")
    parser.add_argument("--out", default=None)
    parser.add_argument("--monitor", action="store_true",
                        help="record D's monitor at the notebooks' run length (monitor_runs.json)")
    parser.add_argument("--cached-only", action="store_true",
                        help="train nothing, assemble from the cached runs")
    parser.add_argument("--keep-recorded", action="store_true",
                        help="without --monitor: keep the runs the comparison recording already "
                             "holds and train only the missing ones")
    parser.add_argument("--policy", default=None, metavar="OPS",
                        help="record DiffAugment with this policy at 10%% (e.g. color,translation; "
                             "policy_runs.json)")
    parser.add_argument("--cell", nargs=3, default=None, metavar=("FRACTION", "AUGMENT", "SEED"),
                        help="with --monitor: train this one run only (a class jigsaw: hand in "
                             "the zoo entry it prints; see course_lib.pool)")
    parser.add_argument("--part", default=None, metavar="K/N", type=part_spec,
                        help="train every N-th run (still to train) from the K-th; no "
                             "recording written unless --out is given")
    try:
        args = parser.parse_args(argv)
        if args.cell:
            try:
                fraction, augment, seed = float(args.cell[0]), args.cell[1], int(args.cell[2])
            except ValueError:
                parser.error(f"--cell takes FRACTION AUGMENT SEED, e.g. --cell 0.1 none 1; "
                             f"got {' '.join(args.cell)}")
        if args.policy:
            from course_lib.diffaugment import parse_policy
            try:
                parse_policy(args.policy)
            except ValueError as exc:
                parser.error(f"--policy: {exc}")
    except SystemExit as exc:          # --help, or an argument refused by its check
        return exc.code if isinstance(exc.code, int) else 2
    if args.monitor and args.cell:
        from course_lib import zoo

        preset = get_preset(args.preset)
        cifar_run(fraction, augment, seed, preset, steps=preset.cifar.steps)
        name, _ = run_spec(fraction, augment, seed, preset, preset.cifar.steps)
        payload, meta = zoo.entry_paths(name, preset.name, seed)
        print(f"hand in {meta} and {payload}")
        return 0
    if args.monitor:
        where = record_monitor(args.preset, args.out, cached_only=args.cached_only, part=args.part)
        print(f"monitor runs in {where}")
        return 0
    if args.policy:
        where = record_policy(args.policy, args.preset, args.out, cached_only=args.cached_only,
                              part=args.part)
        print(f"policy runs in {where}")
        return 0
    where = record(args.preset, args.out, keep_recorded=args.keep_recorded,
                   cached_only=args.cached_only, part=args.part)
    print(f"recorded runs {'trained into the zoo' if args.part and not args.out else 'written to'} "
          f"{where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
