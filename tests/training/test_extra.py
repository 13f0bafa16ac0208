"""Users' reports as data: the folder `unmask feedback export` (and the extension's zip) writes
is read like faces-v1, `unmask train --extra` adds it as its own source (in the split, the
calibration and the per-source tables), and `unmask evaluate --data` scores a model on it.
Small synthetic faces and a narrow tuned-cnn for one epoch keep it quick."""
from __future__ import annotations

import hashlib
import json

from server.feedback import SOURCE, write_folder
from tests.synthetic import encode, face_image, manifest_folder
from tests.training.test_loso import QUICK, narrow_cnn  # noqa: F401 (a fixture)


def reports_folder(root, n_per_label=6):
    """A user-reports folder as `unmask feedback export --out` writes it, plus one report sent
    without its picture."""
    rows = []
    for label in ("real", "fake"):
        for i in range(n_per_label):
            data = encode(face_image(label, 160, 900 + i + (50 if label == "fake" else 0)))
            rows.append({"sha256": hashlib.sha256(data).hexdigest(), "says": label, "note": f"{label} {i}", "image_url": f"https://x.example/{i}.jpg",
                         "page_url": "https://x.example/", "verdict": "uncertain", "picture": data, "picture_type": "jpeg"})
    rows.append({"sha256": "0" * 64, "says": "fake", "note": "no picture", "image_url": "", "page_url": "", "verdict": "real",
                 "picture": None, "picture_type": "", "id": 99, "received": 0, "p_fake": 0.2, "model": "tiny"})
    counts = write_folder(rows, root)
    assert counts == {"pictures": 2 * n_per_label, "reports": 2 * n_per_label + 1, "without_picture": 1}
    return root


def test_train_extra_adds_the_reports_as_their_own_source(tmp_path, unmask, narrow_cnn):  # noqa: F811
    base = manifest_folder(tmp_path / "base", n_per_label=6, size=160, sources=("alpha", "beta"), group_size=2)
    extra = reports_folder(tmp_path / "reports")
    run = tmp_path / "run"
    status, out, err = unmask("train", "--model", "tuned-cnn", "--data", base, "--extra", extra, "--out", run, *QUICK)
    assert status == 0, err
    assert f"--extra {extra}" in out and SOURCE in out

    doc = json.loads((run / "split.json").read_text())
    reported = {p: meta for p, meta in doc["samples"].items() if meta[1] == SOURCE}
    assert len(reported) == 12 and all(meta[2].startswith("extra0:") for meta in reported.values())
    in_splits = {name: [p for p in paths if p in reported] for name, paths in doc["splits"].items()}
    assert in_splits["train"] and sum(map(len, in_splits.values())) == 12  # dealt out like any source
    training = json.loads((run / "detector.json").read_text())["training"]
    assert training["counts"][SOURCE] == {"real": 6, "fake": 6}
    per_source = json.loads((run / "metrics.json").read_text())["per_source"]
    if in_splits["test"]:
        assert SOURCE in per_source

    # Scored on the reports alone.
    status, out, err = unmask("evaluate", run, "--data", extra, "--split", "all", "--out", tmp_path / "eval", "--quiet")
    assert status == 0, err
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert list(m["per_source"]) == [SOURCE] and m["per_source"][SOURCE]["n"] == 12


def test_train_extra_refuses_what_it_cannot_use(tmp_path, unmask):
    base = manifest_folder(tmp_path / "base", n_per_label=3, size=160, sources=("alpha",), group_size=1)
    status, _, err = unmask("train", "--model", "tuned-cnn", "--data", base, "--extra", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert status == 2 and "does not exist" in err
    status, _, err = unmask("train", "--model", "tuned-cnn", "--data", base, "--extra", base, "--split-from", "tiny", "--out", tmp_path / "r")
    assert status == 2 and "--split-from and --extra" in err
    assert not (tmp_path / "r" / "split.json").exists()
