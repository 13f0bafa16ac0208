// Faces under Node: extension/src/faces.js on the wasm backend, with the files decoded as
// converter/parity.mjs decodes them (libjpeg-turbo wasm, pngjs). converter/faces.py compares
// what it prints with models/faces.py.
//
//   node converter/faces_parity.mjs --root DIR [--backend wasm|cpu] [--list FILE] [IMAGE ...]
//   node converter/faces_parity.mjs --root DIR --kernels   # which kernels one view uses
//
// DIR holds metadata.json with a "faces" section and the face model it names (face/).
// Prints one JSON object on stdout: {backend, tfjs, results: [{path, width, height, faces,
// too_small, over_limit, ms} | {path, error}]}; each face also has crop_mean, the mean RGB of
// cropPixels(pixels, crop). Exit status 2 when the model cannot be used at all.
import {readFile} from 'node:fs/promises';
import {join, resolve} from 'node:path';
import {parseArgs} from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import {cropPixels, faceContract, loadFaceFinder} from '../extension/src/faces.js';
import {decode, folderHandler, runAsScript, setBackend, usedKernels} from './parity.mjs';

function meanRgb({data, width, height}) {
  const ch = data.length / (width * height);
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += ch) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
  return sum.map((s) => Math.round((100 * s) / (width * height)) / 100);
}

async function main() {
  const {values, positionals} = parseArgs({
    allowPositionals: true,
    options: {root: {type: 'string'}, backend: {type: 'string', default: 'wasm'}, list: {type: 'string'}, kernels: {type: 'boolean', default: false}},
  });
  if (!values.root) throw new Error('--root DIR is required');
  const root = resolve(values.root);
  await setBackend(values.backend);
  const out = {backend: tf.getBackend(), tfjs: tf.version_core, root};
  const metadata = JSON.parse(await readFile(join(root, 'metadata.json'), 'utf8'));
  const c = faceContract(metadata);
  const modelDir = join(root, metadata.faces.model.file, '..');
  const finder = await loadFaceFinder({metadata, modelUrl: folderHandler(modelDir), warmup: !values.kernels});
  try {
    if (values.kernels) {
      const x = tf.zeros([1, c.inputSize, c.inputSize, 3]);
      try {
        return {...out, ...(await usedKernels(() => finder.model.execute(x, [c.outputs.boxes, c.outputs.scores])))};
      } finally {
        x.dispose();
      }
    }
    const paths = [...positionals];
    if (values.list) paths.push(...(await readFile(values.list, 'utf8')).split('\n').filter(Boolean));
    out.results = [];
    for (const path of paths) {
      try {
        const pixels = decode(await readFile(path));
        const started = performance.now();
        const found = await finder.find(pixels);
        const ms = Math.round((performance.now() - started) * 10) / 10;
        found.faces.forEach((f) => { f.crop_mean = meanRgb(cropPixels(pixels, f.crop)); });
        out.results.push({path, ...found, ms});
      } catch (e) {
        out.results.push({path, error: e.message});
      }
    }
    return out;
  } finally {
    finder.dispose();
  }
}

runAsScript(import.meta.url, main);
