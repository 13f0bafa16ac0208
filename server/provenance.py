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

from server.uploads import MIME

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# IPTC digital source types that mean a trained model made (part of) the content.
AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
# PNG text keys written by image generators: A1111/Forge (parameters), ComfyUI (prompt,
# workflow), InvokeAI (invokeai_metadata, sd-metadata, Dream).
GENERATOR_PNG_KEYS = {"parameters", "prompt", "workflow", "invokeai_metadata", "invokeai_graph", "sd-metadata", "dream"}
# Names in EXIF Software (or a PNG Software chunk) that only image generators write.
GENERATOR_SOFTWARE = re.compile(
    r"stable[ -]?diffusion|automatic1111|comfyui|invokeai|novelai|midjourney|dall[-·. ]?e|"
    r"firefly|imagen|leonardo\.?ai|dreamstudio|ideogram|flux\.?1|sdxl|fooocus|craiyon",
    re.IGNORECASE,
)
# A1111's parameter block, as it appears in EXIF UserComment of its JPEGs.
SD_PARAMETERS = re.compile(r"Steps: \d+.*Sampler: ", re.DOTALL)
SNIPPET = 160  # characters of a metadata value echoed back
MAX_TEXT = 1 << 20  # decompressed bytes read from one compressed text chunk


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
    texts = png_text_chunks(data) if kind == "png" else {}
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
    gen_keys = sorted(k for k in texts if k.lower() in GENERATOR_PNG_KEYS)
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
    """tEXt, zTXt and iTXt chunks of a PNG, keyword -> text, without decoding pixels.
    Compressed chunks are inflated to at most MAX_TEXT bytes (no zip bombs)."""
    out: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        try:
            if ctype == b"tEXt":
                key, _, text = body.partition(b"\x00")
                out[key.decode("latin-1")] = text.decode("latin-1")
            elif ctype == b"zTXt":
                key, _, rest = body.partition(b"\x00")
                out[key.decode("latin-1")] = _inflate(rest[1:]).decode("latin-1")
            elif ctype == b"iTXt":
                key, _, rest = body.partition(b"\x00")
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b"\x00")
                _tkey, _, text = rest.partition(b"\x00")
                out[key.decode("latin-1")] = (_inflate(text) if compressed else text).decode("utf-8", "replace")
            elif ctype == b"IEND":
                break
        except (zlib.error, IndexError, UnicodeDecodeError):
            continue
    return out


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    return d.decompress(data, MAX_TEXT)


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
