// Test helper: runs pieces of the shared JavaScript (extension/src) under Node for
// tests/converter/, printing JSON on stdout.
//
//   node tests/converter/js_probe.mjs inputs SIZE OUT.f32 IMAGE...   preprocess.js output, float32
//   node tests/converter/js_probe.mjs verdicts < cases.json          verdict.js on [{p, calibration}]
//   node tests/converter/js_probe.mjs load MODEL_DIR < metadata.json detector.js load() with that metadata
//   node tests/converter/js_probe.mjs faces < steps.json               faces.js steps (geometry, decode, NMS, select)
//   node tests/converter/js_probe.mjs letterbox SIZE PAD OUT.f32 IMAGE... faces.js letterbox canvases, float32
import {readFile, writeFile} from 'node:fs/promises';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import {decode, folderHandler} from '../../converter/parity.mjs';
import {load} from '../../extension/src/detector.js';
import {cropSquare, decode as decodeFaces, faceContract, letterbox, letterboxGeometry, select, weightedNms} from '../../extension/src/faces.js';
import {preprocess} from '../../extension/src/preprocess.js';
import {verdict} from '../../extension/src/verdict.js';

const SPEC = {color: 'RGB', crop: 'center-square', resize: 'box-then-bilinear', input_dtype: 'float32', input_range: [0, 255]};

async function stdinJson() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  await tf.setBackend('wasm');
  if (mode === 'inputs') {
    const [size, out, ...images] = rest;
    const parts = [];
    for (const path of images) {
      const x = preprocess(decode(await readFile(path)), {...SPEC, input_size: Number(size)});
      parts.push(Buffer.from((await x.data()).buffer));
      x.dispose();
    }
    await writeFile(out, Buffer.concat(parts));
    return {images: images.length, backend: tf.getBackend()};
  }
  if (mode === 'verdicts') {
    const cases = await stdinJson();
    return cases.map(({p, calibration}) => verdict(p, calibration));
  }
  if (mode === 'load') {
    const metadata = await stdinJson();
    try {
      const detector = await load({modelUrl: folderHandler(rest[0]), metadata});
      detector.dispose();
      return {loaded: true};
    } catch (e) {
      return {loaded: false, error: e.message};
    }
  }
  if (mode === 'faces') {
    const {metadata, geometry, crops, raw, nms, selects} = await stdinJson();
    const c = faceContract(metadata);
    return {
      geometry: geometry.map(([h, w, pad]) => letterboxGeometry(h, w, c.inputSize, pad)),
      crops: crops.map(([box, h, w]) => cropSquare(box, h, w, c.cropMargin)),
      decoded: raw.map(({boxes, scores, geo}) => decodeFaces(Float32Array.from(boxes), Float32Array.from(scores), geo, c)),
      nms: nms.map((candidates) => weightedNms(candidates, c.nmsIou)),
      selected: selects.map(({merged, h, w}) => select(merged, h, w, c)),
    };
  }
  if (mode === 'letterbox') {
    const [size, pad, out, ...images] = rest;
    const parts = [];
    for (const path of images) {
      const {x} = letterbox(decode(await readFile(path)), Number(size), Number(pad));
      parts.push(Buffer.from((await x.data()).buffer));
      x.dispose();
    }
    await writeFile(out, Buffer.concat(parts));
    return {images: images.length};
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + '\n'),
  (e) => {
    process.stdout.write(JSON.stringify({error: e.message}) + '\n');
    process.exitCode = 2;
  },
);
