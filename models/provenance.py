"""What a file says about where it came from, apart from the models, in three tiers of evidence.

- *signed*: C2PA Content Credentials whose signature and content hash validate, whose signer
  chains to a trust anchor (the official C2PA trust list in models/trust/, plus the PEM file
  named by UNMASK_TRUST_ANCHORS), and which declare an AI source type in any manifest.
- *declared*: the same claim without a trusted signature (credentials from an unknown signer,
  or that do not validate), the IPTC DigitalSourceType in XMP, generator text in PNG chunks
  (A1111 `parameters`, ComfyUI `prompt`/`workflow`, InvokeAI), EXIF Software or UserComment,
  NovelAI's "stealth" metadata in the alpha channel, and the Stable Diffusion invisible
  watermark (models/watermark.py) where it still decodes.
- *captured*: trusted credentials of a camera capture, with no AI action.

Signed and declared make a picture `fake` (combine); captured never makes one `real` (a
camera can photograph a screen), and no provenance says nothing. Credentials whose content
hash no longer matches say the picture changed after signing, plainly. The rules and limits
are models/provenance.json, the sentences models/wording.json: the extension reads both.
Nothing is ever fetched: remote manifests are reported, not downloaded.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import zlib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The keys, patterns and limits shared with the extension.
RULES = json.loads((HERE / "provenance.json").read_text())
TRUST_DIR = HERE / "trust"
ANCHORS_ENV = "UNMASK_TRUST_ANCHORS"  # a PEM file of more trust anchors
IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI_SOURCE_TYPES = set(RULES["source_types"]["ai"])
CAPTURE_SOURCE_TYPES = set(RULES["source_types"]["capture"])
GENERATOR_SOFTWARE = re.compile(RULES["generator_software"]["pattern"], re.IGNORECASE)
SD_PARAMETERS = re.compile(RULES["sd_parameters"]["pattern"])
CHANGED_CODES = set(RULES["c2pa"]["changed_codes"])
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp",
        "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
SNIPPET = 160  # characters of a metadata value echoed back
TIERS = ("signed", "declared", "captured")


def inspect(data: bytes, kind: str, pixels=None) -> dict:
    """The provenance of a file of sniffed `kind` (jpeg, png, ..., mp4): its tier (signed,
    declared, captured or None), the sentence for it, who signed, the claim generator, the
    actions, the validation codes, and each finding. `pixels` (RGB, as decoded) lets the
    watermark be looked for."""
    findings: list[dict] = []
    c2pa_section = read_c2pa(data, MIME.get(kind, "application/octet-stream"), findings)
    metadata = read_metadata(data, kind, findings) if kind in ("jpeg", "png", "webp") else {}
    if pixels is not None:
        from models.watermark import find_watermark

        mark = find_watermark(pixels)
        if mark["note"]:
            _finding(findings, "watermark", mark["note"], "declared" if mark["found"] else None)
        metadata["watermark"] = mark
    return summarise(findings, c2pa_section, metadata)


def summarise(findings: list[dict], c2pa_section: dict, metadata: dict) -> dict:
    from models.wording import wording

    w = wording()["provenance"]
    tiers = {f["tier"] for f in findings if f["tier"]}
    tier = next((t for t in TIERS if t in tiers), None)
    signer = c2pa_section.get("signed_by")
    statement = None
    if tier == "signed" or tier == "captured":
        statement = w[tier].format(signer=signer or "an unnamed signer")
    elif tier == "declared":
        c2pa_ai = c2pa_section.get("ai_generated") and not any(f["tier"] == "declared" and f["source"] != "c2pa" for f in findings)
        if c2pa_ai and c2pa_section.get("validation_state") == "Invalid":
            statement = w["declared_invalid"]
        elif c2pa_ai:
            statement = w["declared_untrusted"].format(signer=signer or "an unnamed signer")
        else:
            statement = w["declared"]
    changed = bool(c2pa_section.get("changed_after_signing"))
    return {
        "tier": tier,
        "ai": tier in ("signed", "declared"),
        "statement": statement,
        "changed": w["changed"] if changed else None,
        "evidence": [f["message"] for f in findings if f["tier"] in ("signed", "declared")],
        "signer": signer,
        "claim_generator": c2pa_section.get("claim_generator"),
        "actions": c2pa_section.get("actions", []),
        "validation_state": c2pa_section.get("validation_state"),
        "validation_codes": c2pa_section.get("validation_failures", []),
        # Kept for clients of the first API: any AI evidence, and one line for it.
        "generator_evidence": tier in ("signed", "declared"),
        "summary": statement or (w["changed"] if changed else _quiet(findings)),
        "findings": findings,
        "c2pa": c2pa_section,
        "metadata": metadata,
    }


def failed(error: str) -> dict:
    """The section for a file whose provenance could not be read at all."""
    out = summarise([], {"present": False}, {})
    out.update(summary="the provenance check failed on this file", error=error)
    return out


def _quiet(findings) -> str:
    return "nothing in the file's metadata points to a generator" if findings else "no provenance information in the file (this says nothing either way)"


def combine(model_verdict: dict, provenance: dict) -> dict:
    """The picture's verdict from the models' and the provenance: signed or declared AI makes it
    `fake`, with or without a face (basis "provenance", no confidence: no calibrated number
    backs metadata; "model+provenance" when the faces said fake too). Nothing makes it `real`."""
    from models.wording import describe

    verdict = model_verdict["verdict"]
    out = {
        "verdict": verdict,
        "confidence": model_verdict["confidence"],
        "p_fake": model_verdict["p_fake"],
        "p_fake_raw": model_verdict["p_fake_raw"],
        "basis": "none" if verdict == "no_face" else "model",
        "model_verdict": {"verdict": verdict, "confidence": model_verdict["confidence"]},
    }
    if provenance.get("ai"):
        if verdict == "fake":
            out["basis"] = "model+provenance"
        else:
            out.update(verdict="fake", confidence=None, basis="provenance")
    out["summary"] = describe(out["verdict"], out["confidence"], out["p_fake"])
    if out["basis"] == "provenance":
        out["summary"] += ": " + provenance["statement"]
    if out["verdict"] == "no_face" and model_verdict.get("hint"):  # a large picture: what the search may miss
        out["hint"] = model_verdict["hint"]
        out["summary"] += " " + out["hint"]
    return out


def judged(result: dict, data: bytes, kind: str, pixels=None) -> dict:
    """A picture's result (models.inference) with the file's provenance read and combined in,
    for the CLI; the server does the same in its own response sections."""
    prov = inspect(data, kind, pixels)
    return {**result, **combine(result, prov), "provenance": prov}


def _finding(findings, source: str, message: str, tier: str | None):
    """One thing the file says; `tier` when it is evidence of one."""
    findings.append({"source": source, "tier": tier, "evidence": tier in ("signed", "declared"), "message": message})


# --- C2PA -------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def trust_anchors(extra_path: str | None) -> str:
    """The official C2PA trust list, and the PEM file `extra_path` if any."""
    pem = (TRUST_DIR / "C2PA-TRUST-LIST.pem").read_text()
    if extra_path:
        try:
            pem += "\n" + Path(extra_path).read_text()
        except OSError as e:
            raise ValueError(f"{ANCHORS_ENV}={extra_path} cannot be read ({e.strerror or e})") from None
    return pem


def _settings():
    import c2pa

    return c2pa.Settings.from_dict({
        # Never fetch what a file points to: remote manifests, OCSP responders.
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True},
        "trust": {"trust_anchors": trust_anchors(os.environ.get(ANCHORS_ENV) or None)},
    })


def read_c2pa(data: bytes, mime: str, findings: list[dict]) -> dict:
    import c2pa

    section = {"present": False}
    try:
        with c2pa.Context(_settings()) as ctx, c2pa.Reader(mime, io.BytesIO(data), context=ctx) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as e:
        text = str(e)
        if "ManifestNotFound" in type(e).__name__ or text.startswith("ManifestNotFound"):
            return section
        if "NotSupported" in type(e).__name__ or text.startswith("NotSupported"):
            section["note"] = "Content Credentials cannot be embedded in this file type"
            return section
        if text.startswith("Remote"):
            url = re.search(r"(https?://\S+)", text)
            section.update(present=True, remote=True, remote_url=url.group(1) if url else None, validation_state=None)
            _finding(findings, "c2pa", "the file points to Content Credentials stored elsewhere; Unmask does not fetch them", None)
            return section
        section.update(present=True, validation_state="Unreadable", error=text[:300])
        _finding(findings, "c2pa", f"Content Credentials are present but cannot be read ({text[:120]})", None)
        return section

    manifests = store.get("manifests", {}) or {}
    active = manifests.get(store.get("active_manifest"), {}) or {}
    state = store.get("validation_state") or ("Invalid" if store.get("validation_status") else "Valid")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [s.get("code") for s in results.get("failure", []) or []] or [s.get("code") for s in store.get("validation_status", []) or []]
    signer_info = active.get("signature_info", {}) or {}
    signer = signer_info.get("issuer") or signer_info.get("common_name")
    generator = _claim_generator(active)
    types = sorted({t for m in manifests.values() for t in _source_types(m)})
    ai = [t for t in types if t.rsplit("/", 1)[-1] in AI_SOURCE_TYPES]
    capture = [t for t in types if t.rsplit("/", 1)[-1] in CAPTURE_SOURCE_TYPES]
    changed = bool(CHANGED_CODES & set(failures))
    section.update(
        present=True, validation_state=state, validation_failures=failures, trusted=state == "Trusted",
        claim_generator=generator, signed_by=signer, signed_at=signer_info.get("time"),
        digital_source_types=types, ai_generated=bool(ai), changed_after_signing=changed,
        actions=[a for m in manifests.values() for a in _actions(m)],
    )
    if changed:
        _finding(findings, "c2pa", "the picture was changed after its Content Credentials were signed", None)
    trust = {
        "Trusted": f"validate and are signed by {signer}, on the C2PA trust list",
        "Valid": f"are intact but signed by {signer}, who is on no trust list here",
        "Invalid": "do not validate (the file changed after signing, or the signature is bad)",
    }.get(state, f"have validation state {state}")
    names = ", ".join(t.rsplit("/", 1)[-1] for t in ai)
    if ai:
        _finding(findings, "c2pa", f"Content Credentials from {generator or 'an unnamed tool'} declare {names} (made by a model) and {trust}",
                 "signed" if state == "Trusted" else "declared")
    elif capture and state == "Trusted":
        _finding(findings, "c2pa", f"Content Credentials of a capture by {generator or 'an unnamed device'} {trust}", "captured")
    else:
        _finding(findings, "c2pa", f"Content Credentials from {generator or 'an unnamed tool'} {trust}", None)
    return section


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info, list) and isinstance(info[0], dict):
        first = info[0]
        return " ".join(str(first[k]) for k in ("name", "version") if first.get(k)) or None
    return manifest.get("claim_generator")


def _actions(manifest: dict) -> list[dict]:
    out = []
    for a in manifest.get("assertions", []) or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for action in (a.get("data") or {}).get("actions", []) or []:
                if isinstance(action, dict):
                    agent = action.get("softwareAgent")
                    out.append({"action": action.get("action"), "digital_source_type": action.get("digitalSourceType"),
                                "software_agent": agent.get("name") if isinstance(agent, dict) else agent})
    return out


def _source_types(manifest: dict) -> list[str]:
    return [str(a["digital_source_type"]) for a in _actions(manifest) if a["digital_source_type"]]


# --- EXIF, PNG text, XMP ----------------------------------------------------------------
def read_metadata(data: bytes, kind: str, findings: list[dict]) -> dict:
    meta: dict = {}
    texts, stopped = png_text(data) if kind == "png" else ({}, None)
    if stopped:
        _finding(findings, "png", stopped, None)
    stealth = novelai_stealth(data) if kind == "png" else None
    if stealth is not None:
        meta["novelai_stealth"] = _snip(stealth)
        _finding(findings, "png", "NovelAI's hidden generation metadata is in the alpha channel", "declared")
    exif = _exif(data)
    software = exif.get("software") or texts.get("Software")
    if software:
        meta["software"] = _snip(software)
        if GENERATOR_SOFTWARE.search(software):
            _finding(findings, "exif", f"the Software field names an image generator: {_snip(software, 60)}", "declared")
        else:
            _finding(findings, "exif", f"the Software field names {_snip(software, 60)}, not a known generator", None)
    comment = exif.get("user_comment")
    if comment and SD_PARAMETERS.search(comment):
        meta["exif_user_comment"] = _snip(comment)
        _finding(findings, "exif", "EXIF UserComment holds Stable Diffusion generation parameters", "declared")
    generator_keys = set(RULES["png_keys"]["generator"])
    gen_keys = sorted(k for k in texts if k.lower() in generator_keys)
    if texts:
        meta["png_text"] = {k: _snip(v) for k, v in texts.items() if k != "XML:com.adobe.xmp"}
    if gen_keys:
        _finding(findings, "png", f"PNG text chunks written by Stable Diffusion tools: {', '.join(gen_keys)}", "declared")
    xmp, too_big = (texts.get("XML:com.adobe.xmp"), False) if "XML:com.adobe.xmp" in texts else find_xmp(data)
    if too_big:
        _finding(findings, "xmp", f"the XMP packet is over {RULES['limits']['max_text_bytes']} bytes; it was not read", None)
    if xmp:
        types = digital_source_types(xmp)
        if types:
            meta["iptc_digital_source_type"] = types
            ai = [t for t in types if t.rsplit("/", 1)[-1] in AI_SOURCE_TYPES]
            if ai:
                names = ", ".join(t.rsplit("/", 1)[-1] for t in ai)
                _finding(findings, "xmp", f"the IPTC digital source type is {names} (made by a model)", "declared")
            else:
                _finding(findings, "xmp", f"the IPTC digital source type is {types[0].rsplit('/', 1)[-1]}", None)
    return meta


def _snip(text: str, n: int = SNIPPET) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


STEALTH_MAGIC = (b"stealth_pngcomp", b"stealth_pnginfo")


def novelai_stealth(data: bytes) -> str | None:
    """NovelAI's "stealth" metadata: in the lowest bit of the alpha channel, read column by
    column (top to bottom, then left to right), a magic word, a 32-bit length in bits, and the
    JSON (gzipped after "stealth_pngcomp"). None without it; at most max_text_bytes read."""
    from PIL import Image

    limit = RULES["limits"]["max_text_bytes"]
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("RGBA", "LA"):
                return None
            import numpy as np

            alpha = np.asarray(img.getchannel("A"))
    except Exception:  # a picture the face check already decoded, or will refuse itself
        return None
    bits = (alpha.T.reshape(-1) & 1).astype(np.uint8)  # column by column
    head = np.packbits(bits[: 8 * (len(STEALTH_MAGIC[0]) + 4)]).tobytes()
    magic, size = head[: len(STEALTH_MAGIC[0])], int.from_bytes(head[len(STEALTH_MAGIC[0]) :], "big")
    start = 8 * (len(STEALTH_MAGIC[0]) + 4)
    if magic not in STEALTH_MAGIC or size <= 0 or size % 8 or size // 8 > limit or start + size > bits.size:
        return None
    body = np.packbits(bits[start : start + size]).tobytes()
    try:
        if magic == b"stealth_pngcomp":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip, within the same budget as text chunks
            body = d.decompress(body, limit)
        return body.decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return None


def _exif(data: bytes) -> dict:
    """Software and UserComment from EXIF, read from the header only (no pixel decoding)."""
    from PIL import Image

    out = {}
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            if exif.get(0x0131):
                out["software"] = str(exif.get(0x0131)).strip("\x00 ")
            raw = exif.get_ifd(0x8769).get(0x9286)  # Exif IFD, UserComment
            if raw:
                out["user_comment"] = _decode_user_comment(raw)
    except Exception:  # metadata is optional; the image itself was validated already
        return out
    return out


def _decode_user_comment(raw) -> str:
    if isinstance(raw, str):
        return raw
    head, body = bytes(raw[:8]), bytes(raw[8:])
    if head.startswith(b"UNICODE"):
        # A1111 writes UTF-16 big-endian; some tools little-endian.
        text = body.decode("utf-16-be", "replace")
        return text if "Steps" in text else body.decode("utf-16-le", "replace")
    return body.decode("utf-8", "replace")


def png_text_chunks(data: bytes) -> dict[str, str]:
    """The kept text chunks of a PNG (keyword -> text): see png_text."""
    return png_text(data)[0]


def png_text(data: bytes) -> tuple[dict[str, str], str | None]:
    """tEXt, zTXt and iTXt chunks of a PNG whose key provenance reads (RULES png_keys), without
    decoding pixels, within RULES limits; and why reading stopped early, or None.

    Every file is hostile: a PNG can hold hundreds of small compressed chunks that each
    inflate to a megabyte, after a chunk that makes other readers stop. So the walk stops at
    the first malformed chunk, looks at max_text_chunks text chunks at most, skips keys it
    does not use without inflating them, and inflates no more than max_text_bytes in all."""
    limits = RULES["limits"]
    keep = {k.lower() for group in ("generator", "other") for k in RULES["png_keys"][group]}
    budget = limits["max_text_bytes"]
    out: dict[str, str] = {}
    view = memoryview(data)
    pos, seen = 8, 0
    while pos < len(data):
        if pos + 12 > len(data):
            return out, "the PNG ends inside a chunk"
        length, ctype = struct.unpack(">I4s", view[pos : pos + 8])
        end = pos + 12 + length
        if not ctype.isalpha() or end > len(data):
            return out, "the PNG has a malformed chunk; what follows it was not read"
        body = view[pos + 8 : end - 4]
        if zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack(">I", view[end - 4 : end])[0]:
            return out, "the PNG has a chunk with a bad checksum; what follows it was not read"
        pos = end
        if ctype == b"IEND":
            break
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        seen += 1
        if seen > limits["max_text_chunks"]:
            return out, f"the PNG has more than {limits['max_text_chunks']} text chunks; the rest were not read"
        try:
            key, text = _text_chunk(ctype, bytes(body[:80]), body, keep, budget)
        except (zlib.error, ValueError, IndexError):
            return out, "the PNG has a text chunk that cannot be read; what follows it was not read"
        if text is None:
            continue
        if len(text) >= budget:
            out[key] = text[:budget]
            return out, f"the PNG's text chunks hold more than {budget} bytes; the rest were not read"
        budget -= len(text)
        out[key] = text
    return out, None


def _text_chunk(ctype: bytes, head: bytes, body: memoryview, keep: set[str], budget: int) -> tuple[str, str | None]:
    """(key, text) of one text chunk, text None for a key not kept (left compressed)."""
    sep = head.find(b"\x00")
    if sep < 1:
        raise ValueError("a text chunk without a keyword")
    key = head[:sep].decode("latin-1")
    if key.lower() not in keep:
        return key, None
    rest = body[sep + 1 :]
    if ctype == b"tEXt":
        return key, bytes(rest[:budget]).decode("latin-1")
    if ctype == b"zTXt":
        return key, _inflate(rest[1:], budget).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, text
    compressed = rest[0]
    tail = bytes(rest[2:])
    _lang, _, tail = tail.partition(b"\x00")
    _tkey, _, text = tail.partition(b"\x00")
    return key, (_inflate(text, budget) if compressed else text[:budget]).decode("utf-8", "replace")


def _inflate(data, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a zlib stream (one more tells the caller it was cut)."""
    return zlib.decompressobj().decompress(data, limit + 1)


def find_xmp(data: bytes) -> tuple[str | None, bool]:
    """The first XMP packet stored uncompressed in a file (JPEG APP1, WebP XMP chunk...), and
    whether one was left unread for being over max_text_bytes."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None, False
    limit = RULES["limits"]["max_text_bytes"]
    end = data.find(b"</x:xmpmeta>", start, start + limit)
    if end < 0:
        return None, data.find(b"</x:xmpmeta>", start) >= 0
    return data[start : end + len(b"</x:xmpmeta>")].decode("utf-8", "replace"), False


def digital_source_types(xmp: str) -> list[str]:
    """IPTC Iptc4xmpExt:DigitalSourceType values, as attribute or element."""
    found = re.findall(r"DigitalSourceType\s*=\s*[\"']([^\"']+)[\"']", xmp)
    found += re.findall(r"DigitalSourceType>\s*([^<\s]+)\s*<", xmp)
    found += re.findall(r"DigitalSourceType>\s*<rdf:Description[^>]*rdf:about=[\"']([^\"']+)", xmp)
    return sorted({t.strip() for t in found if t.strip()})
