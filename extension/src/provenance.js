// What a file says about where it came from, read in plain JS from the bytes the extension
// already fetched: the twin of models/provenance.py, with its rules and limits
// (models/provenance.json) and its sentences (models/wording.json), so the device and the
// server say the same of the same file.
//
//   declared: the IPTC DigitalSourceType in XMP, generator text in PNG chunks (A1111
//             `parameters`, ComfyUI `prompt`/`workflow`, InvokeAI), a generator's name in
//             EXIF Software or its parameters in EXIF UserComment;
//   C2PA:     its marker is found here (JPEG APP11 JUMBF, PNG caBX, WebP C2PA); then, and only
//             then, c2pa-rs (wasm, in a worker: c2paworker.js) reads and validates the
//             credentials against the bundled C2PA trust list: signed, declared or captured
//             by the same rules as Python.
//
// Every file is hostile: PNG text chunks are read to the first malformed chunk, within the
// same chunk count and inflated-bytes budget as Python, inflating only the keys used.
import RULES from '../../models/provenance.json' with {type: 'json'};
import {wording} from './wording.js';

const LIMITS = RULES.limits;
const AI_TYPES = new Set(RULES.source_types.ai);
const GENERATOR_SOFTWARE = new RegExp(RULES.generator_software.pattern, 'i');
const SD_PARAMETERS = new RegExp(RULES.sd_parameters.pattern);
const GENERATOR_KEYS = new Set(RULES.png_keys.generator);
const KEEP_KEYS = new Set([...RULES.png_keys.generator, ...RULES.png_keys.other]);
const IPTC = 'http://cv.iptc.org/newscodes/digitalsourcetype/';

const u16be = (b, i) => (b[i] << 8) | b[i + 1];
const u32be = (b, i) => ((b[i] << 24) >>> 0) + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
const latin1 = (b) => {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return s;
};
const utf8 = (b) => new TextDecoder('utf-8').decode(b);

let CRC_TABLE = null;
function crc32(b, start, end) {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// At most limit + 1 bytes of a zlib stream (format 'gzip': a gzip one): reading stops as soon
// as the budget is passed. Throws when the stream is broken.
async function inflate(bytes, limit, format = 'deflate') {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format)).getReader();
  const parts = [];
  let total = 0;
  try {
    while (total <= limit) {
      const {done, value} = await reader.read();
      if (done) break;
      parts.push(value);
      total += value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(Math.min(total, limit + 1));
  let at = 0;
  for (const p of parts) {
    if (at >= out.length) break;
    out.set(p.subarray(0, out.length - at), at);
    at += p.length;
  }
  return out;
}

class Malformed extends Error {}

async function textChunk(type, body, budget) {
  const sep = body.subarray(0, 80).indexOf(0);
  if (sep < 1) throw new Malformed('a text chunk without a keyword');
  const key = latin1(body.subarray(0, sep));
  if (!KEEP_KEYS.has(key.toLowerCase())) return [key, null];
  const rest = body.subarray(sep + 1);
  if (type === 'tEXt') return [key, latin1(rest.subarray(0, budget))];
  if (type === 'zTXt') return [key, latin1(await inflate(rest.subarray(1), budget))];
  // iTXt: compression flag, method, language\0, translated keyword\0, text
  const compressed = rest[0];
  let tail = rest.subarray(2);
  tail = tail.subarray(tail.indexOf(0) + 1);
  tail = tail.subarray(tail.indexOf(0) + 1);
  return [key, utf8(compressed ? await inflate(tail, budget) : tail.subarray(0, budget))];
}

// models.provenance.png_text: {texts, stopped} (stopped: why reading ended early, or null).
export async function pngText(b) {
  let budget = LIMITS.max_text_bytes;
  const texts = {};
  let pos = 8;
  let seen = 0;
  while (pos < b.length) {
    if (pos + 12 > b.length) return {texts, stopped: 'the PNG ends inside a chunk'};
    const length = u32be(b, pos);
    const type = latin1(b.subarray(pos + 4, pos + 8));
    const end = pos + 12 + length;
    if (!/^[A-Za-z]{4}$/.test(type) || end > b.length) return {texts, stopped: 'the PNG has a malformed chunk; what follows it was not read'};
    if (crc32(b, pos + 4, end - 4) !== u32be(b, end - 4)) return {texts, stopped: 'the PNG has a chunk with a bad checksum; what follows it was not read'};
    const body = b.subarray(pos + 8, end - 4);
    pos = end;
    if (type === 'IEND') break;
    if (type !== 'tEXt' && type !== 'zTXt' && type !== 'iTXt') continue;
    seen += 1;
    if (seen > LIMITS.max_text_chunks) return {texts, stopped: `the PNG has more than ${LIMITS.max_text_chunks} text chunks; the rest were not read`};
    let key, text;
    try {
      [key, text] = await textChunk(type, body, budget);
    } catch {
      return {texts, stopped: 'the PNG has a text chunk that cannot be read; what follows it was not read'};
    }
    if (text === null) continue;
    if (text.length >= budget) {
      texts[key] = text.slice(0, budget);
      return {texts, stopped: `the PNG's text chunks hold more than ${LIMITS.max_text_bytes} bytes; the rest were not read`};
    }
    budget -= text.length;
    texts[key] = text;
  }
  return {texts, stopped: null};
}

function indexOfBytes(b, pattern, from = 0, to = b.length) {
  const first = pattern[0];
  const last = Math.min(to, b.length) - pattern.length;
  outer: for (let i = b.indexOf(first, from); i !== -1 && i <= last; i = b.indexOf(first, i + 1)) {
    for (let k = 1; k < pattern.length; k++) if (b[i + k] !== pattern[k]) continue outer;
    return i;
  }
  return -1;
}

const ascii = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const XMP_START = ascii('<x:xmpmeta');
const XMP_END = ascii('</x:xmpmeta>');

// models.provenance.find_xmp: {xmp, tooBig}.
export function findXmp(b) {
  const start = indexOfBytes(b, XMP_START);
  if (start < 0) return {xmp: null, tooBig: false};
  const end = indexOfBytes(b, XMP_END, start, start + LIMITS.max_text_bytes + XMP_END.length);
  if (end < 0) return {xmp: null, tooBig: indexOfBytes(b, XMP_END, start) >= 0};
  return {xmp: utf8(b.subarray(start, end + XMP_END.length)), tooBig: false};
}

// models.provenance.digital_source_types.
export function digitalSourceTypes(xmp) {
  const found = [
    ...[...xmp.matchAll(/DigitalSourceType\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]),
    ...[...xmp.matchAll(/DigitalSourceType>\s*([^<\s]+)\s*</g)].map((m) => m[1]),
    ...[...xmp.matchAll(/DigitalSourceType>\s*<rdf:Description[^>]*rdf:about=["']([^"']+)/g)].map((m) => m[1]),
  ].map((t) => t.trim()).filter(Boolean);
  return [...new Set(found)].sort();
}

// EXIF (a TIFF block): Software in IFD0, UserComment in the Exif IFD.
function readTiff(t) {
  if (t.length < 8) return {};
  const le = t[0] === 0x49;
  const u16 = (i) => (le ? t[i] | (t[i + 1] << 8) : (t[i] << 8) | t[i + 1]);
  const u32 = (i) => (le ? (t[i] | (t[i + 1] << 8) | (t[i + 2] << 16)) + t[i + 3] * 2 ** 24 : u32be(t, i));
  const entries = (ifd) => {
    if (ifd + 2 > t.length) return [];
    const n = u16(ifd);
    const out = [];
    for (let k = 0; k < n && ifd + 2 + 12 * (k + 1) <= t.length; k++) {
      const e = ifd + 2 + 12 * k;
      const type = u16(e + 2);
      const count = u32(e + 4);
      const size = count * ({1: 1, 2: 1, 3: 2, 4: 4, 7: 1}[type] || 1);
      const at = size <= 4 ? e + 8 : u32(e + 8);
      out.push({tag: u16(e), at, size, value: u32(e + 8)});
    }
    return out;
  };
  const bytesOf = (e) => t.subarray(e.at, Math.min(e.at + e.size, t.length));
  const out = {};
  for (const e of entries(u32(4))) {
    if (e.tag === 0x0131) out.software = latin1(bytesOf(e)).replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
    if (e.tag === 0x8769) {
      for (const x of entries(e.value)) {
        if (x.tag === 0x9286) out.userComment = decodeUserComment(bytesOf(x));
      }
    }
  }
  return out;
}

function decodeUserComment(raw) {
  const head = latin1(raw.subarray(0, 8));
  const body = raw.subarray(8);
  if (head.startsWith('UNICODE')) {
    const be = new TextDecoder('utf-16be').decode(body);
    return be.includes('Steps') ? be : new TextDecoder('utf-16le').decode(body);
  }
  return utf8(body);
}

// A JPEG's segments before the image data: [marker, start of payload, end].
function* jpegSegments(b) {
  let i = 2;
  while (i + 4 <= b.length && b[i] === 0xff) {
    const marker = b[i + 1];
    if (marker === 0xda || marker === 0xd9) return;
    const len = u16be(b, i + 2);
    yield [marker, i + 4, Math.min(i + 2 + len, b.length)];
    i += 2 + len;
  }
}

function exifOf(b, format) {
  if (format !== 'jpeg') return {};
  try {
    for (const [marker, start, end] of jpegSegments(b)) {
      if (marker === 0xe1 && latin1(b.subarray(start, start + 6)) === 'Exif\0\0') return readTiff(b.subarray(start + 6, end));
    }
  } catch {
    return {};
  }
  return {};
}

// Where C2PA credentials sit in each format: only their presence is read here.
function c2paMarker(b, format) {
  if (format === 'jpeg') {
    for (const [marker, start, end] of jpegSegments(b)) if (marker === 0xeb && indexOfBytes(b, ascii('c2pa'), start, end) >= 0) return true;
    return false;
  }
  if (format === 'png') {
    for (let pos = 8; pos + 12 <= b.length;) {
      const type = latin1(b.subarray(pos + 4, pos + 8));
      if (type === 'caBX') return true;
      if (type === 'IEND') break;
      pos += 12 + u32be(b, pos);
    }
    return false;
  }
  if (format === 'webp') {
    for (let pos = 12; pos + 8 <= b.length;) {
      if (latin1(b.subarray(pos, pos + 4)) === 'C2PA') return true;
      const size = b[pos + 4] | (b[pos + 5] << 8) | (b[pos + 6] << 16) | (b[pos + 7] << 24);
      pos += 8 + size + (size & 1);
    }
  }
  return false;
}

function formatOf(b) {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b[0] === 0x89 && latin1(b.subarray(1, 4)) === 'PNG') return 'png';
  if (latin1(b.subarray(0, 4)) === 'RIFF' && latin1(b.subarray(8, 12)) === 'WEBP') return 'webp';
  return null;
}

const snip = (s, n = 60) => {
  const t = String(s).split(/\s+/).filter(Boolean).join(' ');
  return t.length <= n ? t : `${t.slice(0, n - 1)}…`;
};

const MIME = {jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp'};
const CHANGED_CODES = new Set(RULES.c2pa.changed_codes);
const CAPTURE_TYPES = new Set(RULES.source_types.capture);
const lastPart = (t) => String(t).split('/').pop();

// models.provenance._actions / _claim_generator on a manifest of the store's JSON.
function actionsOf(manifest) {
  const out = [];
  for (const a of (manifest && manifest.assertions) || []) {
    if (!String(a.label || '').startsWith('c2pa.actions')) continue;
    for (const action of ((a.data || {}).actions) || []) {
      if (!action || typeof action !== 'object') continue;
      const agent = action.softwareAgent;
      out.push({action: action.action ?? null, digital_source_type: action.digitalSourceType ?? null,
        software_agent: agent && typeof agent === 'object' ? agent.name ?? null : agent ?? null});
    }
  }
  return out;
}

function claimGenerator(manifest) {
  const info = manifest.claim_generator_info;
  if (Array.isArray(info) && info.length && info[0] && typeof info[0] === 'object') {
    return ['name', 'version'].filter((k) => info[0][k]).map((k) => String(info[0][k])).join(' ') || null;
  }
  return manifest.claim_generator || null;
}

// models.provenance.read_c2pa, on the manifest store c2pa-rs (wasm) read and validated.
export function c2paSection(store, add) {
  const manifests = store.manifests || {};
  const active = manifests[store.active_manifest] || {};
  const state = store.validation_state || ((store.validation_status || []).length ? 'Invalid' : 'Valid');
  const results = (store.validation_results || {}).activeManifest || {};
  let failures = (results.failure || []).map((f) => f.code);
  if (!failures.length) failures = (store.validation_status || []).map((f) => f.code);
  const info = active.signature_info || {};
  const signer = info.issuer || info.common_name || null;
  const generator = claimGenerator(active);
  const actions = Object.values(manifests).flatMap(actionsOf);
  const types = [...new Set(actions.map((a) => a.digital_source_type).filter(Boolean).map(String))].sort();
  const ai = types.filter((t) => AI_TYPES.has(lastPart(t)));
  const capture = types.filter((t) => CAPTURE_TYPES.has(lastPart(t)));
  const changed = failures.some((c) => CHANGED_CODES.has(c));
  if (changed) add('c2pa', 'the picture was changed after its Content Credentials were signed');
  const trust = {
    Trusted: `validate and are signed by ${signer}, on the C2PA trust list`,
    Valid: `are intact but signed by ${signer}, who is on no trust list here`,
    Invalid: 'do not validate (the file changed after signing, or the signature is bad)',
  }[state] || `have validation state ${state}`;
  if (ai.length) {
    add('c2pa', `Content Credentials from ${generator || 'an unnamed tool'} declare ${ai.map(lastPart).join(', ')} (made by a model) and ${trust}`,
      state === 'Trusted' ? 'signed' : 'declared');
  } else if (capture.length && state === 'Trusted') {
    add('c2pa', `Content Credentials of a capture by ${generator || 'an unnamed device'} ${trust}`, 'captured');
  } else {
    add('c2pa', `Content Credentials from ${generator || 'an unnamed tool'} ${trust}`);
  }
  return {present: true, verified: true, validation_state: state, validation_failures: failures, trusted: state === 'Trusted',
    claim_generator: generator, signed_by: signer, signed_at: info.time || null, digital_source_types: types,
    ai_generated: ai.length > 0, changed_after_signing: changed, actions};
}

// The credentials read by `verify(bytes, mime)` (the c2pa-rs wasm reader in its worker): the
// manifest store's JSON text, or an error whose message names c2pa-rs's error.
async function readC2pa(b, format, verify, add) {
  try {
    return c2paSection(JSON.parse(await verify(b, MIME[format])), add);
  } catch (e) {
    const text = String((e && e.message) || e);
    if (/JumbfNotFound|ManifestNotFound/.test(text)) return {present: false, verified: true};
    if (/Remote/.test(text)) {
      add('c2pa', 'the file points to Content Credentials stored elsewhere; Unmask does not fetch them');
      return {present: true, verified: true, remote: true, validation_state: null};
    }
    add('c2pa', `Content Credentials are present but cannot be read (${text.slice(0, 120)})`);
    return {present: true, verified: true, validation_state: 'Unreadable', error: text.slice(0, 300)};
  }
}

const TIERS = ['signed', 'declared', 'captured'];

// models.provenance.summarise.
function summarise(findings, c2pa) {
  const w = wording.provenance;
  const tiers = new Set(findings.map((f) => f.tier).filter(Boolean));
  const tier = TIERS.find((t) => tiers.has(t)) || null;
  const signer = c2pa.signed_by || null;
  let statement = null;
  if (tier === 'signed' || tier === 'captured') statement = w[tier].replaceAll('{signer}', signer || 'an unnamed signer');
  else if (tier === 'declared') {
    const c2paAi = c2pa.ai_generated && !findings.some((f) => f.tier === 'declared' && f.source !== 'c2pa');
    if (c2paAi && c2pa.validation_state === 'Invalid') statement = w.declared_invalid;
    else if (c2paAi && c2pa.verified) statement = w.declared_untrusted.replaceAll('{signer}', signer || 'an unnamed signer');
    else statement = w.declared;
  }
  return {
    tier,
    ai: tier === 'signed' || tier === 'declared',
    statement,
    changed: c2pa.changed_after_signing ? w.changed : null,
    evidence: findings.filter((f) => f.tier === 'signed' || f.tier === 'declared').map((f) => f.message),
    signer,
    claim_generator: c2pa.claim_generator || null,
    actions: c2pa.actions || [],
    validation_state: c2pa.validation_state || null,
    validation_codes: c2pa.validation_failures || [],
    c2pa,
    findings,
  };
}

// The provenance of a file, as the server's `provenance` section: {tier, ai, statement,
// changed, evidence, signer, claim_generator, actions, validation_state, validation_codes,
// c2pa, findings}. `verify(bytes, mime)` reads and validates C2PA credentials (c2pa-rs in
// wasm, in a worker): it is called only when their marker is in the file, so a feed without
// credentials pays for none of it. Without `verify`, an AI claim inside credentials is read
// from their bytes unverified, and counts as declared.
export async function readProvenance(bytes, {verify = null} = {}) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const format = formatOf(b);
  const findings = [];
  const add = (source, message, tier = null) => findings.push({source, tier, message});
  let c2pa = {present: format ? c2paMarker(b, format) : false, verified: false};
  if (c2pa.present && verify) {
    c2pa = await readC2pa(b, format, verify, add);
  } else if (c2pa.present) {
    const aiInside = [...AI_TYPES].some((t) => indexOfBytes(b, ascii(IPTC + t)) >= 0);
    add('c2pa', aiInside ? 'Content Credentials declare the content made by a model; this device did not verify their signature'
      : 'Content Credentials are present; this device did not verify their signature', aiInside ? 'declared' : null);
    c2pa.ai_generated = aiInside;
  }
  if (format) {
    const {texts, stopped} = format === 'png' ? await pngText(b) : {texts: {}, stopped: null};
    if (stopped) add('png', stopped);
    const exif = exifOf(b, format);
    const software = exif.software || texts.Software;
    if (software) {
      if (GENERATOR_SOFTWARE.test(software)) add('exif', `the Software field names an image generator: ${snip(software)}`, 'declared');
      else add('exif', `the Software field names ${snip(software)}, not a known generator`);
    }
    if (exif.userComment && SD_PARAMETERS.test(exif.userComment)) add('exif', 'EXIF UserComment holds Stable Diffusion generation parameters', 'declared');
    const genKeys = Object.keys(texts).filter((k) => GENERATOR_KEYS.has(k.toLowerCase())).sort();
    if (genKeys.length) add('png', `PNG text chunks written by Stable Diffusion tools: ${genKeys.join(', ')}`, 'declared');
    const {xmp, tooBig} = 'XML:com.adobe.xmp' in texts ? {xmp: texts['XML:com.adobe.xmp'], tooBig: false} : findXmp(b);
    if (tooBig) add('xmp', `the XMP packet is over ${LIMITS.max_text_bytes} bytes; it was not read`);
    if (xmp) {
      const types = digitalSourceTypes(xmp);
      const ai = types.filter((t) => AI_TYPES.has(lastPart(t)));
      if (ai.length) add('xmp', `the IPTC digital source type is ${ai.map(lastPart).join(', ')} (made by a model)`, 'declared');
      else if (types.length) add('xmp', `the IPTC digital source type is ${lastPart(types[0])}`);
    }
  }
  return summarise(findings, c2pa);
}

// NovelAI's "stealth" metadata (models/provenance.py novelai_stealth): in the lowest bit of the
// alpha channel, read column by column (top to bottom, then left to right), a magic word, a
// 32-bit length in bits, and the JSON, gzipped after "stealth_pngcomp". Only decoded pixels
// show it, so the offscreen document reads it (rgba: ImageData.data, alpha not premultiplied).
// The text, or null; at most max_text_bytes read or inflated.
const STEALTH_MAGIC = ['stealth_pngcomp', 'stealth_pnginfo'];

export async function novelaiStealth(rgba, width, height) {
  const headBits = 8 * (STEALTH_MAGIC[0].length + 4);
  const total = width * height;
  const bytesAt = (startBit, n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < 8 * n; i++) {
      const k = startBit + i; // column-major index of the pixel
      const alpha = rgba[(((k % height) * width) + Math.floor(k / height)) * 4 + 3];
      out[i >> 3] |= (alpha & 1) << (7 - (i & 7));
    }
    return out;
  };
  if (!width || !height || total < headBits) return null;
  const head = bytesAt(0, headBits / 8);
  const magic = latin1(head.subarray(0, STEALTH_MAGIC[0].length));
  const size = u32be(head, STEALTH_MAGIC[0].length);
  if (!STEALTH_MAGIC.includes(magic) || size <= 0 || size % 8 || size / 8 > LIMITS.max_text_bytes || headBits + size > total) return null;
  let body = bytesAt(headBits, size / 8);
  try {
    // Python inflates at most max_text_bytes and reads what came.
    if (magic === 'stealth_pngcomp') body = (await inflate(body, LIMITS.max_text_bytes, 'gzip')).subarray(0, LIMITS.max_text_bytes);
    return new TextDecoder('utf-8', {fatal: true}).decode(body);
  } catch {
    return null; // not gzip, or not UTF-8
  }
}

// The Stable Diffusion invisible watermark (models/watermark.py, with its numbers and
// messages in provenance.json): the U channel of YUV as OpenCV rounds it, the Haar
// approximation band, one bit per 4x4 block (is its largest coefficient but the first, modulo
// a step, over half a step?), averaged over the blocks read that carry the same message bit.
// rgba: ImageData.data. {found, generator, agreement, note}, as Python's find_watermark.
const MARK = RULES.watermark;
const MARK_MESSAGES = Object.entries(MARK.messages).map(([name, spec]) => [name, spec.ascii
  ? [...spec.ascii].flatMap((c) => [...c.charCodeAt(0).toString(2).padStart(8, '0')].map(Number))
  : [...spec.bits].map(Number)]);

// NumPy's rint: halves go to the even neighbour.
const rintEven = (x) => {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

// The bit of each block read, and its number in reading order: whole rows of blocks around the
// middle, at most max_blocks of them (half a megapixel).
function blockBits(rgba, width, height) {
  const B = MARK.block;
  const bh = Math.floor(Math.floor(height / 4) * 2 / B);
  const bw = Math.floor(Math.floor(width / 4) * 2 / B);
  const rows = Math.max(1, Math.min(bh, Math.floor(MARK.max_blocks / Math.max(bw, 1))));
  const r0 = Math.floor((bh - rows) / 2);
  const ph = 2 * B * rows, pw = 2 * B * bw; // the pixels the blocks read cover
  const u = new Uint8Array(ph * pw);
  for (let y = 0; y < ph; y++) {
    for (let x = 0, i = ((2 * B * r0 + y) * width) * 4, o = y * pw; x < pw; x++, i += 4) {
      const luma = 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
      u[o + x] = Math.min(255, Math.max(0, rintEven((rgba[i + 2] - luma) * 0.492111 + 128.0)));
    }
  }
  const bits = new Float64Array(rows * bw);
  const band = new Float64Array(B * B);
  for (let bi = 0; bi < rows; bi++) {
    for (let bj = 0; bj < bw; bj++) {
      for (let r = 0; r < B; r++) {
        const o = 2 * (bi * B + r) * pw + 2 * bj * B;
        for (let c = 0; c < B; c++) {
          const k = o + 2 * c;
          band[r * B + c] = (u[k] + u[k + 1] + u[k + pw] + u[k + pw + 1]) / 2.0; // pywt's Haar cA
        }
      }
      let pos = 1;
      for (let k = 2; k < B * B; k++) if (Math.abs(band[k]) > Math.abs(band[pos])) pos = k;
      bits[bi * bw + bj] = Math.abs(band[pos]) % MARK.scale > 0.5 * MARK.scale ? 1 : 0;
    }
  }
  return {bits, first: r0 * bw};
}

export function sdWatermark(rgba, width, height) {
  const w = wording.provenance;
  if (!(width >= MARK.min_side && height >= MARK.min_side)) return {found: false, generator: null, agreement: null, note: w.watermark_too_small};
  const {bits, first} = blockBits(rgba, width, height);
  const best = {found: false, generator: null, agreement: null, note: null};
  for (const [name, message] of MARK_MESSAGES) {
    const n = message.length;
    if (bits.length < n) continue;
    const sums = new Float64Array(n), counts = new Float64Array(n);
    for (let k = 0; k < bits.length; k++) {
      sums[(first + k) % n] += bits[k];
      counts[(first + k) % n] += 1;
    }
    let matched = 0;
    for (let k = 0; k < n; k++) matched += Number((sums[k] / counts[k] * 255 > 127 ? 1 : 0) === message[k]);
    const agreement = matched / n;
    if (best.agreement === null || agreement > best.agreement) best.agreement = agreement;
    if (agreement >= MARK.agreement) {
      const note = w.watermark.replaceAll('{generator}', name).replaceAll('{matched}', matched).replaceAll('{bits}', n);
      return {found: true, generator: name, agreement, note};
    }
  }
  return best;
}

// What only the decoded pixels show, added to a file's provenance as Python adds it:
// `stealth`, novelaiStealth's text (a PNG); `watermark`, sdWatermark's answer (offscreen.js).
export function withPixelEvidence(provenance, {stealth = null, watermark = null} = {}) {
  const findings = [...provenance.findings];
  if (stealth !== null && stealth !== undefined) findings.push({source: 'png', tier: 'declared', message: "NovelAI's hidden generation metadata is in the alpha channel"});
  if (watermark && watermark.note) findings.push({source: 'watermark', tier: watermark.found ? 'declared' : null, message: watermark.note});
  return findings.length === provenance.findings.length ? provenance : summarise(findings, provenance.c2pa);
}

// models.provenance.combine: signed or declared AI makes the picture fake, with or without a
// face (no confidence: no calibrated number backs metadata); nothing makes it real.
export function combineProvenance(device, provenance) {
  const out = {...device, basis: device.verdict === 'no_face' ? 'none' : 'model', model_verdict: {verdict: device.verdict, confidence: device.confidence}};
  if (provenance && provenance.ai) {
    if (device.verdict === 'fake') out.basis = 'model+provenance';
    else Object.assign(out, {verdict: 'fake', confidence: null, basis: 'provenance'});
  }
  return out;
}
