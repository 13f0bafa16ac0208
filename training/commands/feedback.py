"""Write out the reports users sent to the server (server/feedback.py keeps them).

    unmask feedback export --out reports/              # faces-v1 layout: real/, fake/, manifest.csv
    unmask feedback export --format json               # every report, as JSON, to stdout
    unmask feedback export --format csv --out reports.csv
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

from server.feedback import FIELDS, FeedbackStore, _csv_rows, sqlite_path, write_folder


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="write the server's reports out", description=__doc__,
                       formatter_class=p.formatter_class)
    e.add_argument("--db", help="the server's feedback_uri (default: $UNMASK_FEEDBACK_URI or sqlite:///feedback.sqlite3)")
    e.add_argument("--format", choices=("folder", "json", "csv"), default=None,
                   help="folder: real/, fake/ and manifest.csv (the default with --out); json (the default without), csv")
    e.add_argument("--out", help="where to write (a folder for --format folder; a file, else stdout, for json and csv)")


def run(args) -> int:
    from server.config import Config

    uri = args.db or Config.from_env().feedback_uri
    path = sqlite_path(uri)
    if path is None:
        raise ValueError("feedback is off (feedback_uri=off): there are no reports to export")
    if not path.is_file():
        raise FileNotFoundError(f"no reports at {path} (feedback_uri {uri!r}); pass the server's file with --db")
    store = FeedbackStore(path)
    fmt = args.format or ("folder" if args.out else "json")
    if fmt == "folder":
        if not args.out:
            raise ValueError("--format folder needs --out FOLDER")
        counts = write_folder(store.rows(with_pictures=True), Path(args.out))
        print(f"unmask feedback export: {counts['reports']} report(s), {counts['pictures']} picture(s) in {args.out}"
              + (f"; {counts['without_picture']} sent without the picture, listed in without_picture.csv" if counts["without_picture"] else ""),
              file=sys.stderr)
        return 0
    rows = list(store.rows())
    for r in rows:
        r["received"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["received"]))
    buf = io.StringIO()
    if fmt == "json":
        json.dump({"reports": rows}, buf, indent=1)
        buf.write("\n")
    else:
        _csv_rows(buf, (*FIELDS, "has_picture"), rows)
    if args.out:
        Path(args.out).write_text(buf.getvalue(), encoding="utf-8")
        print(f"unmask feedback export: {len(rows)} report(s) in {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())
    return 0
