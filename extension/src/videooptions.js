// The options page's "Video checks" section: how many frames a video check takes and over how
// many seconds of playback, kept within models/video.json's bounds (videosampler.js).
import {getSettings, updateSettings} from './settings.js';
import {samplingPlan} from './videosampler.js';
import {VIDEO_RULES} from './videotracks.js';

const $ = (id) => document.getElementById(id);

export async function initVideoOptions() {
  const frames = $('video-frames');
  const windowS = $('video-window');
  if (!frames || !windowS) return;
  const s = VIDEO_RULES.sampling;
  Object.assign(frames, {min: s.min_frames, max: s.max_frames, step: 1});
  Object.assign(windowS, {min: s.min_window_s, max: s.max_window_s, step: 1});
  const show = (plan) => {
    frames.value = plan.frames;
    windowS.value = plan.windowS;
    $('video-status').textContent = `${plan.frames} frames over ${plan.windowS} s of playback.`;
  };
  const settings = await getSettings();
  show(samplingPlan({frames: settings.videoFrames ?? undefined, windowS: settings.videoWindowS ?? undefined}));
  const save = async () => {
    const plan = samplingPlan({frames: Number(frames.value), windowS: Number(windowS.value)});
    await updateSettings({videoFrames: plan.frames, videoWindowS: plan.windowS});
    show(plan);
  };
  frames.onchange = save;
  windowS.onchange = save;
}
