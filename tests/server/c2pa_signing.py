"""Sign test images with C2PA Content Credentials, using a throwaway CA made here.

C2PA wants an end-entity certificate (not a CA, not self-signed) with digitalSignature and an
allowed extended key usage; the chain is CA -> signer. Nothing here is trusted by anyone,
so a reader reports such credentials as well-formed but from an unknown signer, unless a
test names the CA (`ca_pem`) as a trust anchor (UNMASK_TRUST_ANCHORS).
"""
from __future__ import annotations

import datetime as dt
import io
import json
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Unmask tests")])


def make_chain() -> tuple[str, str]:
    """(PEM chain: signer then CA, PEM private key of the signer)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("Unmask test CA")).issuer_name(_name("Unmask test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("Unmask test signer")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, ca)).decode()
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return chain, pem_key


@lru_cache(maxsize=1)
def test_chain() -> tuple[str, str]:
    """One chain for the whole test run, so that its CA can be made a trust anchor."""
    return make_chain()


def ca_pem() -> str:
    """The PEM of the CA that signs every test signer."""
    chain, _ = test_chain()
    return chain[chain.index("-----BEGIN CERTIFICATE-----", 1):]


def sign(data: bytes, mime: str, source_type: str = TRAINED, generator: str = "Unmask test generator",
         remote_url: str | None = None, thumbnail: bytes | None = None) -> bytes:
    """`data` with a C2PA manifest whose "created" action names `source_type`. With
    `remote_url` the manifest is not embedded; the file only points at that URL. `thumbnail`:
    bytes the manifest carries as its thumbnail (how a manifest gets big)."""
    import c2pa

    chain, key = test_chain()
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "test image",
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]}}
        ],
    }
    if thumbnail is not None:
        manifest["thumbnail"] = {"format": "image/jpeg", "identifier": "thumbnail.jpg"}
    info = c2pa.C2paSignerInfo(b"es256", chain.encode(), key.encode(), None)
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(json.dumps(manifest)) as builder:
        if thumbnail is not None:
            builder.add_resource("thumbnail.jpg", io.BytesIO(thumbnail))
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
        return out.getvalue()
