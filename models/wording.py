"""How a verdict is said to a person, from the one vocabulary in models/wording.json.
extension/src/wording.js and the server's page read the same file."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

WORDING_PATH = Path(__file__).with_name("wording.json")
NO_FACE = "no_face"


@lru_cache(maxsize=1)
def wording() -> dict:
    return json.loads(WORDING_PATH.read_text())


def no_face(hint: str | None = None, **rest) -> dict:
    """The result for a picture (or video) without a face to judge: no verdict, no score;
    `hint` (said after the no-face sentence) what the search may have missed."""
    out = {"verdict": NO_FACE, "confidence": None, "p_fake": None, "p_fake_raw": None,
           "summary": wording()["no_face"] + (f" {hint}" if hint else ""), **rest}
    if hint:
        out["hint"] = hint
    return out


def pct(x: float) -> str:
    return f"{round(100 * x)}%"


def describe(verdict: str, confidence: float | None = None, p_fake: float | None = None) -> str:
    """'Likely fake: 93% confident it is fake', 'Unsure: leans real (57%), not enough to call
    it', or the no-face sentence."""
    w = wording()
    if verdict == "no_face":
        return w["no_face"]
    label = w["labels"][verdict]
    if confidence is None:  # a verdict that rests on provenance has no calibrated number
        return label
    lean = "fake" if (p_fake if p_fake is not None else 0.5) >= 0.5 else "real"
    text = w["confidence"][verdict].format(pct=pct(confidence), lean=lean)
    return f"{label}: {text[0].lower()}{text[1:]}"


def tag(verdict: str, confidence: float | None = None) -> str:
    """A face's short tag: 'Fake 93%', 'Real 97%', 'Unsure': the one number is the confidence
    of the face's own verdict, as on the extension's badges."""
    text = wording()["tag"][verdict]
    return text.format(pct=pct(confidence)) if "{pct}" in text and confidence is not None else text.replace(" {pct}", "")


def sentence(message: str) -> str:
    """A message shown to a person as a sentence: a capital first letter and a full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" else message + "."
