// The on-device detector: a converted graph model plus its metadata.json, behind a small API.
//
//   import {load} from './detector.js';
//   const detector = await load({metadataUrl: 'model/metadata.json'});  // model.json beside it
//   const result = await detector.check(imageData);  // {verdict, confidence, p_fake, p_fake_raw}
//   const results = await detector.checkBatch([a, b]);
//   detector.dispose();
//
// Choosing and initialising the TF.js backend is the caller's job (the extension uses wasm).
import * as tf from '@tensorflow/tfjs-core';
import {loadGraphModel} from '@tensorflow/tfjs-converter';

import {checkSpec, preprocessBatch} from './preprocess.js';
import {checkCalibration, verdict} from './verdict.js';

export const METADATA_FORMAT = 'unmask-detector-tfjs';
export const METADATA_VERSION = 1;

// Throws unless `metadata` is a metadata.json this module understands.
export function checkMetadata(metadata) {
  if (!metadata || metadata.format !== METADATA_FORMAT) {
    throw new Error(`not an Unmask detector metadata.json (format ${JSON.stringify(metadata && metadata.format)}); convert the model with \`unmask convert\``);
  }
  if (metadata.format_version !== METADATA_VERSION) {
    throw new Error(`metadata.json format_version ${metadata.format_version} is not ${METADATA_VERSION}; reconvert the model with this version of \`unmask convert\``);
  }
  checkSpec(metadata.preprocessing);
  checkCalibration(metadata.calibration);
  if (!metadata.model || typeof metadata.model.output !== 'string') throw new Error('metadata.json has no model.output node name');
  return metadata;
}

async function fetchJson(url, fetchFunc) {
  let response;
  try {
    response = await fetchFunc(url);
  } catch (e) {
    throw new Error(`cannot fetch ${url}: ${e.message}`);
  }
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  try {
    return await response.json();
  } catch (e) {
    throw new Error(`${url} is not valid JSON: ${e.message}`);
  }
}

// A missing kernel surfaces as TF.js's own message; say which kernel and which backend.
function explainKernelError(e) {
  const m = /Kernel '([^']+)' not registered for backend '([^']+)'/.exec(e && e.message);
  if (!m) return e;
  const err = new Error(`the model needs the TensorFlow.js kernel '${m[1]}', which the '${m[2]}' backend does not provide`);
  err.kernel = m[1];
  err.backend = m[2];
  return err;
}

export class Detector {
  constructor(model, metadata) {
    this.model = model;
    this.metadata = metadata;
    this.inputSize = metadata.preprocessing.input_size;
  }

  // Raw p(fake) for each image, as a Float32Array.
  async scores(pixelsList) {
    const x = preprocessBatch(pixelsList, this.metadata.preprocessing);
    try {
      return await this.run(x);
    } finally {
      x.dispose();
    }
  }

  // Raw p(fake) for a prepared input batch [n, size, size, 3] (the caller disposes it).
  async run(x) {
    let y;
    try {
      y = this.model.execute(x, this.metadata.model.output);
      return await y.data();
    } catch (e) {
      throw explainKernelError(e);
    } finally {
      if (y) y.dispose();
    }
  }

  async checkBatch(pixelsList) {
    const p = await this.scores(pixelsList);
    return Array.from(p, (v) => verdict(v, this.metadata.calibration));
  }

  async check(pixels) {
    return (await this.checkBatch([pixels]))[0];
  }

  dispose() {
    if (this.model) this.model.dispose();
    this.model = null;
  }
}

// modelUrl: URL of model.json, or a tf.io.IOHandler (defaults to model.file beside metadataUrl).
// metadata: the parsed metadata.json, or metadataUrl to fetch it.
// warmup: run once on a blank image, so a missing kernel fails here rather than on first use.
export async function load({modelUrl, metadataUrl, metadata, fetchFunc, warmup = true} = {}) {
  const fetcher = fetchFunc || ((...args) => fetch(...args));
  if (!metadata) {
    if (!metadataUrl) throw new Error('load() needs metadata or metadataUrl');
    metadata = await fetchJson(metadataUrl, fetcher);
  }
  checkMetadata(metadata);
  if (!modelUrl) {
    if (!metadataUrl) throw new Error('load() needs modelUrl when metadata is given directly');
    modelUrl = new URL(metadata.model.file || 'model.json', new URL(metadataUrl, globalThis.location && globalThis.location.href)).href;
  }
  let model;
  try {
    model = await loadGraphModel(modelUrl, fetchFunc ? {fetchFunc} : {});
  } catch (e) {
    throw new Error(`cannot load the model from ${typeof modelUrl === 'string' ? modelUrl : 'the given handler'}: ${e.message}`);
  }
  const shape = model.inputs[0] && model.inputs[0].shape;
  const size = metadata.preprocessing.input_size;
  if (!shape || shape[1] !== size || shape[2] !== size || shape[3] !== 3) {
    model.dispose();
    throw new Error(`the model takes input ${JSON.stringify(shape)}, but metadata.json says ${size}x${size}x3; they come from different conversions`);
  }
  const detector = new Detector(model, metadata);
  if (warmup) {
    try {
      tf.tidy(() => model.execute(tf.zeros([1, size, size, 3]), metadata.model.output));
    } catch (e) {
      detector.dispose();
      throw explainKernelError(e);
    }
  }
  return detector;
}
