// A video check in the page: right-click a <video> ("Check video for deepfake"), or its "Check
// video" control on a feed with badges. Frames are taken as the video plays (videosampler.js;
// never the file), each judged like a picture by the worker's on-device model as soon as it is
// taken, the faces tracked and the video judged by the rule shared with Python
// (videotracks.js = models/video.py judge_video), and shown over the video (videopanel.js).
// The check stops when the overlay closes or the video leaves the page.
import {judge} from './facecheck.js';
import {makeVideoButton, makeVideoOverlay, placeVideoButton, placeVideoOverlay, renderVideoOverlay} from './videopanel.js';
import {notes, problemBefore, samplingPlan, VideoProblem, VideoSampler} from './videosampler.js';
import {judgeVideo} from './videotracks.js';

const MIN_VIDEO_SIDE = 100; // CSS px: smaller videos get no "Check video" control

// One check of one video. ask(type, payload): the worker's reply ({ok, ...} or {ok: false, error}).
export class VideoCheck {
  constructor({video, layer, ask, onEnd}) {
    Object.assign(this, {video, layer, ask, onEnd});
    this.overlay = makeVideoOverlay();
    this.controller = null;
    this.onScroll = () => this.place();
    this.reset();
  }

  reset() {
    this.state = 'starting';
    this.plan = null;
    this.frames = []; // {data (base64 JPEG), time_s, width, height, view, via}
    this.rows = []; // per frame: the picture's result (facecheck.judge) with time_s, or undefined while judging
    this.result = null;
    this.server = null;
    this.problem = null;
    this.notes = [];
    this.current = null;
    this.via = null;
    this.model = {name: '', version: ''};
    this.firstVerdictMs = null;
    this.frameMs = []; // per frame: its JPEG sent until its faces came back judged (bench/video.py reads them)
    this.frameSteps = []; // per frame: the offscreen document's {decode_ms, find_ms, judge_ms} of it
  }

  handlers() {
    return {
      close: () => this.close(),
      retry: () => this.start(),
      select: (k) => {
        this.current = k;
        this.draw();
      },
      askServer: () => this.askServer(),
      openOptions: () => this.ask('openOptions'),
    };
  }

  draw() {
    renderVideoOverlay(this.overlay, this, this.handlers());
    this.place();
  }

  place() {
    if (this.overlay.root.isConnected) placeVideoOverlay(this.overlay, this);
  }

  fail(problem) {
    this.state = 'error';
    this.problem = problem instanceof VideoProblem || (problem && problem.code) ? problem : new VideoProblem('unreadable');
    // A failure that is not the video's (a bug): its own words stay with the panel, to be reported.
    this.detail = this.problem === problem ? null : String((problem && problem.message) || problem);
    this.draw();
  }

  // The worker's answer, or a VideoProblem from its error.
  async must(type, payload) {
    const reply = await this.ask(type, payload);
    if (!reply.ok) {
      const e = new Error(reply.error.message);
      e.code = reply.error.code;
      throw e;
    }
    return reply;
  }

  async start() {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    const clicked = performance.now();
    this.reset();
    this.layer.add(this.overlay.root);
    window.addEventListener('scroll', this.onScroll, {capture: true, passive: true});
    window.addEventListener('resize', this.onScroll, {passive: true});
    this.draw();
    const problem = problemBefore(this.video);
    if (problem) return this.fail(problem);
    let sampler = null;
    try {
      const settings = await this.must('videoStart');
      if (controller.signal.aborted) return;
      Object.assign(this, {calibration: settings.calibration, videoCalibration: settings.videoCalibration, secondOpinion: settings.secondOpinion,
        sensitivity: settings.sensitivity, model: settings.model});
      this.plan = samplingPlan({frames: settings.frames ?? undefined, windowS: settings.windowS ?? undefined});
      this.notes = notes(this.video);
      sampler = new VideoSampler(this.video, {...this.plan, capture: async () => (await this.must('captureTab')).url, hide: (drawn) => this.hideOver(drawn)});
      this.state = 'sampling';
      this.draw();
      const judging = [];
      let stopped = null;
      try {
        for await (const frame of sampler.take(controller.signal)) {
          const k = this.frames.length;
          this.frames.push(frame);
          this.via = frame.via;
          const judged = this.judgeFrame(k, frame, clicked, controller.signal);
          judged.catch(() => {}); // seen by Promise.all below; not an unhandled rejection meanwhile
          judging.push(judged);
          this.draw();
        }
      } catch (e) {
        // A video that stops after some frames is judged on those, and says so; anything else fails.
        if (!(e instanceof VideoProblem) || !['paused'].includes(e.code) || this.frames.length < 2) throw e;
        stopped = e;
      }
      if (stopped) this.notes.push({code: 'ended', text: new VideoProblem('ended', {frames: this.frames.length}).message});
      this.state = 'judging';
      this.draw();
      await Promise.all(judging);
      if (controller.signal.aborted) return;
      this.plan = {...this.plan, frames: this.frames.length};
      this.result = judgeVideo(this.rows.map((r) => ({time_s: r.time_s, faces: r.faces})), this.calibration, this.videoCalibration);
      this.current = this.bestFrame();
      this.state = 'done';
      this.draw();
    } catch (e) {
      if (controller.signal.aborted || (e && e.code === 'closed')) return;
      if (e && e.code === 'removed') {
        this.close();
        return;
      }
      this.fail(e);
    } finally {
      if (sampler) sampler.stop();
    }
  }

  async judgeFrame(k, frame, clicked, signal) {
    const sent = performance.now();
    const reply = await this.must('videoFrame', {data: frame.data});
    if (signal.aborted) return;
    this.frameMs[k] = performance.now() - sent;
    this.frameSteps[k] = reply.timing || null;
    const picture = judge({faces: reply.faces, too_small: reply.too_small, over_limit: reply.over_limit, width: reply.width, height: reply.height}, this.calibration);
    this.rows[k] = {...picture, time_s: frame.time_s};
    if (this.firstVerdictMs === null) this.firstVerdictMs = performance.now() - clicked;
    if (this.current === null || this.state === 'sampling') this.current = k;
    this.draw();
  }

  // The frame to show at the end: the most suspicious judged track's last frame, else the last.
  bestFrame() {
    const judged = this.result.tracks.filter((t) => t.judged);
    if (!judged.length) return this.frames.length - 1;
    const top = judged.reduce((best, t) => (t.p_fake > best.p_fake ? t : best));
    return top.frames[top.frames.length - 1];
  }

  // While the tab is captured, the overlay must not be in the picture where the video is.
  hideOver(drawn) {
    const hidden = [];
    for (const node of [this.overlay.panel, this.overlay.boxes]) {
      const r = node.getBoundingClientRect();
      const over = r.right > drawn.left && r.left < drawn.left + drawn.width && r.bottom > drawn.top && r.top < drawn.top + drawn.height;
      if (over && node.style.visibility !== 'hidden') {
        node.style.visibility = 'hidden';
        hidden.push(node);
      }
    }
    return () => hidden.forEach((n) => (n.style.visibility = ''));
  }

  async askServer() {
    if (!this.frames.length || (this.server && this.server.state === 'asking')) return;
    this.server = {state: 'asking'};
    this.draw();
    const reply = await this.ask('videoSecondOpinion', {frames: this.frames.map((f) => f.data), times: this.frames.map((f) => f.time_s)});
    this.server = reply.ok ? {...reply.server, state: 'done'} : {state: 'error', error: reply.error};
    this.draw();
  }

  close() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    window.removeEventListener('scroll', this.onScroll, {capture: true});
    window.removeEventListener('resize', this.onScroll);
    this.overlay.root.remove();
    if (this.onEnd) this.onEnd(this);
  }
}

// --- the checks of one page ------------------------------------------------------------------
let lastContextVideo = null;
const checks = new Map(); // video -> VideoCheck

export function rememberContextTarget(e) {
  lastContextVideo = e.composedPath().find((n) => n instanceof HTMLVideoElement) || null;
}

// The right-clicked <video>: the one under the click if it plays this URL, else any that does.
function findVideo(srcUrl) {
  const plays = (v) => v && (v.currentSrc === srcUrl || v.src === srcUrl);
  if (lastContextVideo && (plays(lastContextVideo) || !srcUrl)) return lastContextVideo;
  return Array.from(document.querySelectorAll('video')).find(plays) || lastContextVideo;
}

export function checkVideo(video, {layer, ask}) {
  for (const c of checks.values()) c.close(); // one video check at a time in a page
  if (!video) return null;
  const check = new VideoCheck({video, layer, ask, onEnd: (c) => checks.get(video) === c && checks.delete(video)});
  checks.set(video, check);
  check.start();
  return check;
}

export function menuCheckVideo(srcUrl, deps) {
  const video = findVideo(srcUrl);
  if (!video) return false;
  checkVideo(video, deps);
  return true;
}

export function closeVideoChecks() {
  for (const c of [...checks.values()]) c.close();
}

// Keeps every open check's overlay in place, and ends a check whose video left the page.
export function layoutVideoChecks() {
  for (const c of [...checks.values()]) {
    if (!c.video.isConnected) c.close();
    else c.place();
  }
}

// --- "Check video" on the videos of a feed with badges on -------------------------------------
export class VideoButtons {
  constructor({layer, ask}) {
    Object.assign(this, {layer, ask});
    this.buttons = new Map();
    this.frame = null;
  }

  // A control for each video in `root` that has none yet; placed by layout(), which the
  // page's layout pass calls.
  scan(root = document) {
    const videos = root instanceof HTMLVideoElement ? [root] : root.querySelectorAll ? root.querySelectorAll('video') : [];
    for (const video of videos) {
      if (this.buttons.has(video)) continue;
      const button = makeVideoButton(() => checkVideo(video, {layer: this.layer, ask: this.ask}));
      button.hidden = true;
      this.buttons.set(video, this.layer.add(button));
    }
  }

  layout() {
    for (const [video, button] of this.buttons) {
      if (!video.isConnected) {
        button.remove();
        this.buttons.delete(video);
        continue;
      }
      const r = video.getBoundingClientRect();
      button.hidden = r.width < MIN_VIDEO_SIDE || r.height < MIN_VIDEO_SIDE || r.bottom < 0 || r.top > innerHeight;
      if (!button.hidden) placeVideoButton(button, video);
    }
  }

  stop() {
    for (const b of this.buttons.values()) b.remove();
    this.buttons.clear();
  }
}
