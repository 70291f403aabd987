"""GAN Compression end to end: the distillation/supernet task, the compress-cyclegan
pipeline on the ci preset (report.json, student.pt, grid.png, the fine-tuned seeds), its
verdicts, its recording and its one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

from course_lib.cli import main
from course_lib.compress.supernet import SuperMobileResnetGenerator, export_subnet
from course_lib.gancomp.pipeline import REPORT_KEYS
from course_lib.models.cyclegan import ResnetGenerator
from course_lib.models.mobile_resnet import MobileResnetGenerator
from course_lib.models.registry import model_spec
from course_lib.presets import PRESETS
from course_lib.tasks.distill import DistillConfig, DistillTask, train_distill


def _domains(n=6, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
            torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8))


def _teacher():
    torch.manual_seed(0)
    t = ResnetGenerator(ngf=4, n_blocks=3)
    return model_spec(ResnetGenerator, input_nc=3, output_nc=3, ngf=4, n_blocks=3), t.state_dict()


def test_distill_task_trains_the_student_not_the_teacher_and_checkpoints_the_mappers(tmp_path):
    a, b = _domains()
    spec, state = _teacher()
    student = model_spec(MobileResnetGenerator, input_nc=3, output_nc=3, widths=[2] * 8, n_blocks=3)
    config = DistillConfig(steps=3, batch_size=2, image_size=24, ndf=4)
    run = train_distill(spec, state, student, a, b, config, out_dir=tmp_path, progress=False)
    assert all(torch.equal(run.models["teacher"].state_dict()[k], v) for k, v in state.items())
    assert {"loss_pixel", "loss_feature", "loss_gan", "loss_d"} <= set(run.history)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    mappers = ckpt["task_state"]["mappers"]
    assert len(mappers) == 2 * 4          # 4 layers (trunk input, blocks 1, 2, 3): weight + bias
    # Hooks are off the teacher after training: another forward keeps no features.
    assert not run.models["teacher"]._forward_hooks and not any(
        m._forward_hooks for m in run.models["teacher"].modules())


def test_supernet_task_draws_configs_from_its_seeded_stream():
    a, b = _domains()
    spec, state = _teacher()
    sup = model_spec(SuperMobileResnetGenerator, input_nc=3, output_nc=3, ngf=4, n_blocks=3)
    seen = []

    class Spy(DistillTask):
        def configs(self, ctx, space):
            got = super().configs(ctx, space)
            seen.append(got)
            return got

    from course_lib.engine.loop import fit
    for _ in range(2):
        task = Spy(DistillConfig(steps=3, batch_size=2, image_size=24, ndf=4, sampling="sandwich"),
                   spec, state, sup, a, b)
        fit(task, steps=3, progress=False)
        task.distiller.remove()
    first, second = seen[:3], seen[3:]
    assert len(first) == len(second) == 3                    # one draw per step
    assert first == second                                   # same seed, same configs
    assert all(len(c) == 3 and c[0] == (4,) * 8 for c in first)  # sandwich: largest first
    assert len({c[2] for c in first}) > 1                    # the random member varies by step


def test_bad_distill_settings_are_refused():
    with pytest.raises(ValueError, match="sampling"):
        DistillConfig(sampling="greedy")
    with pytest.raises(ValueError, match="multiple of 4"):
        DistillConfig(image_size=30)
    with pytest.raises(ValueError, match="decay_start"):     # the check CycleGANConfig shares
        DistillConfig(decay_start=1.5)


@pytest.mark.slow
def test_compress_cyclegan_ci_writes_the_report(tmp_path, monkeypatch, capsys):
    from course_lib.compress.profile import torch_threads
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "zoo"))
    out = tmp_path / "out"
    with torch_threads(1):     # tiny models: one thread is faster, and a busy machine stalls two
        assert main(["compress-cyclegan", "--preset", "ci", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    missing = [k for k in REPORT_KEYS if k not in report]
    assert not missing, missing
    assert report["preset"] == "ci" and report["data_source"].startswith("embedded")
    assert report["mac_reduction"] == pytest.approx(report["teacher_macs"] / report["student_macs"])
    assert report["student_macs"] <= report["budget_macs"] < report["teacher_macs"]
    assert report["latency_speedup"] > 0 and report["latency_teacher_ms"] > 0
    for key in ("fid_teacher", "fid_student", "fid_uniform_quarter", "fid_student_before_finetune"):
        assert report[key] > 0, key
    assert all(abs(v) < 0.005 for v in report["macs_agreement"].values())
    assert report["export_max_abs_diff"] < 1e-4
    assert (out / "grid.png").stat().st_size > 0
    # The fine-tune stage: n_seeds zoo entries of the searched architecture, whose mean FD
    # is the student's, each naming the supernet it started from.
    from course_lib import zoo
    n_seeds = PRESETS["ci"].gancomp.n_seeds
    assert report["finetune_kept"]      # on ci, fine-tuning helps on the held-out images
    best = min(range(n_seeds), key=report["heldout_fd"]["finetuned"].__getitem__)
    assert report["finetune_seed"] == best
    seeds = report["fd_per_seed"]["student"]
    assert len(seeds) == n_seeds and report["fid_student"] == pytest.approx(sum(seeds) / n_seeds)
    assert report["finetune_steps"] == PRESETS["ci"].gancomp.finetune_steps
    assert report["verdict_student_vs_quarter_word"] in ("better", "worse", "inconclusive")
    entries = [e for e in zoo.entries() if e["name"] == "gancomp-finetuned-embedded"]
    assert sorted(e["seed"] for e in entries) == list(range(n_seeds))
    for e in entries:
        assert e["config"]["student"]["kwargs"]["widths"] == report["student_config"]
        assert e["config"]["steps"] == report["finetune_steps"] and len(e["config"]["supernet"]) == 16
    from course_lib.engine import load_model
    from course_lib.engine.checkpoint import read_spec
    student = load_model(out / "student.pt")
    assert isinstance(student, MobileResnetGenerator)
    assert list(student.widths) == report["student_config"]
    assert read_spec(out / "student.pt")["config"]["finetune_seed"] == best
    chosen = torch.load(zoo.entry_paths("gancomp-finetuned-embedded", "ci", best)[0], weights_only=True)
    assert all(torch.equal(v, chosen["models"]["student"][k]) for k, v in student.state_dict().items())
    # A second run loads every model from the zoo: same student, same figures.
    with torch_threads(1):
        assert main(["compress-cyclegan", "--preset", "ci", "--out", str(out)]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["student_config"] == report["student_config"]
    assert again["fid_student"] == pytest.approx(report["fid_student"])
    # A fine-tune that does worse on the held-out images is not kept: the student is the
    # exported subnet, everywhere it shows.
    from course_lib.gancomp import pipeline

    real_finetune = pipeline.finetuned_student

    def ruined(*args, **kwargs):
        run = real_finetune(*args, **kwargs)
        with torch.no_grad():
            for p in run.model.parameters():
                p.zero_()       # a constant grey image
        return run

    monkeypatch.setattr(pipeline, "finetuned_student", ruined)
    capsys.readouterr()
    with torch_threads(1):
        assert main(["compress-cyclegan", "--preset", "ci", "--out", str(out)]) == 0
    worse = json.loads((out / "report.json").read_text())
    assert not worse["finetune_kept"] and worse["finetune_seed"] is None
    assert worse["fid_student"] == worse["fid_student_before_finetune"] == \
        pytest.approx(report["fid_student_before_finetune"])
    assert worse["fd_per_seed"]["student"] == [worse["fid_student"]]
    assert read_spec(out / "student.pt")["config"]["finetune_steps"] == 0
    assert "not kept" in capsys.readouterr().out


def test_compress_cyclegan_bad_input_is_one_line(tmp_path, capsys):
    assert main(["compress-cyclegan", "--budget-macs", "-3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--budget-macs" in err and len(err.strip().splitlines()) == 1
    assert main(["compress-cyclegan", "--preset", "ci", "--teacher", str(tmp_path / "nope.pth"),
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "nope.pth" in err and len(err.strip().splitlines()) == 1


def test_exercise_references_agree_with_the_library_layers():
    from course_lib.compress.supernet import SuperConv2d, SuperConvTranspose2d, draw_configs, sliced_conv
    g = torch.Generator().manual_seed(0)
    conv, up = SuperConv2d(6, 8, 3, padding=1), SuperConvTranspose2d(6, 8, 3, 2, 1, 1)
    x = torch.randn(2, 4, 5, 5, generator=g)
    assert torch.equal(sliced_conv(x, conv.weight, conv.bias, 3, False, 1, 1), conv(x, 3))
    assert torch.equal(sliced_conv(x, up.weight, up.bias, 3, True, 2, 1, 1), up(x, 3))
    space = [[4, 2], [8, 6, 4]]
    a = draw_configs(space, 50, torch.Generator().manual_seed(1))
    assert a == draw_configs(space, 50, torch.Generator().manual_seed(1))
    assert {c[1] for c in a} == {8, 6, 4} and all(c[0] in (4, 2) for c in a)


def test_next_generation_keeps_the_best_and_respects_the_budget():
    from course_lib.compress.search import next_generation
    space = [[4, 3, 2, 1]] * 4
    costs = [1.0, 2.0, 2.0, 1.0]
    population = [(1, 1, 1, 1), (2, 2, 2, 2), (1, 2, 1, 2), (2, 1, 2, 1), (3, 1, 1, 1)]
    scores = [5.0, 1.0, 3.0, 2.0, 4.0]
    out = next_generation(population, scores, space, costs, 12.0, 2, 12, torch.Generator().manual_seed(0))
    assert out[:2] == [(2, 2, 2, 2), (2, 1, 2, 1)]
    assert len(out) == 14 and all(sum(c * w for c, w in zip(costs, k)) <= 12.0 for k in out)


def test_cycle_consistency_and_distillation_losses():
    from course_lib.compress.distill import distillation_loss, distill_losses, feature_loss
    from course_lib.losses import cycle_consistency_loss
    a = torch.zeros(1, 3, 4, 4)
    assert float(cycle_consistency_loss(a, a + 0.5, a, a - 0.25, 10.0)) == pytest.approx(7.5)
    g = torch.Generator().manual_seed(0)
    s_out, t_out = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    s, t = [torch.randn(2, 2, 2, 2, generator=g)], [torch.randn(2, 5, 2, 2, generator=g)]
    mapper = torch.nn.Conv2d(2, 5, 1, bias=False)
    want = distill_losses(s_out, t_out, feature_loss(s, t, [mapper]))["total"]
    got = distillation_loss(s_out, t_out, s, t, [mapper.weight])
    assert float(got.detach()) == pytest.approx(float(want.detach()))


def test_the_ci_recording_rebuilds_its_students_and_stands_in_for_class(monkeypatch, tmp_path):
    from course_lib.gancomp.record import (NotebookRecording, compressed_student, has_recording,
                                           notebook_recording, student_kind)
    from course_lib.recording import grid_u8
    shown = notebook_recording("ci")
    assert not shown.stand_in and "Stand-in" not in shown.banner()
    assert shown.label == "ci recording"          # captions and plot titles carry it
    assert NotebookRecording(shown.recording, "class", True).label == "ci stand-in recording"
    rep, rec = shown.report, shown.recording
    assert student_kind("ci") == "finetuned" and "fine-tuned" in shown.student_label
    student = compressed_student("ci")
    assert list(student.widths) == rep["student_config"]
    models = shown.models()
    x = rec.images("inputs")
    with torch.no_grad():
        # the exported subnet is the supernet at the searched config ...
        assert torch.allclose(models["exported"](x), models["supernet"](x, tuple(student.widths)),
                              atol=1e-5)
        # ... and the shipped student (fp16) is the fine-tuned seed 0 that made the samples.
        made = grid_u8(student(x)).astype(int)
        assert abs(made - rec.samples["student"].astype(int)).max() <= 2
        assert (rec.samples["student"] == rec.samples["finetuned-s0"]).all()
        assert not torch.allclose(student(x), models["exported"](x), atol=1e-4)
    # The report's student FDs are the recorded fine-tuned runs' final FDs.
    assert rec.finals("finetuned", key="fd_a2b") == pytest.approx(rep["fd_per_seed"]["student"])
    assert len(rec.select("finetuned")) == shown.settings["n_seeds"]
    monkeypatch.setattr("course_lib.recording.RECORDED_DIR", tmp_path)   # nothing recorded there
    assert not has_recording("class")
    with pytest.raises(FileNotFoundError, match="course_lib.gancomp.record"):
        notebook_recording("class")


def test_a_budget_below_every_subnet_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    # The smallest subnet of the ci supernet costs far more than 1 MAC: say so at once,
    # naming the flag, instead of after the teacher, students and supernet have trained.
    import course_lib.gancomp.pipeline as pipeline

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --budget-macs")

    monkeypatch.setattr(pipeline, "get_teacher", no_training)
    assert main(["compress-cyclegan", "--preset", "ci", "--budget-macs", "1",
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "--budget-macs" in err and "smallest subnet" in err and len(err.strip().splitlines()) == 1


def test_a_teacher_checkpoint_that_is_not_an_image_translator_is_one_line(tmp_path, capsys):
    # A DCGAN checkpoint of this library loads, but maps latents to images: refuse it by
    # name instead of failing deep inside the first forward pass.
    from course_lib.engine.checkpoint import make_spec
    from course_lib.fileio import atomic_torch_save
    from course_lib.models import DCGANGenerator

    G = DCGANGenerator(z_dim=8, ngf=4, image_size=32)
    spec = make_spec("train-dcgan", {"G": model_spec(DCGANGenerator, z_dim=8, ngf=4, image_size=32)},
                     {}, preset="ci", sample_role="G")
    atomic_torch_save({"spec": spec, "models": {"G": G.state_dict()}}, tmp_path / "dcgan.pt")
    assert main(["compress-cyclegan", "--preset", "ci", "--teacher", str(tmp_path / "dcgan.pt"),
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "--teacher" in err and "DCGANGenerator" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--work", "--out"])
def test_record_refuses_an_output_under_a_file_before_training(flag, tmp_path, capsys, monkeypatch):
    import course_lib.gancomp.pipeline as pipeline
    from course_lib.gancomp.record import main as record_main

    def no_training(**kwargs):
        raise AssertionError(f"trained before checking {flag}")

    monkeypatch.setattr(pipeline, "compress_cyclegan", no_training)
    (tmp_path / "a-file").write_text("x")
    others = {"--work": str(tmp_path / "work"), "--out": str(tmp_path / "rec")}
    others[flag] = str(tmp_path / "a-file" / "sub")
    assert record_main(["--preset", "ci", "--work", others["--work"], "--out", others["--out"]]) == 1
    err = capsys.readouterr().err.strip()
    assert flag in err and len(err.splitlines()) == 1, err


def test_the_student_seeds_against_the_quarter_seeds():
    # "better" only when the fine-tuned seeds' range lies below the 0.25x seeds' range;
    # overlapping ranges, or one student (no seed spread), are "inconclusive".
    from course_lib.gancomp.pipeline import report_verdicts
    fixed = {"quarter": [17.4, 18.9], "undistilled": [15.0, 15.5], "distilled": [12.0, 12.5]}
    got = report_verdicts({**fixed, "student": [12.5, 12.6]})
    assert got["verdict_student_vs_quarter_word"] == "better"
    assert got["verdict_student_vs_quarter"].startswith("better (12.5–12.6 against 17.4–18.9")
    assert got["verdict_distilled_vs_undistilled"] == "better"
    def word(student):
        return report_verdicts({**fixed, "student": student})["verdict_student_vs_quarter_word"]

    assert word([17.0, 17.5]) == "inconclusive"       # inside the 0.25x seeds' range
    assert word([19.0, 19.5]) == "worse"
    assert word([1.0]) == "inconclusive"              # one seed, however low


def test_a_recording_made_before_the_fine_tune_stage_still_reads(monkeypatch, tmp_path):
    # The class recording shipped before this stage: no student file, a report without the
    # fine-tune keys and settings without finetune_steps. It reads as one exported student.
    import json as json_
    import shutil

    from course_lib.gancomp.record import (STUDENT_FILE, compressed_student, notebook_recording,
                                           recorded_models, student_kind)
    from course_lib.presets import GanCompSettings
    from course_lib.recording import RECORDED_DIR
    old = tmp_path / "class"
    shutil.copytree(RECORDED_DIR / "ci", old)
    (old / STUDENT_FILE).unlink()
    runs = json_.loads((old / "gancomp_runs.json").read_text())
    report, settings = runs["report"], runs["settings"]
    monkeypatch.setattr("course_lib.recording.RECORDED_DIR", tmp_path)
    # A report that keeps its fine-tuned student but lost the file is refused in one line.
    with pytest.raises(FileNotFoundError, match="gancomp_student.pt is missing"):
        student_kind("class")
    for key in ("fid_student_before_finetune", "finetune_steps"):
        del report[key]
    for key in ("finetune_kept", "finetune_seed", "fid_finetuned", "heldout_fd"):
        report.pop(key, None)
    del settings["finetune_steps"]
    del report["fd_per_seed"]["student"]
    report["fd_per_seed"].pop("finetuned", None)
    runs["runs"] = [r for r in runs["runs"] if r["model"] != "finetuned"]
    runs["preset"] = "class"            # as a class recording says
    (old / "gancomp_runs.json").write_text(json_.dumps(runs))

    shown = notebook_recording("class")
    assert not shown.stand_in and student_kind("class") == "exported"
    assert "not fine-tuned" in shown.student_label
    rep = shown.report
    assert rep["finetune_steps"] == 0 and rep["fid_student_before_finetune"] == rep["fid_student"]
    assert rep["verdict_student_vs_quarter_word"] == "inconclusive"     # one student
    assert GanCompSettings(**shown.settings).finetune_steps == 0
    models = recorded_models("class")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(compressed_student("class")(x), models["exported"](x))
        assert torch.allclose(models["student"](x), models["supernet"](x, tuple(report["student_config"])),
                              atol=1e-5)
