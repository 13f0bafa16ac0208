"""Show what the detector looked at, face by face: Grad-CAM, LIME, or a layer's feature maps.

    unmask explain photo.jpg --out heat.png                      # face boxes and a Grad-CAM heatmap per face
    unmask explain photo.jpg --out lime.png --method lime        # LIME, as our predecessors did
    unmask explain --list-layers --model tiny                    # the layers one can ask for
    unmask explain photo.jpg --out heat.png --layer NAME --feature-maps maps.png

Each face found is explained on its own crop (what the detector judged), and the heat is put
back where that crop lies in the picture, with every face's box and verdict drawn on it.
The heat shows evidence for the face's verdict: for `fake` (and for an unsure face) what
looked fake, for a `real` face what looked real. The computations live in models/explain.py.
"""
from __future__ import annotations

import sys

import numpy as np

from models.explain import TARGETS, default_layers, feature_maps, map_layers, overlay, png_bytes


def add_arguments(p):
    p.add_argument("image", nargs="?", help="image file to explain")
    p.add_argument("--out", help="PNG to write: the image with the heatmap laid over it")
    p.add_argument("--model", default="ensemble", help="tiny, ensemble, a run folder or a .keras file (default: ensemble)")
    p.add_argument("--method", choices=("gradcam", "lime"), default="gradcam",
                   help="gradcam (fast, from gradients) or lime (slow, from masking superpixels)")
    p.add_argument("--target", choices=("verdict",) + TARGETS, default="verdict",
                   help="explain evidence for this label (default: the verdict; fake when uncertain)")
    p.add_argument("--layer", help="layer for Grad-CAM and --feature-maps (NAME or MEMBER/NAME); "
                   "default: the last convolutional layer at least 7 cells wide")
    p.add_argument("--feature-maps", metavar="PNG", help="also draw this layer's strongest feature maps into PNG")
    p.add_argument("--samples", type=int, default=500, help="LIME: number of perturbed images (default: 500)")
    p.add_argument("--heat", metavar="NPY", help="also save the raw heat array (H, W) in 0..1 as .npy")
    p.add_argument("--list-layers", action="store_true", help="list the model's feature-map layers and exit")


def run(args) -> int:
    from pathlib import Path

    from models.detector import Detector
    from models.faces import crop_image
    from models.inference import FaceCheck, draw_faces, face_target
    from models.preprocessing import load_image

    if args.list_layers:
        detector = Detector.load(args.model)
        default = set(default_layers(detector))
        for name in map_layers(detector.model):
            print(name + ("   (Grad-CAM default)" if name in default else ""))
        return 0
    if not args.image or not args.out:
        raise ValueError("give an IMAGE and --out PNG (or --list-layers)")
    image = load_image(args.image)  # ImageError is a ValueError: the CLI prints it
    detector = Detector.load(args.model)
    check = FaceCheck(detector)
    result = check.check_image(image)
    if result["verdict"] == "no_face":
        raise ValueError(f"{args.image}: {result['summary']} There is nothing to explain.")
    target = None if args.target == "verdict" else args.target
    print(f"{args.image}: {result['verdict']} (confidence {result['confidence']:.2f}, p(fake) {result['p_fake']:.3f}) "
          f"with {detector.name} {detector.version}, {len(result['faces'])} face(s)")
    if args.method == "lime":
        print(f"LIME: scoring {args.samples} perturbed images per face...", file=sys.stderr)
    heat = check.heat(image, result, method=args.method, target=target, layer_name=args.layer, samples=args.samples)
    what = (f"Grad-CAM on {args.layer or ', '.join(default_layers(detector))}" if args.method == "gradcam"
            else f"LIME over {args.samples} samples")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(draw_faces(overlay(image, heat, outline=False), result["faces"])))
    for i, f in enumerate(result["faces"], start=1):
        t = target or face_target(f["verdict"])
        print(f"  face {i}: {f['verdict']} (p(fake) {f['p_fake']:.3f}): heat shows evidence for {t!r}")
    print(f"{what}: written to {out}" + ("" if heat.max() > 0 else " (the map is empty: no region raised that score)"))
    if args.heat:
        np.save(args.heat, heat)
    if args.feature_maps:
        layer = args.layer or default_layers(detector)[0]
        Path(args.feature_maps).parent.mkdir(parents=True, exist_ok=True)
        largest = crop_image(image, result["faces"][0]["crop"])
        Path(args.feature_maps).write_bytes(feature_maps(detector, largest, layer))
        print(f"feature maps of {layer} written to {args.feature_maps}")
    return 0


