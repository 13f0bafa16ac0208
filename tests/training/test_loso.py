"""Leave one source out: `unmask train --leave-out`, `unmask evaluate --split left-out`, and
the protocol driver (training/loso.py), on small synthetic data with three sources: alpha and
beta hold real and fake faces, gamma fakes only. The two runs that train use a narrow
tuned-cnn for one epoch, so that the module stays quick."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.calibration import Calibration
from tests.synthetic import face_image, manifest_folder, write_image
from training.data import DatasetError, Sample, check_leave_out, leave_out, load_left_out, load_split, save_split

QUICK = ["--epochs", "1", "--batch-size", "8", "--seed", "3"]


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory):
    """alpha and beta: 6 real and 6 fake faces each, in groups of 2; gamma: 6 fakes, in groups of 2."""
    root = manifest_folder(tmp_path_factory.mktemp("loso-data"), n_per_label=6, size=160, sources=("alpha", "beta"),
                           group_size=2)
    rows = []
    for i in range(6):
        write_image(root / f"gamma/fake/{i:03d}.jpg", face_image("fake", 160, 700 + i))
        rows.append(f"gamma/fake/{i:03d}.jpg,fake,gamma,gamma-g{i // 2}")
    with open(root / "manifest.csv", "a") as f:
        f.write("\n".join(rows) + "\n")
    return root


@pytest.fixture
def narrow_cnn(monkeypatch):
    """tuned-cnn as two narrow blocks: the same code path, a fraction of the cost."""
    import models.registry as registry
    from models import architectures

    build = registry.build
    monkeypatch.setattr(registry, "build", lambda name, **kw: architectures.build_tuned_cnn(filters=(8, 16), dense=16)
                        if name == "tuned-cnn" else build(name, **kw))


def predictions(folder: Path) -> list[dict]:
    with open(folder / "predictions.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["verdict"] != "error"]


# --- without training -----------------------------------------------------------------------
def test_leave_out_takes_a_source_out_of_every_split_with_its_groups():
    samples = [Sample(f"/d/{src}/{lbl}{i}.jpg", lbl, src, f"{src}-{i // 2}") for src in ("a", "b", "c")
               for lbl in (0, 1) for i in range(4)]
    samples.append(Sample("/d/b/shared.jpg", 1, "b", "c-0"))  # another source's image in a group of c
    kept, left, dropped = leave_out(samples, "c")
    assert {s.source for s in left} == {"c"} and len(left) == 8
    assert [s.path for s in dropped] == ["/d/b/shared.jpg"]  # no group spans the left-out set and the rest
    assert {s.source for s in kept} == {"a", "b"} and len(kept) == 16
    assert not {s.group for s in kept} & {s.group for s in left}


def test_leave_out_refuses_an_unknown_or_the_only_source():
    samples = [Sample("/d/a0.jpg", 0, "alpha", "g0"), Sample("/d/a1.jpg", 1, "alpha", "g1"),
               Sample("/d/b1.jpg", 1, "beta", "g2")]
    with pytest.raises(DatasetError, match=r"no such source in .*its sources are: alpha \(1 real, 1 fake\), "
                                           r"beta \(0 real, 1 fake\)"):
        check_leave_out(samples, "gamma")
    with pytest.raises(DatasetError, match="alpha is the only source"):
        check_leave_out(samples[:2], "alpha")
    check_leave_out(samples, "beta")  # fine


def test_split_json_records_the_left_out_images_apart(three_sources, tmp_path):
    from training.data import load_dataset, split_dataset

    samples = load_dataset(three_sources, progress=False).samples
    kept, left, _ = leave_out(samples, "gamma")
    splits = split_dataset(kept, seed=1)
    save_split(tmp_path, three_sources, 1, splits, left, "gamma")
    doc = json.loads((tmp_path / "split.json").read_text())
    assert set(doc["splits"]) == {"train", "val", "test"} and doc["left_out_source"] == "gamma"
    assert sorted(doc["left_out"]) == [f"gamma/fake/{i:03d}.jpg" for i in range(6)]
    assert not any(p.startswith("gamma/") for v in doc["splits"].values() for p in v)
    assert load_split(tmp_path) == splits  # the splits read as before
    source, again = load_left_out(tmp_path)
    assert source == "gamma" and again == sorted(left, key=lambda s: s.path)
    moved = tmp_path / "moved"
    shutil.copytree(three_sources, moved)
    assert all(s.path.startswith(str(moved)) for s in load_left_out(tmp_path, moved)[1])
    save_split(tmp_path, three_sources, 1, splits)  # a run on every source records none
    assert load_left_out(tmp_path) == (None, [])


def test_left_out_figures_by_hand():
    from training.evaluate import left_out_figures, threshold_at_false_alarm

    # 20 reference reals at 0.00 .. 0.95: at most 5% (one) may be called fake, so t is just above 0.90.
    reals = np.arange(20) / 20
    t = threshold_at_false_alarm(reals, 0.05)
    assert 0.90 < t <= 0.95 + 1e-12 and np.mean(reals >= t) == 0.05
    assert threshold_at_false_alarm(reals, 0.0) > 0.95 and threshold_at_false_alarm([], 0.05) is None
    cal = Calibration(1.0, fake_threshold=0.62, real_threshold=0.4)
    fakes = np.array([0.2, 0.7, 0.93, 0.99])  # two above t; three called fake at the shipped 0.62
    p = np.concatenate([reals, fakes])
    y = np.array([0] * 20 + [1] * 4)
    src = np.array(["alpha"] * 10 + ["beta"] * 10 + ["gamma"] * 4)
    from training.evaluate import compute_metrics

    per = compute_metrics(p, y, src, cal)["per_source"]
    lo = left_out_figures(p, y, src, cal, "gamma", per)
    assert lo["kind"] == "fake-only" and lo["measure"] == "fakes_called_fake_at_max_false_alarm"
    assert lo["figure"] == lo["at_max_false_alarm"]["fakes_called_fake"] == 0.5
    assert lo["at_max_false_alarm"]["reference_reals_called_fake"] == 0.05
    assert lo["at_shipped_threshold"]["fakes_called_fake"] == 0.75 and lo["roc_auc"] is None
    assert lo["reference"]["n"] == 20 and lo["reference"]["sources"] == ["alpha", "beta"]
    # False alarms per real source at the shipped 0.62: alpha's reals reach 0.45; beta's 0.65 .. 0.95 (7 of 10).
    assert lo["false_alarms_per_real_source"] == {"alpha": {"n_real": 10, "called_fake": 0.0, "left_out": False},
                                                  "beta": {"n_real": 10, "called_fake": 0.7, "left_out": False}}
    # A paired source: the AUC against its own reals.
    y2, src2 = np.array([0] * 20 + [0, 0, 1, 1]), np.array(["alpha"] * 20 + ["gamma"] * 4)
    lo2 = left_out_figures(p, y2, src2, cal, "gamma", compute_metrics(p, y2, src2, cal)["per_source"])
    assert lo2["kind"] == "paired" and lo2["measure"] == "roc_auc" and lo2["figure"] == lo2["roc_auc"] == 1.0
    assert lo2["at_shipped_threshold"]["reals_called_fake"] == 0.5  # 0.7 of its reals is above 0.62


def test_the_table_has_one_row_per_left_out_source():
    from training.loso import markdown

    def row(source, kind, figure):
        return {"source": source, "kind": kind, "n_real": 0 if kind == "fake-only" else 5, "n_fake": 5, "figure": figure,
                "roc_auc": figure if kind == "paired" else None, "max_false_alarm": 0.05,
                "measure": "roc_auc" if kind == "paired" else "fakes_called_fake_at_max_false_alarm",
                "at_shipped_threshold": {"fakes_called_fake": 0.4, "reals_called_fake": 0.2 if kind == "paired" else None},
                "false_alarms_per_real_source": {"x": {"n_real": 7, "called_fake": 0.1, "left_out": False}},
                "train_command": f"unmask train --leave-out {source}", "evaluate_command": f"unmask evaluate {source}"}

    rows = {"dfdc": row("dfdc", "paired", 0.612), "sd21": row("sd21", "fake-only", 0.25), "yonsei": row("yonsei", "paired", 0.5)}
    report = {"command": "python -m training.loso --limit 100", "max_false_alarm": 0.05, "knobs": {"limit": 100, "seed": 1337},
              "models": {"tiny": {"sources": rows, "mean_auc_paired": 0.556, "mean_fakes_called_fake_fake_only": 0.25}}}
    md = markdown(report)
    table = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| left-out")]
    assert [line.split(" | ")[0] for line in table] == ["| dfdc", "| sd21", "| yonsei"]
    assert "**0.612**" in table[0] and "ROC AUC against its own reals" in table[0] and "5 / 5" in table[0]
    assert "**25.0%**" in table[1] and "fakes called fake at 5% false alarms" in table[1] and "0 / 5" in table[1]
    assert "x 10.0% (of 7)" in table[1]
    assert "**0.556**" in md and "--limit 100" in md and "unmask train --leave-out sd21" in md


def test_unknown_or_only_source_is_refused_before_any_training(three_sources, tmp_path, unmask):
    status, _, err = unmask("train", "--model", "tuned-cnn", "--data", three_sources, "--leave-out", "delta",
                            "--out", tmp_path / "r")
    assert status == 2 and "--leave-out delta: no such source" in err
    assert "alpha (6 real, 6 fake), beta (6 real, 6 fake), gamma (0 real, 6 fake)" in err
    one = manifest_folder(tmp_path / "one", n_per_label=3, size=160, sources=("alpha",), group_size=1)
    status, _, err = unmask("train", "--model", "tuned-cnn", "--data", one, "--leave-out", "alpha", "--out", tmp_path / "r2")
    assert status == 2 and "alpha is the only source" in err
    assert not (tmp_path / "r" / "model.keras").exists() and not (tmp_path / "r2" / "split.json").exists()

    from training import loso

    assert loso.main(["--data", str(three_sources), "--sources", "alpha,delta", "--runs", str(tmp_path / "l")]) == 2
    assert loso.main(["--data", str(one), "--runs", str(tmp_path / "l")]) == 2
    assert loso.main(["--data", str(three_sources), "--model", "ensemble", "--runs", str(tmp_path / "l")]) == 2
    from training import bundle

    assert bundle.main(["--loso", "--data", str(one), "--only", "tiny", "--runs", str(tmp_path / "l")]) == 2
    assert not (tmp_path / "l").exists()


# --- training ---------------------------------------------------------------------------------
def test_train_leave_out_then_evaluate_a_paired_source(three_sources, tmp_path, unmask, narrow_cnn):
    run = tmp_path / "without-alpha"
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", three_sources, "--leave-out", "alpha",
                              "--out", run, *QUICK)
    assert status == 0, err
    assert "leaving out alpha: 12 images (6 real, 6 fake), in no split" in out

    doc = json.loads((run / "split.json").read_text())
    assert doc["left_out_source"] == "alpha" and len(doc["left_out"]) == 12
    assert all(p.startswith("alpha/") for p in doc["left_out"])
    in_splits = [p for v in doc["splits"].values() for p in v]
    assert in_splits and not any(p.startswith("alpha/") for p in in_splits)  # in none of train/val/test
    assert len(in_splits) == 18  # beta's 12 and gamma's 6
    assert all(doc["samples"][p][1] == "alpha" for p in doc["left_out"])
    training = json.loads((run / "detector.json").read_text())["training"]
    assert training["left_out"] == {"source": "alpha", "total": 12, "real": 6, "fake": 6, "dropped_sharing_a_group": 0}
    assert training["args"]["leave_out"] == "alpha"
    assert training["counts"]["alpha"] == {"real": 6, "fake": 6}  # what the data held, before leaving out

    # Training evaluated the test split and, beside it, the left-out source.
    assert "alpha" not in json.loads((run / "metrics.json").read_text())["per_source"]
    m = json.loads((run / "eval-left-out" / "metrics.json").read_text())
    lo = m["left_out"]
    assert lo["kind"] == "paired" and lo["measure"] == "roc_auc" and (lo["n_real"], lo["n_fake"]) == (6, 6)
    rows = predictions(run / "eval-left-out")
    own = [r for r in rows if r["source"] == "alpha"]
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score([r["label"] == "fake" for r in own], [float(r["p_fake_raw"]) for r in own])
    assert lo["figure"] == pytest.approx(auc, abs=1e-5) and lo["roc_auc"] == m["per_source"]["alpha"]["roc_auc"]
    reference = [r for r in rows if r["source"] != "alpha"]  # the test split's reals, of the trained sources
    test = load_split(run)["test"]
    assert sorted(r["path"] for r in reference) == sorted(s.path for s in test if s.label == 0)
    assert all(r["label"] == "real" for r in reference) and lo["reference"]["n"] == len(reference) > 0
    per = lo["false_alarms_per_real_source"]
    assert per["alpha"]["left_out"] and per["alpha"]["n_real"] == 6
    for src, v in per.items():
        assert v["called_fake"] == m["per_source"][src]["false_fake_rate_on_reals"]

    # The same through the command, into --out; the report names what the reals are.
    status, out, err = unmask("evaluate", run, "--split", "left-out", "--out", tmp_path / "again", "--quiet")
    assert status == 0, err
    assert "left out: alpha (6 real, 6 fake)" in out and "ROC AUC against its own reals" in out
    assert "false alarms (reals called fake at the shipped threshold) per real source: alpha (left out)" in out
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["left_out"]["figure"] == lo["figure"]

    # Resuming keeps the left-out source; another one is refused.
    status, _, err = unmask("train", "--model", "tuned-cnn", "--out", run, "--resume", "--leave-out", "beta", *QUICK)
    assert status == 2 and "was trained without alpha; resume it with --leave-out alpha" in err
    status, out, err = unmask("train", "--model", "tuned-cnn", "--out", run, "--resume", "--no-evaluate", *QUICK)
    assert status == 0, err
    assert json.loads((run / "split.json").read_text()) == doc

    # A run trained on every source has nothing left out.
    plain = tmp_path / "plain"
    shutil.copytree(run, plain)
    save_split(plain, three_sources, 3, load_split(run))
    status, _, err = unmask("evaluate", plain, "--split", "left-out")
    assert status == 2 and "trained on every source" in err and "--leave-out SOURCE" in err


def test_loso_judges_a_fake_only_source_and_keeps_finished_runs(three_sources, tmp_path, capsys, narrow_cnn):
    from training import bundle

    runs = tmp_path / "runs"
    argv = ["--loso", "--data", str(three_sources), "--only", "tuned-cnn", "--sources", "gamma", "--runs", str(runs),
            *QUICK]
    assert bundle.main(argv) == 0
    out = capsys.readouterr().out
    run = runs / "tuned-cnn-without-gamma"
    assert f"$ unmask train --model tuned-cnn --data {three_sources} --leave-out gamma --out {run} --no-evaluate" in out
    assert f"$ unmask evaluate {run} --split left-out" in out
    assert "gamma fakes called fake" in out and "at the threshold where at most 5% of the reals are called fake" in out

    # The figure: gamma's fakes above the threshold that calls at most 5% of the test split's reals fake.
    report = json.loads((runs / "loso.json").read_text())
    lo = report["models"]["tuned-cnn"]["sources"]["gamma"]
    assert lo["kind"] == "fake-only" and lo["n_fake"] == 6 and lo["n_real"] == 0 and lo["roc_auc"] is None
    rows = predictions(run / "eval-left-out")
    reals = np.array([float(r["p_fake_raw"]) for r in rows if r["source"] != "gamma"])
    fakes = np.array([float(r["p_fake_raw"]) for r in rows if r["source"] == "gamma"])
    assert len(reals) == lo["reference"]["n"] > 0 and len(fakes) == 6
    t = lo["at_max_false_alarm"]["threshold_raw"]
    assert np.mean(reals >= t + 1e-6) <= 0.05  # at most 5% of the reals called fake (csv rounding aside)
    assert lo["figure"] == pytest.approx(np.mean(fakes >= t), abs=1 / 6 + 1e-9)
    calls = [r["verdict"] == "fake" for r in rows if r["source"] == "gamma"]
    assert lo["at_shipped_threshold"]["fakes_called_fake"] == pytest.approx(np.mean(calls))
    assert set(lo["false_alarms_per_real_source"]) == set(lo["reference"]["sources"])
    assert lo["trained_with"]["leave_out"] == "gamma" and lo["trained_with"]["epochs"] == 1

    md = (runs / "loso.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| gamma |")]
    assert len(table) == 1 and "fake only" in table[0] and "0 / 6" in table[0]
    assert f"python -m training.bundle --loso --data {three_sources}" in md and lo["train_command"] in md

    # Run again: the finished run and its evaluation are kept.
    stamp = (run / "model.keras").stat().st_mtime_ns
    assert bundle.main(argv) == 0
    out = capsys.readouterr().out
    assert "$ unmask" not in out and f"{run} has finished: kept" in out
    assert (run / "model.keras").stat().st_mtime_ns == stamp

    # A run that stopped before the end is resumed, then evaluated again.
    state_file = run / "checkpoints" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "done": False}))
    (run / "model.keras").unlink()
    assert bundle.main(argv) == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "resuming with the split recorded" in out and f"$ unmask evaluate {run}" in out
    assert (run / "model.keras").exists() and json.loads(state_file.read_text())["done"]


def test_loso_stacks_an_ensemble_from_members_trained_without_the_same_source(three_sources, tmp_path, capsys, narrow_cnn):
    from training import loso

    runs = tmp_path / "runs"
    base = ["--data", str(three_sources), "--sources", "gamma", *QUICK]
    assert loso.main([*base, "--model", "tuned-cnn", "--runs", str(runs)]) == 0
    member = runs / "tuned-cnn-without-gamma"
    capsys.readouterr()

    # Members missing for a source: a clear error that says how to make them.
    assert loso.main([*base, "--model", "ensemble", "--members", f"{runs}/tuned-cnn,{runs}/npr",
                      "--runs", str(tmp_path / "ens")]) == 2
    err = capsys.readouterr().err
    assert f"{runs}/npr-without-gamma has not finished" in err and f"--model npr --runs {runs}" in err
    assert loso.main([*base, "--model", "ensemble", "--runs", str(tmp_path / "ens")]) == 2
    assert "an ensemble needs --members" in capsys.readouterr().err

    ens = tmp_path / "ens"
    assert loso.main([*base, "--model", "ensemble", "--members", f"{runs}/tuned-cnn,{runs}/tuned-cnn", "--runs", str(ens)]) == 0
    out = capsys.readouterr().out
    assert f"$ unmask train --model ensemble --members {member},{member}" in out
    report = json.loads((ens / "loso.json").read_text())
    row = report["models"]["ensemble"]["sources"]["gamma"]
    info = json.loads((ens / "ensemble-without-gamma" / "detector.json").read_text())
    assert info["member_runs"] == [str(member), str(member)]
    # The ensemble judged gamma, which neither member saw: the same left-out images as the member.
    assert row["kind"] == "fake-only" and row["n_fake"] == 6
    assert json.loads((ens / "ensemble-without-gamma" / "split.json").read_text())["left_out"] == \
        json.loads((member / "split.json").read_text())["left_out"]
