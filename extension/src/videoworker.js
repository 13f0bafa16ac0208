// The service worker's side of a video check (videocheck.js runs in the page): each sampled
// frame goes through the same face finder and detector as an image (the offscreen document),
// the tab is captured for a cross-origin video, and the sampled frames go to the user's
// server only when they turned the second opinion on. background.js registers these handlers.
import {base64Length, fromBase64} from './bytes.js';
import {modelOf, postForVerdict} from './secondopinion.js';
import {adjustCalibration} from './sensitivity.js';
import {getSettings, parseServerUrl} from './settings.js';
import {checkCalibration} from './verdict.js';
import {wording} from './wording.js';

class VideoWorkerProblem extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const MAX_FRAME_BYTES = 4 * 1024 * 1024; // far above one JPEG frame of at most sampling.max_side px

// deps: {model: () => {metadata, calibration}, runModel: (base64 bytes, message) => found faces with raw scores}
export function videoHandlers({model, runModel}) {
  // What the page needs to judge frames and the video alike with Python: both calibrations at
  // the user's sensitivity, and whether it may offer the second opinion.
  async function videoStart() {
    const [m, settings] = await Promise.all([model(), getSettings()]);
    const video = m.metadata.video_calibration ? checkCalibration(m.metadata.video_calibration) : null;
    return {
      calibration: adjustCalibration(m.calibration, settings.sensitivity),
      videoCalibration: video && adjustCalibration(video, settings.sensitivity),
      sensitivity: settings.sensitivity,
      secondOpinion: Boolean(settings.secondOpinion) && !(parseServerUrl(settings.serverUrl) instanceof Error),
      frames: settings.videoFrames,
      windowS: settings.videoWindowS,
      model: {name: m.metadata.name || '', version: m.metadata.version || ''},
    };
  }

  // msg: {data: base64 JPEG}. The faces found and their raw p(fake), as for an image, and
  // where the offscreen document spent its time (bench/video.py). The base64 goes on as it
  // came: decoding and encoding it again here cost about 1.5 ms a frame.
  async function videoFrame(msg) {
    const data = String(msg.data || '');
    const n = base64Length(data);
    if (!n || n > MAX_FRAME_BYTES) throw new VideoWorkerProblem('unreadable', wording.video.problems.unreadable);
    const r = await runModel(data, {type: 'check', thumb: false});
    return {faces: r.faces, too_small: r.too_small, over_limit: r.over_limit, width: r.width, height: r.height, timing: r.timing};
  }

  // The visible tab as a JPEG data: URL, for a video whose canvas is tainted. Chrome allows it
  // only after a user gesture gave activeTab (the right-click); otherwise say how to get it.
  async function captureTab(_msg, sender) {
    if (!sender || !sender.tab) throw new VideoWorkerProblem('unreadable', wording.video.problems.unreadable);
    try {
      return {url: await chrome.tabs.captureVisibleTab(sender.tab.windowId, {format: 'jpeg', quality: 92})};
    } catch (e) {
      throw new VideoWorkerProblem('no_capture', `${wording.video.problems.no_capture} (${e.message})`);
    }
  }

  // msg: {frames: [base64 JPEG], times: [s]}: POST /api/v1/check/frames on the user's server.
  async function videoSecondOpinion(msg) {
    const settings = await getSettings();
    if (!settings.secondOpinion) {
      throw new VideoWorkerProblem('second_opinion_off', 'the second opinion is off: turn it on in Unmask options (it sends the sampled frames to your server)');
    }
    const serverUrl = parseServerUrl(settings.serverUrl);
    if (serverUrl instanceof Error) throw new VideoWorkerProblem('no_server', serverUrl.message);
    const frames = Array.isArray(msg.frames) ? msg.frames : [];
    if (!frames.length) throw new VideoWorkerProblem('unreadable', 'no frames were taken');
    const form = new FormData();
    frames.forEach((f, i) => form.append('frame', new Blob([fromBase64(String(f))], {type: 'image/jpeg'}), `frame${i}.jpg`));
    form.append('times', JSON.stringify(msg.times || []));
    return {server: await askFrames({serverUrl, apiKey: settings.apiKey, timeoutS: settings.serverTimeoutS}, form)};
  }

  return {videoStart, videoFrame, captureTab, videoSecondOpinion};
}

// The frames' verdict from the user's server (secondopinion.js: its messages never say where it is).
async function askFrames(server, form) {
  const {body, ms} = await postForVerdict(server, '/api/v1/check/frames', form);
  return {
    verdict: body.verdict,
    confidence: typeof body.confidence === 'number' ? body.confidence : null,
    p_fake: typeof body.p_fake === 'number' ? body.p_fake : null,
    tracks: Array.isArray(body.tracks) ? body.tracks.map((t) => ({frames: t.frames, judged: t.judged, verdict: t.verdict, p_fake: t.p_fake, confidence: t.confidence})) : [],
    frames_with_face: body.frames_with_face,
    calibration: body.calibration,
    model: modelOf(body),
    ms,
  };
}
