// The video rule in the extension (videotracks.js) against Python's models/video.py
// judge_video on the same fixed frames (tests/video/cases.py): the same tracks, verdicts and
// calibrated numbers, within models/video.json's parity tolerance for the numbers.
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {describe, it} from 'node:test';

import {judgeVideo, trackFaces, VIDEO_RULES} from '../../extension/src/videotracks.js';
import {PYTHON, ROOT} from './harness/setup.mjs';

const CASES = JSON.parse(execFileSync(PYTHON, ['-m', 'tests.video.cases'], {cwd: ROOT, encoding: 'utf8', env: {...process.env, PYTHONPATH: ROOT}}));
const TOL = VIDEO_RULES.parity_tolerance;

function close(a, b, what) {
  if (a === null || b === null) return assert.equal(a, b, what);
  assert.ok(Math.abs(a - b) <= TOL, `${what}: ${a} (JS) vs ${b} (Python)`);
}

describe('video rule: the JS twin gives Python\'s answers on the same frames', () => {
  assert.ok(CASES.length >= 8, 'the shared cases are there');
  for (const {case: c, python: py} of CASES) {
    it(c.name, () => {
      const js = judgeVideo(c.frames, c.calibration, c.video_calibration);
      assert.equal(js.verdict, py.verdict);
      close(js.confidence, py.confidence, 'confidence');
      close(js.p_fake, py.p_fake, 'p_fake');
      assert.equal(js.summary, py.summary);
      assert.equal(js.calibration, py.calibration);
      assert.equal(js.calibrated_on_videos, py.calibrated_on_videos);
      for (const key of ['frames_sampled', 'frames_with_face', 'min_track_frames']) assert.equal(js[key], py[key], key);
      assert.deepEqual(js.tracks.map((t) => [t.frames, t.judged, t.verdict]), py.tracks.map((t) => [t.frames, t.judged, t.verdict]));
      js.tracks.forEach((t, n) => close(t.p_fake, py.tracks[n].p_fake, `track ${n} p_fake`));
      assert.deepEqual(js.frames.map((f) => f.faces.map((x) => x.track)), py.frames.map((f) => f.faces.map((x) => x.track)));
    });
  }
});

describe('video rule: tracks', () => {
  it('a face that moves a little stays one track; one that jumps starts another', () => {
    const box = (x) => ({box: [x, 0, x + 100, 100], p_fake_raw: 0.5});
    assert.deepEqual(trackFaces([{faces: [box(0)]}, {faces: [box(10)]}, {faces: [box(300)]}], 0.3), [[[0, 0], [1, 0]], [[2, 0]]]);
  });
});
