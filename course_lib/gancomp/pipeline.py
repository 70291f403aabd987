"""GAN Compression on CycleGAN, end to end: distil -> supernet -> search -> export -> fine-tune
-> evaluate.

    report = compress_cyclegan(preset="ci", out="build/compress")   # also the CLI:
    python -m course_lib compress-cyclegan --preset ci --out build/compress

The stages (every trained model is a zoo entry, so a re-run loads instead of training):

1. **teacher**: the authors' horse2zebra generator when it is fetched and the preset is
   ``full`` (56.8G MACs); otherwise a CycleGAN A -> B generator of the official layout
   trained in-course by ``train-cyclegan``'s code at the preset's width (``zoo``), or any
   ``--teacher PATH`` (an engine checkpoint or a CycleGAN ``.pth``);
2. **fixed-width students** (notebook 05), ``n_seeds`` seeds each: a mobile student
   distilled from the teacher, the same student trained as a CycleGAN without a teacher,
   and a uniformly thinned ``ResnetGenerator`` at a quarter of the teacher's ngf (0.25x);
3. **supernet**: a once-for-all ``SuperMobileResnetGenerator`` distilled from the teacher
   on the training images minus a held-out part;
4. **search**: evolutionary search under each budget, every candidate scored by FD on the
   held-out training images (never the test set); random search at the main budget with
   as many evaluations, for comparison;
5. **export** the best subnet under the main budget as a plain model, checked equal to
   the supernet at that config (``export_max_abs_diff``);
6. **fine-tune** (the paper's last training stage), ``n_seeds`` seeds: the exported
   subnet distilled further from the teacher for ``finetune_steps`` steps, starting from
   its weight-shared weights, with the fixed distilled student's losses and weights, on
   the supernet's images (training A minus the held-out part). D and the 1x1 mappers
   start afresh (the supernet's entry keeps only the generator). The searched
   architecture does not change, so neither do its MACs, parameters or latency;
7. **evaluate** on the test split: FD of teacher, student (the mean over the fine-tuned
   seeds if fine-tuning lowered the FD on the held-out training images, else the exported
   subnet's: ``finetune_kept``; the exported subnet's always as
   ``fid_student_before_finetune``, the fine-tuned seeds' as ``fid_finetuned``) and 0.25x against
   test B; MACs and parameters at 1x3x256x256 (``count_macs``, also checked against
   torchprofile); CPU latency at 1x3x256x256, interleaved, fixed threads, median of repeats.

Under torchrun every rank trains the stages data-parallel; rank 0 alone searches (and
sends the result to the others, which fine-tune with it), evaluates and writes.

Writes ``report.json`` (:data:`REPORT_KEYS` and more), ``student.pt`` (the student: the
fine-tuned seed with the lowest held-out FD, ``finetune_seed``, or the exported subnet when
fine-tuning was not kept;
``course_lib.engine.load_model("student.pt")``) and ``grid.png`` (rows:
test A, teacher, compressed student, 0.25x) into ``out``, and, with ``recording_dir``,
the recording notebooks 05-07 show (:mod:`course_lib.gancomp.record`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from course_lib import zoo
from course_lib.compress.profile import count_macs, count_params, measure_latencies
from course_lib.compress.search import evolutionary_search, holdout_split, random_search
from course_lib.compress.supernet import (SuperMobileResnetGenerator, config_macs, config_to_str,
                                          export_subnet)
from course_lib.engine.checkpoint import make_spec
from course_lib.engine.distributed import current
from course_lib.metrics import Reference
from course_lib.models.cyclegan import ResnetGenerator, load_cyclegan_generator
from course_lib.models.mobile_resnet import MobileResnetGenerator
from course_lib.models.registry import build_model, model_spec
from course_lib.presets import GanCompSettings, Preset, get_preset
from course_lib.tasks.cyclegan import CycleGANConfig, to_float, train_cyclegan, translate, unpaired_images
from course_lib.tasks.distill import DistillConfig, train_distill, train_student_cyclegan

RECIPE = 1
INPUT_256 = (1, 3, 256, 256)      # MACs and latency are reported at the paper's size
MODELS = ("distilled", "undistilled", "quarter")   # the compared fixed-width runs
FINETUNED = "finetuned"       # the searched subnet's fine-tuned seeds (recorded with MODELS)
MODEL_LABELS = {"distilled": "mobile student, distilled",
                "undistilled": "same student, no teacher (CycleGAN)",
                "quarter": "0.25x ResnetGenerator, no teacher (CycleGAN)",
                FINETUNED: "searched subnet, fine-tuned (distilled from its exported weights)"}
REPORT_KEYS = ("teacher_macs", "student_macs", "mac_reduction", "teacher_params", "student_params",
               "latency_teacher_ms", "latency_student_ms", "latency_speedup", "fid_teacher",
               "fid_student", "fid_uniform_quarter", "student_config", "feature_extractor",
               "data_source", "preset")
OFFICIAL_TEACHER = "cyclegan-horse2zebra-pretrained"
# What --teacher PATH may hold: the layouts whose layers distillation hooks by name.
TEACHER_CLASSES = ("ResnetGenerator", "MobileResnetGenerator")


def report_verdicts(fd_per_seed: dict) -> dict:
    """The report's verdicts, through :func:`course_lib.recording.verdict` (FD, lower is
    better), from its per-seed FDs (``fd_per_seed``: "student", i.e. the fine-tuned seeds,
    and each of :data:`MODELS`). The student against the 0.25x seeds is "better" only when
    the seeds' ranges do not overlap; one student (no seed spread) is "inconclusive"
    whatever the numbers. Recomputed when a recording is read
    (:class:`course_lib.gancomp.record.NotebookRecording`), so a recording made with older
    verdict rules shows today's."""
    from course_lib.recording import verdict
    v_student = verdict(fd_per_seed["quarter"], fd_per_seed["student"])
    return {"verdict_student_vs_quarter": str(v_student),
            "verdict_student_vs_quarter_word": v_student.word,
            "verdict_distilled_vs_undistilled": verdict(fd_per_seed["undistilled"],
                                                        fd_per_seed["distilled"]).word,
            "verdict_distilled_vs_quarter": verdict(fd_per_seed["quarter"],
                                                    fd_per_seed["distilled"]).word}


def settings_for(preset: str | Preset | None = None) -> GanCompSettings:
    return get_preset(preset).gancomp


# --- data -----------------------------------------------------------------------------------

@dataclass
class Data:
    """The unpaired images (uint8 [N, 3, S, S]) and where they come from."""
    train_a: torch.Tensor       # training A minus the held-out part (what the supernet sees)
    holdout_a: torch.Tensor     # held-out training A: scores search candidates
    all_train_a: torch.Tensor
    train_b: torch.Tensor
    test_a: torch.Tensor
    test_b: torch.Tensor
    source: str
    name: str


def load_data(data: str = "embedded", settings: GanCompSettings | None = None) -> Data:
    s = settings or settings_for()
    a, b, source = unpaired_images(data, "train", s.image_size)
    test_a, test_b, _ = unpaired_images(data, "test", s.image_size)
    keep, held = holdout_split(a, min(s.holdout, len(a) - 1), seed=0)
    return Data(a[keep.indices], a[held.indices], a, b, test_a, test_b, source,
                data if data in ("embedded", "horse2zebra") else Path(data).name)


# --- models from zoo payloads ------------------------------------------------------------------

def model_from_payload(payload: dict, role: str) -> nn.Module:
    """``role`` of a zoo payload or checkpoint, rebuilt from its spec, eval mode, on the CPU."""
    model = build_model(payload["spec"]["models"][role])
    model.load_state_dict(payload["models"][role])
    return model.eval()


@dataclass
class Teacher:
    model: nn.Module
    spec: dict
    source: str                 # "official horse2zebra", "zoo: ...", or a path
    history: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def state(self) -> dict:
        return self.model.state_dict()


def teacher_config(s: GanCompSettings, seed: int = 0) -> CycleGANConfig:
    return CycleGANConfig(steps=s.teacher_steps, batch_size=s.batch_size, image_size=s.image_size,
                          ngf=s.teacher_ngf, ndf=max(8, 2 * s.teacher_ngf), n_blocks=s.teacher_blocks,
                          seed=seed, eval_every=max(1, s.teacher_steps // 6))


def get_teacher(teacher: str = "zoo", preset: str | Preset | None = None, data: Data | None = None,
                data_name: str = "embedded", progress: bool = True, device: str = "auto") -> Teacher:
    """The teacher generator (A -> B).

    ``"zoo"``: the authors' horse2zebra generator on the ``full`` preset with horse2zebra
    data when it is fetched; otherwise the in-course CycleGAN teacher (trained once,
    then loaded from the zoo). Anything else is a path: a checkpoint of this library
    (its A -> B generator) or a CycleGAN ``.pth`` state dict (ngf 64, 9 blocks).
    """
    preset = get_preset(preset)
    s = preset.gancomp
    if teacher != "zoo":
        return _teacher_from_path(Path(teacher))
    if preset.name == "full" and data_name == "horse2zebra":
        path = zoo.fetched_path(OFFICIAL_TEACHER)
        if path is None:
            from course_lib.data import entry_path, is_present
            if is_present(OFFICIAL_TEACHER):
                path = entry_path(OFFICIAL_TEACHER)
        if path is not None:
            model = load_cyclegan_generator(path)
            return Teacher(model, model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=64,
                                             n_blocks=9), f"official horse2zebra generator ({path})")
    data = data or load_data(data_name, s)
    config = teacher_config(s)

    def train(p: Preset, seed: int) -> dict:
        started = time.perf_counter()
        result = train_cyclegan(data.all_train_a, data.train_b, config, preset=p.name,
                                progress=progress, data_source=data.source, device=device)
        payload = {"spec": result.spec, "models": {"G_A": result.G_A.state_dict()},
                   "history": result.history, "data_source": data.source,
                   "seconds": round(time.perf_counter() - started, 1)}
        payload["spec"] = dict(payload["spec"], models={"G_A": result.spec["models"]["G_A"]})
        return payload

    payload = zoo.load_or_train(f"gancomp-teacher-{data.name}", train, preset=preset, seed=0,
                                config={**config.as_dict(), "data": data.name}, recipe=RECIPE,
                                verbose=progress)
    model = model_from_payload(payload, "G_A")
    return Teacher(model, payload["spec"]["models"]["G_A"],
                   f"in-course CycleGAN teacher (zoo gancomp-teacher-{data.name}, {preset.name}, "
                   f"{config.steps} steps)", payload.get("history", {}), payload.get("seconds", 0.0))


def _teacher_from_path(path: Path) -> Teacher:
    from course_lib.engine.checkpoint import load_model, read_spec
    from course_lib.fileio import CheckpointError
    if not path.is_file():
        raise ValueError(f"--teacher {path}: no such file; pass 'zoo' or the path of a generator "
                         f"checkpoint (.pt from train-cyclegan, or the authors' horse2zebra.pth)")
    try:
        spec = read_spec(path)
    except (CheckpointError, ValueError, KeyError, TypeError):
        model = load_cyclegan_generator(path)
        return Teacher(model, model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=64, n_blocks=9),
                       str(path))
    role = "G_A" if "G_A" in spec["models"] else spec.get("sample_role")
    kind = (spec["models"].get(role) or {}).get("class")
    if kind not in TEACHER_CLASSES:
        raise ValueError(f"--teacher {path}: its generator ({role}) is a {kind}, not a CycleGAN "
                         f"image-to-image generator ({' or '.join(TEACHER_CLASSES)}); pass a "
                         f"train-cyclegan checkpoint, the authors' horse2zebra.pth, or 'zoo'")
    model = load_model(path, role)
    return Teacher(model, spec["models"][role], f"{path} ({role})")


# --- the trained students ----------------------------------------------------------------------

@dataclass
class StudentRun:
    """One trained generator: the model (eval, CPU), its history and how long it took."""
    model: nn.Module
    history: dict
    seconds: float
    n_train: int
    spec: dict
    show: torch.Tensor | None = None      # the test A images ``sample`` translates

    def sample(self, n: int = 16) -> torch.Tensor:
        return translate(self.model, self.show[:n])


def distill_config(s: GanCompSettings, steps: int, seed: int = 0, sampling: str = "random") -> DistillConfig:
    return DistillConfig(steps=steps, batch_size=s.batch_size, image_size=s.image_size,
                         ndf=max(8, 2 * s.teacher_ngf), seed=seed, sampling=sampling,
                         eval_every=max(1, steps // 5))


def student_spec(s: GanCompSettings, model: str) -> dict:
    if model == "quarter":
        return model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=max(1, s.teacher_ngf // 4),
                          n_blocks=s.teacher_blocks)
    return model_spec(MobileResnetGenerator, input_nc=3, output_nc=3, widths=list(s.student_widths),
                      n_blocks=s.teacher_blocks)


def _run_payload(run, started: float, n_train: int, role: str) -> dict:
    return {"spec": dict(run.spec, models={role: run.spec["models"][role]}),
            "models": {role: run.models[role].state_dict()}, "history": run.history,
            "data_source": run.data_source, "n_train": n_train,
            "seconds": round(time.perf_counter() - started, 1)}


def _zoo_run(name: str, train, preset: Preset, seed: int, described: dict, role: str,
             progress: bool) -> StudentRun:
    """The zoo entry ``name`` (trained by ``train(preset, seed)`` when missing) as a run."""
    payload = zoo.load_or_train(name, train, preset=preset, seed=seed, config=described,
                                recipe=RECIPE, verbose=progress)
    return StudentRun(model_from_payload(payload, role), payload["history"],
                      payload.get("seconds", 0.0), payload.get("n_train", 0), payload["spec"])


def _distil(spec: dict, a: torch.Tensor, config: DistillConfig, teacher: Teacher, data: Data,
            reference: Reference, eval_a: torch.Tensor, progress: bool, device: str,
            describe: str, init_from: dict | None = None):
    """``train(preset, seed)`` for the zoo: distil ``spec`` from ``teacher`` on A images ``a``
    (starting from ``init_from``, the student's weights, when given)."""
    def train(p: Preset, sd: int) -> dict:
        started = time.perf_counter()
        run = train_distill(teacher.spec, teacher.state, spec, a, data.train_b, config,
                            eval_a=eval_a, reference=reference, preset=p.name, progress=progress,
                            data_source=data.source, device=device, describe=describe,
                            init_from=init_from)
        return _run_payload(run, started, len(a), "student")
    return train


def fixed_student(model: str, seed: int, teacher: Teacher, data: Data, preset: str | Preset,
                  reference: Reference, eval_a: torch.Tensor, progress: bool = True,
                  device: str = "auto") -> StudentRun:
    """A fixed-width run of :data:`MODELS` (trained, or loaded from the zoo)."""
    preset = get_preset(preset)
    s = preset.gancomp
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    spec = student_spec(s, model)
    if model == "distilled":
        config = distill_config(s, s.distill_steps, seed)
        role = "student"
        train = _distil(spec, data.all_train_a, config, teacher, data, reference, eval_a,
                        progress, device, f"distil s{seed}")
    else:
        config = CycleGANConfig(steps=s.distill_steps, batch_size=s.batch_size,
                                image_size=s.image_size, ngf=s.teacher_ngf,
                                ndf=max(8, 2 * s.teacher_ngf), n_blocks=s.teacher_blocks, seed=seed,
                                eval_every=max(1, s.distill_steps // 5))
        role = "G_A"

        def train(p: Preset, sd: int) -> dict:
            started = time.perf_counter()
            run = train_student_cyclegan(spec, data.all_train_a, data.train_b, config,
                                         eval_a=eval_a, reference=reference, preset=p.name,
                                         progress=progress, data_source=data.source,
                                         device=device, describe=f"{model} s{seed}")
            return _run_payload(run, started, len(data.all_train_a), role)

    described = {**config.as_dict(), "model": model, "student": spec, "teacher": teacher.source,
                 "data": data.name}
    return _zoo_run(f"gancomp-{model}-{data.name}", train, preset, seed, described, role, progress)


def supernet_run(teacher: Teacher, data: Data, preset: str | Preset, reference: Reference,
                 eval_a: torch.Tensor, progress: bool = True, device: str = "auto") -> StudentRun:
    """The once-for-all supernet distilled from ``teacher`` on ``data.train_a`` (the held-out
    images are kept out for the search)."""
    preset = get_preset(preset)
    s = preset.gancomp
    spec = model_spec(SuperMobileResnetGenerator, input_nc=3, output_nc=3, ngf=s.teacher_ngf,
                      n_blocks=s.teacher_blocks)
    config = distill_config(s, s.supernet_steps, 0, s.sampling)
    train = _distil(spec, data.train_a, config, teacher, data, reference, eval_a, progress, device,
                    "supernet")
    described = {**config.as_dict(), "supernet": spec, "teacher": teacher.source, "data": data.name,
                 "holdout": len(data.holdout_a)}
    return _zoo_run(f"gancomp-supernet-{data.name}", train, preset, 0, described, "student", progress)


def weights_fingerprint(state: dict) -> str:
    """A short hash of a state dict's names, shapes and values: a zoo entry that starts from
    other weights (another supernet) is another entry."""
    h = hashlib.sha256()
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def finetuned_student(seed: int, exported: nn.Module, supernet: str, teacher: Teacher, data: Data,
                      preset: str | Preset, reference: Reference, eval_a: torch.Tensor,
                      progress: bool = True, device: str = "auto") -> StudentRun:
    """The exported subnet fine-tuned (trained, or loaded from the zoo): distilled from
    ``teacher`` for ``finetune_steps`` steps with the fixed student's losses and weights
    (:func:`distill_config`), starting from ``exported``'s weights, on ``data.train_a`` (the
    supernet's images). ``supernet``: the supernet's :func:`weights_fingerprint`, so another
    supernet or another search result is another zoo entry."""
    preset = get_preset(preset)
    s = preset.gancomp
    spec = model_spec(MobileResnetGenerator, input_nc=3, output_nc=3, widths=list(exported.widths),
                      n_blocks=s.teacher_blocks)
    config = distill_config(s, s.finetune_steps, seed)
    train = _distil(spec, data.train_a, config, teacher, data, reference, eval_a, progress, device,
                    f"fine-tune s{seed}", init_from=exported.state_dict())
    described = {**config.as_dict(), "student": spec, "supernet": supernet,
                 "teacher": teacher.source, "data": data.name, "holdout": len(data.holdout_a)}
    return _zoo_run(f"gancomp-{FINETUNED}-{data.name}", train, preset, seed, described, "student",
                    progress)


# --- search --------------------------------------------------------------------------------------

def holdout_scorer(supernet: SuperMobileResnetGenerator, holdout_a: torch.Tensor,
                   reference: Reference):
    """``evaluate(config)``: FD of the subnet's translations of the held-out *training* A
    images to ``reference`` (training B images), lower is better; remembered per config."""
    cache: dict = {}

    def evaluate(config) -> float:
        config = tuple(config)
        if config not in cache:
            cache[config] = reference.distance(translate(supernet.with_config(config), holdout_a))
        return cache[config]

    evaluate.cache = cache
    return evaluate


def search_budgets(supernet: SuperMobileResnetGenerator, evaluate, teacher_macs: int,
                   s: GanCompSettings, budget: float, progress: bool = True) -> dict:
    """Evolutionary search at ``budget`` and at each of ``s.pareto_ratios``; random search at
    ``budget`` with as many evaluations. Returns plain data (configs as lists)."""
    macs = config_macs(supernet, INPUT_256)
    smallest = macs(supernet.smallest)
    kwargs = dict(population=s.population, parents=s.parents, mutations=s.mutations,
                  crossovers=s.crossovers, generations=s.generations)

    def plain(result):
        return {"budget": result.budget,
                "best": None if result.best is None else
                {"config": list(result.best.config), "macs": result.best.macs, "score": result.best.score},
                "history": result.history, "n_evaluated": len(result.evaluated),
                "evaluated": [[list(c.config), c.macs, c.score] for c in result.evaluated]}

    before = len(evaluate.cache)
    main = evolutionary_search(supernet.space, evaluate, macs, budget, seed=0, **kwargs)
    n_main = len(main.evaluated)
    rand = random_search(supernet.space, evaluate, macs, budget, n=n_main, seed=1)
    budgets = []
    for ratio in s.pareto_ratios:
        b = teacher_macs / ratio
        if b < smallest:
            budgets.append({"ratio": ratio, "budget": b, "best": None,
                            "why": f"below the smallest subnet ({smallest:,} MACs)"})
            continue
        r = evolutionary_search(supernet.space, evaluate, macs, b, seed=0, **kwargs)
        budgets.append({"ratio": ratio, **plain(r)})
        if progress:
            print(f"search at {ratio}x fewer MACs: best {config_to_str(r.best.config)} "
                  f"({r.best.macs / 1e9:.3f}G, held-out FD {r.best.score:.3f})")
    everything = [[list(k), macs(k), v] for k, v in evaluate.cache.items()]
    return {"main": plain(main), "random": plain(rand), "budgets": budgets,
            "all_evaluated": everything, "smallest_macs": smallest,
            "largest_macs": macs(supernet.largest), "n_new_evaluations": len(evaluate.cache) - before}


# --- measuring -------------------------------------------------------------------------------------

def torchprofile_macs(model: nn.Module, input_size=INPUT_256) -> int:
    """MACs by ``torchprofile.profile_macs`` (GAN Compression's own counter)."""
    from torchprofile import profile_macs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # "No handlers found: aten::pad": padding is free
        with torch.no_grad():
            return int(profile_macs(model.eval(), torch.zeros(*input_size)))


def _fd(reference: Reference, model: nn.Module, images: torch.Tensor) -> float:
    return reference.distance(translate(model, images))


# --- the pipeline ---------------------------------------------------------------------------------

def compress_cyclegan(*, teacher: str = "zoo", budget_macs: float | None = None,
                      preset: str | Preset | None = None, data: str = "embedded",
                      out: str | Path | None = None, recording_dir: str | Path | None = None,
                      progress: bool = True, device: str = "auto", main: bool = True) -> dict:
    """Run the whole pipeline (module docstring) and return the report (a dict).

    device: where the models train (``auto``: CUDA, then MPS, then the CPU); the search,
    the evaluation and the latency run on the CPU. main: False on torchrun ranks other than
    0, which take part in the (data-parallel) training, fine-tune with rank 0's search
    result, and return ``{}`` after it.
    """
    preset = get_preset(preset)
    s = preset.gancomp
    say = print if progress else (lambda *a, **k: None)
    started = time.perf_counter()
    if budget_macs is not None and (not math.isfinite(budget_macs) or budget_macs <= 0):
        raise ValueError(f"--budget-macs must be a positive number of MACs (e.g. 3e9), got {budget_macs}")
    if budget_macs is not None:
        # Before hours of training: no subnet of this preset's supernet is cheaper than this.
        probe = SuperMobileResnetGenerator(input_nc=3, output_nc=3, ngf=s.teacher_ngf,
                                           n_blocks=s.teacher_blocks)
        smallest = config_macs(probe, INPUT_256)(probe.smallest)
        if budget_macs < smallest:
            raise ValueError(f"--budget-macs {budget_macs:.3g} is below the smallest subnet of the "
                             f"{preset.name} preset's supernet ({smallest:,} MACs at 1x3x256x256): "
                             f"pass {smallest:.3g} or more")
    d = load_data(data, s)
    say(f"data: {d.source}")
    t = get_teacher(teacher, preset, d, data, progress, device)
    say(f"teacher: {t.source}")
    test_ref = Reference.of(to_float(d.test_b))
    train_ref = Reference.of(to_float(d.train_b))
    eval_a = d.test_a[:s.n_eval]
    show = d.test_a[:8]

    teacher_macs = count_macs(t.model, INPUT_256)
    budget = budget_macs if budget_macs is not None else teacher_macs / s.budget_ratio

    runs: dict[str, list[StudentRun]] = {}
    for model in MODELS:
        runs[model] = [fixed_student(model, seed, t, d, preset, test_ref, eval_a, progress, device)
                       for seed in range(s.n_seeds)]
        for r in runs[model]:
            r.show = show
    sup_run = supernet_run(t, d, preset, test_ref, eval_a, progress, device)
    supernet = sup_run.model
    search, found, error = None, None, None
    if main:
        evaluate = holdout_scorer(supernet, d.holdout_a, train_ref)
        search = search_budgets(supernet, evaluate, teacher_macs, s, budget, progress)
        if search["main"]["best"] is None:
            error = f"no subnet fits the budget of {budget:,.0f} MACs"
        else:
            found = (search["main"]["best"]["config"], weights_fingerprint(supernet.state_dict()))
    # The other ranks fine-tune with rank 0's result (and fingerprint: the same zoo entry).
    dist = current()
    dist.agree(error)
    config, supernet_id = dist.from_main(found)
    config = tuple(config)
    exported = export_subnet(supernet, config).eval()
    runs[FINETUNED] = [finetuned_student(seed, exported, supernet_id, t, d, preset, test_ref, eval_a,
                                         progress, device) for seed in range(s.n_seeds)]
    for r in runs[FINETUNED]:
        r.show = show
    if not main:
        return {}
    # Fine-tuning is kept only if it helps on the held-out training images (never the test
    # set): at the class scale it does not (L1 to the teacher blurs the thin student).
    heldout = {"exported": _fd(train_ref, exported, d.holdout_a),
               FINETUNED: [_fd(train_ref, r.model, d.holdout_a) for r in runs[FINETUNED]]}
    finetune_kept = sum(heldout[FINETUNED]) / len(heldout[FINETUNED]) < heldout["exported"]
    # what student.pt, the grid and the recording show: the fine-tuned seed that did best on
    # the held-out images, or the exported subnet
    finetune_seed = min(range(len(heldout[FINETUNED])), key=heldout[FINETUNED].__getitem__)
    student = runs[FINETUNED][finetune_seed].model if finetune_kept else exported
    x = to_float(show)
    with torch.no_grad():
        export_diff = float((exported(x) - supernet(x, config)).abs().max())
    quarter = runs["quarter"][0].model

    fd = {"teacher": _fd(test_ref, t.model, eval_a), "exported": _fd(test_ref, exported, eval_a)}
    for model in (*MODELS, FINETUNED):
        fd[model] = [_fd(test_ref, r.model, eval_a) for r in runs[model]]
    fd["finetuned_mean"] = sum(fd[FINETUNED]) / len(fd[FINETUNED])
    fd["student"] = fd["finetuned_mean"] if finetune_kept else fd["exported"]
    fd_per_seed = {"student": fd[FINETUNED] if finetune_kept else [fd["exported"]],
                   FINETUNED: fd[FINETUNED], **{m: fd[m] for m in MODELS}}
    macs = {"teacher": teacher_macs, "student": count_macs(student, INPUT_256),
            "quarter": count_macs(quarter, INPUT_256),
            "distilled": count_macs(runs["distilled"][0].model, INPUT_256)}
    params = {"teacher": count_params(t.model), "student": count_params(student),
              "quarter": count_params(quarter), "distilled": count_params(runs["distilled"][0].model)}
    tp = {"teacher": torchprofile_macs(t.model), "student": torchprofile_macs(student)}

    # Latency: every model of the comparison and of the Pareto front, interleaved in one run.
    pareto_models = {}
    for row in search["budgets"]:
        if row.get("best"):
            pareto_models[f"{row['ratio']}x"] = export_subnet(supernet, tuple(row["best"]["config"])).eval()
    timed = {"teacher": t.model, "student": student, "quarter": quarter, **pareto_models}
    say(f"measuring CPU latency of {len(timed)} models at 1x3x256x256 on "
        f"{s.latency_threads} thread(s), {s.latency_repeats} repeats ...")
    lat = measure_latencies(timed, INPUT_256, threads=s.latency_threads, repeats=s.latency_repeats)
    for row in search["budgets"]:
        key = f"{row['ratio']}x"
        if key in lat:
            row["latency_ms"] = lat[key].median_ms
            row["latency_iqr_ms"] = [lat[key].q1_ms, lat[key].q3_ms]
            row["params"] = count_params(pareto_models[key])
            row["fd_test"] = _fd(test_ref, pareto_models[key], eval_a)

    report = {
        "teacher_macs": teacher_macs, "student_macs": macs["student"],
        "mac_reduction": teacher_macs / macs["student"],
        "teacher_params": params["teacher"], "student_params": params["student"],
        "latency_teacher_ms": lat["teacher"].median_ms, "latency_student_ms": lat["student"].median_ms,
        "latency_speedup": lat["teacher"].median_ms / lat["student"].median_ms,
        "fid_teacher": fd["teacher"], "fid_student": fd["student"],
        "fid_uniform_quarter": fd["quarter"][0],
        "student_config": list(config), "feature_extractor": test_ref.label,
        "data_source": d.source, "preset": preset.name,
        # beyond the required keys
        "teacher": t.source, "budget_macs": budget, "budget_ratio": teacher_macs / budget,
        "student_config_str": config_to_str(config),
        "quarter_macs": macs["quarter"], "quarter_params": params["quarter"],
        "quarter_mac_reduction": teacher_macs / macs["quarter"],
        "distilled_macs": macs["distilled"], "distilled_params": params["distilled"],
        "latency_quarter_ms": lat["quarter"].median_ms,
        "latency": {k: {"median_ms": r.median_ms, "q1_ms": r.q1_ms, "q3_ms": r.q3_ms,
                        "min_ms": r.min_ms} for k, r in lat.items()},
        "latency_threads": s.latency_threads, "latency_repeats": s.latency_repeats,
        "load_average": lat["teacher"].load_average,
        "fid_student_vs_teacher": fd["student"] / fd["teacher"] - 1,
        "fid_student_before_finetune": fd["exported"], "finetune_steps": s.finetune_steps,
        "fid_finetuned": fd["finetuned_mean"], "finetune_kept": finetune_kept,
        "finetune_seed": finetune_seed if finetune_kept else None,
        "heldout_fd": heldout,
        "fd_per_seed": fd_per_seed,
        **report_verdicts(fd_per_seed),
        "macs_torchprofile": tp,
        "macs_agreement": {k: macs[k] / tp[k] - 1 for k in tp},
        "export_max_abs_diff": export_diff,
        "search": {k: v for k, v in search.items() if k not in ("all_evaluated",)},
        "pareto_all": search["all_evaluated"],
        "n_eval": len(eval_a), "holdout": len(d.holdout_a), "image_size": s.image_size,
        "seconds": round(time.perf_counter() - started, 1),
        "train_seconds": {"teacher": t.seconds, "supernet": sup_run.seconds,
                          **{m: [r.seconds for r in runs[m]] for m in (*MODELS, FINETUNED)}},
    }
    say(f"student {config_to_str(config)}: {macs['student'] / 1e9:.3f}G MACs "
        f"({report['mac_reduction']:.1f}x fewer than the teacher's {teacher_macs / 1e9:.3f}G), "
        f"latency {lat['teacher'].median_ms:.1f} -> {lat['student'].median_ms:.1f} ms "
        f"({report['latency_speedup']:.2f}x), FD teacher {fd['teacher']:.3f}, student "
        f"{fd['student']:.3f} ("
        + (f"mean of {len(fd[FINETUNED])} fine-tuned seeds; exported {fd['exported']:.3f}"
           if finetune_kept else f"as exported: fine-tuning ({fd['finetuned_mean']:.3f}) did not "
           f"help on the held-out images, {heldout['exported']:.3f} -> "
           f"{sum(heldout[FINETUNED]) / len(heldout[FINETUNED]):.3f}")
        + f"), 0.25x {fd['quarter'][0]:.3f} [{test_ref.label}]")
    grid = torch.cat([to_float(show[:4]), translate(t.model, show[:4]), translate(student, show[:4]),
                      translate(quarter, show[:4])])
    if out is not None:
        _write_outputs(Path(out), report, student, config, grid, preset.name,
                       s.finetune_steps if finetune_kept else 0, finetune_seed)
    if recording_dir is not None:
        from course_lib.gancomp.record import write_recording
        write_recording(recording_dir, report, runs, sup_run, t, show, exported, preset.name,
                        test_ref.label, d.source, s)
    return report


def student_payload(student: nn.Module, config, preset: str, finetune_steps: int = 0,
                    finetune_seed: int = 0) -> dict:
    """``student.pt``: the compressed student (fine-tuned for ``finetune_steps`` steps, seed
    ``finetune_seed``; 0 steps: the exported subnet as it is) as an engine checkpoint."""
    spec = make_spec("compress-cyclegan", {"student": model_spec(
        MobileResnetGenerator, input_nc=student.model[1].in_channels, output_nc=3,
        widths=list(config), n_blocks=sum(1 for m in student.model if hasattr(m, "conv_block")))},
        {"student_config": list(config), "finetune_steps": finetune_steps,
         **({"finetune_seed": finetune_seed} if finetune_steps else {})}, preset=preset,
        sample_role="student")
    return {"spec": spec, "models": {"student": student.state_dict()}}


def _write_outputs(out: Path, report: dict, student, config, grid, preset: str,
                   finetune_steps: int, finetune_seed: int) -> None:
    from PIL import Image

    from course_lib.fileio import atomic_path, atomic_torch_save, atomic_write_text
    from course_lib.plotting import image_grid
    from course_lib.report import plain
    out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(student_payload(student, config, preset, finetune_steps, finetune_seed),
                      out / "student.pt")
    with atomic_path(out / "grid.png") as tmp:
        Image.fromarray(image_grid(grid, nrow=4)).save(tmp, format="PNG")
    atomic_write_text(json.dumps(plain(report), indent=1) + "\n", out / "report.json")
