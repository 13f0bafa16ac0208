"""One table from a detector's name to its builder, its preprocessing and what it is."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from models import architectures, mesonet
from models.preprocessing import InputSpec, input_spec


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable
    description: str

    @property
    def spec(self) -> InputSpec:
        return input_spec(self.name)


ARCHITECTURES = {
    a.name: a
    for a in [
        Architecture("tiny", architectures.build_tiny, "on-device CNN of depthwise-separable blocks, under 300k parameters"),
        Architecture("seed-cnn", architectures.build_seed_cnn, "our predecessors' DeepfakeDetector CNN, as they built it"),
        Architecture("tuned-cnn", architectures.build_tuned_cnn, "deeper CNN with batch norm, tuned on validation"),
        Architecture("pretrained", architectures.build_pretrained, "ImageNet MobileNet v1 (or Xception) with a new head"),
        Architecture("npr", architectures.build_npr, "small CNN from scratch on upsampling residuals (NPR): generator traces"),
        Architecture("mesonet", mesonet.build_mesonet, "MesoNet (Afchar et al. 2018) with its authors' published weights: a peer, not trained here"),
        Architecture("ensemble", architectures.build_ensemble, "tuned CNN and pretrained network, stacked in logit space"),
    ]
}


def get(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build(name: str, **kwargs):
    return get(name).build(**kwargs)
