// The extension's provenance reader (extension/src/provenance.js) under Node, on the files
// Python reads in tests/extension/provenance_fixtures.py: the same tier and the same sentence
// for each, the same limits on hostile PNGs, and the same verdict rule.
import assert from 'node:assert/strict';
import {existsSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {before, describe, it} from 'node:test';

import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';

import * as esbuild from 'esbuild';

import RULES from '../../models/provenance.json' with {type: 'json'};
import {combineProvenance, novelaiStealth, pngText, readProvenance, sdWatermark, withPixelEvidence} from '../../extension/src/provenance.js';
import {wording} from '../../extension/src/wording.js';
import {provenanceFixtures, ROOT} from './harness/setup.mjs';

const C2PA_WASM = readFileSync(join(ROOT, 'node_modules/@contentauth/c2pa-wasm/pkg/c2pa_bg.wasm'));
const TEST_ANCHORS = join(ROOT, '..', 'shared', 'data', 'provenance', 'trust-lists', 'c2pa-rs-TEST-ANCHORS.pem');

// The extension's C2PA reader (c2pareader.js) as the build bundles it (the trust list as text).
async function c2paReader() {
  const dir = mkdtempSync(join(tmpdir(), 'unmask-c2pa-'));
  try {
    await esbuild.build({entryPoints: [join(ROOT, 'extension/src/c2pareader.js')], bundle: true, format: 'esm', platform: 'node',
      loader: {'.pem': 'text'}, outfile: join(dir, 'c2pareader.mjs'), logLevel: 'warning'});
    return await import(join(dir, 'c2pareader.mjs'));
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

describe('provenance, as Python reads it', {timeout: 300000}, () => {
  let fx, verify, reader;
  before(async () => {
    fx = await provenanceFixtures();
    reader = await c2paReader();
    verify = (bytes, mime) => reader.readManifestStore(bytes, mime, {wasm: C2PA_WASM});
  });

  const pixelsOf = (name) => new Uint8Array(readFileSync(join(fx.root, 'pixels', `${name}.rgba`)));

  // As background.js reads a file: its bytes, then for a PNG what its decoded pixels show.
  const provenanceOf = async (name, want) => {
    const read = await readProvenance(readFileSync(join(fx.root, name)), {verify});
    if (!want.size) return read;
    const rgba = pixelsOf(name);
    return withPixelEvidence(read, {stealth: await novelaiStealth(rgba, ...want.size), watermark: sdWatermark(rgba, ...want.size)});
  };

  it('gives every fixture the tier and the sentence Python gives it', async () => {
    assert.ok(Object.keys(fx.expect).length >= 17);
    for (const [name, want] of Object.entries(fx.expect)) {
      const got = await provenanceOf(name, want);
      assert.equal(got.tier, want.tier, `${name}: ${JSON.stringify(got.findings)}`);
      assert.equal(got.ai, want.ai, name);
      assert.equal(got.c2pa.present, want.c2pa, `${name}: C2PA marker`);
      assert.equal(got.statement, want.statement, name);
      assert.equal(got.signer, want.signer, name);
      assert.equal(got.claim_generator, want.claim_generator, name);
      assert.deepEqual(got.validation_codes, want.validation_codes, name);
    }
  });

  it('reaches signed with the c2pa-rs test anchors, and says a changed picture plainly', async (t) => {
    if (!existsSync(TEST_ANCHORS)) return t.skip(`no ${TEST_ANCHORS}`);
    const anchors = readFileSync(TEST_ANCHORS, 'utf8');
    const fixtures = join(TEST_ANCHORS, '..', '..', 'c2pa-rs-fixtures');
    const withAnchors = {verify: (bytes, mime) => reader.readManifestStore(bytes, mime, {wasm: C2PA_WASM, anchors})};
    const c = await readProvenance(readFileSync(join(fixtures, 'C.jpg')), withAnchors);
    assert.equal(c.tier, 'signed');
    assert.equal(c.statement, 'Made with AI, signed by C2PA Test Signing Cert (verified)');
    const xca = await readProvenance(readFileSync(join(fixtures, 'XCA.jpg')), withAnchors);
    assert.equal(xca.changed, wording.provenance.changed);
    assert.ok(xca.validation_codes.includes('assertion.dataHash.mismatch'));
    // Without a verifier (no worker), an AI claim in credentials is only declared, unsigned.
    const unverified = await readProvenance(readFileSync(join(fixtures, 'C.jpg')));
    assert.equal(unverified.tier, 'declared');
    assert.equal(unverified.statement, wording.provenance.declared);
  });

  it('stops at the first malformed chunk and within the same limits as Python', async () => {
    const bomb = await pngText(readFileSync(join(fx.root, 'text_bomb.png')));
    assert.deepEqual(bomb.texts, {});
    assert.match(bomb.stopped, /malformed chunk/);
    const ztxt = await pngText(readFileSync(join(fx.root, 'ztxt_bomb.png')));
    assert.equal(ztxt.texts.parameters.length, RULES.limits.max_text_bytes);
    assert.match(ztxt.stopped, /more than 1048576 bytes/);
    const prov = await readProvenance(readFileSync(join(fx.root, 'text_bomb.png')));
    assert.ok(prov.findings.some((f) => f.source === 'png' && /malformed chunk/.test(f.message)));
  });

  it("reads NovelAI's hidden metadata from the alpha channel only, within the limits", async () => {
    for (const name of ['novelai_stealth.png', 'novelai_stealth_plain.png']) {
      const want = fx.expect[name];
      assert.equal(want.tier, 'declared', `Python: ${name}`);
      assert.equal((await readProvenance(readFileSync(join(fx.root, name)))).tier, null, `${name}: the bytes alone say nothing`);
      const rgba = new Uint8Array(readFileSync(join(fx.root, 'pixels', `${name}.rgba`)));
      assert.match(await novelaiStealth(rgba, ...want.size), /"steps": 28/);
    }
    // Every alpha 255 (no message), a length past the limit, and gzip that is not gzip: nothing.
    const [w, h] = fx.expect['novelai_stealth.png'].size;
    const rgba = new Uint8Array(readFileSync(join(fx.root, 'pixels', 'novelai_stealth.png.rgba')));
    const opaque = rgba.map((v, i) => (i % 4 === 3 ? 255 : v));
    assert.equal(await novelaiStealth(opaque, w, h), null);
    const setBits = (pixels, start, bytes) => {
      const out = pixels.slice();
      bytes.forEach((byte, j) => {
        for (let b = 0; b < 8; b++) {
          const k = start + 8 * j + b;
          const at = ((k % h) * w + Math.floor(k / h)) * 4 + 3;
          out[at] = (out[at] & 0xfe) | ((byte >> (7 - b)) & 1);
        }
      });
      return out;
    };
    const tooLong = setBits(rgba, 8 * 15, [0x7f, 0xff, 0xff, 0xf8]); // 268 M bits announced
    assert.equal(await novelaiStealth(tooLong, w, h), null);
    const notGzip = setBits(rgba, 8 * 19, [0x00, 0x01, 0x02, 0x03]); // the body's gzip header broken
    assert.equal(await novelaiStealth(notGzip, w, h), null);
    assert.equal(await novelaiStealth(rgba, 3, 3), null); // too few pixels for the header
  });

  it('reads the Stable Diffusion watermark bit for bit as Python does, in pixels only', async () => {
    const withPixels = Object.entries(fx.expect).filter(([, want]) => want.size);
    assert.ok(withPixels.length >= 8);
    for (const [name, want] of withPixels) {
      const got = sdWatermark(pixelsOf(name), ...want.size);
      // The same bits give the same share of each message's bits, to the last digit.
      assert.equal(got.agreement, want.watermark.agreement, name);
      assert.equal(got.found, want.watermark.found, name);
      assert.equal(got.generator, want.watermark.generator, name);
      assert.equal(got.note, want.watermark.note, name);
    }
    for (const name of ['sd_watermark.png', 'sdxl_watermark.png']) {
      assert.equal(fx.expect[name].tier, 'declared', `Python: ${name}`);
      assert.equal((await readProvenance(readFileSync(join(fx.root, name)))).tier, null, `${name}: the bytes alone say nothing`);
    }
    // A copy saved as JPEG has lost it, on Python's side (the device does not look in JPEGs).
    assert.equal(fx.expect['sdxl_watermark.jpg'].tier, null);
    assert.equal(fx.expect['sdxl_watermark.jpg'].watermark.found, false);
    // Moved by one pixel, the blocks no longer line up: nothing found.
    const [w, h] = fx.expect['sdxl_watermark.png'].size;
    const shifted = pixelsOf('sdxl_watermark.png').subarray(4);
    assert.equal(sdWatermark(shifted, w, h - 1).found, false);
    // Too small to carry it: said, not searched.
    const tiny = sdWatermark(new Uint8Array(4 * 31 * 31), 31, 31);
    assert.deepEqual(tiny, {found: false, generator: null, agreement: null, note: wording.provenance.watermark_too_small});
    assert.equal(withPixelEvidence(await readProvenance(readFileSync(join(fx.root, 'plain.jpg'))), {watermark: tiny}).tier, null);
  });

  it('makes a declared picture fake, with or without a face, and never real', async () => {
    const declared = await readProvenance(readFileSync(join(fx.root, 'xmp_ai.jpg')));
    const nothing = await readProvenance(readFileSync(join(fx.root, 'plain.jpg')));
    for (const verdict of ['real', 'uncertain', 'no_face']) {
      const device = {verdict, confidence: verdict === 'no_face' ? null : 0.7, p_fake: 0.3};
      const out = combineProvenance(device, declared);
      assert.equal(out.verdict, 'fake');
      assert.equal(out.basis, 'provenance');
      assert.equal(out.confidence, null);
      assert.equal(combineProvenance(device, nothing).verdict, verdict);
    }
    assert.equal(combineProvenance({verdict: 'fake', confidence: 0.9, p_fake: 0.9}, declared).basis, 'model+provenance');
  });
});
