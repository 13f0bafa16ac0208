// A dedicated worker that the offscreen document starts the first time a file carries a C2PA
// marker: c2pa-rs in wasm is large (9 MB) and slow to start, so a feed without credentials
// never loads it. Messages: {id, bytes: Uint8Array, mime} -> {id, ok, json | message}.
import {readManifestStore} from './c2pareader.js';

const WASM = new URL('c2pa/c2pa_bg.wasm', self.location.href);

self.onmessage = async ({data: {id, bytes, mime}}) => {
  try {
    self.postMessage({id, ok: true, json: await readManifestStore(bytes, mime, {wasm: WASM})});
  } catch (e) {
    self.postMessage({id, ok: false, message: String((e && e.message) || e)});
  }
};
