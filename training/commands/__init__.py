"""`unmask`: one command line over the whole toolchain.

Each command is the module of its name in this folder (`unmask check` is check.py), which
provides `add_arguments(parser)` and `run(args) -> int` and calls the code that does the work
(models/, training/, converter/, server/). Modules import TensorFlow inside `run`, so
`--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# name (the module of that name in this folder) -> one-line help
COMMANDS = {
    "train": "train a detector on a folder of real and fake images or videos",
    "calibrate": "fit a trained detector's calibration again on its validation split",
    "evaluate": "evaluate a detector: metrics per source, plots, calibration, model card",
    "check": "give the verdict on image or video files",
    "predict": "write path,p_fake,verdict for every image below a folder",
    "scan": "predict's rows for a folder of any size, as an Apache Beam pipeline (local, Flink, Spark, Dataflow)",
    "explain": "show what the detector looked at (Grad-CAM, LIME, feature maps)",
    "convert": "export a detector to a TensorFlow.js graph model with metadata",
    "serve": "run the second-opinion server under gunicorn",
    "feedback": "write out the reports users sent to the server (unmask feedback export)",
    "data": "rebuild faces-v1 from its public origins (unmask data fetch; needs the internet)",
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unmask", description="Unmask: deepfake detection toolchain.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args._module, "PASSES_UNKNOWN_OPTIONS", False):
        parser.error("unrecognized arguments: " + " ".join(unknown))
    args.unknown = unknown
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CLIError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"unmask {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
