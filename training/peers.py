"""Published detectors as peers in our tables: MesoNet with its authors' weights.

  python -m training.peers --data ../shared/data/faces-v1 --split-from models/bundled/ensemble --out runs/mesonet

Each of the four published weight files (../shared/weights/mesonet) becomes a detector folder
that every command takes: the ported network (models/mesonet.py), the split of --split-from
(so its test split is the one our detectors are judged on), and a calibration fitted on that
split's validation faces exactly as `unmask calibrate` fits ours. Nothing is trained: MesoNet
never saw faces-v1, so every figure on it is a left-out figure by construction.
Each is then evaluated on that test split clean and web-degraded (`unmask evaluate`, as
`make models` evaluates ours), the figures are recorded in docs/results/peers.json, and the
tables of docs/EVALUATION.md are made again from it (training/report.py).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEFAULT_WEIGHTS = ("Meso4_DF", "MesoInception_DF", "Meso4_F2F", "MesoInception_F2F")
PEERS = "docs/results/peers.json"


def make_peer(weights_name: str, split_run: Path, out: Path, data: str | None, max_false_alarm: float,
              weights_dir: Path | None = None, progress: bool = True) -> Path:
    """A detector folder for one MesoNet weight file, calibrated on split_run's validation split."""
    from models import mesonet
    from models.weights import FOLDER as SHARED_WEIGHTS
    from models.detector import Detector
    from models.tensorflow_import import import_tensorflow
    from training.calibrate import calibrate_detector
    from training.data import load_split

    if weights_name not in mesonet.WEIGHT_FILES:
        raise ValueError(f"unknown MesoNet weights {weights_name!r}: use one of {', '.join(mesonet.WEIGHT_FILES)}")
    if not (split_run / "split.json").is_file():
        raise FileNotFoundError(f"no split.json in {split_run}: --split-from takes a run or bundled model folder")
    splits = load_split(split_run, data)
    if not splits.get("val"):
        raise ValueError(f"the validation split of {split_run} is empty: nothing to calibrate on")
    import_tensorflow()
    network, trained_on = mesonet.WEIGHT_FILES[weights_name]
    model = mesonet.load_mesonet(Path(weights_dir or SHARED_WEIGHTS / "mesonet") / f"{weights_name}.h5")
    folder = out / weights_name
    detector = Detector(model, "mesonet", info={
        "name": f"mesonet-{weights_name}", "network": network, "published_weights": f"{weights_name}.h5",
        "trained_on": f"{trained_on} (by the authors; never on faces-v1)",
        "reference": "Afchar, Nozick, Yamagishi, Echizen: MesoNet, WIFS 2018 (DariusAf/MesoNet, Apache-2.0)",
        "split_from": str(split_run)})
    detector.save(folder)
    shutil.copy(split_run / "split.json", folder / "split.json")
    calibrate_detector(detector, splits["val"], 0.9, max_false_alarm, progress=progress)
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.peers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split-from", required=True, type=Path, help="a run folder whose split.json the peers use")
    p.add_argument("--out", required=True, type=Path, help="folder for one detector folder per weight file")
    p.add_argument("--data", help="where the split's data lies now (default: the folder recorded in split.json)")
    p.add_argument("--weights", nargs="+", default=list(DEFAULT_WEIGHTS), help="which published files")
    p.add_argument("--max-false-alarm", type=float, default=0.05)
    p.add_argument("--record", type=Path, default=Path(PEERS),
                   help=f"results file to write (default {PEERS}); docs/EVALUATION.md's peer tables read it")
    args = p.parse_args(argv)
    from training import report
    from training.bundle import evaluate_all
    from training.data import from_record, recorded

    try:
        runs = {f"mesonet-{name}": make_peer(name, args.split_from, args.out, args.data, args.max_false_alarm)
                for name in args.weights}
        data = Path(args.data) if args.data else from_record(json.loads((args.split_from / "split.json").read_text())["data"])
        log = [f"python -m training.peers --split-from {args.split_from} --out {args.out}"
               + (f" --data {recorded(data)}" if args.data else "")]
        results = report.summarize(evaluate_all(runs, data, log), None, log, recorded(data))
    except (FileNotFoundError, ValueError) as e:
        print(f"training.peers: error: {e}", file=sys.stderr)
        return 2
    report.record(results, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
