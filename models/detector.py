"""A trained detector on disk: the Keras model plus everything needed to use it honestly.

A detector folder holds:
- `model.keras`: the network (input 0..255 pixels at the contract size, output p(fake));
- `detector.json`: architecture, version, preprocessing, calibration, training summary.

`Detector.load("tiny")` and `Detector.load("ensemble")` find the bundled ones in
models/bundled/; any other argument is a folder (a training run) or a `.keras` file.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.calibration import Calibration
from models.preprocessing import InputSpec, input_spec, load_image, resize_for_model

BUNDLED_DIR = Path(os.environ.get("UNMASK_MODELS_DIR", Path(__file__).with_name("bundled")))
BUNDLED = ("tiny", "ensemble")
MODEL_FILE = "model.keras"
INFO_FILE = "detector.json"


class ModelNotFound(FileNotFoundError):
    pass


def resolve(name_or_path) -> Path:
    """The folder of a detector given by bundled name or path, or a clear error."""
    p = Path(name_or_path)
    if str(name_or_path) in BUNDLED and not p.exists():
        folder = BUNDLED_DIR / str(name_or_path)
        if not (folder / MODEL_FILE).exists():
            raise ModelNotFound(
                f"the bundled {name_or_path!r} model is missing from {folder}. "
                "Rebuild the bundled models with `make models` (see README)."
            )
        return folder
    if p.is_file() and p.suffix == ".keras":
        return p
    if p.is_dir() and (p / MODEL_FILE).exists():
        return p
    raise ModelNotFound(
        f"no model at {name_or_path!r}: give a bundled name ({', '.join(BUNDLED)}), a run folder "
        f"holding {MODEL_FILE}, or a .keras file"
    )


@dataclass
class Prediction:
    p_fake_raw: float
    verdict: str
    confidence: float
    p_fake: float
    members: dict | None = None

    def as_dict(self) -> dict:
        d = {"verdict": self.verdict, "confidence": self.confidence, "p_fake": self.p_fake, "p_fake_raw": self.p_fake_raw}
        if self.members is not None:
            d["members"] = self.members
        return d


@dataclass
class Detector:
    model: object
    architecture: str
    calibration: Calibration = field(default_factory=Calibration)
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def spec(self) -> InputSpec:
        # A saved detector keeps the contract it was trained with, even if the contract moves on.
        saved = self.info.get("preprocessing")
        if saved:
            return InputSpec(int(saved["input_size"]), float(saved["scale"]), float(saved["offset"]))
        return input_spec(self.architecture)

    @property
    def name(self) -> str:
        return self.info.get("name", self.architecture)

    @property
    def version(self) -> str:
        return self.info.get("version", "unversioned")

    @property
    def video_calibration(self) -> Calibration | None:
        """The calibration of a video's face tracks (models/video.py judge_video), fitted on
        groups of validation frames from one source video (training/video_calibration.py);
        None until one is fitted, and videos are then judged by the image calibration."""
        d = self.info.get("video_calibration")
        return Calibration.from_dict(d) if d else None

    @property
    def member_names(self) -> list[str]:
        return self.info.get("members", [])

    # --- loading and saving -------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path) -> "Detector":
        from models.tensorflow_import import import_tensorflow

        where = resolve(name_or_path)  # a wrong name fails before TensorFlow loads
        import_tensorflow()
        import keras

        import models.architectures  # noqa: F401  registers the custom layers

        folder = where if where.is_dir() else where.parent
        model_file = where / MODEL_FILE if where.is_dir() else where
        info_file = folder / INFO_FILE
        info = json.loads(info_file.read_text()) if info_file.exists() else {}
        try:
            model = keras.saving.load_model(model_file, compile=False)
        except Exception as e:  # a corrupt or foreign file
            raise ModelNotFound(f"cannot load the model in {model_file}: {e}") from e
        architecture = info.get("architecture") or _guess_architecture(model)
        return cls(model, architecture, Calibration.from_dict(info.get("calibration")), info, folder)

    def save(self, folder: Path, **extra_info) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / MODEL_FILE)
        self.info.update(extra_info)
        self.info.setdefault("name", self.architecture)
        self.info.setdefault("version", _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S"))
        self.info["architecture"] = self.architecture
        self.info["preprocessing"] = self.spec.as_dict()
        self.info["calibration"] = self.calibration.to_dict()
        self.info["parameters"] = int(self.model.count_params())
        (folder / INFO_FILE).write_text(json.dumps(self.info, indent=2, default=_json_default))
        self.path = folder
        return folder

    def save_info(self):
        """Rewrite detector.json only (after calibration or evaluation)."""
        self.info["calibration"] = self.calibration.to_dict()
        (Path(self.path) / INFO_FILE).write_text(json.dumps(self.info, indent=2, default=_json_default))

    # --- inference ----------------------------------------------------------------------
    def prepare(self, image) -> np.ndarray:
        """An RGB uint8 array (any size) -> model input (size, size, 3) float32."""
        return np.asarray(resize_for_model(image, self.spec.input_size))

    def raw_scores(self, batch: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
        """p(fake) for a batch of prepared inputs, and the members' scores for an ensemble."""
        ps, ms = [], []
        for i in range(0, len(batch), batch_size):
            out = self.model(batch[i : i + batch_size], training=False)
            if isinstance(out, dict):
                ps.append(np.asarray(out["p_fake"]).reshape(-1))
                ms.append(np.asarray(out["members"]))
            else:
                ps.append(np.asarray(out).reshape(-1))
        p = np.concatenate(ps) if ps else np.zeros((0,), np.float32)
        return p, (np.concatenate(ms) if ms else None)

    def predict_prepared(self, batch: np.ndarray) -> list[Prediction]:
        p, members = self.raw_scores(batch)
        out = []
        for i, pi in enumerate(p):
            v = self.calibration.verdict(float(pi))
            m = None
            if members is not None:
                names = self.member_names or [f"member{j}" for j in range(members.shape[1])]
                m = {n: round(float(s), 4) for n, s in zip(names, members[i])}
            out.append(Prediction(v["p_fake_raw"], v["verdict"], v["confidence"], v["p_fake"], m))
        return out

    def predict_images(self, images: list[np.ndarray]) -> list[Prediction]:
        if not images:
            return []
        return self.predict_prepared(np.stack([self.prepare(im) for im in images]))

    def predict_file(self, path) -> Prediction:
        return self.predict_images([load_image(path)])[0]


def _guess_architecture(model) -> str:
    by_model_name = {"seed_cnn": "seed-cnn", "tuned_cnn": "tuned-cnn", "tiny": "tiny", "pretrained": "pretrained", "ensemble": "ensemble"}
    if model.name in by_model_name:
        return by_model_name[model.name]
    raise ModelNotFound(f"cannot tell which architecture model {model.name!r} is; keep its {INFO_FILE} beside it")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
