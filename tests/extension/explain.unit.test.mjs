// extension/src/explain.js ("Show where it looked") with the shipped classifier on TF.js wasm:
// each patch's weight is the change in raw p(fake) when that patch alone is covered.
//
//   node --test tests/extension/explain.unit.test.mjs
import assert from 'node:assert/strict';
import {existsSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {before, describe, it} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import {folderHandler} from '../../converter/parity.mjs';
import {load} from '../../extension/src/detector.js';
import {GRID, heatFor, occlusionMap, patchAt} from '../../extension/src/explain.js';
import {preprocess} from '../../extension/src/preprocess.js';
import {ROOT} from './harness/setup.mjs';

const MODEL = join(ROOT, 'extension/model');

// A face-sized RGB picture with structure (a bright oval on a darker ground, some texture).
function picture(side) {
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const inside = ((x - side / 2) / (side * 0.3)) ** 2 + ((y - side / 2) / (side * 0.4)) ** 2 < 1;
      const o = (y * side + x) * 3;
      data[o] = inside ? 200 + ((x * 7) % 40) : 40 + ((x * y) % 30);
      data[o + 1] = inside ? 150 + ((y * 5) % 50) : 60;
      data[o + 2] = inside ? 120 : 90 + ((x + y) % 20);
    }
  }
  return {data, width: side, height: side};
}

describe('occlusion heat map', () => {
  let detector;
  before(async () => {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    await tf.setBackend('wasm');
    assert.ok(existsSync(join(MODEL, 'metadata.json')), 'extension/model/ is missing: `make models` writes it');
    const metadata = JSON.parse(readFileSync(join(MODEL, 'metadata.json'), 'utf8'));
    detector = await load({modelUrl: folderHandler(MODEL), metadata});
  });

  it('lays overlapping patches over the whole input, edge to edge', () => {
    for (const [grid, size] of [[GRID, 224], [5, 160], [7, 256]]) {
      const first = patchAt(0, grid, size);
      const last = patchAt(grid - 1, grid, size);
      assert.equal(first.start, 0);
      assert.equal(last.start + last.side, size);
      for (let i = 1; i < grid; i++) assert.ok(patchAt(i, grid, size).start < patchAt(i - 1, grid, size).start + first.side, 'neighbours overlap');
    }
  });

  it("gives each patch the change in raw p(fake) when it alone is covered with the input's middle grey", async () => {
    const pixels = picture(300);
    const map = await occlusionMap(detector, pixels, {batch: 5});
    assert.equal(map.grid, GRID);
    assert.equal(map.values.length, GRID * GRID);
    assert.ok(map.values.every(Number.isFinite));
    assert.ok(map.values.some((v) => v !== 0), 'no patch moved p(fake)');
    const [p] = await detector.scores([pixels]);
    assert.ok(Math.abs(map.p - p) < 1e-6, 'the base score is the detector\'s own');
    // One patch by hand: covered in the model's input, scored alone.
    const spec = detector.metadata.preprocessing;
    const size = spec.input_size;
    for (const k of [0, 24, GRID * GRID - 1]) {
      const row = patchAt(Math.floor(k / GRID), GRID, size);
      const col = patchAt(k % GRID, GRID, size);
      const x = preprocess(pixels, spec);
      const values = await x.data();
      x.dispose();
      for (let y = row.start; y < row.start + row.side; y++) values.fill(127.5, (y * size + col.start) * 3, (y * size + col.start + col.side) * 3);
      const covered = tf.tensor4d(values, [1, size, size, 3]);
      const [q] = await detector.run(covered);
      covered.dispose();
      assert.ok(Math.abs(map.values[k] - (p - q)) < 1e-5, `patch ${k}: ${map.values[k]} vs ${p - q}`);
    }
    // Batches of any size give the same map.
    const again = await occlusionMap(detector, pixels, {batch: 16});
    again.values.forEach((v, i) => assert.ok(Math.abs(v - map.values[i]) < 1e-5));
  });

  it('shows evidence for the side the face leans to, scaled by the strongest patch', () => {
    const values = Float32Array.from([0.2, -0.1, 0.05, -0.4]);
    const fake = heatFor({grid: 2, values, p: 0.8});
    assert.deepEqual(fake.values, [1, 0, 0.25, 0]);
    assert.equal(fake.strongest, 0.2);
    const real = heatFor({grid: 2, values, p: 0.3});
    assert.deepEqual(real.values, [0, 0.25, 0, 1]);
    assert.equal(real.strongest, 0.4);
    assert.deepEqual(heatFor({grid: 2, values: new Float32Array(4), p: 0.9}).values, [0, 0, 0, 0], 'nothing moved, nothing hot');
  });
});
