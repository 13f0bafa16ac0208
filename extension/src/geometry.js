// Where things go on screen: face boxes over an image as the page draws it, and the overlay
// beside its image. Plain numbers in viewport pixels, so the tests can check them in Node.

// Intersection over union of two [x0, y0, x1, y1] boxes (models.faces.iou).
export function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

// floor(v + 0.5): models.faces.round_half_up.
export const roundHalfUp = (v) => Math.floor(v + 0.5);

// The square tiles [x, y, side] of a large picture's third look (models.faces.tiles); c: the
// face contract (faces.js faceContract). None for a picture no longer than tile_side.
export function tiles(height, width, c) {
  const long = Math.max(height, width);
  const short = Math.min(height, width);
  if (c.tileSide <= 0 || long <= c.tileSide) return [];
  const step = 1 - c.tileOverlap;
  const side = Math.min(Math.max(c.tileSide, Math.ceil(long / (1 + (c.tilesPerSide - 1) * step))), short);
  const starts = (length) => {
    if (length <= side) return [0];
    const n = Math.ceil((length - side) / (side * step)) + 1;
    return Array.from({length: n}, (_, i) => roundHalfUp((i * (length - side)) / (n - 1)));
  };
  const out = [];
  for (const y of starts(height)) for (const x of starts(width)) out.push([x, y, side]);
  return out;
}

// models.faces.smallest_face_found: about the smallest face side (px) the search finds
// reliably in a picture this large, or null for a picture the tiles never look at
// (models.inference.may_miss says nothing then).
export function smallestFaceFound(height, width, c) {
  const t = tiles(height, width, c);
  if (!t.length) return null;
  return Math.max(c.minFaceSide, Math.ceil((c.tileFoundSide * t[0][2]) / c.tileSide));
}

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), Math.max(lo, hi));

// One value of object-position ("50%", "10px", "left", ...) -> offset within `free` px.
function positionOffset(value, free) {
  const v = String(value || '50%').trim();
  const words = {left: 0, top: 0, center: 0.5, right: 1, bottom: 1};
  if (v in words) return words[v] * free;
  if (v.endsWith('%')) return (parseFloat(v) / 100) * free;
  if (v.endsWith('px')) return parseFloat(v);
  return free / 2;
}

// The rectangle the picture is drawn in, for an element whose content box is `box`: its
// object-fit and object-position, the file's aspect (`file`: width and height in pixels)
// and its natural size in CSS pixels (`natural`, for object-fit none). May exceed the box
// (cover, none): the caller clips.
export function drawnRect(box, file, {fit = 'fill', position = '50% 50%', natural = file} = {}) {
  let width = box.width;
  let height = box.height;
  const contain = Math.min(box.width / file.width, box.height / file.height);
  if (fit === 'contain' || fit === 'cover') {
    const s = fit === 'cover' ? Math.max(box.width / file.width, box.height / file.height) : contain;
    width = file.width * s;
    height = file.height * s;
  } else if (fit === 'none' || fit === 'scale-down') {
    width = natural.width;
    height = natural.height;
    if (fit === 'scale-down' && natural.width * natural.height > file.width * contain * file.height * contain) {
      width = file.width * contain;
      height = file.height * contain;
    }
  }
  const [px, py] = String(position).split(/\s+/);
  return {
    left: box.left + positionOffset(px, box.width - width),
    top: box.top + positionOffset(py ?? '50%', box.height - height),
    width,
    height,
  };
}

// A face box in file pixels -> the same box on screen, within `drawn` (from drawnRect).
export function faceRect(box, file, drawn) {
  const sx = drawn.width / file.width;
  const sy = drawn.height / file.height;
  return {left: drawn.left + box[0] * sx, top: drawn.top + box[1] * sy, width: (box[2] - box[0]) * sx, height: (box[3] - box[1]) * sy};
}

// The overlay's width: about the image's, within bounds, and never wider than the window.
export function panelWidth(imageWidth, viewportWidth, {min = 240, max = 320, margin = 8} = {}) {
  return Math.max(160, Math.min(clamp(imageWidth, min, max), viewportWidth - 2 * margin));
}

function overlap(a, b) {
  const w = Math.min(a.left + a.width, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.top + a.height, b.bottom) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

// Where the overlay goes for an image at `image` (a DOMRect-like in the viewport): beside it
// (right, left), below or above it, or on one of its corners, always inside the viewport and
// touching or on its image. Of those, the one that hides least: its own faces (`faces`, their
// boxes on screen) count four times, other pictures (`others`) twice, the rest of its image
// once. Returns {left, top, where}.
export function placePanelRect(image, panel, viewport, {others = [], faces = []} = {}, margin = 8) {
  const {width: w, height: h} = panel;
  const maxLeft = viewport.width - w - margin;
  const maxTop = viewport.height - h - margin;
  // Beside it, level with its visible part.
  const levelTop = clamp(clamp(image.top, margin, maxTop), image.top - h + 24, image.bottom - 24);
  const alignedLeft = clamp(image.left, margin, maxLeft);
  const onLeft = clamp(image.left + margin, margin, maxLeft);
  const onRight = clamp(image.right - margin - w, margin, maxLeft);
  const onBottom = Math.min(image.bottom, viewport.height - margin) - margin - h;
  const onTop = Math.max(image.top, margin) + margin;
  const candidates = [
    {where: 'right', left: image.right + margin, top: levelTop},
    {where: 'left', left: image.left - margin - w, top: levelTop},
    {where: 'below', left: alignedLeft, top: image.bottom + margin},
    {where: 'above', left: alignedLeft, top: image.top - margin - h},
    {where: 'on-bottom-left', left: onLeft, top: onBottom},
    {where: 'on-bottom-right', left: onRight, top: onBottom},
    {where: 'on-top-left', left: onLeft, top: onTop},
    {where: 'on-top-right', left: onRight, top: onTop},
  ];
  const fits = (c) => c.left >= margin - 0.5 && c.top >= margin - 0.5 && c.left + w <= viewport.width - margin + 0.5 && c.top + h <= viewport.height - margin + 0.5;
  const cost = (c) => {
    const r = {left: c.left, top: c.top, width: w, height: h};
    const sum = (rects) => rects.reduce((n, o) => n + overlap(r, o), 0);
    return 4 * sum(faces) + 2 * sum(others) + overlap(r, image);
  };
  let best = null;
  for (const c of candidates.filter(fits)) {
    const k = cost(c);
    if (!best || k < best.cost - 0.5) best = {...c, cost: k};
  }
  if (best) return {left: best.left, top: best.top, where: best.where};
  // A window too small for any of them: on the image, as far inside the window as it goes.
  return {left: onLeft, top: clamp(image.top + margin, margin, maxTop), where: 'clamped'};
}
