"""The recorded GAN Compression pipeline that notebooks 05-07 show.

The whole pipeline (:func:`course_lib.gancomp.pipeline.compress_cyclegan`) takes hours
on the ``class`` preset on a 2-core CPU, so notebooks show a recording of it, made by
this library's own code and shipped in ``course_lib/recorded/<preset>/``:

- ``gancomp_runs.json`` / ``gancomp_samples.npz``: the compared fixed-width runs
  (:data:`~course_lib.gancomp.pipeline.MODELS` x seeds) and the searched subnet's
  fine-tuned seeds (model ``finetuned``) as a :class:`course_lib.recording.Recording` of
  track ``gancomp``; its ``meta`` holds the pipeline's ``report`` (the keys of
  ``report.json``), the settings, and the teacher's and the supernet's training curves;
  the samples also hold ``inputs``, ``teacher``, ``exported`` (the subnet before
  fine-tuning) and ``student`` (the report's student: the fine-tuned seed
  ``report["finetune_seed"]``, or the exported subnet when fine-tuning was not kept,
  ``report["finetune_kept"]``);
- ``gancomp_teacher.pt``, ``gancomp_supernet.pt`` and ``gancomp_student.pt``: the
  teacher, the supernet and the fine-tuned student (when kept) in fp16 (``{"spec",
  "state"}``, loaded with ``weights_only=True``), for the live parts (sliders,
  side-by-side images, timing). Without a student file (fine-tuning not kept, or a
  recording made before the fine-tune stage) the compressed student is the supernet
  exported at the report's ``student_config`` (:func:`student_kind` says which).

Make the class recording (hours; run it overnight)::

    nohup nice -n 5 python -m course_lib.gancomp.record --preset class --work build/runs &

When the class recording is absent, the notebooks fall back to the ``ci`` one and say so
in an amber "Stand-in recording" banner (:func:`notebook_recording`).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib.compress.supernet import export_subnet
from course_lib.fileio import atomic_torch_save, load_checkpoint
from course_lib.gancomp.pipeline import FINETUNED, MODELS, report_verdicts
from course_lib.models.registry import build_model
from course_lib.recording import (Recording, Track, load_recording, record_runs, recording_dir,
                                  register_track, thin_history, to_fp16, to_fp32)

TRACK = register_track(Track(
    "gancomp", ("model",), lambda r: f"{r['model']}-s{r['seed']}", "gancomp_",
    "python -m course_lib.gancomp.record"))
WEIGHT_FILES = {"teacher": "gancomp_teacher.pt", "supernet": "gancomp_supernet.pt"}
STUDENT_FILE = "gancomp_student.pt"     # absent when the student is the exported subnet
STUDENT_KINDS = {"finetuned": "the searched subnet, fine-tuned (the seed best on held-out images)",
                 "exported": "the searched subnet as exported from the supernet, not fine-tuned "
                             "(fine-tuning did not help on the held-out images, or the recording "
                             "predates the fine-tune stage)"}


def _fp16_file(model: nn.Module, spec: dict, path: Path) -> None:
    atomic_torch_save({"spec": spec, "state": to_fp16(model.state_dict())}, path)


def write_recording(directory, report: dict, runs: dict, supernet_run, teacher, show, exported,
                    preset: str, feature_extractor: str, data_source: str, settings) -> Recording:
    """Write the recording of one pipeline run into ``directory`` (see the module docstring).
    runs: the :data:`MODELS` and ``finetuned`` runs by model (lists over seeds); exported:
    the subnet before fine-tuning."""
    from course_lib.tasks.cyclegan import translate
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plan = [{"model": m, "seed": seed} for m in (*MODELS, FINETUNED) for seed in range(len(runs[m]))]
    kept = report.get("finetune_kept", True)
    chosen = runs[FINETUNED][report.get("finetune_seed") or 0]
    student = chosen.model if kept else exported
    teacher_out = translate(teacher.model, show)
    meta = {"report": report, "settings": asdict(settings),
            "teacher_history": thin_history(teacher.history), "teacher_seconds": teacher.seconds,
            "supernet_history": thin_history(supernet_run.history),
            "supernet_seconds": supernet_run.seconds}
    rec = record_runs("gancomp", plan, lambda model, seed: runs[model][seed], preset=preset,
                      feature_extractor=feature_extractor, data_source=data_source,
                      out_dir=directory, n_samples=len(show), meta=meta,
                      extra_samples={"inputs": torch.as_tensor(show).float() / 127.5 - 1,
                                     "teacher": teacher_out, "exported": translate(exported, show),
                                     "student": translate(student, show)},
                      describe=lambda run, final: f"{run['key']}: FD {final.get('fd_a2b', float('nan')):.3f}")
    _fp16_file(teacher.model, teacher.spec, directory / WEIGHT_FILES["teacher"])
    _fp16_file(supernet_run.model, supernet_run.spec["models"]["student"],
               directory / WEIGHT_FILES["supernet"])
    if kept:        # else the student is the exported subnet, rebuilt from the supernet
        _fp16_file(student, chosen.spec["models"]["student"], directory / STUDENT_FILE)
    else:
        (directory / STUDENT_FILE).unlink(missing_ok=True)
    return rec


# --- reading it back -----------------------------------------------------------------------------

@dataclass
class NotebookRecording:
    """What a notebook shows: the recording, whether it stands in for another preset, and
    the banner that says so."""
    recording: Recording
    wanted: str                 # the preset the notebook runs at
    stand_in: bool              # True: the class recording is absent, this is the ci one

    @property
    def report(self) -> dict:
        """The recorded report, its verdicts recomputed from its per-seed FDs. A report made
        before the fine-tune stage reads as one: ``finetune_steps`` 0, its one student's FD
        as the student's seeds and as ``fid_student_before_finetune``."""
        rep = dict(self.recording.meta["report"])
        if "fid_student_before_finetune" not in rep:
            rep.update(fid_student_before_finetune=rep["fid_student"], finetune_steps=0,
                       fd_per_seed={"student": [rep["fid_student"]], **rep["fd_per_seed"]})
        return {**rep, **report_verdicts(rep["fd_per_seed"])}

    @property
    def settings(self) -> dict:
        """The recorded :class:`~course_lib.presets.GanCompSettings` fields (a recording made
        before the fine-tune stage: ``finetune_steps`` 0)."""
        return {"finetune_steps": 0, **self.recording.meta["settings"]}

    @property
    def student_label(self) -> str:
        """Which student :meth:`models` and the ``student`` samples are (see :data:`STUDENT_KINDS`)."""
        return STUDENT_KINDS[student_kind(self.recording.preset)]

    @property
    def directory(self) -> Path:
        return recording_dir(self.recording.preset)

    @property
    def label(self) -> str:
        """For table captions and plot titles: "ci stand-in recording" when it stands in,
        else e.g. "class recording"."""
        return f"{self.recording.preset} {'stand-in ' if self.stand_in else ''}recording"

    def banner(self) -> str:
        """HTML: amber "Stand-in recording" when it stands in, else a plain note."""
        rec = self.recording
        if self.stand_in:
            return ('<div style="border-left:6px solid #e0a000;background:#fff6dd;padding:6px 10px">'
                    f'<b>Stand-in recording.</b> The <code>{html.escape(self.wanted)}</code> '
                    f'recording of this pipeline is not shipped yet, so this notebook shows the '
                    f'<code>{html.escape(rec.preset)}</code> one: tiny models trained for seconds. '
                    'Its figures show how the pipeline works, not what it achieves. Make the '
                    'real one with <code>python -m course_lib.gancomp.record --preset class</code> '
                    f'(hours). Data: {html.escape(rec.data_source)}.</div>')
        return ('<div style="border-left:6px solid #4a90d9;padding:6px 10px">'
                f'Recorded with the <code>{html.escape(rec.preset)}</code> preset. '
                f'Data: {html.escape(rec.data_source)}.</div>')

    def models(self) -> dict[str, nn.Module]:
        """The recorded teacher, supernet, exported subnet and compressed student (fp32,
        eval, CPU)."""
        return recorded_models(self.recording.preset)


def has_recording(preset: str) -> bool:
    return (recording_dir(preset) / f"{TRACK.prefix}runs.json").exists()


def notebook_recording(preset: str) -> NotebookRecording:
    """The recording a notebook at ``preset`` shows: its own when shipped, else the ``ci``
    one, marked as a stand-in."""
    if has_recording(preset):
        return NotebookRecording(load_recording("gancomp", preset), preset, False)
    if not has_recording("ci"):
        raise FileNotFoundError(f"no recorded GAN Compression pipeline in {recording_dir('ci')}: "
                                f"make it with `{TRACK.command} --preset ci`")
    return NotebookRecording(load_recording("gancomp", "ci"), preset, True)


def _load_fp16(path: Path) -> nn.Module:
    obj = load_checkpoint(path)
    model = build_model(obj["spec"])
    model.load_state_dict(to_fp32(obj["state"]))
    return model.eval()


def _shown_preset(preset: str) -> str:
    return preset if has_recording(preset) else "ci"


def student_kind(preset: str = "class") -> str:
    """"finetuned" when the recording of ``preset`` (the ``ci`` one when it is absent) ships
    the fine-tuned student, "exported" when its student is the exported subnet (fine-tuning
    not kept, or a recording made before the fine-tune stage)."""
    directory = recording_dir(_shown_preset(preset))
    report = json.loads((directory / f"{TRACK.prefix}runs.json").read_text())["report"]
    kept = report.get("finetune_kept", (directory / STUDENT_FILE).exists())
    if kept and not (directory / STUDENT_FILE).exists():
        raise FileNotFoundError(f"{directory / STUDENT_FILE} is missing: remake the recording with "
                                f"`{TRACK.command} --preset {_shown_preset(preset)}`")
    return "finetuned" if kept else "exported"


def recorded_models(preset: str = "class") -> dict[str, nn.Module]:
    """``{"teacher", "supernet", "exported", "student"}`` of the ``preset`` recording (the
    ``ci`` one when it is absent): fp32 models in eval mode on the CPU. ``exported`` is the
    supernet exported at the report's ``student_config``; ``student`` is the fine-tuned
    student (the seed best on the held-out images), or the exported subnet when fine-tuning
    was not kept or the recording predates the fine-tune stage (:func:`student_kind`)."""
    preset = _shown_preset(preset)
    directory = recording_dir(preset)
    for name in WEIGHT_FILES.values():
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory / name} is missing: remake the recording with "
                                    f"`{TRACK.command} --preset {preset}`")
    teacher = _load_fp16(directory / WEIGHT_FILES["teacher"])
    supernet = _load_fp16(directory / WEIGHT_FILES["supernet"])
    report = json.loads((directory / f"{TRACK.prefix}runs.json").read_text())["report"]
    exported = export_subnet(supernet, tuple(report["student_config"])).eval()
    student = (_load_fp16(directory / STUDENT_FILE) if student_kind(preset) == "finetuned"
               else exported)
    return {"teacher": teacher, "supernet": supernet, "exported": exported, "student": student}


def compressed_student(preset: str = "class") -> nn.Module:
    """Notebook 07's compressed CycleGAN student (a ``MobileResnetGenerator``, fp32, eval,
    CPU) from the recording of ``preset`` (the ``ci`` one when it is absent): the fine-tuned
    student when kept, else the exported subnet (:func:`student_kind` says which)."""
    return recorded_models(preset)["student"]


# --- the command --------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.gancomp.record",
                                     description="record the GAN Compression pipeline for notebooks 05-07")
    parser.add_argument("--preset", choices=("ci", "class", "full"), default="ci")
    parser.add_argument("--data", default="embedded")
    parser.add_argument("--work", default="build/runs", help="where report.json etc. go")
    parser.add_argument("--out", default=None, help="recording folder (default course_lib/recorded/<preset>)")
    args = parser.parse_args(argv)
    from course_lib.engine.outdir import check_out_dir
    from course_lib.gancomp.pipeline import compress_cyclegan
    try:
        # Both folders are checked before hours of training, not when they are written.
        work = check_out_dir(Path(args.work) / f"gancomp-{args.preset}", flag="--work")
        out = check_out_dir(args.out or recording_dir(args.preset), flag="--out")
        compress_cyclegan(preset=args.preset, data=args.data, out=work, recording_dir=out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
