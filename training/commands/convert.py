"""Export a detector to a TensorFlow.js graph model, with metadata.json, for the browser.

MODEL (tiny, ensemble, a run folder or a .keras file) goes through a Keras ExportArchive
(a SavedModel, as `Model.export` writes, traced in inference mode) and the tensorflowjs converter into DIR: model.json, its weight shards and
metadata.json (preprocessing contract, labels, calibration, thresholds, name, version, training
summary, and the size and sha256 of every file). The face model (BlazeFace, which the extension
runs first to crop each face) goes into DIR/face/ with a "faces" section in metadata.json
(converter/faces.py, which also chooses its quantization by measurement).

Every quantization is converted and its size printed: none, mixed (float16 for the 1x1
convolution kernels only), float16 and uint8. The model is refused, naming the operation, if
TensorFlow.js or its wasm backend cannot run it. With --data LABELLED_DIR each quantization's
accuracy is measured by running the converted graph in TensorFlow.js under Node (wasm backend,
files decoded and prepared as the extension does) and compared with Keras; a quantization that
moves accuracy by more than one point is never written. `--quantize auto` (the default with
--data) picks the smallest that keeps it, keeps every image's calibrated p_fake within 0.01 of
Keras on those images, and passes the parity check. Before anything is written, the parity
check (converter/parity.py) compares the chosen conversion with Keras on a fixed image set: for
none, mixed and float16 every |p_fake difference| must be at most 0.01 with equal verdicts. The
table also gives, per quantization, the largest |p_fake difference| and the verdicts that
differ from Keras on the --data images.

The model the extension ships is made with:
  unmask convert tiny --out extension/model --quantize auto --data ../shared/data/faces-v1
(a run folder with split.json is measured on its test split; otherwise every image of --data).
"""
from __future__ import annotations

from pathlib import Path

from converter.export import ConversionError, QUANTIZATIONS, convert


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="tiny, ensemble, a training run folder or a .keras file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write model.json, its shards and metadata.json into")
    p.add_argument("--quantize", choices=("auto", *QUANTIZATIONS), default=None,
                   help="weight quantization (mixed: float16 for the 1x1 convolution kernels only); auto (the default "
                        "with --data) picks the smallest that keeps accuracy within one point of Keras and every "
                        "image's p_fake within 0.01; without --data the default is mixed")
    p.add_argument("--data", metavar="LABELLED_DIR",
                   help="labelled images (real/ and fake/ folders, or manifest.csv) to measure each quantization's accuracy on")
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="with --data: the run's test split when MODEL has a split.json (default), or every image")
    p.add_argument("--parity-images", metavar="DIR", help="JPEG/PNG files for the parity check (default: the fixed generated set)")
    p.add_argument("--skip-js-checks", action="store_true",
                   help="do not run TensorFlow.js under Node (no wasm kernel check, parity or TF.js accuracy); "
                        "metadata.json records that the conversion was not verified")



def run(args) -> int:
    from converter.faces import FaceParityError
    from converter.parity import ParityError
    from models.detector import Detector
    from training.commands import CLIError

    if args.data and args.skip_js_checks:
        raise ValueError("--data measures accuracy in TensorFlow.js under Node, which --skip-js-checks turns off")
    detector = Detector.load(args.model)
    samples, note = labelled_samples(detector, args.data, args.split) if args.data else (None, "")
    try:
        convert(detector, args.out, quantize=args.quantize, samples=samples, data_note=note,
                parity_images=args.parity_images, js_checks=not args.skip_js_checks)
    except (ConversionError, ParityError, FaceParityError) as e:
        raise CLIError(str(e)) from e
    return 0


def labelled_samples(detector, data, split: str = "test", log=print):
    """The samples to measure accuracy on, and a note saying which they are."""
    from training.data import SPLIT_FILE, load_dataset, load_split

    folder = Path(detector.path) if detector.path else None
    if split == "test" and folder and (folder / SPLIT_FILE).is_file():
        samples = load_split(folder, data)["test"]
        if not samples:
            raise ValueError(f"the test split in {folder / SPLIT_FILE} is empty; use --split all")
        note = f"test split of run {folder.name} ({Path(data).name})"
    else:
        samples = load_dataset(data).samples
        note = f"every image of {Path(data).name}" + (" (MODEL has no split.json)" if split == "test" else "")
    log(f"  accuracy will be measured on {len(samples):,} labelled images: {note}")
    return samples, note
