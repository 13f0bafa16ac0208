"""Score every image below a folder into a CSV.

    unmask predict --model ensemble photos/ --out preds.csv

Writes path,p_fake,verdict,faces,confidence,p_fake_raw,error: one row per image file (by
extension: .jpg .jpeg .png .webp .gif .bmp), paths relative to the folder, in sorted order.
Faces first (models/inference.py): `faces` is the number of faces judged; verdict is the
picture's (fake when any face is, real when every face is, otherwise uncertain), p_fake the
highest face's calibrated p(fake). A picture without a face to judge is `no_face` with p_fake
left empty; a file that could not be read is `error` (the error column says why; the run goes
on). `provenance` is the file's tier of provenance evidence (signed, declared or captured;
empty when it says nothing, models/provenance.py): signed or declared AI makes the verdict
`fake` with an empty confidence. Images are read on both cores and checked in batches. A summary goes to stderr. Exit
status: 0 when every file was checked, 1 when some were errors (their rows are in the CSV).
"""
from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from training.scoring import COLUMNS, IMAGE_SUFFIXES, check_files, find_images, predict_row


def add_arguments(p):
    p.add_argument("folder", metavar="DIR", help="folder to score (recursively)")
    p.add_argument("--model", required=True, help="tiny, ensemble, a run folder or a .keras file")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--batch-size", type=int, default=32, help="images per model call (default: 32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from models.detector import Detector
    from models.inference import FaceCheck

    folder = Path(args.folder)
    images, others = find_images(folder)
    if not images:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) below {folder}"
                         + (f"; {others} other file(s) passed over" if others else ""))
    detector = Detector.load(args.model)
    check = FaceCheck(detector)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    verdicts, errors = Counter(), Counter()
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for i, r, err in check_files(check, images, batch_size=args.batch_size, progress=not args.quiet,
                                     desc=f"{detector.name} on {folder}"):
            row = predict_row(images[i].relative_to(folder).as_posix(), r, err)
            if err is not None:
                errors[err[0]] += 1
            verdicts[row["verdict"]] += 1
            writer.writerow(row)
    n_err = sum(errors.values())
    print(f"{len(images)} images checked by {detector.name} {detector.version}: "
          + ", ".join(f"{verdicts[v]} {v}" for v in ("fake", "real", "uncertain", "no_face", "error")), file=sys.stderr)
    if n_err:
        print("errors: " + ", ".join(f"{n} {r}" for r, n in errors.most_common())
              + f" (see the error column of {out})", file=sys.stderr)
    if others:
        print(f"{others} file(s) without an image extension were passed over", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 1 if n_err else 0
