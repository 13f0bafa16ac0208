// extension/src/faces.js without the face model: crops, the contract check, selection, and
// find()'s second view, with a stub model standing in for BlazeFace. The real model against
// models/faces.py: tests/converter/test_faces_parity.py.
//
//   node --test tests/extension/faces.unit.test.mjs
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {before, describe, it} from 'node:test';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import {anchors, cropPixels, faceContract, FaceFinder, letterboxGeometry, select} from '../../extension/src/faces.js';
import {boxAverage, cropAndBox} from '../../extension/src/preprocess.js';

const CONTRACT = JSON.parse(readFileSync(new URL('../../models/preprocessing.json', import.meta.url), 'utf8'));
const METADATA = {faces: {...CONTRACT.faces, model: {outputs: {boxes: 'boxes', scores: 'scores'}}}};

function image(width, height, ch) {
  const data = new Uint8Array(width * height * ch);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  return {data, width, height};
}

before(async () => {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  await tf.setBackend('wasm');
});

describe('cropPixels', () => {
  for (const ch of [3, 4]) {
    it(`cuts the square [x, y, side] out of ${ch === 4 ? 'RGBA' : 'RGB'} pixels`, () => {
      const px = image(7, 5, ch);
      const out = cropPixels(px, [2, 1, 3]);
      assert.equal(out.width, 3);
      assert.equal(out.height, 3);
      assert.equal(out.data.length, 9 * ch);
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) {
          for (let c = 0; c < ch; c++) assert.equal(out.data[(y * 3 + x) * ch + c], px.data[((1 + y) * 7 + 2 + x) * ch + c]);
        }
      }
    });
  }

  it('keeps ImageData\'s Uint8ClampedArray and refuses crops outside the image', () => {
    const px = {...image(4, 4, 4), data: new Uint8ClampedArray(64)};
    assert.ok(cropPixels(px, [0, 0, 4]).data instanceof Uint8ClampedArray);
    assert.throws(() => cropPixels(px, [1, 0, 4]), /does not lie inside the 4x4 image/);
    assert.throws(() => cropPixels(px, [0, 0, 0]), /does not lie inside/);
  });
});

describe('preprocess.js box average', () => {
  it('cropAndBox is boxAverage on the centre square', () => {
    const px = image(23, 17, 4);
    const a = cropAndBox(px, 5); // s = 17, k = 3, n = 5
    const b = boxAverage(px, {left: 3, top: 0, width: 17, height: 17}, 3);
    assert.equal(a.n, 5);
    assert.deepEqual([b.height, b.width], [5, 5]);
    assert.deepEqual(a.values, b.values);
  });

  it('averages k x k blocks of a non-square region, dropping the remainder', () => {
    const px = image(11, 7, 3);
    const {values, height, width} = boxAverage(px, {left: 0, top: 0, width: 11, height: 7}, 2);
    assert.deepEqual([height, width], [3, 5]);
    const at = (x, y, c) => px.data[(y * 11 + x) * 3 + c];
    for (let by = 0; by < 3; by++) {
      for (let bx = 0; bx < 5; bx++) {
        for (let c = 0; c < 3; c++) {
          const sum = at(2 * bx, 2 * by, c) + at(2 * bx + 1, 2 * by, c) + at(2 * bx, 2 * by + 1, c) + at(2 * bx + 1, 2 * by + 1, c);
          assert.equal(values[(by * 5 + bx) * 3 + c], Math.fround(sum / 4));
        }
      }
    }
  });

  // The block mean by its definition, for any region, k and RGB or RGBA pixels.
  function blockMeans(px, {left, top, width, height}, k) {
    const ch = px.data.length / (px.width * px.height);
    const nh = Math.floor(height / k);
    const nw = Math.floor(width / k);
    const out = new Float32Array(nh * nw * 3);
    for (let by = 0; by < nh; by++) {
      for (let bx = 0; bx < nw; bx++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) sum += px.data[((top + by * k + dy) * px.width + left + bx * k + dx) * ch + c];
          out[(by * nw + bx) * 3 + c] = sum / (k * k);
        }
      }
    }
    return out;
  }

  for (const ch of [3, 4]) {
    it(`is the block mean of any region, k = 1 (a copy) to 9, ${ch} channels, white at the top of the range`, () => {
      const px = image(61, 43, ch);
      const white = {width: 61, height: 43, data: new Uint8Array(61 * 43 * ch).fill(255)};
      for (const k of [1, 2, 3, 6, 9]) {
        for (const region of [{left: 0, top: 0, width: 61, height: 43}, {left: 5, top: 3, width: 50, height: 37}]) {
          assert.deepEqual(boxAverage(px, region, k).values, blockMeans(px, region, k), `k ${k} ${JSON.stringify(region)}`);
          assert.ok(boxAverage(white, region, k).values.every((v) => v === 255), `white, k ${k}`);
        }
      }
    });
  }
});

describe('faces.js contract and steps', () => {
  it('reads every number from metadata.faces and refuses metadata without it', () => {
    const c = faceContract(METADATA);
    assert.equal(c.inputSize, CONTRACT.faces.detector.input_size);
    assert.equal(c.minFaceSide, CONTRACT.faces.min_face_side);
    assert.equal(c.cropMargin, CONTRACT.faces.crop.margin);
    assert.equal(anchors(c).length, 2 * 2304);
    assert.throws(() => faceContract({format: 'unmask-detector-tfjs'}), /no faces section/);
    assert.throws(() => faceContract({faces: {...METADATA.faces, model: {}}}), /model.outputs needs boxes and scores/);
    assert.throws(() => faceContract({faces: {...METADATA.faces, max_faces: 'eight'}}), /maxFaces must be a number/);
  });

  it('letterboxes with the box-average factor Python uses', () => {
    assert.deepEqual(letterboxGeometry(2000, 3000, 192, 0), {rh: 128, rw: 192, k: 15, offsetX: 0, offsetY: 32, scaleX: 192 / 3000, scaleY: 128 / 1995});
    const g = letterboxGeometry(256, 256, 192, 0.5); // the tight-crop view: half the canvas
    assert.deepEqual([g.rh, g.rw, g.k, g.offsetX, g.offsetY], [96, 96, 2, 48, 48]);
  });

  it('keeps the largest max_faces faces and counts the rest', () => {
    const c = faceContract(METADATA);
    const merged = [];
    for (let i = 0; i < c.maxFaces + 3; i++) merged.push({score: 0.9, box: [100 * i, 0, 100 * i + 50 + i, 60 + i], keypoints: [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]});
    merged.push({score: 0.9, box: [0, 500, 20, 520], keypoints: merged[0].keypoints}); // too small
    merged.push({score: 0.9, box: [-40, -40, -10, -10], keypoints: merged[0].keypoints}); // outside
    const found = select(merged, 600, 2000, c);
    assert.equal(found.faces.length, c.maxFaces);
    assert.equal(found.over_limit, 3);
    assert.equal(found.too_small, 1);
    assert.deepEqual(found.faces[0].box, [1000, 0, 1060, 70]);
    assert.deepEqual(Object.keys(found.faces[0]), ['box', 'detector_score', 'crop', 'keypoints']);
  });
});

describe('FaceFinder.find with a stub model', () => {
  // One anchor fires: at the canvas centre, a box of `side` canvas pixels, on the nth call.
  function stub(side, fireOn) {
    const calls = [];
    return {
      calls,
      execute(x, names) {
        calls.push({shape: x.shape, names});
        const boxes = new Float32Array(2304 * 16);
        const scores = new Float32Array(2304).fill(-10);
        if (calls.length === fireOn) {
          const i = 24 * 48 + 24; // anchor centre (98, 98)
          scores[i] = 5;
          boxes.set([-2, -2, side, side], 16 * i);
        }
        return [tf.tensor3d(boxes, [1, 2304, 16]), tf.tensor3d(scores, [1, 2304, 1])];
      },
      dispose() {},
    };
  }

  it('looks a second time, on the padded canvas, only when the first view finds nothing', async () => {
    const c = faceContract(METADATA);
    const px = image(256, 256, 4);
    const first = stub(120, 1);
    let found = await new FaceFinder(first, c).find(px);
    assert.equal(first.calls.length, 1);
    assert.deepEqual(first.calls[0], {shape: [1, 192, 192, 3], names: ['boxes', 'scores']});
    assert.equal(found.faces.length, 1);
    assert.deepEqual(found.faces[0].box, [48, 48, 208, 208]); // (96 +- 60) / 0.75

    // On the padded canvas the 256 px image is drawn at scale 192 / (256 (1 + 2 pad)).
    const scale = 192 / (256 * (1 + 2 * c.tightCropPad));
    const offset = (192 - 256 * scale) / 2;
    const side = Math.ceil((c.tightCropMinSide * 256 * scale) / 2) * 2 + 4; // just over the limit, in canvas px
    const second = stub(side, 2);
    found = await new FaceFinder(second, c).find(px);
    assert.equal(second.calls.length, 2);
    const edge = (d) => Math.round(((96 + d - offset) / scale) * 10) / 10;
    assert.deepEqual(found.faces[0].box, [edge(-side / 2), edge(-side / 2), edge(side / 2), edge(side / 2)]);
    assert.ok(found.faces[0].box[2] - found.faces[0].box[0] >= c.tightCropMinSide * 256);

    const small = stub(side - 8, 2); // under tight_crop_min_side of the short side
    found = await new FaceFinder(small, c).find(px);
    assert.deepEqual([found.faces.length, found.too_small], [0, 0]);
    assert.equal(tf.memory().numTensors, 0);
  });
});
