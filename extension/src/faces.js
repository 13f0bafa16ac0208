// Faces first: find the faces in an image with BlazeFace and the square crop of each that the
// detector judges. The JavaScript twin of models/faces.py, step for step; every number comes
// from metadata.faces (converter/faces.py copies it from models/preprocessing.json).
//
//   const finder = await loadFaceFinder({metadata, modelUrl: 'model/face/model.json'});
//   const {faces, too_small, over_limit, width, height} = await finder.find(pixels);
//   for (const face of faces) judge(cropPixels(pixels, face.crop));  // then preprocess.js
//   finder.dispose();
//
// 1. Letterbox: the whole image scaled to fit the model's square input (box average by an
//    integer k, then bilinear with half-pixel centres), centred on black.
// 2. Decode every anchor scoring at least min_score into a box in image pixels, and merge
//    overlapping boxes with MediaPipe's weighted non-maximum suppression.
// 3. No face: look again with the image on a canvas tight_crop_pad larger on every side (a
//    face filling the picture is too big otherwise), keeping boxes of at least
//    tight_crop_min_side of the short side.
// 4. Still no face in a picture larger than tile_side: look tile by tile (tiles()), dropping
//    boxes at a tile side inside the picture, and merge the tiles' boxes as one view.
// 5. Keep faces of side >= min_face_side, largest first, at most max_faces; crop a square of
//    crop.margin x the box side around each, moved inside the image.
// Choosing and initialising the TF.js backend is the caller's job (the extension uses wasm).
import * as tf from '@tensorflow/tfjs-core';
import {loadGraphModel} from '@tensorflow/tfjs-converter';

import {iou, roundHalfUp, tiles} from './geometry.js';
import {boxAverage, pixelChannels} from './preprocess.js';

function need(ok, what) {
  if (!ok) throw new Error(`metadata.faces: ${what}; rewrite it with \`python -m converter.faces --out DIR\``);
}

// metadata.json (or its faces section) -> the numbers models.faces.FaceContract holds.
export function faceContract(metadata) {
  const f = metadata && (metadata.faces || (metadata.detector ? metadata : null));
  need(f && f.detector, 'missing (this metadata.json has no faces section)');
  const d = f.detector;
  const c = {
    inputSize: d.input_size, strides: d.anchor_strides, anchorsPerCell: d.anchors_per_cell,
    scoreClip: d.score_clip, minScore: d.min_score, nmsIou: d.nms_iou,
    tightCropPad: d.tight_crop_pad, tightCropMinSide: d.tight_crop_min_side,
    tileSide: d.tile_side, tileOverlap: d.tile_overlap, tilesPerSide: d.tiles_per_side, tileEdge: d.tile_edge,
    tileFoundSide: d.tile_found_side,
    cropMargin: f.crop && f.crop.margin, minFaceSide: f.min_face_side, maxFaces: f.max_faces,
    outputs: f.model && f.model.outputs,
  };
  need(Number.isInteger(c.inputSize) && c.inputSize > 0, 'detector.input_size must be a positive integer');
  need(Array.isArray(c.strides) && Array.isArray(c.anchorsPerCell) && c.strides.length === c.anchorsPerCell.length,
    'detector.anchor_strides and anchors_per_cell must be lists of one length');
  for (const k of ['scoreClip', 'minScore', 'nmsIou', 'tightCropPad', 'tightCropMinSide', 'tileSide', 'tileOverlap', 'tilesPerSide',
    'tileEdge', 'tileFoundSide', 'cropMargin', 'minFaceSide', 'maxFaces']) {
    need(Number.isFinite(c[k]), `${k} must be a number`);
  }
  need(Array.isArray(d.input_range) && d.input_range[0] === 0 && d.input_range[1] === 255, 'detector.input_range must be [0, 255]');
  need(c.outputs && typeof c.outputs.boxes === 'string' && typeof c.outputs.scores === 'string', 'model.outputs needs boxes and scores');
  return c;
}

export {roundHalfUp, tiles}; // geometry.js holds them: TF-free, for facecheck.js too

// Python's round(v, digits) for Face.as_dict (toFixed rounds the exact binary value too).
const roundTo = (v, digits) => Number(v.toFixed(digits));

// Anchor centres, x and y interleaved, in 0..1 and in the model's output order. float32 as
// in Python (np.float32), so the decoded boxes match to the last bit.
export function anchors(c) {
  const out = [];
  c.strides.forEach((stride, layer) => {
    const n = Math.floor(c.inputSize / stride);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        for (let a = 0; a < c.anchorsPerCell[layer]; a++) out.push(Math.fround((x + 0.5) / n), Math.fround((y + 0.5) / n));
      }
    }
  });
  return Float64Array.from(out);
}

// models.faces.letterbox_geometry: resized size, box-average factor k, and where the image
// lies on the canvas (canvas px = offset + image px * scale).
export function letterboxGeometry(h, w, size, pad) {
  const side = Math.max(h, w) * (1 + 2 * pad);
  const rh = Math.max(1, roundHalfUp((h * size) / side));
  const rw = Math.max(1, roundHalfUp((w * size) / side));
  const k = Math.max(1, Math.min(Math.floor(h / rh), Math.floor(w / rw)));
  const usedH = Math.floor(h / k) * k; // the box average drops the last h % k rows
  const usedW = Math.floor(w / k) * k;
  return {rh, rw, k, offsetX: Math.floor((size - rw) / 2), offsetY: Math.floor((size - rh) / 2), scaleX: rw / usedW, scaleY: rh / usedH};
}

// The image on a black size x size canvas: float32 [1, size, size, 3] in 0..255, and its geometry.
export function letterbox(pixels, size, pad) {
  const {width: w, height: h} = pixels;
  const geo = letterboxGeometry(h, w, size, pad);
  const boxed = boxAverage(pixels, {left: 0, top: 0, width: w, height: h}, geo.k);
  const x = tf.tidy(() => {
    const t = tf.tensor3d(boxed.values, [boxed.height, boxed.width, 3], 'float32');
    const resized = tf.image.resizeBilinear(t, [geo.rh, geo.rw], false, true);
    const placed = tf.pad(resized, [[geo.offsetY, size - geo.rh - geo.offsetY], [geo.offsetX, size - geo.rw - geo.offsetX], [0, 0]]);
    return tf.expandDims(placed, 0);
  });
  return {x, geo};
}

// One view's raw outputs -> [{score, box: [x0, y0, x1, y1], keypoints: [[x, y] x 6]}] in image
// pixels, for the anchors scoring at least min_score (models.faces.decode).
export function decode(rawBoxes, rawScores, geo, c, anchorXY = anchors(c)) {
  const out = [];
  const size = c.inputSize;
  for (let i = 0; i < rawScores.length; i++) {
    const z = Math.min(Math.max(rawScores[i], -c.scoreClip), c.scoreClip);
    const score = 1 / (1 + Math.exp(-z));
    if (!(score >= c.minScore)) continue;
    const ax = anchorXY[2 * i] * size;
    const ay = anchorXY[2 * i + 1] * size;
    const r = rawBoxes.subarray(16 * i, 16 * i + 16);
    const cx = ax + r[0];
    const cy = ay + r[1];
    const hw = r[2] / 2;
    const hh = r[3] / 2;
    const px = (v) => (v - geo.offsetX) / geo.scaleX;
    const py = (v) => (v - geo.offsetY) / geo.scaleY;
    const keypoints = [];
    for (let j = 0; j < 6; j++) keypoints.push([px(ax + r[4 + 2 * j]), py(ay + r[5 + 2 * j])]);
    out.push({score, box: [px(cx - hw), py(cy - hh), px(cx + hw), py(cy + hh)], keypoints});
  }
  return out;
}

// MediaPipe's weighted NMS (models.faces.weighted_nms): the best remaining box takes every box
// overlapping it by more than iouThreshold and becomes their score-weighted average; its score
// stays the best one's. Ties keep index order (Array sort is stable).
export function weightedNms(candidates, iouThreshold) {
  let order = candidates.map((_, i) => i).sort((a, b) => candidates[b].score - candidates[a].score);
  const out = [];
  while (order.length) {
    const top = candidates[order[0]];
    const group = order.filter((i) => i === order[0] || iou(top.box, candidates[i].box) > iouThreshold);
    let wsum = 0;
    const box = [0, 0, 0, 0];
    const keypoints = top.keypoints.map(() => [0, 0]);
    for (const i of group) {
      const {score, box: b, keypoints: k} = candidates[i];
      wsum += score;
      for (let j = 0; j < 4; j++) box[j] += score * b[j];
      k.forEach(([x, y], j) => { keypoints[j][0] += score * x; keypoints[j][1] += score * y; });
    }
    out.push({score: top.score, box: box.map((v) => v / wsum), keypoints: keypoints.map(([x, y]) => [x / wsum, y / wsum])});
    const taken = new Set(group);
    order = order.filter((i) => !taken.has(i));
  }
  return out;
}


// Whether a box (tile px) stays clear of the tile's sides inside the picture (models.faces.inside_tile).
export function insideTile(box, [x, y, side], height, width, edge) {
  return !((x > 0 && box[0] < edge) || (y > 0 && box[1] < edge) ||
    (x + side < width && box[2] > side - edge) || (y + side < height && box[3] > side - edge));
}

// [x, y, side] of the square judged for a face box (models.faces.crop_square).
export function cropSquare(box, height, width, margin) {
  const [x0, y0, x1, y1] = box;
  const side = Math.max(Math.min(roundHalfUp(margin * Math.max(x1 - x0, y1 - y0)), height, width), 1);
  const x = Math.min(Math.max(roundHalfUp((x0 + x1) / 2 - side / 2), 0), width - side);
  const y = Math.min(Math.max(roundHalfUp((y0 + y1) / 2 - side / 2), 0), height - side);
  return [x, y, side];
}

// Merged boxes -> the faces judged, as models.faces.select and Face.as_dict give them.
export function select(merged, height, width, c) {
  const faces = [];
  let tooSmall = 0;
  for (const {score, box: b, keypoints} of merged) {
    const box = [Math.max(b[0], 0), Math.max(b[1], 0), Math.min(b[2], width), Math.min(b[3], height)];
    if (box[2] <= box[0] || box[3] <= box[1]) continue;
    const side = Math.max(box[2] - box[0], box[3] - box[1]);
    if (side < c.minFaceSide) {
      tooSmall += 1;
      continue;
    }
    faces.push({side, box, score, keypoints, crop: cropSquare(box, height, width, c.cropMargin)});
  }
  faces.sort((a, b) => b.side - a.side || a.box[0] - b.box[0] || a.box[1] - b.box[1]);
  return {
    faces: faces.slice(0, c.maxFaces).map((f) => ({
      box: f.box.map((v) => roundTo(v, 1)),
      detector_score: roundTo(f.score, 4),
      crop: f.crop,
      keypoints: f.keypoints.map(([x, y]) => [roundTo(x, 1), roundTo(y, 1)]),
    })),
    too_small: tooSmall,
    over_limit: Math.max(0, faces.length - c.maxFaces),
    width,
    height,
  };
}

// The square crop [x, y, side] of the pixels, RGBA or RGB kept, for the classifier's preprocess.
export function cropPixels(pixels, crop) {
  const ch = pixelChannels(pixels);
  const [x, y, side] = crop;
  const {data, width, height} = pixels;
  if (![x, y, side].every(Number.isInteger) || side < 1 || x < 0 || y < 0 || x + side > width || y + side > height) {
    throw new Error(`crop ${JSON.stringify(crop)} does not lie inside the ${width}x${height} image`);
  }
  const out = new (data instanceof Uint8ClampedArray ? Uint8ClampedArray : Uint8Array)(side * side * ch);
  const row = side * ch;
  for (let r = 0; r < side; r++) {
    const from = ((y + r) * width + x) * ch;
    out.set(data.subarray(from, from + row), r * row);
  }
  return {data: out, width: side, height: side};
}

export class FaceFinder {
  constructor(model, contract) {
    this.model = model;
    this.contract = contract;
    this.anchorXY = anchors(contract);
  }

  // {score, box, keypoints} of one view with canvas padding `pad`, before merging.
  async decoded(pixels, pad) {
    const c = this.contract;
    const {x, geo} = letterbox(pixels, c.inputSize, pad);
    let outs;
    try {
      outs = this.model.execute(x, [c.outputs.boxes, c.outputs.scores]);
      const [boxes, scores] = await Promise.all(outs.map((t) => t.data()));
      return decode(boxes, scores, geo, c, this.anchorXY);
    } finally {
      x.dispose();
      if (outs) outs.forEach((t) => t.dispose());
    }
  }

  // Merged {score, box, keypoints} of one view with canvas padding `pad`.
  async candidates(pixels, pad) {
    return weightedNms(await this.decoded(pixels, pad), this.contract.nmsIou);
  }

  // Merged {score, box, keypoints} of the picture seen tile by tile (models.faces FaceFinder._tiled).
  async tiled(pixels) {
    const c = this.contract;
    const {width, height} = pixels;
    const all = [];
    for (const tile of tiles(height, width, c)) {
      const [tx, ty] = tile;
      for (const {score, box, keypoints} of await this.decoded(cropPixels(pixels, tile), 0)) {
        if (!insideTile(box, tile, height, width, c.tileEdge)) continue;
        all.push({score, box: [box[0] + tx, box[1] + ty, box[2] + tx, box[3] + ty], keypoints: keypoints.map(([kx, ky]) => [kx + tx, ky + ty])});
      }
    }
    return weightedNms(all, c.nmsIou);
  }

  // pixels {data, width, height} (RGBA or RGB) -> {faces, too_small, over_limit, width, height}.
  async find(pixels) {
    pixelChannels(pixels);
    const c = this.contract;
    const {width, height} = pixels;
    let merged = await this.candidates(pixels, 0);
    if (!merged.length) {
      const short = Math.min(height, width);
      merged = (await this.candidates(pixels, c.tightCropPad))
        .filter(({box: b}) => Math.max(b[2] - b[0], b[3] - b[1]) >= c.tightCropMinSide * short);
    }
    if (!merged.length) merged = await this.tiled(pixels);
    return select(merged, height, width, c);
  }

  dispose() {
    if (this.model) this.model.dispose();
    this.model = null;
  }
}

// metadata: the parsed metadata.json (its faces section is used). modelUrl: the URL of
// face/model.json, or a tf.io.IOHandler. warmup runs once on a blank input, so a missing
// kernel fails here rather than on the first image.
export async function loadFaceFinder({metadata, modelUrl, fetchFunc, warmup = true} = {}) {
  const c = faceContract(metadata);
  if (!modelUrl) throw new Error('loadFaceFinder() needs modelUrl (the URL of face/model.json)');
  let model;
  try {
    model = await loadGraphModel(modelUrl, fetchFunc ? {fetchFunc} : {});
  } catch (e) {
    throw new Error(`cannot load the face model from ${typeof modelUrl === 'string' ? modelUrl : 'the given handler'}: ${e.message}`);
  }
  const shape = model.inputs[0] && model.inputs[0].shape;
  if (!shape || shape[1] !== c.inputSize || shape[2] !== c.inputSize || shape[3] !== 3) {
    model.dispose();
    throw new Error(`the face model takes input ${JSON.stringify(shape)}, but metadata.faces says ${c.inputSize}x${c.inputSize}x3`);
  }
  if (warmup) {
    try {
      tf.tidy(() => model.execute(tf.zeros([1, c.inputSize, c.inputSize, 3]), [c.outputs.boxes, c.outputs.scores]));
    } catch (e) {
      model.dispose();
      throw new Error(`the face model cannot run on the '${tf.getBackend()}' backend: ${e.message}`);
    }
  }
  return new FaceFinder(model, c);
}
