// Builds the extension into a folder Chrome loads unpacked, and a zip for the Web Store.
//
//   npm run build                       -> extension/dist/ and extension/unmask-extension-VERSION.zip
//   npm run build -- --out DIR --model MODEL_DIR --zip FILE|none
//
// The model is extension/model/ (model.json, weight shards, metadata.json, and the face
// model in face/, written by `unmask convert tiny --out extension/model`). UNMASK_EXTENSION_MODEL
// or --model points at another converted model, for development and tests.
// TensorFlow.js is bundled (esbuild) with its WebAssembly files: nothing loads from a CDN.
// So is models/wording.json, the one vocabulary (wording.js imports it).
import {createHash} from 'node:crypto';
import {copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {dirname, join, relative, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {deflateRawSync, crc32} from 'node:zlib';

import * as esbuild from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const SRC = join(HERE, 'src');
const WASM_DIR = join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
// Single-threaded builds only: the threaded one cannot run in extension pages (see offscreen.js).
const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'];
// c2pa-rs for Content Credentials (src/c2paworker.js loads it only when a file carries them).
const C2PA_WASM = join(ROOT, 'node_modules/@contentauth/c2pa-wasm/pkg/c2pa_bg.wasm');
const PAGES = ['offscreen.html', 'popup.html', 'popup.css', 'options.html', 'options.css', 'history.html', 'history.css'];

class BuildError extends Error {}

function fail(message) {
  throw new BuildError(message);
}

function extensionId(publicKeyBase64) {
  const hex = createHash('sha256').update(Buffer.from(publicKeyBase64, 'base64')).digest('hex').slice(0, 32);
  return [...hex].map((h) => String.fromCharCode(97 + parseInt(h, 16))).join('');
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function listFiles(dir) {
  return readdirSync(dir, {withFileTypes: true}).flatMap((d) => (d.isDirectory() ? listFiles(join(dir, d.name)) : [join(dir, d.name)]));
}

// The model folder must hold what metadata.json says, byte for byte.
function checkModel(dir) {
  const how = 'convert one with `unmask convert tiny --out extension/model`, or point UNMASK_EXTENSION_MODEL (or --model) at a converted model';
  if (!existsSync(dir)) fail(`no model at ${dir}: ${how}`);
  const metaPath = join(dir, 'metadata.json');
  if (!existsSync(metaPath)) fail(`${dir} has no metadata.json: ${how}`);
  let meta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8'));
  } catch (e) {
    fail(`${metaPath} is not valid JSON (${e.message}): ${how}`);
  }
  const modelFile = (meta.model && meta.model.file) || 'model.json';
  if (!existsSync(join(dir, modelFile))) fail(`${dir} has no ${modelFile}: ${how}`);
  // Faces first: without the face model the extension has nothing to judge.
  const faces = meta.faces;
  if (!faces || !faces.model || !faces.model.file || !Number.isInteger(faces.min_face_side)) {
    fail(`${metaPath} has no "faces" section (the face model): ${how}`);
  }
  if (!existsSync(join(dir, faces.model.file))) fail(`${dir} has no ${faces.model.file} (the face model): ${how}`);
  for (const [name, want] of Object.entries(fileHashes(meta))) {
    const path = join(dir, name);
    if (!existsSync(path)) fail(`${dir} lacks ${name}, listed in metadata.json: reconvert the model`);
    if (sha256(path) !== want) fail(`${path} does not match the sha256 in metadata.json: the folder mixes two conversions; reconvert the model`);
  }
  return meta;
}

// metadata.json lists files as {name: {sha256}} or [{path|name, sha256}]; the face model's
// (face/...) in faces.files.
function fileHashes(meta) {
  const files = meta.files || {};
  const list = [
    ...(Array.isArray(files) ? files : Object.entries(files).map(([name, v]) => ({name, ...(typeof v === 'string' ? {sha256: v} : v)}))),
    ...((meta.faces && meta.faces.files) || []),
  ];
  return Object.fromEntries(list.filter((f) => f.sha256).map((f) => [f.path || f.name || f.file, f.sha256]));
}

// Every file the manifest names must be in the build.
function checkManifestFiles(manifest, out) {
  const named = [
    ...Object.values(manifest.icons || {}),
    ...Object.values((manifest.action && manifest.action.default_icon) || {}),
    manifest.action && manifest.action.default_popup,
    manifest.options_ui && manifest.options_ui.page,
    manifest.background && manifest.background.service_worker,
    ...(manifest.content_scripts || []).flatMap((c) => [...(c.js || []), ...(c.css || [])]),
  ].filter(Boolean);
  const missing = named.filter((f) => !existsSync(join(out, f)));
  if (missing.length) fail(`the manifest names files the build lacks: ${missing.join(', ')}`);
}

// A plain zip (deflate), enough for the Web Store; no dependency needed.
function writeZip(zipPath, entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const {name, data} of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const packed = deflateRawSync(data, {level: 9});
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(0, 10); // a fixed time and date (1980-01-01), so the zip is reproducible
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, nameBuf, packed);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBuf);
    offset += local.length + nameBuf.length + packed.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  writeFileSync(zipPath, Buffer.concat([...locals, ...centrals, end]));
}

// testHooks: the browser tests' build, whose content script exposes what it draws in its own
// isolated world (content.js); never in a build for people.
export async function build({out = join(HERE, 'dist'), model, zip, testHooks = false} = {}) {
  const modelDir = resolve(model || process.env.UNMASK_EXTENSION_MODEL || join(HERE, 'model'));
  const meta = checkModel(modelDir);
  const manifest = JSON.parse(readFileSync(join(HERE, 'manifest.json'), 'utf8'));
  for (const f of WASM_FILES) if (!existsSync(join(WASM_DIR, f))) fail(`${f} is missing from ${WASM_DIR}: run \`npm ci\``);
  if (!existsSync(C2PA_WASM)) fail(`${C2PA_WASM} is missing: run \`npm ci\``);

  rmSync(out, {recursive: true, force: true});
  mkdirSync(out, {recursive: true});
  // The C2PA trust list is bundled as text (src/c2pareader.js).
  const common = {bundle: true, minify: true, legalComments: 'linked', target: 'chrome116', logLevel: 'warning', absWorkingDir: ROOT, loader: {'.pem': 'text'},
    define: {UNMASK_TEST_HOOKS: String(Boolean(testHooks))}};
  await esbuild.build({
    ...common,
    entryPoints: ['background', 'offscreen', 'popup', 'options', 'c2paworker', 'history'].map((n) => join(SRC, `${n}.js`)),
    outdir: out,
    format: 'esm',
  });
  // Content scripts cannot be modules.
  await esbuild.build({...common, entryPoints: [join(SRC, 'content.js')], outfile: join(out, 'content.js'), format: 'iife'});

  for (const f of PAGES) copyFileSync(join(SRC, f), join(out, f));
  mkdirSync(join(out, 'icons'));
  for (const f of readdirSync(join(HERE, 'icons'))) copyFileSync(join(HERE, 'icons', f), join(out, 'icons', f));
  mkdirSync(join(out, 'wasm'));
  for (const f of WASM_FILES) copyFileSync(join(WASM_DIR, f), join(out, 'wasm', f));
  mkdirSync(join(out, 'c2pa'));
  copyFileSync(C2PA_WASM, join(out, 'c2pa', 'c2pa_bg.wasm'));
  for (const src of listFiles(modelDir)) { // with its subfolders (face/)
    const dest = join(out, 'model', relative(modelDir, src));
    mkdirSync(dirname(dest), {recursive: true});
    copyFileSync(src, dest);
  }
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  checkManifestFiles(manifest, out);

  // The Web Store assigns its own key and refuses a manifest that carries one.
  const zipPath = zip === 'none' ? null : resolve(zip || join(HERE, `unmask-extension-${manifest.version}.zip`));
  if (zipPath) {
    const storeManifest = {...manifest};
    delete storeManifest.key;
    const entries = listFiles(out)
      .map((p) => relative(out, p).split('\\').join('/'))
      .sort()
      .map((name) => ({name, data: name === 'manifest.json' ? Buffer.from(`${JSON.stringify(storeManifest, null, 2)}\n`) : readFileSync(join(out, name))}));
    writeZip(zipPath, entries);
  }

  const files = listFiles(out);
  const bytes = files.reduce((n, p) => n + statSync(p).size, 0);
  const modelBytes = listFiles(join(out, 'model')).reduce((n, p) => n + statSync(p).size, 0);
  return {
    out,
    zip: zipPath,
    id: extensionId(manifest.key),
    version: manifest.version,
    model: {dir: modelDir, name: meta.name, version: meta.version, bytes: modelBytes},
    files: files.length,
    bytes,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const {values} = parseArgs({options: {out: {type: 'string'}, model: {type: 'string'}, zip: {type: 'string'}}});
  try {
    const r = await build(values);
    const kb = (n) => `${(n / 1024).toFixed(0)} KB`;
    console.log(`Built Unmask ${r.version} into ${relative(process.cwd(), r.out) || '.'}: ${r.files} files, ${kb(r.bytes)} (model ${r.model.name || '?'} ${r.model.version || ''}, ${kb(r.model.bytes)}, from ${relative(process.cwd(), r.model.dir)})`);
    if (r.zip) console.log(`Web Store zip: ${relative(process.cwd(), r.zip)}`);
    console.log(`Extension ID when loaded unpacked: ${r.id} (load ${relative(process.cwd(), r.out)} in chrome://extensions, developer mode)`);
  } catch (e) {
    if (e instanceof BuildError) {
      console.error(`build: error: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }
}
