"""`unmask evaluate`: metrics (checked against hand-worked numbers), every output file,
calibration stored and applied, web degradation, whole folders and bad input."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from models.calibration import Calibration
from tests.synthetic import face_image, manifest_folder, write_image
from training.commands import main
from training.evaluate import compute_metrics, evaluate_run
from training.model_card import render

PLOTS = {"training_curves", "roc", "confusion", "verdicts", "reliability", "scores"}
# What Keras's CSVLogger writes; two phases (head, then fine-tuning) restart the epoch count.
HISTORY = """epoch,accuracy,auc,loss,val_accuracy,val_auc,val_loss
0,0.61,0.66,0.68,0.58,0.63,0.69
1,0.70,0.77,0.59,0.66,0.71,0.64
0,0.74,0.81,0.55,0.69,0.75,0.61
1,0.79,0.86,0.49,0.71,0.78,0.60
"""
STORED = Calibration(temperature=1.7, fake_threshold=0.62, real_threshold=0.35, target_precision=0.9,
                     fitted_on={"n": 8, "precision_fake": 1.0, "precision_real": 1.0, "share_fake": 0.25,
                                "share_real": 0.25, "share_uncertain": 0.5})


def valid_png(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(path) as im:
        assert im.width > 100 and im.height > 100
        return im.size


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """alpha and beta have both labels; gamma only fakes; one listed file is truncated."""
    root = manifest_folder(tmp_path_factory.mktemp("data"), n_per_label=6, size=160, sources=("alpha", "beta"), group_size=2)
    rows = [f"gamma/fake/{i:03d}.jpg,fake,gamma,gamma-g{i}" for i in range(5)]
    for i in range(5):
        write_image(root / f"gamma/fake/{i:03d}.jpg", face_image("fake", 160, 500 + i))
    broken = root / "alpha/real/broken.jpg"
    good = (root / "alpha/real/00000.jpg").read_bytes()
    broken.write_bytes(good[: len(good) // 2])
    rows.append("alpha/real/broken.jpg,real,alpha,alpha-broken")
    with open(root / "manifest.csv", "a") as f:
        f.write("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir, data_root):
    """A run folder as `unmask train` leaves it: detector, stored calibration, split, history."""
    from models.detector import Detector
    from training.data import Sample, load_dataset, save_split

    run = tmp_path_factory.mktemp("run")
    for f in tiny_dir.iterdir():
        shutil.copy(f, run / f.name)
    det = Detector.load(run)
    det.calibration = STORED
    det.save_info()
    (run / "history.csv").write_text(HISTORY)
    samples = load_dataset(data_root, progress=False).samples
    train = [s for s in samples if s.group in ("alpha-g0", "beta-g0")]
    val = [s for s in samples if s.group in ("alpha-g1", "beta-g1")]
    test = [s for s in samples if s not in train and s not in val]
    test.append(Sample(str(data_root / "alpha/real/broken.jpg"), 0, "alpha", "alpha-broken"))  # fails at evaluation
    save_split(run, data_root, 1337, {"train": train, "val": val, "test": test})
    return run


def test_metrics_by_hand():
    p = [0.1, 0.3, 0.55, 0.7, 0.45, 0.9]
    y = [0, 0, 0, 1, 1, 1]
    src = ["a", "a", "a", "a", "b", "b"]
    m = compute_metrics(p, y, src, Calibration(1.0, fake_threshold=0.6, real_threshold=0.4))
    o = m["overall"]
    # At 0.5: TN 2 (0.1, 0.3), FP 1 (0.55), FN 1 (0.45), TP 2 (0.7, 0.9).
    assert o["confusion_matrix"] == [[2, 1], [1, 2]]
    assert o["accuracy"] == pytest.approx(4 / 6) and o["precision"] == pytest.approx(2 / 3)
    assert o["recall"] == pytest.approx(2 / 3) and o["f1"] == pytest.approx(2 / 3)
    assert o["roc_auc"] == pytest.approx(8 / 9)  # 8 of the 9 fake-real pairs ranked right
    assert o["verdict_matrix"] == [[2, 1, 0], [0, 1, 2]]  # rows real/fake; columns real, uncertain, fake
    assert o["classification_report"]["fake"]["support"] == 3
    a, b = m["per_source"]["a"], m["per_source"]["b"]
    assert a["roc_auc"] == 1.0 and a["accuracy"] == 0.75 and a["tnr"] == pytest.approx(2 / 3) and a["tpr"] == 1.0
    assert a["real_verdict_rate_on_reals"] == pytest.approx(2 / 3) and a["share_uncertain"] == 0.25
    assert b["roc_auc"] is None and b["tnr"] is None and b["tpr"] == 0.5  # fakes only: no AUC
    assert b["fake_verdict_rate_on_fakes"] == 0.5
    assert m["two_label_sources"] == ["a"] and m["mean_auc_two_label_sources"] == 1.0
    c = m["calibration"]
    assert c["precision_fake"] == 1.0 and c["precision_real"] == 1.0 and c["target_met_fake"] is True
    assert c["coverage"] == pytest.approx(4 / 6) and c["share_uncertain"] == pytest.approx(2 / 6)
    # One score per bin of ten: ECE = mean |p - y| = (0.1 + 0.3 + 0.55 + 0.3 + 0.55 + 0.1) / 6
    assert c["ece_raw"] == pytest.approx(1.9 / 6) and c["ece_calibrated"] == pytest.approx(c["ece_raw"])
    assert c["fitted"] is False  # a default calibration is reported as such


def test_temperature_changes_calibrated_numbers_only():
    p, y, src = [0.2, 0.4, 0.7, 0.95], [0, 1, 0, 1], ["a"] * 4
    cold = compute_metrics(p, y, src, Calibration(1.0))
    warm = compute_metrics(p, y, src, Calibration(3.0))
    assert warm["overall"]["roc_auc"] == cold["overall"]["roc_auc"]  # ranking untouched
    assert warm["overall"]["accuracy"] == cold["overall"]["accuracy"]  # 0.5 stays 0.5
    assert warm["calibration"]["ece_raw"] == cold["calibration"]["ece_raw"]
    assert warm["calibration"]["ece_calibrated"] != cold["calibration"]["ece_calibrated"]


def test_evaluate_run_writes_everything(run_dir, data_root):
    m = evaluate_run(run_dir, progress=False)
    files = json.loads((run_dir / "metrics.json").read_text())
    assert files["overall"] == json.loads(json.dumps(m["overall"]))
    for key in ("model", "data", "overall", "per_source", "two_label_sources", "mean_auc_two_label_sources",
                "calibration", "plots", "files", "command"):
        assert key in files, key
    d = files["data"]
    assert d["split"] == "test" and d["root"] == str(data_root.resolve())
    assert [e["reason"] for e in d["errors"]] == ["truncated"] and d["errors"][0]["path"].endswith("broken.jpg")
    n = d["n_scored"]
    # alpha-g0/beta-g0 trained, -g1 validated: 2 + 2 per source left, and gamma's 5 fakes
    assert (n, d["n_real"], d["n_fake"]) == (13, 4, 9)
    assert np.sum(files["overall"]["confusion_matrix"]) == n == np.sum(files["overall"]["verdict_matrix"])

    per = files["per_source"]
    assert set(per) == {"alpha", "beta", "gamma"}
    for name in ("alpha", "beta"):
        assert 0 <= per[name]["roc_auc"] <= 1 and per[name]["n_real"] == per[name]["n_fake"] == 2
    assert per["gamma"]["roc_auc"] is None and per["gamma"]["tnr"] is None and per["gamma"]["n_fake"] == 5
    assert 0 <= per["gamma"]["fake_verdict_rate_on_fakes"] <= 1
    assert files["two_label_sources"] == ["alpha", "beta"]
    assert files["mean_auc_two_label_sources"] == pytest.approx((per["alpha"]["roc_auc"] + per["beta"]["roc_auc"]) / 2)

    # The stored calibration is the one reported and applied.
    c = files["calibration"]
    assert c["fitted"] and (c["temperature"], c["fake_threshold"], c["real_threshold"]) == (1.7, 0.62, 0.35)
    with open(run_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n + 1
    verdicts = {"fake": 0, "real": 0, "uncertain": 0}
    for row in rows:
        if row["verdict"] == "error":
            assert row["path"].endswith("broken.jpg") and row["error"].startswith("truncated")
            continue
        expected = STORED.verdict(float(row["p_fake_raw"]))
        assert row["verdict"] == expected["verdict"] and float(row["p_fake"]) == pytest.approx(expected["p_fake"])
        verdicts[row["verdict"]] += 1
    assert c["share_uncertain"] == pytest.approx(verdicts["uncertain"] / n)

    assert set(files["plots"]) == PLOTS
    for name in files["plots"].values():
        valid_png(run_dir / name)
    card = (run_dir / "MODEL_CARD.md").read_text()
    for heading in ("## Model", "## Training", "## Calibration", "## Results", "## Limitations"):
        assert heading in card
    assert "| alpha |" in card and "| gamma |" in card and "temperature 1.700" in card
    assert f"{files['mean_auc_two_label_sources']:.3f}" in card
    assert "31,509,377" not in card  # the seed-cnn note is for seed-cnn only


def test_cli_degraded_then_clean(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--degrade", "web", "--quiet"]) == 0
    web = json.loads((run_dir / "eval-test-web" / "metrics.json").read_text())
    assert web["data"]["degrade"] == "web" and "--degrade web" in web["command"]
    with open(run_dir / "eval-test-web" / "predictions.csv", newline="") as f:
        degraded = {r["path"]: r["p_fake_raw"] for r in csv.DictReader(f) if r["verdict"] != "error"}
    assert main(["evaluate", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mean AUC over sources with both labels (alpha, beta)" in out and "wrote metrics.json" in out
    with open(run_dir / "predictions.csv", newline="") as f:
        clean = {r["path"]: r["p_fake_raw"] for r in csv.DictReader(f) if r["verdict"] != "error"}
    assert clean.keys() == degraded.keys() and clean != degraded  # the degradation changed the scores
    assert "Web-degraded copies" in (run_dir / "MODEL_CARD.md").read_text()


def test_verdict_changes_count_opposites_only_between_fake_and_real():
    from training.face_sizes import changes

    shown = {"a": "fake", "b": "uncertain", "c": "real", "e": "real"}
    as_is = {"a": "real", "b": "uncertain", "c": "uncertain", "d": "fake", "e": "real"}
    assert changes(shown, as_is) == {"changed": 2, "opposite": 1, "of": 4}


def test_cli_face_size_degradation_and_the_study_of_face_sizes(run_dir, tmp_path, capsys):
    """--degrade face48 judges every face crop shrunk as a 48 px face's; python -m
    training.face_sizes runs it at every size and records each size's verdict figures."""
    from training import face_sizes
    from training.evaluate import FACE_SIZES

    out = tmp_path / "face48"
    assert main(["evaluate", str(run_dir), "--degrade", "face48", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["degrade"] == "face48" and "--degrade face48" in m["command"]
    with open(out / "predictions.csv", newline="") as f:
        small = {r["path"]: r["p_fake_raw"] for r in csv.DictReader(f) if r["verdict"] != "error"}

    record, figure, doc = tmp_path / "face-sizes.json", tmp_path / "face-sizes.png", tmp_path / "EVALUATION.md"
    doc.write_text(f"<!-- table face-sizes from {record}: python -m training.report -->\n<!-- end table face-sizes -->\n")
    assert face_sizes.main(["--models", str(run_dir), "--out", str(tmp_path / "study"), "--record", str(record),
                            "--figure", str(figure), "--doc", str(doc)]) == 0
    results = json.loads(record.read_text())
    sizes = results["models"][run_dir.name]
    assert list(sizes) == [*(str(n) for n in sorted(FACE_SIZES)), "as is"]
    for d in sizes.values():
        assert d["faces"] == m["data"]["n_scored"]
        assert set(d["auc"]) == {"alpha", "beta"} and 0 <= d["mean_auc_paired"] <= 1
    assert "verdicts_from_as_is" not in sizes["as is"]
    assert sizes["48"]["verdicts_from_as_is"]["of"] == m["data"]["n_scored"]
    with open(tmp_path / "study" / run_dir.name / "face48" / "predictions.csv", newline="") as f:
        assert {r["path"]: r["p_fake_raw"] for r in csv.DictReader(f) if r["verdict"] != "error"} == small
    with open(tmp_path / "study" / run_dir.name / "clean" / "predictions.csv", newline="") as f:
        assert {r["path"]: r["p_fake_raw"] for r in csv.DictReader(f) if r["verdict"] != "error"} != small
    valid_png(figure)
    table = doc.read_text()
    assert "| 48 px |" in table and "| as is |" in table and f"{sizes['48']['mean_auc_paired']:.3f}" in table


def test_the_study_of_face_sizes_refuses_a_folder_without_a_split(tmp_path, capsys):
    from training import face_sizes

    (tmp_path / "model").mkdir()
    assert face_sizes.main(["--models", str(tmp_path / "model"), "--out", str(tmp_path / "out")]) == 2
    assert "no split.json in" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_cli_whole_folder(tiny_dir, data_root, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_dir), "--data", str(data_root), "--split", "all", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["split"] == "all" and m["data"]["layout"] == "manifest"
    assert m["data"]["skipped_while_reading"] == {"truncated": 1}  # found while reading, not scored
    assert m["data"]["n_scored"] == 29 and m["data"]["errors"] == []
    assert "training_curves" not in m["plots"]  # no history.csv beside this model
    for name in m["plots"].values():
        valid_png(out / name)


def test_cli_errors(tiny_dir, data_root, tmp_path, capsys):
    def fails(*argv, says):
        assert main(["evaluate", *map(str, argv)]) == 2
        err = capsys.readouterr().err
        assert says in err, err

    fails(tiny_dir, says="--split all needs --data")  # no split.json and no data
    fails(tiny_dir, "--split", "test", says="no recorded test split")
    fails(tmp_path / "nothing", "--data", data_root, says="no model at")
    fails(tiny_dir, "--data", tmp_path / "missing", "--split", "all", says="does not exist")
    (tmp_path / "empty").mkdir()
    fails(tiny_dir, "--data", tmp_path / "empty", "--split", "all", "--out", tmp_path / "e", says=str(tmp_path / "empty"))


def test_model_card_notes_the_seed_cnn_discrepancy(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["model"]["architecture"] = "seed-cnn"
    card = render(metrics, {"architecture": "seed-cnn"})
    assert "31,509,377" in card and "31,509,697" in card and "31,489,856" in card and "246,016" in card
    assert "No training record" in card
