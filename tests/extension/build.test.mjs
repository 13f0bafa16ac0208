// `npm run build`: what goes into extension/dist and the Web Store zip, and the clear
// refusals when the model is missing or does not match its metadata.
import assert from 'node:assert/strict';
import {execFileSync, spawnSync} from 'node:child_process';
import {appendFileSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {inflateRawSync} from 'node:zlib';
import {after, before, describe, it} from 'node:test';

import {build} from '../../extension/build.mjs';
import {fixtureImages, modelUnderTest, ROOT, tempDir} from './harness/setup.mjs';

// name -> bytes, from a zip file (the central directory, then each local entry).
function readZip(path) {
  const z = readFileSync(path);
  const end = z.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'no end of central directory');
  const count = z.readUInt16LE(end + 10);
  let at = z.readUInt32LE(end + 16);
  const files = new Map();
  for (let i = 0; i < count; i++) {
    assert.equal(z.readUInt32LE(at), 0x02014b50);
    const method = z.readUInt16LE(at + 10);
    const size = z.readUInt32LE(at + 24); // uncompressed
    const nameLen = z.readUInt16LE(at + 28);
    const extraLen = z.readUInt16LE(at + 30);
    const commentLen = z.readUInt16LE(at + 32);
    const local = z.readUInt32LE(at + 42);
    const name = z.toString('utf8', at + 46, at + 46 + nameLen);
    const dataAt = local + 30 + z.readUInt16LE(local + 26) + z.readUInt16LE(local + 28);
    const packed = z.subarray(dataAt, dataAt + z.readUInt32LE(local + 18));
    const data = method === 8 ? inflateRawSync(packed) : packed;
    assert.equal(data.length, size, `${name}: size in the zip`);
    files.set(name, data);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

describe('npm run build', () => {
  let model, out, zip, result;

  before(async () => {
    model = await modelUnderTest(await fixtureImages());
    const dir = tempDir('unmask-build-');
    out = join(dir, 'dist');
    zip = join(dir, 'unmask.zip');
    result = await build({out, model: model.tfjs, zip});
  });

  after(() => {
    if (out) rmSync(join(out, '..'), {recursive: true, force: true});
  });

  it('builds a loadable MV3 extension with TF.js, its wasm files and the model inside', () => {
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    assert.equal(manifest.manifest_version, 3);
    assert.equal(manifest.background.service_worker, 'background.js');
    for (const f of ['background.js', 'content.js', 'offscreen.html', 'offscreen.js', 'popup.html', 'popup.js', 'options.html', 'options.js',
      'wasm/tfjs-backend-wasm.wasm', 'wasm/tfjs-backend-wasm-simd.wasm', 'model/metadata.json', 'model/face/model.json', 'icons/icon128.png',
      'c2paworker.js', 'c2pa/c2pa_bg.wasm']) {
      assert.ok(existsSync(join(out, f)), `dist lacks ${f}`);
    }
    // Every model file, the face model's too, byte for byte.
    for (const f of listFiles(model.tfjs)) {
      assert.deepEqual(readFileSync(join(out, 'model', f)), readFileSync(join(model.tfjs, f)), `model/${f}`);
    }
    // The extension pages may run WebAssembly, and nothing from elsewhere.
    assert.equal(manifest.content_security_policy.extension_pages, "script-src 'self' 'wasm-unsafe-eval'; object-src 'self'");
    assert.equal(result.id, 'kdmepkbpdjeiglledacpabjjbmcjmhgo', 'the manifest key fixes the ID');
  });

  it('draws in a closed shadow root, and ships no test hook', () => {
    const content = readFileSync(join(out, 'content.js'), 'utf8');
    assert.match(content, /mode:\s*"closed"/);
    assert.doesNotMatch(content, /mode:\s*"open"|unmaskInspect/);
    // Nor the history's full-disk switch (historystore.js), nor the worker's message for it.
    assert.doesNotMatch(readFileSync(join(out, 'background.js'), 'utf8'), /testDiskFull|The quota has been exceeded/);
  });

  it('bundles everything: no script comes from a CDN', () => {
    for (const f of ['background.js', 'content.js', 'offscreen.js', 'popup.js', 'options.js']) {
      const code = readFileSync(join(out, f), 'utf8');
      assert.doesNotMatch(code, /\bimport\s*\(\s*["']https?:/, `${f} imports from the web`);
      assert.doesNotMatch(code, /cdn\.jsdelivr|unpkg\.com|cdnjs|tfhub\.dev|storage\.googleapis/, `${f} names a CDN`);
    }
    for (const f of ['offscreen.html', 'popup.html', 'options.html']) {
      assert.doesNotMatch(readFileSync(join(out, f), 'utf8'), /<script[^>]+src=["']https?:/, `${f} loads a remote script`);
    }
  });

  it('bundles the one vocabulary (models/wording.json) into the scripts that speak', () => {
    const words = JSON.parse(readFileSync(join(ROOT, 'models/wording.json'), 'utf8'));
    for (const f of ['content.js', 'popup.js', 'background.js']) {
      const code = readFileSync(join(out, f), 'utf8');
      assert.ok(code.includes(words.no_face) && code.includes(words.confidence.uncertain), `${f} lacks the wording`);
    }
    // The service worker judges cached scores without TensorFlow.js: it stays small.
    assert.ok(readFileSync(join(out, 'background.js')).length < 100000, 'background.js bundles the model code');
  });

  it('asks for the fewest permissions: other sites only at runtime', () => {
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    assert.deepEqual([...manifest.permissions].sort(), ['activeTab', 'contextMenus', 'offscreen', 'scripting', 'storage']);
    assert.deepEqual(manifest.optional_host_permissions, ['*://*/*']);
    // Required hosts: only the social sites' image hosts (their pages come with the content scripts).
    for (const h of manifest.host_permissions) assert.match(h, /^https:\/\/\*\.(twimg\.com|fbcdn\.net|cdninstagram\.com|redd\.it|redditmedia\.com)\/\*$/);
    assert.ok(!JSON.stringify(manifest).includes('<all_urls>'));
    assert.equal(manifest.web_accessible_resources, undefined, 'pages cannot load the extension\'s files');
  });

  it('writes a Web Store zip: the same files, the manifest without `key`', () => {
    const files = readZip(zip);
    const built = new Set(listFiles(out));
    assert.deepEqual(new Set(files.keys()), built);
    const manifest = JSON.parse(files.get('manifest.json'));
    assert.equal(manifest.key, undefined);
    assert.equal(manifest.version, result.version);
    assert.deepEqual(files.get('offscreen.js'), readFileSync(join(out, 'offscreen.js')));
    // Other tools read it too.
    const test = spawnSync('unzip', ['-tq', zip], {encoding: 'utf8'});
    if (test.error) return; // no unzip on this machine: the reader above stands
    assert.equal(test.status, 0, test.stdout + test.stderr);
  });

  it('refuses to build without a model, saying how to make one', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'extension/build.mjs'), '--out', join(out, '..', 'nomodel'), '--model', join(out, '..', 'no-such-model'), '--zip', 'none'], {encoding: 'utf8'});
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no model at .*no-such-model: convert one with `unmask convert tiny --out extension\/model`/);
  });

  it('refuses a model folder whose files do not match metadata.json', () => {
    const broken = join(out, '..', 'broken-model');
    cpSync(model.tfjs, broken, {recursive: true});
    const shard = readdirSync(broken).find((f) => f.endsWith('.bin'));
    appendFileSync(join(broken, shard), Buffer.from([0]));
    const r = spawnSync(process.execPath, [join(ROOT, 'extension/build.mjs'), '--out', join(out, '..', 'broken-dist'), '--model', broken, '--zip', 'none'], {encoding: 'utf8'});
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`${shard} does not match the sha256 in metadata.json`));
  });

  it('refuses a model without the face model, saying how to make one', () => {
    const faceless = join(out, '..', 'faceless-model');
    cpSync(model.tfjs, faceless, {recursive: true});
    const meta = JSON.parse(readFileSync(join(faceless, 'metadata.json'), 'utf8'));
    delete meta.faces;
    writeFileSync(join(faceless, 'metadata.json'), JSON.stringify(meta));
    const r = spawnSync(process.execPath, [join(ROOT, 'extension/build.mjs'), '--out', join(out, '..', 'faceless-dist'), '--model', faceless, '--zip', 'none'], {encoding: 'utf8'});
    assert.equal(r.status, 2);
    assert.match(r.stderr, /has no "faces" section \(the face model\): convert one with `unmask convert tiny --out extension\/model`/);
  });

  it('runs as `npm run build -- ...`', () => {
    const dir = join(out, '..', 'via-npm');
    const stdout = execFileSync('npm', ['run', '--silent', 'build', '--', '--out', dir, '--model', model.tfjs, '--zip', 'none'], {cwd: ROOT, encoding: 'utf8'});
    assert.match(stdout, /Built Unmask \d+\.\d+\.\d+ into/);
    assert.ok(existsSync(join(dir, 'manifest.json')));
  });
});

function listFiles(dir, prefix = '') {
  return readdirSync(dir, {withFileTypes: true}).flatMap((d) => (d.isDirectory() ? listFiles(join(dir, d.name), `${prefix}${d.name}/`) : [`${prefix}${d.name}`]));
}
