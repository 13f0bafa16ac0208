// What stops a video check before it starts, the notes that do not stop it, and the sampling
// settings kept within models/video.json's bounds (videosampler.js), on plain objects that
// stand for <video> elements' state. The sampling itself runs in Chromium (video.browser.test.mjs).
import assert from 'node:assert/strict';
import {describe, it} from 'node:test';

import {notes, problemBefore, samplingPlan, VideoProblem} from '../../extension/src/videosampler.js';
import {VIDEO_RULES} from '../../extension/src/videotracks.js';
import {wording} from '../../extension/src/wording.js';

const playing = {isConnected: true, readyState: 4, videoWidth: 1280, videoHeight: 720, paused: false, ended: false, duration: 30};

describe('video sampler: before the first frame', () => {
  it('a playing video can be checked; every other state says why not, in the wording file\'s words', () => {
    assert.equal(problemBefore(playing), null);
    const cases = [
      [{...playing, isConnected: false}, 'removed'],
      [{...playing, readyState: 1}, 'not_loaded'],
      [{...playing, videoWidth: 0}, 'not_loaded'],
      [{...playing, paused: true}, 'paused'],
      [{...playing, ended: true, paused: true}, 'paused'],
      [{...playing, duration: 0.4}, 'too_short'],
      [null, 'removed'],
    ];
    for (const [video, code] of cases) {
      const p = problemBefore(video);
      assert.ok(p instanceof VideoProblem, code);
      assert.equal(p.code, code);
      assert.ok(p.message.length > 20 && !p.message.includes('{'), p.message);
    }
    assert.ok(problemBefore({...playing, duration: 0.4}).message.includes(`${VIDEO_RULES.sampling.min_window_s} s`));
  });

  it('a live stream and a 4K frame are checked, with a note', () => {
    assert.deepEqual(notes(playing), []);
    assert.deepEqual(notes({...playing, duration: Infinity}).map((n) => n.code), ['live']);
    const big = notes({...playing, videoWidth: 3840, videoHeight: 2160});
    assert.deepEqual(big.map((n) => n.code), ['too_large']);
    assert.ok(big[0].text.includes('3840x2160') && big[0].text.includes(String(VIDEO_RULES.sampling.max_side)), big[0].text);
    // 720p is scaled to max_side without a note; the note starts above note_above_side.
    assert.ok(VIDEO_RULES.sampling.max_side < 1280 && VIDEO_RULES.sampling.note_above_side === 1280);
    assert.deepEqual(notes({...playing, videoWidth: 1281}).map((n) => n.code), ['too_large']);
    assert.deepEqual(notes({...playing, videoWidth: 720, videoHeight: 1280}), []);
    assert.equal(new VideoProblem('no such code').message, wording.video.problems.unreadable);
  });

  it('the user\'s frames and window stay within the bounds, and default to 16 over 8 s', () => {
    const s = VIDEO_RULES.sampling;
    assert.deepEqual(samplingPlan(), {frames: 16, windowS: 8});
    assert.deepEqual(samplingPlan({frames: null, windowS: undefined}), {frames: s.frames, windowS: s.window_s});
    assert.deepEqual(samplingPlan({frames: 1000, windowS: 1000}), {frames: s.max_frames, windowS: s.max_window_s});
    assert.deepEqual(samplingPlan({frames: 1, windowS: 0.01}), {frames: s.min_frames, windowS: s.min_window_s});
    assert.deepEqual(samplingPlan({frames: 6.4, windowS: 3}), {frames: 6, windowS: 3});
  });
});
