"""Helpers shared by the converter tests."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("js_probe.mjs")


def node_or_skip():
    from converter.parity import node_problem

    problem = node_problem()
    if problem:
        pytest.skip(f"needs Node with the project's npm packages: {problem}")


def probe(*args, stdin: object | None = None) -> object:
    """Run tests/converter/js_probe.mjs and return its JSON."""
    proc = subprocess.run(["node", str(PROBE), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          input=None if stdin is None else json.dumps(stdin))
    assert proc.stdout.strip(), f"js_probe.mjs printed nothing; stderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
