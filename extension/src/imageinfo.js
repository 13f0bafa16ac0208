// What an image file is, read from its first bytes before anything decodes it: the format
// (by magic bytes, not by URL or Content-Type) and the pixel size. This is how a
// decompression bomb is refused before it can take the browser's memory.
import {tooSmall} from './wording.js';

// The formats models.preprocessing.load_image accepts in Python.
export const FORMATS = Object.freeze(['JPEG', 'PNG', 'WebP', 'GIF', 'BMP']);

export const LIMITS = Object.freeze({
  // The server's default upload limit, so an image checked here can also go there.
  maxBytes: 20 * 1024 * 1024,
  // models.preprocessing.DEFAULT_MAX_PIXELS.
  maxPixels: 50_000_000,
  // The smallest side is not here: it is the model's min_face_side (metadata.json "faces"),
  // the one limit the device, the server and the CLI share.
});

export class ImageProblem extends Error {
  // code: too_large | too_many_pixels | too_small | unsupported | corrupt | truncated | empty
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const u16be = (b, i) => (b[i] << 8) | b[i + 1];
const u16le = (b, i) => b[i] | (b[i + 1] << 8);
const u24le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
const u32be = (b, i) => ((b[i] << 24) >>> 0) + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
const i32le = (b, i) => b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
const ascii = (b, i, n) => String.fromCharCode(...b.subarray(i, i + n));

function jpegSize(b) {
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return {height: u16be(b, i + 5), width: u16be(b, i + 7)};
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image / start of scan before a frame
    i += 2 + u16be(b, i + 2);
  }
  return null;
}

function webpSize(b) {
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ' && b.length >= 30) return {width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff};
  if (chunk === 'VP8L' && b.length >= 25) {
    const bits = (b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24)) >>> 0;
    return {width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1};
  }
  if (chunk === 'VP8X' && b.length >= 30) return {width: u24le(b, 24) + 1, height: u24le(b, 27) + 1};
  return null;
}

// {format, width, height} of the bytes, or an ImageProblem.
export function sniff(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (b.length === 0) return new ImageProblem('empty', 'the image file is empty');
  let format = null;
  let size = null;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    format = 'JPEG';
    size = jpegSize(b);
  } else if (b.length >= 24 && u32be(b, 0) === 0x89504e47 && u32be(b, 4) === 0x0d0a1a0a) {
    format = 'PNG';
    if (ascii(b, 12, 4) === 'IHDR') size = {width: u32be(b, 16), height: u32be(b, 20)};
  } else if (b.length >= 10 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) {
    format = 'GIF';
    size = {width: u16le(b, 6), height: u16le(b, 8)};
  } else if (b.length >= 16 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') {
    format = 'WebP';
    size = webpSize(b);
  } else if (b.length >= 26 && ascii(b, 0, 2) === 'BM') {
    format = 'BMP';
    size = {width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22))};
  }
  if (!format) return new ImageProblem('unsupported', `not an image format Unmask reads (${describe(b)}); it checks ${FORMATS.join(', ')}`);
  if (!size || !size.width || !size.height) return new ImageProblem('corrupt', `the ${format} file is damaged: its header gives no image size`);
  return {format, ...size};
}

// A guess at what an unsupported file is, for the message.
function describe(b) {
  const head = ascii(b, 0, Math.min(b.length, 64)).trimStart().toLowerCase();
  if (b.length >= 12 && ascii(b, 4, 4) === 'ftyp') return `${ascii(b, 8, 4).trim()} (AVIF/HEIC or video)`;
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('svg'))) return 'an SVG drawing';
  if (head.startsWith('<')) return 'a web page or XML, not an image';
  return 'unknown bytes';
}

function lastIndexOf(b, seq, from = b.length - seq.length) {
  outer: for (let i = Math.min(from, b.length - seq.length); i >= 0; i--) {
    for (let j = 0; j < seq.length; j++) if (b[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

// Browsers draw a cut-off JPEG or PNG with a grey or empty part; Python (Pillow) refuses it.
// Refuse it here too, so both give the same answer, and say what is wrong.
function truncated(b, format) {
  if (format === 'JPEG') {
    const scan = lastIndexOf(b, [0xff, 0xda]); // start of the (last) scan
    return scan < 0 || lastIndexOf(b, [0xff, 0xd9]) < scan; // no scan, or no end after it
  }
  if (format === 'PNG') return lastIndexOf(b, [0x49, 0x45, 0x4e, 0x44]) < 0; // IEND
  return false;
}

// Sniff and apply the limits: {format, width, height} or throw an ImageProblem.
// limits: {minSide} (the contract's min_face_side) and, optionally, maxBytes and maxPixels.
export function checkImageBytes(bytes, options = {}) {
  const limits = {...LIMITS, ...options};
  const n = bytes.byteLength ?? bytes.length;
  if (n > limits.maxBytes) {
    throw new ImageProblem('too_large', `the image is ${mb(n)}, over the ${mb(limits.maxBytes)} Unmask checks; save a smaller copy and check that`);
  }
  const info = sniff(bytes);
  if (info instanceof ImageProblem) throw info;
  if (truncated(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes), info.format)) {
    throw new ImageProblem('truncated', `the ${info.format} file is cut off (an incomplete download?); its end is missing`);
  }
  const pixels = info.width * info.height;
  if (pixels > limits.maxPixels) {
    throw new ImageProblem('too_many_pixels', `the image is ${info.width}x${info.height} = ${pixels.toLocaleString('en')} pixels, over the limit of ${limits.maxPixels.toLocaleString('en')} (it may be a decompression bomb); it was not decoded`);
  }
  if (limits.minSide && Math.min(info.width, info.height) < limits.minSide) {
    throw new ImageProblem('too_small', `The image is ${info.width}x${info.height} px. ${tooSmall(limits.minSide)}`);
  }
  return info;
}

function mb(n) {
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}
