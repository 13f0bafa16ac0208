// Frames from a <video> as it plays, for the video check (videocheck.js). Never the file: each
// frame is drawn from what the page is showing. A frame whose canvas is readable is drawn from
// the element; a cross-origin video without CORS taints the canvas, and then the worker
// captures the visible tab (allowed by activeTab after the right-click) and the video's
// rectangle is cut out of it. Every way a video can fail becomes a VideoProblem with a code
// from models/wording.json's video.problems and a sentence a person can act on.
//
//   const sampler = new VideoSampler(video, {frames: 16, windowS: 8, capture});
//   for await (const frame of sampler.take(signal)) ...   // {data (base64 JPEG), time_s, width, height, via}
import {drawnRect} from './geometry.js';
import {VIDEO_RULES} from './videotracks.js';
import {wording} from './wording.js';

const SAMPLING = VIDEO_RULES.sampling;
const BLACK_MEAN = 6; // 0..255: a frame this dark everywhere reads as black
const BLACK_MAX = 24;
const CAPTURE_GAP_MS = 550; // Chrome allows two tab captures a second

export class VideoProblem extends Error {
  constructor(code, vars = {}) {
    const template = wording.video.problems[code] || wording.video.problems.unreadable;
    super(template.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)));
    this.code = code;
  }
}

// Settings from the user (options) within the bounds of models/video.json.
export function samplingPlan({frames = SAMPLING.frames, windowS = SAMPLING.window_s} = {}) {
  const clamp = (v, lo, hi, d) => (Number.isFinite(v) ? Math.min(Math.max(v, lo), hi) : d);
  return {frames: Math.round(clamp(frames, SAMPLING.min_frames, SAMPLING.max_frames, SAMPLING.frames)),
    windowS: clamp(windowS, SAMPLING.min_window_s, SAMPLING.max_window_s, SAMPLING.window_s)};
}

// What stops a check before it starts; null when the video can be sampled now. Notes that do
// not stop it (a live stream, a 4K frame scaled down) come back from notes().
export function problemBefore(video) {
  if (!video || !video.isConnected) return new VideoProblem('removed');
  if (video.readyState < 2 || !video.videoWidth || !video.videoHeight) return new VideoProblem('not_loaded');
  if (video.ended) return new VideoProblem('paused');
  if (video.paused) return new VideoProblem('paused');
  const d = video.duration;
  if (Number.isFinite(d) && d < SAMPLING.min_window_s) return new VideoProblem('too_short', {seconds: SAMPLING.min_window_s});
  return null;
}

export function notes(video) {
  const out = [];
  if (video.duration === Infinity) out.push({code: 'live', text: new VideoProblem('live').message});
  if (Math.max(video.videoWidth, video.videoHeight) > SAMPLING.note_above_side) {
    out.push({code: 'too_large', text: new VideoProblem('too_large', {width: video.videoWidth, height: video.videoHeight, max_side: SAMPLING.max_side}).message});
  }
  return out;
}

// The frame size: the video's own, scaled so its longer side is at most max_side.
function frameSize(video) {
  const s = Math.min(1, SAMPLING.max_side / Math.max(video.videoWidth, video.videoHeight));
  return {width: Math.max(1, Math.round(video.videoWidth * s)), height: Math.max(1, Math.round(video.videoHeight * s))};
}

// Where the page draws the video's picture, in viewport pixels (a <video> letterboxes by
// default: 'fill' is drawn as 'contain').
export function videoRect(video) {
  const r = video.getBoundingClientRect();
  const cs = getComputedStyle(video);
  const px = (v) => parseFloat(v) || 0;
  const box = {left: r.left + px(cs.borderLeftWidth) + px(cs.paddingLeft), top: r.top + px(cs.borderTopWidth) + px(cs.paddingTop),
    width: video.clientWidth - px(cs.paddingLeft) - px(cs.paddingRight), height: video.clientHeight - px(cs.paddingTop) - px(cs.paddingBottom)};
  const fit = cs.objectFit === 'fill' ? 'contain' : cs.objectFit;
  return {box, drawn: drawnRect(box, {width: video.videoWidth, height: video.videoHeight}, {fit, position: cs.objectPosition})};
}

function isBlack(ctx, width, height) {
  const w = Math.min(32, width);
  const h = Math.min(32, height);
  const small = new OffscreenCanvas(w, h);
  const sctx = small.getContext('2d', {willReadFrequently: true});
  sctx.drawImage(ctx.canvas, 0, 0, width, height, 0, 0, w, h);
  const d = sctx.getImageData(0, 0, w, h).data;
  let sum = 0;
  let max = 0;
  for (let i = 0; i < d.length; i += 4) {
    const y = (d[i] + d[i + 1] + d[i + 2]) / 3;
    sum += y;
    if (y > max) max = y;
  }
  return sum / (w * h) < BLACK_MEAN && max < BLACK_MAX;
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
});

async function loadImage(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

export class VideoSampler {
  // capture(): resolves a data: URL of the visible tab (the worker's captureVisibleTab).
  constructor(video, {frames, windowS, capture, hide = () => () => {}}) {
    Object.assign(this, samplingPlan({frames, windowS}));
    this.video = video;
    this.capture = capture;
    this.hide = hide; // hides the extension's own overlay while the tab is captured; returns undo
    this.src = video.currentSrc;
    this.tainted = false;
    this.canvas = document.createElement('canvas');
    this.changed = false;
    this.onChange = () => (this.changed = true);
    video.addEventListener('emptied', this.onChange);
    video.addEventListener('loadstart', this.onChange);
  }

  stop() {
    this.video.removeEventListener('emptied', this.onChange);
    this.video.removeEventListener('loadstart', this.onChange);
  }

  // Throws the VideoProblem that stops sampling now, if any.
  checkStill(signal) {
    if (signal && signal.aborted) throw new VideoProblem('closed');
    if (!this.video.isConnected) throw new VideoProblem('removed');
    if (this.changed || this.video.currentSrc !== this.src) throw new VideoProblem('source_changed');
  }

  async grabFromElement() {
    const {width, height} = frameSize(this.video);
    this.canvas.width = width;
    this.canvas.height = height;
    const ctx = this.canvas.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(this.video, 0, 0, width, height);
    try {
      ctx.getImageData(0, 0, 1, 1); // throws on a tainted canvas (cross-origin without CORS)
    } catch (e) {
      if (e && e.name === 'SecurityError') return null;
      throw e;
    }
    return {ctx, width, height, view: [0, 0, 1, 1]};
  }

  // The visible tab, then the part of it where the video's picture is drawn (what is on screen
  // of it: `view` says which part of the picture, as fractions).
  async grabFromTab() {
    const {drawn} = videoRect(this.video);
    const vw = document.documentElement.clientWidth || innerWidth;
    const vh = document.documentElement.clientHeight || innerHeight;
    const x0 = Math.max(0, drawn.left);
    const y0 = Math.max(0, drawn.top);
    const x1 = Math.min(vw, drawn.left + drawn.width);
    const y1 = Math.min(vh, drawn.top + drawn.height);
    if (x1 - x0 < 8 || y1 - y0 < 8) throw new VideoProblem('offscreen');
    const undo = this.hide(drawn);
    let url;
    try {
      url = await this.capture();
    } finally {
      undo();
    }
    const shot = await loadImage(url);
    const sx = shot.naturalWidth / vw;
    const sy = shot.naturalHeight / vh;
    const width = Math.max(1, Math.round((x1 - x0) * sx));
    const height = Math.max(1, Math.round((y1 - y0) * sy));
    const s = Math.min(1, SAMPLING.max_side / Math.max(width, height));
    this.canvas.width = Math.max(1, Math.round(width * s));
    this.canvas.height = Math.max(1, Math.round(height * s));
    const ctx = this.canvas.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(shot, x0 * sx, y0 * sy, width, height, 0, 0, this.canvas.width, this.canvas.height);
    const view = [(x0 - drawn.left) / drawn.width, (y0 - drawn.top) / drawn.height, (x1 - drawn.left) / drawn.width, (y1 - drawn.top) / drawn.height];
    return {ctx, width: this.canvas.width, height: this.canvas.height, view};
  }

  async grab() {
    const started = performance.now();
    const time = this.video.currentTime;
    let got = this.tainted ? null : await this.grabFromElement();
    if (!got) {
      this.tainted = true;
      got = await this.grabFromTab();
    }
    // DRM: Chromium draws a video under Encrypted Media Extensions into a canvas as black, even
    // Clear Key's, which it decrypts in software and shows on screen (video.browser.test.mjs).
    // Protected video plays only through EME in Chrome, so black pixels mean DRM only when the
    // element has MediaKeys: black frames without them (a fade from black) are checked as they
    // are, and an EME video whose pixels do read is checked on those real pixels.
    if (this.video.mediaKeys && isBlack(got.ctx, got.width, got.height)) throw new VideoProblem('drm');
    // toDataURL, not toBlob: Chromium encodes toBlob's JPEG in an idle period, and a page that
    // plays video may have none for a second (its fallback): 2 of 30 first frames waited 1.1 s
    // (bench video). A 720p JPEG here is a few milliseconds of the main thread.
    const url = this.canvas.toDataURL('image/jpeg', SAMPLING.jpeg_quality);
    const comma = url.indexOf(',');
    if (!url.startsWith('data:image/jpeg') || comma < 0) throw new VideoProblem('unreadable');
    // The JPEG stays base64, as the messages carry it (bytes.js): decoded only where it is judged.
    return {data: url.slice(comma + 1), time_s: Math.round(time * 1000) / 1000, width: got.width, height: got.height,
      view: got.view, via: this.tainted ? 'tab' : 'canvas', grabMs: performance.now() - started};
  }

  // Frames one by one, `frames` of them spread over `windowS` seconds of playback (a shorter
  // video: over what is left of it). Stops with a VideoProblem when the video is paused,
  // ends, changes source, leaves the page, is EME-protected and reads as black (DRM) or
  // `signal` aborts; a video that ends after some frames stops quietly (the check is made on
  // what was taken).
  async *take(signal) {
    const left = Number.isFinite(this.video.duration) ? this.video.duration - this.video.currentTime : Infinity;
    const windowS = Math.min(this.windowS, Math.max(left, SAMPLING.min_window_s));
    let gap = (windowS * 1000) / this.frames;
    let taken = 0;
    let next = performance.now();
    while (taken < this.frames) {
      this.checkStill(signal);
      if (this.video.ended) {
        if (taken) return;
        throw new VideoProblem('paused');
      }
      if (this.video.paused) throw new VideoProblem('paused');
      const frame = await this.grab();
      this.checkStill(signal);
      if (this.tainted) gap = Math.max(gap, CAPTURE_GAP_MS);
      taken += 1;
      yield frame;
      next += gap;
      await sleep(Math.max(0, next - performance.now()), signal);
    }
  }
}
