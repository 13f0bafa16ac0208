"""Data folders: rebuild faces-v1 from the public origins its manifest names.

    unmask data fetch --out ~/data/faces-v1 [--only dfdc,sd21] [--workers 4]

For a user who is online, and only when asked: every image is downloaded from the GitHub
repository, commit and path in docs/data/faces-v1/manifest.csv, normalised as the data card
(docs/data/faces-v1/README.md) says, and checked against the manifest's SHA-256. Files
already there with the right hash are kept, so a stopped fetch resumes. The folder gets the
manifest and the data card, and works as --data for `unmask train`, `evaluate` and
`make models DATA=...`. Exit status 0 when every image arrived as recorded, 1 otherwise
(fetch-problems.csv in the folder lists each file and why).
"""
from __future__ import annotations

import sys
from pathlib import Path

from training.fetch import FACES_V1, ORIGIN_URL


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = sub.add_parser("fetch", help="download faces-v1 from its public origins", description=__doc__,
                       formatter_class=p.formatter_class)
    f.add_argument("--out", required=True, help="the data folder to write (created if missing)")
    f.add_argument("--manifest", default=str(FACES_V1 / "manifest.csv"), help="the manifest to fetch (default: faces-v1's)")
    f.add_argument("--only", help="comma-separated sources to fetch (default: every source)")
    f.add_argument("--workers", type=int, default=4, help="downloads at a time (default 4)")
    f.add_argument("--origin-url", default=ORIGIN_URL,
                   help="where an origin is downloaded from, with {repository}, {commit} and {path} (default: %(default)s)")
    f.add_argument("--keep-different", action="store_true",
                   help="keep an image whose normalised bytes differ from the recorded hash (it is still reported)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from training.fetch import fetch

    sources = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    result = fetch(Path(args.out), manifest=Path(args.manifest), template=args.origin_url, sources=sources,
                   keep_different=args.keep_different, workers=args.workers, progress=not args.quiet)
    counts, problems = result["counts"], result["problems"]
    done = counts.get("ok", 0) + counts.get("kept", 0)
    print(f"unmask data fetch: {done} of {sum(counts.values())} images in {args.out} as recorded "
          f"({counts.get('kept', 0)} already there)", file=sys.stderr)
    if problems:
        for path, reason, message in problems[:5]:
            print(f"  {path}: {reason}: {message}", file=sys.stderr)
        print(f"{len(problems)} problem(s), listed in {Path(args.out) / 'fetch-problems.csv'}", file=sys.stderr)
    return 1 if problems else 0
