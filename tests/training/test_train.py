"""`unmask train` through the real CLI, on small synthetic data: what a run leaves behind,
--resume, the tuner, the ensemble, and the errors a person sees."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from models.weights import FOLDER as SHARED_WEIGHTS, MOBILENET as MOBILENET_WEIGHTS
from models.detector import Detector
from tests.synthetic import bad_files, face_image, small_detector, write_image

HAVE_SHARED = (SHARED_WEIGHTS / MOBILENET_WEIGHTS[0.25] / "model.json").exists()
WEIGHTS = "shared" if HAVE_SHARED else "none"


def history_epochs(run: Path) -> list[int]:
    with open(run / "history.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def data_with_bad_files(small_manifest, tmp_path_factory):
    """The small manifest folder plus three broken files listed in its manifest."""
    root = tmp_path_factory.mktemp("train-data") / "faces"
    shutil.copytree(small_manifest, root)
    bad = bad_files(root / "broken")
    with open(root / "manifest.csv", "a") as f:
        for reason in ("corrupt", "truncated", "too_small"):
            f.write(f"broken/{bad[reason].name},fake,alpha,bad-{reason}\n")
    return root


@pytest.fixture(scope="module")
def tiny_run(data_with_bad_files, tmp_path_factory):
    """One tiny run through the CLI: head 1 epoch, fine-tune 1 epoch, then evaluation."""
    from training.commands import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    status = main(["train", "--model", "tiny", "--data", str(data_with_bad_files), "--out", str(run), "--epochs", "1",
                   "--fine-tune-epochs", "1", "--batch-size", "8", "--weights", WEIGHTS, "--seed", "3"])
    assert status == 0
    return run


def test_a_run_leaves_model_calibration_split_history_and_checkpoints(tiny_run, data_with_bad_files):
    for name in ("model.keras", "detector.json", "split.json", "data.json", "history.csv",
                 "checkpoints/last.keras", "checkpoints/best.keras", "checkpoints/state.json"):
        assert (tiny_run / name).is_file(), name
    assert any((tiny_run / "logs").rglob("*")), "no TensorBoard logs"

    info = json.loads((tiny_run / "detector.json").read_text())
    assert info["architecture"] == "tiny"
    cal = info["calibration"]
    assert cal["temperature"] > 0 and cal["real_threshold"] <= cal["fake_threshold"] and cal["target_precision"] == 0.9
    assert cal["max_false_alarm"] == 0.05 and cal["min_source_reals"] == 20  # bounded per source of reals
    assert cal["fitted_on"]["n"] == info["training"]["split_sizes"]["val"]["total"] > 0
    per = cal["fitted_on"]["false_alarm_per_source"]  # the validation reals' sources, each counted
    assert set(per) <= {"alpha", "beta"} and sum(v["n_real"] for v in per.values()) == info["training"]["split_sizes"]["val"]["real"]
    t = info["training"]
    assert t["seed"] == 3 and t["epochs_run"] == 2 and t["layout"] == "manifest"
    assert t["skipped"] == {"corrupt": 1, "too_small": 1, "truncated": 1}
    assert sum(v["total"] for v in t["split_sizes"].values()) == 48
    assert t["counts"] == {"alpha": {"real": 12, "fake": 12}, "beta": {"real": 12, "fake": 12}}

    split = json.loads((tiny_run / "split.json").read_text())
    assert {k: len(v) for k, v in split["splits"].items()} == {k: v["total"] for k, v in t["split_sizes"].items()}
    data = json.loads((tiny_run / "data.json").read_text())
    assert sorted(Path(x["path"]).name for x in data["skipped_files"]) == ["corrupt.jpg", "tiny.png", "truncated.jpg"]
    assert history_epochs(tiny_run) == [0, 1]
    state = json.loads((tiny_run / "checkpoints" / "state.json").read_text())
    assert state["phase"] == "fine-tune" and state["epoch"] == 2 and len(state["epoch_seconds"]) == 2

    # The saved detector works, and training ran the evaluation.
    det = Detector.load(tiny_run)
    pred = det.predict_images([face_image("fake", 200, 5)])[0]
    assert pred.verdict in ("fake", "real", "uncertain") and 0 <= pred.p_fake <= 1
    assert (tiny_run / "metrics.json").is_file() and (tiny_run / "MODEL_CARD.md").is_file()


def test_fine_tuning_adapts_the_whole_backbone_batch_norm_included(tiny_run):
    from models.architectures import build_tiny

    model = keras.saving.load_model(tiny_run / "checkpoints" / "last.keras")
    (backbone,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    convs = [layer for layer in backbone.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert convs and all(layer.trainable for layer in convs)
    assert norms and all(layer.trainable for layer in norms)
    # The statistics moved away from where they started: batch norm really ran in training mode.
    (imagenet,) = [layer for layer in build_tiny(weights=None if WEIGHTS == "none" else WEIGHTS).layers
                   if isinstance(layer, keras.Model)]
    before = imagenet.get_layer(norms[0].name).moving_mean.numpy()
    assert np.abs(norms[0].moving_mean.numpy() - before).max() > 1e-4


def test_the_summary_of_the_data_comes_first(data_with_bad_files, tmp_path, unmask):
    status, out, err = unmask("train", "--model", "tiny", "--data", data_with_bad_files, "--out", tmp_path / "r",
                              "--epochs", "1", "--fine-tune-epochs", "0", "--limit", "24", "--batch-size", "8",
                              "--weights", "none", "--balance", "oversample", "--no-augment", "--no-evaluate")
    assert status == 0, err
    assert out.index("Data: ") < out.index("split: ") < out.index("Trainable params") < out.index("saved detector")
    assert "skipped 3 file(s)" in out and "truncated.jpg" in out
    assert "--limit 24: using" in out
    info = json.loads((tmp_path / "r" / "detector.json").read_text())
    assert info["training"]["args"]["balance"] == "oversample"
    assert sum(v["total"] for v in info["training"]["split_sizes"].values()) < 48
    assert json.loads((tmp_path / "r" / "checkpoints" / "state.json").read_text())["phase"] == "train"


def test_resume_continues_from_the_last_checkpoint_and_epoch(tiny_run, data_with_bad_files, tmp_path, unmask):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    before = json.loads((run / "split.json").read_text())["splits"]
    first_seconds = json.loads((run / "detector.json").read_text())["training"]["seconds"]
    status, out, err = unmask("train", "--model", "tiny", "--out", run, "--resume",  # the data: from split.json
                              "--epochs", "1", "--fine-tune-epochs", "2", "--batch-size", "8", "--weights", WEIGHTS,
                              "--seed", "3", "--no-evaluate")
    assert status == 0, err
    assert "resuming" in out and "at epoch 2 (fine-tune phase)" in out
    assert "Epoch 3/3" in out and "Epoch 1/" not in out
    assert history_epochs(run) == [0, 1, 2]
    assert json.loads((run / "split.json").read_text())["splits"] == before
    training = json.loads((run / "detector.json").read_text())["training"]
    assert training["epochs_run"] == 3
    # The wall time covers both sessions: the first one's and this one's third epoch at least.
    assert training["seconds"] > first_seconds + training["epoch_seconds"][2]


def test_an_existing_run_is_not_overwritten(tiny_run, data_with_bad_files, unmask):
    stamp = (tiny_run / "model.keras").stat().st_mtime_ns
    status, _, err = unmask("train", "--model", "tiny", "--data", data_with_bad_files, "--out", tiny_run)
    assert status == 2 and "already holds a run; pass --resume" in err
    assert (tiny_run / "model.keras").stat().st_mtime_ns == stamp


def test_resume_with_nothing_to_resume_or_another_model(tiny_run, data_with_bad_files, tmp_path, unmask):
    status, _, err = unmask("train", "--model", "tiny", "--data", data_with_bad_files, "--out", tmp_path / "new", "--resume")
    assert status == 2 and "nothing to resume" in err
    status, _, err = unmask("train", "--model", "seed-cnn", "--data", data_with_bad_files, "--out", tiny_run, "--resume")
    assert status == 2 and "is a tiny run; resume it with --model tiny" in err


def test_unusable_data_is_a_clear_error(tmp_path, unmask):
    (tmp_path / "empty").mkdir()
    status, _, err = unmask("train", "--model", "tiny", "--data", tmp_path / "empty", "--out", tmp_path / "r")
    assert status == 2 and "it is empty" in err and "real/ and fake/" in err
    status, _, err = unmask("train", "--model", "tiny", "--data", tmp_path / "missing", "--out", tmp_path / "r2")
    assert status == 2 and "does not exist" in err
    # Too few groups for a validation split.
    for i, label in enumerate(["real", "fake"]):
        write_image(tmp_path / "two" / label / f"{i}.jpg", face_image(label, 160, i))
    status, _, err = unmask("train", "--model", "tiny", "--data", tmp_path / "two", "--out", tmp_path / "r3")
    assert status == 2 and "split is empty" in err


def test_tuned_cnn_search_records_trials_and_trains_the_best(small_manifest, tmp_path, unmask, monkeypatch):
    from training import tune

    # The real search, over narrower networks so that the test stays quick.
    monkeypatch.setattr(tune, "SEARCH_SPACE", {"filters": [(8, 16), (8, 16, 32)], "dense": [16, 32], "dropout": [0.2, 0.5],
                                               "lr": [1e-3, 3e-3]})
    run = tmp_path / "tuned"
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", small_manifest, "--out", run, "--tune", "2",
                              "--tune-epochs", "1", "--epochs", "1", "--batch-size", "8", "--no-evaluate")
    assert status == 0, err
    trials = json.loads((run / "tuning" / "trials.json").read_text())
    assert len(trials) == 2 and all(t["val_auc"] is not None for t in trials)
    best = json.loads((run / "tuning" / "best.json").read_text())
    assert best["val_auc"] == max(t["val_auc"] for t in trials)
    info = json.loads((run / "detector.json").read_text())
    assert info["training"]["settings"]["tuned"] == best["config"]
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("block0_conv0").filters == best["config"]["filters"][0]


def test_ensemble_fits_only_the_stacking_weights_on_validation(tiny_run, tmp_path, unmask):
    other = tmp_path / "tuned-small"
    small_detector(other, "tuned-cnn", steps=1)
    run = tmp_path / "ens"
    status, out, err = unmask("train", "--model", "ensemble", "--members", f"{tiny_run},{other}", "--out", run,
                              "--epochs", "50", "--no-evaluate")
    assert status == 0, err
    assert f"using the split of {tiny_run}" in out  # the members' test split stays unseen
    assert json.loads((run / "split.json").read_text())["splits"] == json.loads((tiny_run / "split.json").read_text())["splits"]
    det = Detector.load(run)
    assert det.architecture == "ensemble" and det.member_names == ["tiny", "tuned-cnn"]
    w, b = det.model.get_layer("p_fake").get_weights()
    assert not np.allclose(w, 0.5) or abs(float(b)) > 1e-4  # moved from its initial value
    # The members are the trained ones, untouched.
    member = Detector.load(tiny_run)
    x = np.stack([det.prepare(face_image("fake", 224, 1))])
    members_out = np.asarray(det.model(x, training=False)["members"])
    size = member.spec.input_size
    x_small = np.asarray(keras.layers.Resizing(size, size)(x))
    np.testing.assert_allclose(members_out[0, 0], np.asarray(member.model(x_small, training=False))[0, 0], rtol=1e-4)
    assert det.calibration.fitted_on["n"] > 0

    # Restacked with a new member: the ensemble gives its members, unchanged, and its split.
    third = tmp_path / "tuned-third"
    small_detector(third, "tuned-cnn", steps=1, seed=5)
    again = tmp_path / "ens-plus-one"
    status, out, err = unmask("train", "--model", "ensemble", "--members", f"{run},{third}", "--out", again,
                              "--epochs", "50", "--no-evaluate")
    assert status == 0, err
    bigger = Detector.load(again)
    assert bigger.member_names == ["tiny", "tuned-cnn", "tuned-cnn-2"]  # each member named once
    assert json.loads((again / "split.json").read_text())["splits"] == json.loads((run / "split.json").read_text())["splits"]
    np.testing.assert_allclose(np.asarray(bigger.model(x, training=False)["members"])[0, :2], members_out[0], rtol=1e-4)
    # One member picked out of an ensemble by name, or a clear error.
    status, out, err = unmask("train", "--model", "ensemble", "--members", f"{run}#tiny,{third}", "--out", tmp_path / "pick",
                              "--epochs", "5", "--no-evaluate")
    assert status == 0, err
    assert Detector.load(tmp_path / "pick").member_names == ["tiny", "tuned-cnn"]
    status, out, err = unmask("train", "--model", "ensemble", "--members", f"{run}#npr,{third}", "--out", tmp_path / "bad",
                              "--no-evaluate")
    assert status != 0 and "has no member 'npr'; it has tiny, tuned-cnn" in err
    # An equal vote: nothing fitted but the calibration.
    status, out, err = unmask("train", "--model", "ensemble", "--members", f"{run},{third}", "--out", tmp_path / "equal",
                              "--stack", "equal", "--no-evaluate")
    assert status == 0, err
    assert "an equal vote of the 3 members" in out
    equal = Detector.load(tmp_path / "equal")
    w, b = equal.model.get_layer("p_fake").get_weights()
    np.testing.assert_allclose(w, [1 / 3] * 3)
    np.testing.assert_allclose(b, 0.0)
    assert equal.calibration.fitted_on["n"] > 0


def test_ensemble_with_no_readable_validation_image_is_a_clear_error(tiny_run, data_with_bad_files, tmp_path, unmask):
    """The stacking weights are fitted on the validation images: none readable, nothing written."""
    from training.data import load_split

    data = tmp_path / "data"
    shutil.copytree(data_with_bad_files, data)
    for s in load_split(tiny_run, data)["val"]:
        Path(s.path).write_bytes(b"not an image any more")
    other = tmp_path / "tuned-small"
    small_detector(other, "tuned-cnn", steps=1)
    run = tmp_path / "ens"
    status, _, err = unmask("train", "--model", "ensemble", "--members", f"{tiny_run},{other}", "--data", data,
                            "--out", run, "--no-evaluate")
    assert status == 2 and "no validation image could be read" in err, err
    assert not (run / "model.keras").exists()


def test_max_false_alarm_out_of_range_is_a_clear_error(small_manifest, tmp_path, unmask):
    for bad in ("-0.1", "1.5"):
        status, _, err = unmask("train", "--model", "tiny", "--data", small_manifest, "--out", tmp_path / bad,
                                "--max-false-alarm", bad)
        assert status == 2 and "--max-false-alarm" in err and "from 0 to 1" in err, err
        assert not (tmp_path / bad).exists()


def test_weights_from_a_folder_that_is_not_there_is_a_clear_error(small_manifest, tmp_path, unmask):
    status, _, err = unmask("train", "--model", "tiny", "--data", small_manifest, "--out", tmp_path / "run",
                            "--weights", tmp_path / "no-weights-here")
    assert status == 2 and "no such folder" in err and "docs/weights.md" in err, err
    assert not (tmp_path / "run").exists()


def test_ensemble_needs_members(tmp_path, unmask):
    status, _, err = unmask("train", "--model", "ensemble", "--out", tmp_path / "e")
    assert status == 2 and "--members" in err
    status, _, err = unmask("train", "--model", "ensemble", "--members", tmp_path / "nope", "--out", tmp_path / "e2")
    assert status == 2 and "no model at" in err


def test_xception_without_a_download_is_a_clear_error(small_manifest, tmp_path, unmask):
    status, _, err = unmask("train", "--model", "pretrained", "--backbone", "xception", "--data", small_manifest,
                            "--out", tmp_path / "x", "--epochs", "1")
    assert status == 2
    assert "--weights imagenet" in err and "Xception" in err


def test_split_from_trains_on_another_runs_split(tiny_run, data_with_bad_files, tmp_path, unmask):
    """A new ensemble member trained --split-from the ensemble's run never sees its test split."""
    run = tmp_path / "same-split"
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", data_with_bad_files, "--out", run,
                              "--split-from", tiny_run, "--epochs", "1", "--batch-size", "8", "--no-evaluate")
    assert status == 0, err
    assert f"using the split recorded in {tiny_run / 'split.json'}" in out
    assert json.loads((run / "split.json").read_text())["splits"] == json.loads((tiny_run / "split.json").read_text())["splits"]
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", data_with_bad_files, "--out", tmp_path / "x",
                              "--split-from", tmp_path / "nowhere")
    assert status != 0 and "--split-from: no model at" in err
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", data_with_bad_files, "--out", tmp_path / "y",
                              "--split-from", tiny_run, "--leave-out", "alpha")
    assert status != 0 and "do not go together" in err
