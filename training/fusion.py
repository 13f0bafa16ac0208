"""Compare the rules that combine members into one verdict, on the same faces.

  python -m training.fusion --members models/bundled/ensemble runs/mesonet/MesoInception_DF \
      --split-from models/bundled/ensemble --data ../shared/data/faces-v1 --out runs/fusion

Every member (a detector folder; with --expand-ensembles, each member of an ensemble) scores the face crops
of the validation and test splits of --split-from. Then, per rule, on the test split:
- stack: the ensemble as shipped (its fitted logit weights and its own calibration);
- equal: the members' logits averaged with equal weights, calibrated on validation as any
  detector is (models/calibration.py: 90% precision, at most 5% of every source's reals);
- budget: models/fusion.py: `fake` when any member's tail probability among the validation
  reals is under 5% / members; `real` where the stack says real; else `uncertain`.
Per source: ROC AUC against its own reals (sources with both labels), the share of fakes
called fake (every fake source), the share of reals called fake (every real source), and the
share of faces with a confident verdict and how often those verdicts are right. Written to
OUT/fusion.json and OUT/fusion.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def member_scores(folder: str, samples, crops, expand: bool, cache: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(member names, (n, members) raw scores, the detector's own raw p) for one detector folder:
    an ensemble is one member (its stacked p) unless `expand`. Scores are kept in `cache`
    (keyed by folder and files), so comparing rules again costs no model call."""
    import hashlib

    from models.detector import Detector
    from training.scoring import score_files

    key = hashlib.sha256(json.dumps([str(Path(folder).resolve()), [s.path for s in samples], crops],
                                    default=str).encode()).hexdigest()[:16]
    hit = cache / f"{key}.npz"
    if not hit.exists():
        det = Detector.load(folder)
        scored = list(score_files(det, [s.path for s in samples], crops=crops, desc=f"scoring ({det.name})"))
        bad = [s for s in scored if s.error]
        if bad:
            raise ValueError(f"{len(bad)} face crops could not be scored by {det.name} (first: {bad[0].error})")
        p = np.array([s.p_raw for s in scored])
        members = np.stack([s.members for s in scored]) if scored and scored[0].members is not None else p[:, None]
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(hit, p=p, members=members, names=np.array(det.member_names if members.shape[1] > 1 else [det.name]),
                 name=det.name)
    z = np.load(hit)
    if expand and z["members"].shape[1] > 1:
        return [str(n) for n in z["names"]], z["members"], z["p"]
    return [str(z["name"])], z["p"][:, None], z["p"]


def rule_metrics(verdicts, score, labels, sources) -> dict:
    """Per source and overall: AUC (paired sources), fakes/reals called fake, coverage, precision."""
    from sklearn.metrics import roc_auc_score

    v, s, y, src = np.asarray(verdicts), np.asarray(score, float), np.asarray(labels), np.asarray(sources)
    out = {"sources": {}}
    real_sources = sorted(set(src[y == 0].tolist()))
    for name in sorted(set(src.tolist())):
        m = src == name
        row = {"n": int(m.sum()), "confident": float((v[m] != "uncertain").mean())}
        if (y[m] == 1).any():
            row["fakes_called_fake"] = float((v[m & (y == 1)] == "fake").mean())
        if (y[m] == 0).any():
            row["reals_called_fake"] = float((v[m & (y == 0)] == "fake").mean())
            if (y[m] == 1).any():
                row["auc"] = float(roc_auc_score(y[m], s[m]))
        conf = m & (v != "uncertain")
        if conf.any():
            row["confident_right"] = float(((v[conf] == "fake") == (y[conf] == 1)).mean())
        out["sources"][name] = row
    aucs = [r["auc"] for r in out["sources"].values() if "auc" in r]
    out["mean_auc"] = float(np.mean(aucs)) if aucs else None
    out["worst_reals_called_fake"] = max(out["sources"][r]["reals_called_fake"] for r in real_sources)
    fake = v == "fake"
    real = v == "real"
    out["precision_fake"] = float((y[fake] == 1).mean()) if fake.any() else None
    out["precision_real"] = float((y[real] == 0).mean()) if real.any() else None
    out["uncertain"] = float((v == "uncertain").mean())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.fusion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", nargs="+", required=True, help="detector folders; the first must be the stacked ensemble")
    p.add_argument("--split-from", required=True, type=Path)
    p.add_argument("--data")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--budget", type=float, default=0.05)
    p.add_argument("--expand-ensembles", action="store_true",
                   help="each member of an ensemble is a member of the rules (default: the ensemble's stacked p is one)")
    args = p.parse_args(argv)

    from models.calibration import fit_calibration, logit
    from models.detector import Detector
    from models.fusion import BudgetFusion
    from models.tensorflow_import import import_tensorflow
    from training.data import load_split
    from training.facecrops import with_faces

    import_tensorflow()
    splits = load_split(args.split_from, args.data)
    faces = {k: with_faces(splits[k]) for k in ("val", "test")}  # (samples, crops, no_face)
    names, scores, own = [], {"val": [], "test": []}, {}
    for folder in args.members:
        for k in ("val", "test"):
            n, s, p_own = member_scores(folder, faces[k][0], faces[k][1], args.expand_ensembles,
                                        args.out / "scores")
            scores[k].append(s)
            own.setdefault(folder, {})[k] = p_own
        names += n
    m = {k: np.concatenate(v, axis=1) for k, v in scores.items()}
    y = {k: np.array([s.label for s in faces[k][0]]) for k in m}
    src = {k: np.array([s.source for s in faces[k][0]]) for k in m}

    stack = Detector.load(args.members[0])
    stack_test = stack.calibration.verdicts(own[args.members[0]]["test"])
    equal = {k: logit(m[k]).mean(axis=1) for k in m}
    equal_cal = fit_calibration(1 / (1 + np.exp(-equal["val"])), y["val"], 0.9, args.budget, sources=src["val"])
    equal_test = equal_cal.verdicts(1 / (1 + np.exp(-equal["test"])))
    reals = y["val"] == 0
    fusion = BudgetFusion.fit(names, m["val"][reals], src["val"][reals], args.budget)
    budget_test = fusion.verdicts(m["test"], stack_test)
    results = {
        "members": names, "budget": args.budget, "split_from": str(args.split_from),
        "faces": {k: int(len(y[k])) for k in y},
        "rules": {
            "stack": rule_metrics(stack_test, own[args.members[0]]["test"], y["test"], src["test"]),
            "equal": rule_metrics(equal_test, equal["test"], y["test"], src["test"]),
            "budget": rule_metrics(budget_test, -np.log(fusion.evidence(m["test"])), y["test"], src["test"]),
        },
        "members_alone": {n: rule_metrics(["uncertain"] * len(y["test"]), m["test"][:, j], y["test"], src["test"])
                          for j, n in enumerate(names)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fusion.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "fusion.md").write_text(render(results))
    print(render(results))
    return 0


def render(r: dict) -> str:
    srcs = sorted(next(iter(r["rules"].values()))["sources"])
    lines = [f"Members: {', '.join(r['members'])}; budget {r['budget']:.0%}; test faces {r['faces']['test']}.", "",
             "| rule | " + " | ".join(srcs) + " | mean AUC | worst reals called fake | uncertain | precision fake / real |",
             "|---|" + "---:|" * (len(srcs) + 4)]

    def cell(row):
        parts = []
        if "auc" in row:
            parts.append(f"AUC {row['auc']:.3f}")
        if "fakes_called_fake" in row:
            parts.append(f"fakes→fake {row['fakes_called_fake']:.1%}")
        if "reals_called_fake" in row:
            parts.append(f"reals→fake {row['reals_called_fake']:.1%}")
        return "; ".join(parts)

    def fmt(x):
        return "—" if x is None else f"{x:.3f}"
    for name, rule in list(r["rules"].items()) + [(f"{n} (alone)", v) for n, v in r["members_alone"].items()]:
        alone = name.endswith("(alone)")
        lines.append(f"| {name} | " + " | ".join(
            cell({k: v for k, v in rule["sources"][s].items() if not alone or k == "auc"}) for s in srcs)
            + f" | {fmt(rule['mean_auc'])} | " + ("—" if alone else f"{rule['worst_reals_called_fake']:.1%}")
            + " | " + ("—" if alone else f"{rule['uncertain']:.1%}") + " | "
            + ("—" if alone else f"{fmt(rule['precision_fake'])} / {fmt(rule['precision_real'])}") + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
