"""Where the ImageNet weights that the backbones start from are read. Nothing is downloaded
at run time: the folder is on disk, laid out as docs/weights.md describes.

The folder is, first found: `unmask train --weights FOLDER`, the environment variable
UNMASK_WEIGHTS (UNMASK_SHARED_WEIGHTS, its older name, still works), else `../shared/weights`
beside a developer checkout. `--weights imagenet` has Keras download its own MobileNet v1
weights instead (an explicit download, for users who are online).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_folder() -> Path:
    for var in ("UNMASK_WEIGHTS", "UNMASK_SHARED_WEIGHTS"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return REPO.parent / "shared" / "weights"


FOLDER = default_folder()
# MobileNet v1 as TF.js weight files, one folder each
MOBILENET = {
    0.25: "mobilenet_v1_0.25_224_imagenet",
    1.0: "mobilenet_v1_1.0_224_imagenet_truncated",  # no conv_pw_13: use up to conv_pw_12_relu
}
