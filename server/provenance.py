"""What a file says about where it came from, checked apart from the models.

- C2PA Content Credentials, read with c2pa-python, and whether they validate.
- Generator metadata: EXIF Software (and the Stable Diffusion parameters some tools write
  into EXIF UserComment), the PNG text chunks of Stable Diffusion tools (`parameters`,
  `prompt`, `workflow`...), and the IPTC digital source type `trainedAlgorithmicMedia` in XMP.

Any of these that says "made by a generator" is evidence of fake. Nothing here can make a
file look real: credentials of a camera, or no metadata at all, mean nothing (metadata is
stripped by most sites, and anyone can write it). The server never fetches anything: remote
manifests are reported, not downloaded.
"""
from __future__ import annotations

import io
import json
import re
import struct
import zlib
from pathlib import Path

from server.uploads import MIME

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types that mean a trained model made (part of) the content.
AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
# Names in EXIF Software (or a PNG Software chunk) that only image generators write.
GENERATOR_SOFTWARE = re.compile(
    r"stable[ -]?diffusion|automatic1111|comfyui|invokeai|novelai|midjourney|dall[-·. ]?e|"
    r"firefly|imagen|leonardo\.?ai|dreamstudio|ideogram|flux\.?1|sdxl|fooocus|craiyon",
    re.IGNORECASE,
)
# A1111's parameter block, as it appears in EXIF UserComment of its JPEGs.
SD_PARAMETERS = re.compile(r"Steps: \d+.*Sampler: ", re.DOTALL)
SNIPPET = 160  # characters of a metadata value echoed back
# The keys and limits shared with the extension (models/provenance.json).
RULES = json.loads((Path(__file__).resolve().parents[1] / "models" / "provenance.json").read_text())


def inspect(data: bytes, kind: str) -> dict:
    """The provenance section of a response for a file of sniffed `kind`."""
    findings: list[dict] = []
    c2pa_section = read_c2pa(data, MIME[kind], findings)
    metadata = {}
    if kind in ("jpeg", "png", "webp"):
        metadata = read_metadata(data, kind, findings)
    evidence = any(f["evidence"] for f in findings)
    return {
        "generator_evidence": evidence,
        "summary": _summary(findings),
        "findings": findings,
        "c2pa": c2pa_section,
        "metadata": metadata,
    }


def _summary(findings: list[dict]) -> str:
    strong = [f["message"] for f in findings if f["evidence"]]
    if strong:
        return "made by a generator, says the file: " + "; ".join(strong)
    if findings:
        return "nothing in the file's metadata points to a generator"
    return "no provenance information in the file (this says nothing either way)"


def _finding(findings, source: str, message: str, evidence: bool):
    findings.append({"source": source, "evidence": evidence, "message": message})


# --- C2PA -------------------------------------------------------------------------------
def read_c2pa(data: bytes, mime: str, findings: list[dict]) -> dict:
    import c2pa

    section = {"present": False}
    settings = c2pa.Settings()
    settings.set("verify.remote_manifest_fetch", "false")  # never fetch what a file points to
    settings.set("verify.ocsp_fetch", "false")
    try:
        with c2pa.Context(settings) as ctx, c2pa.Reader(mime, io.BytesIO(data), context=ctx) as reader:
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
            _finding(findings, "c2pa", "the file points to Content Credentials stored elsewhere; the server does not fetch them", False)
            return section
        section.update(present=True, validation_state="Unreadable", error=text[:300])
        _finding(findings, "c2pa", f"Content Credentials are present but cannot be read ({text[:120]})", False)
        return section

    manifests = store.get("manifests", {})
    active = manifests.get(store.get("active_manifest"), {})
    state = store.get("validation_state") or ("Invalid" if store.get("validation_status") else "Valid")
    failures = [s.get("code") for s in (store.get("validation_results", {}).get("activeManifest", {}).get("failure", []) or [])]
    if not failures:
        failures = [s.get("code") for s in store.get("validation_status", []) or []]
    generator = _claim_generator(active)
    signer = active.get("signature_info", {}) or {}
    ai_types = sorted({t for m in manifests.values() for t in _source_types(m) if t.rsplit("/", 1)[-1] in AI_SOURCE_TYPES})
    section.update(
        present=True,
        validation_state=state,
        validation_failures=failures,
        trusted=state == "Trusted",
        claim_generator=generator,
        signed_by=signer.get("issuer") or signer.get("common_name"),
        signed_at=signer.get("time"),
        digital_source_types=sorted({t for m in manifests.values() for t in _source_types(m)}),
        ai_generated=bool(ai_types),
    )
    trust = {
        "Trusted": "validate and come from a trusted signer",
        "Valid": "are intact but signed by a signer on no trust list here",
        "Invalid": "do not validate (the file changed after signing, or the signature is bad)",
    }.get(state, f"have validation state {state}")
    _finding(findings, "c2pa", f"Content Credentials from {generator or 'an unnamed tool'} {trust}", False)
    if ai_types:
        names = ", ".join(t.rsplit("/", 1)[-1] for t in ai_types)
        _finding(findings, "c2pa", f"Content Credentials declare the content {names} (made by a trained model)", True)
    return section


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info, list):
        first = info[0]
        return " ".join(str(first[k]) for k in ("name", "version") if first.get(k)) or None
    return manifest.get("claim_generator")


def _source_types(manifest: dict) -> list[str]:
    out = []
    for a in manifest.get("assertions", []) or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for action in (a.get("data") or {}).get("actions", []) or []:
                t = action.get("digitalSourceType")
                if t:
                    out.append(str(t))
    return out


# --- EXIF, PNG text, XMP ----------------------------------------------------------------
def read_metadata(data: bytes, kind: str, findings: list[dict]) -> dict:
    meta: dict = {}
    texts, stopped = png_text(data) if kind == "png" else ({}, None)
    if stopped:
        _finding(findings, "png", stopped, False)
    exif = _exif(data)
    software = exif.get("software") or texts.get("Software")
    if software:
        meta["software"] = _snip(software)
        if GENERATOR_SOFTWARE.search(software):
            _finding(findings, "exif", f"the Software field names an image generator: {_snip(software, 60)}", True)
        else:
            _finding(findings, "exif", f"the Software field names {_snip(software, 60)}, not a known generator", False)
    comment = exif.get("user_comment")
    if comment and SD_PARAMETERS.search(comment):
        meta["exif_user_comment"] = _snip(comment)
        _finding(findings, "exif", "EXIF UserComment holds Stable Diffusion generation parameters", True)
    generator_keys = set(RULES["png_keys"]["generator"])
    gen_keys = sorted(k for k in texts if k.lower() in generator_keys)
    if texts:
        meta["png_text"] = {k: _snip(v) for k, v in texts.items() if k != "XML:com.adobe.xmp"}
    if gen_keys:
        _finding(findings, "png", f"PNG text chunks written by Stable Diffusion tools: {', '.join(gen_keys)}", True)
    xmp = texts.get("XML:com.adobe.xmp") or find_xmp(data)
    if xmp:
        types = digital_source_types(xmp)
        if types:
            meta["iptc_digital_source_type"] = types
            ai = [t for t in types if t.rsplit("/", 1)[-1] in AI_SOURCE_TYPES]
            if ai:
                names = ", ".join(t.rsplit("/", 1)[-1] for t in ai)
                _finding(findings, "xmp", f"the IPTC digital source type is {names} (made by a trained model)", True)
            else:
                _finding(findings, "xmp", f"the IPTC digital source type is {types[0].rsplit('/', 1)[-1]}", False)
    return meta


def _snip(text: str, n: int = SNIPPET) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


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


def find_xmp(data: bytes) -> str | None:
    """The first XMP packet stored uncompressed in a file (JPEG APP1, WebP XMP chunk...)."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    if end < 0:
        return None
    return data[start : end + len(b"</x:xmpmeta>")].decode("utf-8", "replace")


def digital_source_types(xmp: str) -> list[str]:
    """IPTC Iptc4xmpExt:DigitalSourceType values, as attribute or element."""
    found = re.findall(r"DigitalSourceType\s*=\s*[\"']([^\"']+)[\"']", xmp)
    found += re.findall(r"DigitalSourceType>\s*([^<\s]+)\s*<", xmp)
    found += re.findall(r"DigitalSourceType>\s*<rdf:Description[^>]*rdf:about=[\"']([^\"']+)", xmp)
    return sorted({t.strip() for t in found if t.strip()})
