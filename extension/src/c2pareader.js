// C2PA Content Credentials read and validated by c2pa-rs (the @contentauth/c2pa-wasm build),
// against the official C2PA trust list that ships with the extension (models/trust/, the same
// file the server loads). Remote manifests and OCSP responders are never fetched.
// c2paworker.js runs this in a dedicated worker; tests run it under Node.
import init, {WasmReader} from '@contentauth/c2pa-wasm';
import TRUST_LIST from '../../models/trust/C2PA-TRUST-LIST.pem';

let ready = null;

// `wasm`: where c2pa_bg.wasm is (a URL in the extension, its bytes under Node). `anchors`: more
// PEM trust anchors (tests only).
export async function readManifestStore(bytes, mime, {wasm, anchors = ''} = {}) {
  if (!ready) ready = init({module_or_path: wasm});
  await ready;
  const context = JSON.stringify({
    verify: {verify_trust: true, remote_manifest_fetch: false, ocsp_fetch: false},
    trust: {trust_anchors: anchors ? `${TRUST_LIST}\n${anchors}` : TRUST_LIST},
  });
  const reader = await WasmReader.fromBytes(mime, bytes, context);
  try {
    return reader.json();
  } finally {
    reader.free();
  }
}
