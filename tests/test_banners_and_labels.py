"""Statements a learner reads (issue 12 §5): banners say what the data is, and a KID's label
does not call itself an FD."""
from types import SimpleNamespace

from course_lib.data import source_banner
from course_lib.experiments import load_recording
from course_lib.metrics.features import RandomConvFeatures, features_label
from course_lib.widgets.augment import recording_banner, recording_source


def test_a_demo_folder_is_not_called_real_data():
    html = source_banner(SimpleNamespace(source="12 images in my_photos_demo", is_demo=True))
    assert "demo" in html and "Real data" not in html and "MY_PHOTOS" in html
    assert "Real data" in source_banner(SimpleNamespace(source="my cat"))


def test_the_recording_banner_gives_the_training_set_sizes_not_the_test_splits():
    recording = load_recording("class")
    sizes = {r["fraction"]: r["n_train"] for r in recording.runs}
    text = recording_source(recording)
    for fraction, n in sizes.items():
        assert f"{n:,} ({fraction:.0%})" in text
    test_count = recording.data_source.split()[1] if recording.data_source.startswith("embedded") else None
    if test_count and test_count.replace(",", "").isdigit() and int(test_count.replace(",", "")) not in sizes.values():
        assert f"{test_count} 32x32" not in text
    assert text in recording_banner(recording) or "recorded runs" in recording_banner(recording)


def test_features_label_names_the_features_only():
    label = features_label(RandomConvFeatures.name)
    assert "FD" not in label and "random-conv" in label
    assert "FID" not in features_label("FID (Inception, pytorch-fid)")
