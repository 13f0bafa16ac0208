"""docs/EVALUATION.md: its tables come from recorded results files (training/report.py), and
making them again keeps every line of prose."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_table_of_the_document_is_what_its_results_file_gives():
    from training import report

    text = report.DOC.read_text()
    assert {m["name"] for m in report.MARKER.finditer(text)} == set(report.TABLES)  # every kind of table is used
    assert report.regenerate(text) == text, "run `python -m training.report` (or `make models`)"


def test_new_figures_change_the_tables_and_nothing_else(tmp_path):
    from training import report

    root = tmp_path / "repo"
    for rel in {m["file"] for m in report.MARKER.finditer(report.DOC.read_text())}:  # every results file the document names
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    results = json.loads((root / report.BUNDLE).read_text())
    tiny = results["detectors"]["tiny"]
    tiny["auc"]["dfdc"], tiny["mean_auc"], tiny["web_drop"] = 0.912, 0.876, 0.031  # as a new `make models` would record
    (root / report.BUNDLE).write_text(json.dumps(results))

    before = report.DOC.read_text()
    after = report.regenerate(before, root)
    outside = lambda text: report.MARKER.sub("<table>\n", text)  # noqa: E731
    assert outside(after) == outside(before)  # the prose, headings and notes are untouched
    changed = [a for a, b in zip(after.split("\n"), before.split("\n")) if a != b]
    assert changed and all(line.startswith("|") for line in changed)
    assert "| tiny | 218,801 | 0.912 |" in after and "**0.876**" in after
    assert re.search(r"tiny: drop on web-degraded copies \| <= 0.02 \| 0.031 \| \*\*NOT met\*\*", after)


def test_a_table_without_a_renderer_or_results_file_is_a_clear_error(tmp_path):
    from training import report

    doc = "text\n<!-- table nosuch from docs/results/bundle.json: python -m training.report -->\n| a |\n<!-- end table nosuch -->\n"
    with pytest.raises(ValueError, match="no table called 'nosuch'"):
        report.regenerate(doc)
    doc = doc.replace("nosuch", "roc-auc").replace("docs/results/bundle.json", "docs/results/missing.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        report.regenerate(doc)


def test_make_models_records_what_its_evaluations_measured(tmp_path):
    """summarize() turns the bundle's metrics.json files into the record the tables read."""
    import numpy as np

    from training import report
    from training.bundle import summarize_cascade

    def metrics(auc, web_auc, called_fake):
        per = {"alpha": {"n_real": 40, "n_fake": 40, "roc_auc": auc, "fake_verdict_rate_on_fakes": 0.5,
                         "false_fake_rate_on_reals": called_fake, "real_verdict_rate_on_reals": 0.6},
               "gen": {"n_real": 0, "n_fake": 30, "roc_auc": None, "fake_verdict_rate_on_fakes": 0.97,
                       "false_fake_rate_on_reals": None, "real_verdict_rate_on_reals": None}}
        cal = dict(temperature=1.5, ece_raw=0.1, ece_calibrated=0.05, fake_threshold=0.8, real_threshold=0.2,
                   precision_fake=0.95, precision_real=0.9, share_uncertain=0.4)
        clean = {"model": {"parameters": 1234}, "per_source": per, "mean_auc_two_label_sources": auc, "calibration": cal}
        return {"clean": clean, "web": {**clean, "mean_auc_two_label_sources": web_auc}}

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    device, server = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, 200), 0, 1), np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, 200), 0, 1)
    cascade = summarize_cascade({"val": (device, server, y), "test": (device, server, y)}, 0.3, 0.7)
    results = report.summarize({"tiny": metrics(0.81, 0.80, 0.025), "ensemble": metrics(0.93, 0.90, 0.075)}, cascade,
                               ["unmask train ..."], "../data")
    json.dumps(results)  # a JSON record
    assert results["detectors"]["tiny"]["reals_called_fake"] == {"alpha": 0.025}
    assert results["detectors"]["ensemble"]["web_drop"] == pytest.approx(0.03)
    assert len(results["cascade"]["test_points"]) == len(cascade["test"]["points"][::5])
    tables = {name: "\n".join(report.TABLES[name](results))
              for name in ("roc-auc", "web-degraded", "calibration", "targets", "cascade-bands", "commands")}  # bundle.json's tables
    assert "| ensemble: drop on web-degraded copies | <= 0.02 | 0.030 | **NOT met** |" in tables["targets"]
    assert "| ensemble: real faces called fake, every real source | <= 5% each | 7.5% | **NOT met** (alpha) |" in tables["targets"]
    assert "| tiny | 1,234 | 0.810 | **0.810** | 0.970 | 0.975 | 0.600 |" in tables["roc-auc"]
    assert tables["commands"] == "```sh\nunmask train ...\n```"


def test_a_specialist_is_judged_per_fake_source_against_its_own_and_all_reals(tmp_path):
    from training import report
    from training.specialists import aucs_per_source

    rows = ["path,source,label,p_fake_raw,p_fake,verdict,error",
            "a,dfdc,real,0.1,0.5,uncertain,", "b,dfdc,real,0.6,0.5,uncertain,",
            "c,dfdc,fake,0.4,0.5,uncertain,", "d,dfdc,fake,0.9,0.5,uncertain,",
            "e,ffhq,real,0.3,0.5,uncertain,", "f,sd21,fake,0.2,0.5,uncertain,",
            "g,sd21,fake,0.8,0.5,uncertain,", "h,sd21,fake,,,,unreadable"]  # an image that failed counts nowhere
    (tmp_path / "predictions.csv").write_text("\n".join(rows) + "\n")
    got = aucs_per_source(tmp_path / "predictions.csv")
    # dfdc fakes 0.4, 0.9 against own reals 0.1, 0.6: 3 of 4 pairs ranked right; against all reals
    # (0.1, 0.6, 0.3): 5 of 6. sd21 (0.2, 0.8) has no reals of its own: 4 of 6 against all.
    assert got == {"dfdc": {"fakes": 2, "own_reals": 0.75, "all_reals": pytest.approx(5 / 6)},
                   "sd21": {"fakes": 2, "own_reals": None, "all_reals": pytest.approx(4 / 6)}}
    record = {"specialists": {"sbi": {"model": "tiny", "input_size": 224, "epochs_run": 40, "train_hours": 1.2,
                                      "auc": got, "mean_auc_paired": 0.75, "web_mean_auc_paired": 0.7, "share_uncertain": 1.0}}}
    lines = report.specialists(record)
    assert lines[0].startswith("| specialist | dfdc | sd21 |")
    assert "| 0.750 / 0.833 | — / 0.667 | 0.750 | 0.700 | 100.0% | not met |" in lines[2]


def test_specialists_refuses_a_folder_that_is_not_a_finished_run(tmp_path, capsys):
    from training import specialists

    assert specialists.main(["--runs", str(tmp_path), "--record", str(tmp_path / "out.json")]) == 2
    assert "no model.keras in" in capsys.readouterr().err and not (tmp_path / "out.json").exists()
