"""The measured tables of docs/EVALUATION.md, each made again from a recorded results file.

The document is written by hand. Each table that holds figures sits between two markers
that name it and the file its figures come from:

    <!-- table roc-auc from docs/results/bundle.json: python -m training.report -->
    | detector | ... |
    <!-- end table roc-auc -->

`python -m training.report` rewrites what lies between the markers and nothing else, so
the prose around the tables survives `make models` (training/bundle.py records
docs/results/bundle.json, then runs this). `--check` writes nothing and exits 1 when a
table is not what its results file gives.

    python -m training.report [--doc docs/EVALUATION.md] [--check]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "EVALUATION.md"
BUNDLE = "docs/results/bundle.json"  # what `make models` measured, per detector (summarize)
BENCH = "bench/results.json"  # what `make bench` measured
MARKER = re.compile(r"<!-- table (?P<name>[a-z0-9-]+) from (?P<file>\S+?):? .*?-->\n(?P<body>.*?)<!-- end table (?P=name) -->\n",
                    re.S)


def _f(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def table(head: list[str], rows: list[list], align: list[str] | None = None) -> list[str]:
    """A Markdown table's lines; align: "l" or "r" per column (default: first left, rest right)."""
    align = align or ["l"] + ["r"] * (len(head) - 1)
    line = lambda cells: "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"  # noqa: E731
    return [line(head), "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|", *map(line, rows)]


# --- what make models records -----------------------------------------------------------------
def rate_on_reals(per_source: dict, key: str) -> float | None:
    """A per-source rate on real images (e.g. real_verdict_rate_on_reals), over every source with reals."""
    reals = [v for v in per_source.values() if v["n_real"]]
    n = sum(v["n_real"] for v in reals)
    return sum((v[key] or 0) * v["n_real"] for v in reals) / n if n else None


def summarize(metrics: dict, cascade_result: dict | None, commands: list[str], data: str) -> dict:
    """docs/results/bundle.json from the bundle's evaluations: name -> {"clean", "web"} metrics.json."""
    detectors = {}
    for name, m in metrics.items():
        ps, c = m["clean"]["per_source"], m["clean"]["calibration"]
        called_fake = rate_on_reals(ps, "false_fake_rate_on_reals")
        detectors[name] = {
            "parameters": m["clean"]["model"]["parameters"],
            "auc": {s: v["roc_auc"] for s, v in ps.items() if v["roc_auc"] is not None},
            "mean_auc": m["clean"]["mean_auc_two_label_sources"],
            "web_mean_auc": m["web"]["mean_auc_two_label_sources"],
            "web_drop": (None if None in (m["clean"]["mean_auc_two_label_sources"], m["web"]["mean_auc_two_label_sources"])
                         else m["clean"]["mean_auc_two_label_sources"] - m["web"]["mean_auc_two_label_sources"]),
            "fakes_called_fake": {s: v["fake_verdict_rate_on_fakes"] for s, v in ps.items() if not v["n_real"]},
            "reals_called_fake": {s: v["false_fake_rate_on_reals"] for s, v in ps.items() if v["n_real"]},
            "reals_not_called_fake": None if called_fake is None else 1 - called_fake,
            "reals_called_real": rate_on_reals(ps, "real_verdict_rate_on_reals"),
            "calibration": {k: c[k] for k in ("temperature", "ece_raw", "ece_calibrated", "fake_threshold", "real_threshold",
                                              "precision_fake", "precision_real", "share_uncertain")},
        }
    out = {"about": "figures of `make models` (training/bundle.py): the test split of " + data, "detectors": detectors,
           "commands": commands}
    if cascade_result:
        t = cascade_result["test"]
        out["cascade"] = {"band": [cascade_result["band"].low, cascade_result["band"].high],
                          "band_met_on_val": bool(cascade_result["band_met_on_val"]),
                          "test": {"n": t["n"], "accuracy": t["shipped"].accuracy, "escalated": t["shipped"].escalated,
                                   "tiny_accuracy": t["tiny_accuracy"], "ensemble_accuracy": t["ensemble_accuracy"]},
                          "test_points": [[p.low, p.high, p.escalated, p.accuracy] for p in t["points"][::5]]}
    return out


# --- the tables -------------------------------------------------------------------------------
def _sources(detectors: dict) -> tuple[list[str], list[str]]:
    paired = sorted({s for d in detectors.values() for s in d["auc"]})
    fake_only = sorted({s for d in detectors.values() for s in d["fakes_called_fake"]})
    return paired, fake_only


def roc_auc(results: dict) -> list[str]:
    d = results["detectors"]
    paired, fake_only = _sources(d)
    rows = [[name, f"{r['parameters']:,}", *(_f(r["auc"].get(s)) for s in paired), f"**{_f(r['mean_auc'])}**",
             *(_f(r["fakes_called_fake"].get(s)) for s in fake_only), _f(r["reals_not_called_fake"]), _f(r["reals_called_real"])]
            for name, r in d.items()]
    return table(["detector", "parameters", *paired, "mean AUC", *(f"{s} fakes called fake" for s in fake_only),
                  "reals not called fake", "reals called real"], rows)


def web_degraded(results: dict) -> list[str]:
    rows = [[name, _f(r["mean_auc"]), _f(r["web_mean_auc"]), _f(r["web_drop"])] for name, r in results["detectors"].items()]
    return table(["detector", "mean AUC clean", "mean AUC degraded", "drop"], rows)


def calibration(results: dict) -> list[str]:
    rows = []
    for name, r in results["detectors"].items():
        c = r["calibration"]
        rows.append([name, _f(c["temperature"], 2), *(_f(c[k]) for k in ("ece_raw", "ece_calibrated", "fake_threshold",
                     "real_threshold", "precision_fake", "precision_real", "share_uncertain"))])
    return table(["detector", "temperature", "ECE raw", "ECE calibrated", "fake threshold", "real threshold",
                  "precision of fake verdicts", "precision of real verdicts", "uncertain"], rows)


def targets(results: dict) -> list[str]:
    """The quality targets of the bundled models, each with the figure measured."""
    from training.cascade import MAX_ESCALATED, MAX_GAP

    rows = []

    def row(what, wanted, value, ok, note=""):
        rows.append([what, wanted, value, ("met" if ok else "**NOT met**") + note])

    d = results["detectors"]
    for name, goal in (("ensemble", 0.90), ("tiny", 0.85)):
        if name not in d:
            continue
        r = d[name]
        paired = sorted(r["auc"])
        row(f"{name}: mean AUC over {', '.join(paired)}", f">= {goal:.2f}", _f(r["mean_auc"]), r["mean_auc"] >= goal)
        row(f"{name}: drop on web-degraded copies", "<= 0.02", _f(r["web_drop"]), r["web_drop"] <= 0.02)
        for src, rate in sorted(r["fakes_called_fake"].items()):
            row(f"{name}: {src} fakes called fake at the shipped threshold", ">= 0.95", _f(rate), rate >= 0.95)
        tnr = r["reals_not_called_fake"]
        row(f"{name}: reals not called fake at that threshold", ">= 0.90", _f(tnr), tnr is not None and tnr >= 0.90)
        over = [s for s, v in sorted(r["reals_called_fake"].items()) if v > 0.05]
        row(f"{name}: real faces called fake, every real source", "<= 5% each",
            " / ".join(f"{100 * v:.1f}%" for _, v in sorted(r["reals_called_fake"].items())), not over,
            f" ({', '.join(over)})" if over else "")
    if "cascade" in results:
        t = results["cascade"]["test"]
        gap = t["ensemble_accuracy"] - t["accuracy"]
        row("cascade: accuracy gap to the ensemble (test)", f"<= {100 * MAX_GAP:g} point", f"{100 * gap:.1f} points", gap <= MAX_GAP)
        row("cascade: share escalated (test)", f"<= {100 * MAX_ESCALATED:g}%", f"{100 * t['escalated']:.1f}%",
            t["escalated"] <= MAX_ESCALATED)
    return table(["target", "wanted", "measured (test split)", ""], rows, ["l", "r", "r", "l"])


def cascade_bands(results: dict) -> list[str]:
    points = results["cascade"]["test_points"]  # every fifth band of the curve
    return table(["band (device p_fake)", "escalated", "accuracy"],
                 [[f"{lo:.2f} to {hi:.2f}", f"{100 * esc:.1f}%", f"{100 * acc:.1f}%"] for lo, hi, esc, acc in points])


def commands(results: dict) -> list[str]:
    return ["```sh", *results["commands"], "```"]


def size_and_speed(bench: dict) -> list[str]:
    """The benchmark's figures per detector (the `models` section of bench/results.json)."""
    models = bench["sections"].get("models", {})
    m = bench.get("machine", {})
    rows = []
    for name, row in models.get("detectors", {}).items():
        t = row["ms_per_batch"]
        cells = [f"{t[b]['median']:.1f} ({t[b]['min']:.1f}-{t[b]['max']:.1f})" if b in t else "n/a" for b in ("1", "32")]
        kind = "the bundled model" if row["source"].startswith("bundled") else "the architecture, untrained weights"
        rows.append([name, f"{row['input_size']} px", f"{row['parameters']:,}", f"{row['file_bytes'] / 1e6:.1f} MB", *cells, kind])
    return [f"From `{models.get('command', 'make bench')}` ({models.get('started', '?')}, {m.get('cpu_model', '?')}, "
            f"{m.get('cores_usable', '?')} cores, load average at start {models.get('load_average_at_start', '?')}); "
            "median (min-max) of timed calls, TensorFlow on the CPU.", "",
            *table(["detector", "input", "parameters", "model.keras", "batch 1 (ms)", "batch 32 (ms)", "measured on"], rows,
                   ["l", "r", "r", "r", "r", "r", "l"])]


def fusion(results: dict) -> list[str]:
    """The rules that combine members, side by side (python -m training.fusion's fusion.json)."""
    from training.fusion import render

    return render(results).rstrip("\n").split("\n")


def specialists(results: dict) -> list[str]:
    """Specialists trained on reals only (python -m training.specialists): per fake source, the
    AUC against its own reals / against all test reals; the issue's target is 0.70 on dfdc and
    the Photoshop composites, left out."""
    rows = []
    for name, d in results["specialists"].items():
        sources = sorted(d["auc"])
        cell = lambda v: f"{_f(v['own_reals'])} / {_f(v['all_reals'])}" if v["own_reals"] is not None else f"— / {_f(v['all_reals'])}"  # noqa: E731
        met = all((d["auc"].get(s, {}).get("own_reals") or 0) >= 0.70 for s in ("dfdc", "yonsei-photoshop"))
        rows.append([f"{name} ({d['model']}, {d['input_size']} px, {d['epochs_run']} epochs, {d['train_hours']:.2f} h)",
                     *[cell(d["auc"][s]) for s in sources], _f(d["mean_auc_paired"]), _f(d["web_mean_auc_paired"]),
                     f"{100 * d['share_uncertain']:.1f}%", "met" if met else "not met"])
    head = ["specialist", *sorted(next(iter(results["specialists"].values()))["auc"]), "mean AUC (own reals)",
            "web-degraded", "uncertain", "0.70 on dfdc and Photoshop"]
    return table(head, rows)


SHORTCUT_FEATURES = {"pixels": "pixels: MobileNet v2 + signal", "deep": "MobileNet v2 features",
                     "signal": "signal statistics", "framing": "framing (face box in the picture)"}


def shortcuts(results: dict) -> list[str]:
    """How well faces-v1's collections can be told apart, balanced accuracy before and after the
    same chain (python -m training.shortcuts's shortcuts.json)."""
    rows = []
    for name, t in results["tasks"].items():
        counts = list(t["n"].values())
        if name == "real-sources":
            what = "the real sources apart (" + ", ".join(f"{s} {n}" for s, n in zip(t["classes"], counts)) + ")"
        else:
            what = f"{t['classes'][0]} ({counts[0]}) vs {t['classes'][1]} ({counts[1]})"
        for i, (fs, res) in enumerate(t["features"].items()):
            b = res["before"]["balanced_accuracy"]
            a = res.get("after", {}).get("balanced_accuracy")
            rows.append([what if i == 0 else "", _f(t["chance"]), SHORTCUT_FEATURES[fs], _f(b),
                         "— (not moved by the chain)" if a is None else _f(a), "" if a is None else _f(b - a)])
    return [f"From `{results['command']}` ({results['faces']:,} face crops):", "",
            *table(["task", "chance", "features", "before", "after the chain", "drop"], rows, ["l", "r", "l", "r", "r", "r"])]


def face_sizes(results: dict) -> list[str]:
    """Verdicts on the test split with every face shown at N px (python -m training.face_sizes)."""
    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}%"

    def moved(c):
        return "—" if c is None else f"{c['changed']:,} of {c['of']:,} ({c['opposite']})"

    rows = []
    for name, sizes in results["models"].items():
        for i, (size, d) in enumerate(sizes.items()):
            worst = max(d["false_alarm_by_source"], key=d["false_alarm_by_source"].get) if d["false_alarm_by_source"] else None
            rows.append([name if i == 0 else "", size if size == "as is" else f"{size} px", f"{d['faces']:,}",
                         _f(d["mean_auc_paired"]), pct(d["precision_fake"]), pct(d["precision_real"]), pct(d["share_confident"]),
                         f"{pct(d['worst_false_alarm'])} ({worst})" if worst else "—", moved(d.get("verdicts_from_as_is"))])
    return [f"From `{results['command']}`:", "",
            *table(["model", "face", "faces", "mean AUC (paired)", "precision of fake", "precision of real", "with a verdict",
                    "most reals called fake (source)", "verdict not as when shown as is (fake <-> real)"], rows,
                   ["l", "l", "r", "r", "r", "r", "r", "r", "r"])]


def fusion_left_out(results: dict) -> list[str]:
    """Rules combining a detector and a self-blended specialist, per left-out source
    (python -m training.fusion_left_out)."""
    folds = results["folds"]
    sources = sorted(folds)
    rows = []
    for rule in ("baseline", "stack", "equal", "budget"):
        cells, paired, fake_only, worst = [], [], [], []
        for s in sources:
            r = folds[s]["rules"].get(rule)
            if r is None or isinstance(r, str):
                cells.append("refused" if isinstance(r, str) else "—")
                continue
            figure = (f"AUC {_f(r['figure'])}" if r["kind"] == "paired"
                      else f"{100 * r['figure']:.1f}% at 5% FA" if r["figure"] is not None else "—")
            (paired if r["kind"] == "paired" else fake_only).append(r["figure"])
            right = "—" if r["verdicts_right"] is None else f"{100 * r['verdicts_right']:.0f}%"
            cells.append(f"{figure}; fake {100 * r['fakes_called_fake']:.1f}%; right {right} of {100 * r['with_a_verdict']:.0f}%")
            worst += [v for v in (r["reals_called_fake"], r["worst_other_reals_called_fake"]) if v is not None]
        mean = lambda xs: _f(sum(xs) / len(xs)) if xs and None not in xs else "—"  # noqa: E731
        rows.append([rule, *cells, mean(paired), mean(fake_only), f"{100 * max(worst):.1f}%" if worst else "—"])
    refused = {s: folds[s]["rules"]["budget"] for s in sources if isinstance(folds[s]["rules"].get("budget"), str)}
    notes = [f"- budget refused on {s}: {why}" for s, why in refused.items()]
    return [f"From `{results['command']}` (budget {100 * results['budget']:.0f}%; a source with fewer than "
            f"{results.get('per_source_min_reals', 20)} validation reals counts only in the pooled tail). Per left-out source: the rule's "
            "left-out figure; the share of its fakes called `fake`; how many of its confident verdicts are right, of the "
            "share of its faces that get one.", "",
            *table(["rule", *sources, "mean AUC (paired)", "mean caught (fakes only)", "most reals called fake"], rows),
            *([""] + notes if notes else [])]


TABLES = {"fusion-left-out": fusion_left_out, "face-sizes": face_sizes, "fusion": fusion, "specialists": specialists, "shortcuts": shortcuts, "roc-auc": roc_auc, "web-degraded": web_degraded, "calibration": calibration, "targets": targets,
          "cascade-bands": cascade_bands, "commands": commands, "size-and-speed": size_and_speed}


# --- the document -----------------------------------------------------------------------------
def regenerate(text: str, root: Path = REPO) -> str:
    """`text` with every marked table made again from its results file (paths relative to `root`)."""
    loaded: dict[str, dict] = {}

    def fill(m):
        name, file = m["name"], m["file"]
        if name not in TABLES:
            raise ValueError(f"docs: no table called {name!r} (known: {', '.join(TABLES)})")
        if file not in loaded:
            path = root / file
            if not path.is_file():
                raise FileNotFoundError(f"table {name}: no results file {path}")
            loaded[file] = json.loads(path.read_text())
        head = m.group(0).split("\n", 1)[0]
        return head + "\n" + "\n".join(TABLES[name](loaded[file])) + "\n" + f"<!-- end table {name} -->\n"

    return MARKER.sub(fill, text)


def record(results: dict, path: Path, doc: Path | None = None) -> None:
    """Write a results file (docs/results/*.json), then make every table of the document
    (default docs/EVALUATION.md) again from its results file; says what it did."""
    doc = doc or DOC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    doc.write_text(regenerate(doc.read_text()))
    print(f"recorded {path}; made the tables of {doc} again")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--doc", type=Path, default=DOC, help="the document (default docs/EVALUATION.md)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table differs from its results")
    args = p.parse_args(argv)
    text = args.doc.read_text()
    new = regenerate(text)
    n = len(MARKER.findall(text))
    if args.check:
        stale = [m["name"] for m, n_ in zip(MARKER.finditer(text), MARKER.finditer(new)) if m.group(0) != n_.group(0)]
        print(f"{args.doc}: {n} tables; " + (f"not what their results give: {', '.join(stale)}" if stale else "all up to date"))
        return 1 if stale else 0
    args.doc.write_text(new)
    print(f"{args.doc}: {n} tables made again from their results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
