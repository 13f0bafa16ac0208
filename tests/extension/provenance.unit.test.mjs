// The extension's provenance reader (extension/src/provenance.js) under Node, on the files
// Python reads in tests/extension/provenance_fixtures.py: the same tier and the same sentence
// for each, the same limits on hostile PNGs, and the same verdict rule.
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {before, describe, it} from 'node:test';

import RULES from '../../models/provenance.json' with {type: 'json'};
import {combineProvenance, pngText, readProvenance} from '../../extension/src/provenance.js';
import {wording} from '../../extension/src/wording.js';
import {provenanceFixtures} from './harness/setup.mjs';

describe('provenance, as Python reads it', {timeout: 300000}, () => {
  let fx;
  before(async () => {
    fx = await provenanceFixtures();
  });

  it('gives every fixture the tier and the sentence Python gives it', async () => {
    assert.ok(Object.keys(fx.expect).length >= 15);
    for (const [name, want] of Object.entries(fx.expect)) {
      const got = await readProvenance(readFileSync(join(fx.root, name)));
      assert.equal(got.tier, want.tier, `${name}: ${JSON.stringify(got.findings)}`);
      assert.equal(got.ai, want.ai, name);
      assert.equal(got.c2pa.present, want.c2pa, `${name}: C2PA marker`);
      // Credentials are not verified here: their AI claim is said as declared, unsigned.
      assert.equal(got.statement, want.c2pa && want.ai ? wording.provenance.declared : want.statement, name);
    }
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
