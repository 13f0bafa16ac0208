// Video checks in a real Chromium with the built extension loaded, on a page that plays videos
// made by tests/video/media.py: a right-click ("Check video for deepfake", chosen in Chrome's own
// context menu) on a face video, a video without faces, and a cross-origin video that taints the
// canvas (the tab is captured instead) gives a tracked, timed verdict; the second opinion sends
// the same frames to `unmask serve` (POST /api/v1/check/frames under gunicorn, with the same
// model as the extension), which must give the same verdict within models/video.json's parity
// tolerance. Bad input: a live stream (a MediaStream) and a 4K video are checked, each with its
// note; a Clear Key–encrypted video (EME, played by the page through MSE) reads black and gets the
// DRM message, while black frames without EME are checked (no face); a paused video, a source
// changed mid-way and a video removed mid-way each end with a message, never a stuck spinner.
import assert from 'node:assert/strict';
import {readFileSync, rmSync} from 'node:fs';
import {join} from 'node:path';
import {after, before, describe, it} from 'node:test';

import {calibratedOnVideos, VIDEO_RULES} from '../../extension/src/videotracks.js';
import {wording} from '../../extension/src/wording.js';
import {launch, sleep, waitFor} from './harness/browser.mjs';
import {deadPort, serveFiles} from './harness/servers.mjs';
import {buildExtension, launchServer, modelUnderTest, PYTHON, ROOT, run, tempDir} from './harness/setup.mjs';

const PAGES = join(import.meta.dirname, 'pages/video');
const FRAMES = 6; // the test's sampling: 6 frames over 3 s (the default is 16 over 8 s)
const WINDOW_S = 3;

let session;

// The video overlay's state (data-*), text, timeline marks and the track boxes drawn, read in
// the content script's world: the layer is a closed shadow root, which the page cannot open.
async function overlayOf(page) {
  return (await session.contentScript(page, () => {
    const host = document.querySelector('unmask-layer');
    const root = host && chrome.dom.openOrClosedShadowRoot(host);
    const panel = root && root.querySelector('.vpanel');
    if (!panel || !panel.isConnected) return null;
    const boxes = root.querySelector('.vtracks');
    const second = panel.querySelector('.second');
    return {
      ...panel.dataset,
      text: panel.innerText + (panel.dataset.detail ? ` [${panel.dataset.detail}]` : ''),
      marks: [...panel.querySelectorAll('.mark')].map((m) => m.dataset.verdict || null),
      boxes: boxes && !boxes.hidden ? [...boxes.querySelectorAll('.track')].map((b) => ({...b.dataset, rect: b.getBoundingClientRect().toJSON()})) : [],
      second: second ? {...second.dataset, text: second.innerText} : null,
      notes: [...panel.querySelectorAll('[data-note]')].map((n) => ({code: n.dataset.note, text: n.textContent})),
    };
  })) ?? null;
}

const settled = (o) => o && (o.state === 'done' || o.state === 'error') ? o : null;

describe('video checks in Chromium', {timeout: 20 * 60000}, () => {
  let media, index, model, ext, site, other, page, server, serverStarting;

  before(async () => {
    media = tempDir('unmask-video-');
    const made = await run(PYTHON, ['-m', 'tests.video.media', media, '--bad'], {env: {PYTHONPATH: ROOT}});
    if (made.code !== 0) throw new Error(`tests/video/media.py failed:\n${made.stderr.slice(-3000)}`);
    index = JSON.parse(readFileSync(join(media, 'index.json'), 'utf8'));
    model = await modelUnderTest(null);
    ext = await buildExtension(model);
    other = await serveFiles({dirs: [media], host: '127.0.0.2'});
    site = await serveFiles({dirs: [PAGES, media], vars: () => ({OTHER: other.origin})});
    // The same model as the extension's (the bundled tiny it was converted from), so that the
    // frames endpoint's verdict can be compared with the device's.
    const port = await deadPort();
    serverStarting = launchServer({port, models: join(ROOT, 'models/bundled'),
      env: {UNMASK_MODEL: model.keras, UNMASK_CORS_ORIGINS: `chrome-extension://${ext.id}`}});
    session = await launch(ext.out);
    const w = await session.worker();
    server = await serverStarting;
    // The sampling as a person sets it: Options, "Video checks".
    const options = await session.extensionPage('options.html');
    for (const [id, value] of [['#video-frames', FRAMES], ['#video-window', WINDOW_S]]) {
      await options.locator(id).fill(String(value));
      await options.locator(id).press('Tab'); // change fires when the field is left
    }
    await waitFor(() => w.evaluate(async ({frames, windowS}) => {
      const {settings} = await chrome.storage.local.get('settings');
      return Boolean(settings && settings.videoFrames === frames && settings.videoWindowS === windowS);
    }, {frames: FRAMES, windowS: WINDOW_S}), {what: 'the video settings saved from Options'});
    assert.equal(await options.locator('#video-status').innerText(), `${FRAMES} frames over ${WINDOW_S} s of playback.`);
    await options.close();
    await w.evaluate(async (serverUrl) => {
      const {settings} = await chrome.storage.local.get('settings');
      await chrome.storage.local.set({settings: {...settings, secondOpinion: true, serverUrl}});
    }, server.origin);
    page = await session.context.newPage();
    await page.goto(`${site.origin}/video.html`);
    await waitFor(() => page.evaluate(() => ['face', 'noface', 'cross', 'paused'].every((id) => document.getElementById(id).readyState >= 2)),
      {what: 'the videos to load'});
  });

  after(async () => {
    if (serverStarting && !server) server = await serverStarting.catch(() => null);
    if (server) await server.stop();
    if (session) await session.close();
    for (const s of [site, other]) if (s) await s.close();
    if (ext) rmSync(ext.out, {recursive: true, force: true});
    if (media) rmSync(media, {recursive: true, force: true});
  });

  async function rightClickCheck(id) {
    // Close the last overlay first, so that the one read below is this video's.
    await page.keyboard.press('Escape');
    await waitFor(async () => !(await overlayOf(page)), {what: 'the last overlay to close'});
    await session.chooseContextMenuItem(page, page.locator(`#${id}`));
    return waitFor(() => overlayOf(page), {what: `the overlay on #${id}`});
  }

  it('a face video: one face track over every frame, a timed verdict, and the server agrees on the same frames', async (t) => {
    await rightClickCheck('face');
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 60000, what: 'the face video verdict'});
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.via, 'canvas');
    assert.ok(['fake', 'real', 'uncertain'].includes(o.verdict), o.verdict);
    assert.equal(o.tracks, '1', 'one face drifting is one track');
    assert.equal(o.frames, String(FRAMES));
    assert.equal(o.marks.length, FRAMES);
    assert.ok(o.marks.every((v) => ['fake', 'real', 'uncertain'].includes(v)), `every frame holds the face: ${o.marks}`);
    assert.ok(Number(o.firstVerdictMs) > 0, 'the time from the click to the first frame verdict is recorded');
    assert.equal(o.boxes.length, 1);
    const video = await page.evaluate(() => document.getElementById('face').getBoundingClientRect().toJSON());
    const b = o.boxes[0].rect;
    assert.ok(b.left >= video.left - 1 && b.right <= video.right + 1 && b.top >= video.top - 1 && b.bottom <= video.bottom + 1, 'the track box lies on the video');
    t.diagnostic(`device: ${o.verdict} p_fake ${o.pFake}, first frame verdict after ${o.firstVerdictMs} ms`);
    // The confidence says when it is calibrated as for one picture (the model's video calibration had no multi-frame videos).
    const metadata = JSON.parse(readFileSync(join(model.tfjs, 'metadata.json'), 'utf8'));
    assert.equal(o.text.includes(wording.video.calibration_single_frame), !calibratedOnVideos(metadata.video_calibration), o.text);

    // "Get a second opinion": the same JPEG frames to the frames endpoint under gunicorn.
    await page.bringToFront();
    const box = await session.contentScript(page, () => chrome.dom.openOrClosedShadowRoot(document.querySelector('unmask-layer'))
      .querySelector('.vpanel .second button.act').getBoundingClientRect().toJSON());
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2); // a real click: the overlay wants isTrusted
    const s = await waitFor(async () => {
      const x = await overlayOf(page);
      return x.second && ['done', 'error'].includes(x.second.serverState) ? x : null;
    }, {timeout: 60000, what: 'the second opinion'});
    assert.equal(s.second.serverState, 'done', s.second.text);
    assert.equal(s.second.serverVerdict, o.verdict, 'the server judges the same frames alike');
    assert.ok(Math.abs(Number(s.second.serverPFake) - Number(o.pFake)) <= VIDEO_RULES.parity_tolerance,
      `p_fake ${o.pFake} (device) vs ${s.second.serverPFake} (server)`);
  });

  it('a video without faces: no face in any frame', async () => {
    await rightClickCheck('noface');
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 60000, what: 'the chart video verdict'});
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.verdict, 'no_face');
    assert.deepEqual(o.marks, Array(FRAMES).fill('no_face'));
    assert.ok(o.text.includes(wording.no_face));
    assert.ok(!o.text.includes(wording.video.calibration_single_frame), 'no confidence, nothing said of its calibration');
  });

  it('a cross-origin video whose canvas is tainted: frames from the captured tab, the same face track', async () => {
    await page.evaluate(() => document.getElementById('cross').scrollIntoView({block: 'center'}));
    await rightClickCheck('cross');
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 90000, what: 'the cross-origin verdict'});
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.via, 'tab');
    assert.equal(o.tracks, '1');
    assert.ok(o.marks.every((v) => ['fake', 'real', 'uncertain'].includes(v)), `every frame holds the face: ${o.marks}`);
  });

  // A video added at the top of the page (made by `setup` in the page), its check, and the
  // video removed again, so the page's layout stays as the other tests expect.
  async function checkAddedVideo(id, setup, arg, what) {
    await page.evaluate(async ({id, setup, arg}) => {
      const v = document.createElement('video');
      v.id = id;
      v.muted = true;
      v.playsInline = true;
      document.body.prepend(v);
      await new Function('v', 'arg', `return (${setup})(v, arg)`)(v, arg);
      window.scrollTo(0, 0);
    }, {id, setup: setup.toString(), arg});
    await waitFor(() => page.evaluate((id) => {
      const v = document.getElementById(id);
      return v.readyState >= 2 && !v.paused && v.currentTime > 0;
    }, id), {what: `#${id} to play`});
    await rightClickCheck(id);
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 60000, what});
    return o;
  }
  const removeVideo = async (id) => {
    await page.keyboard.press('Escape');
    await page.evaluate((id) => document.getElementById(id).remove(), id);
  };
  const FACE = ['fake', 'real', 'uncertain'];

  it('a live stream (a MediaStream, duration Infinity): a tracked verdict, with the live note', async () => {
    // The face video's own stream, as a page shows a camera or a live broadcast.
    const o = await checkAddedVideo('live', (v) => {
      v.srcObject = document.getElementById('face').captureStream();
      return v.play();
    }, null, 'the live stream verdict');
    assert.equal(await page.evaluate(() => document.getElementById('live').duration), Infinity);
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.via, 'canvas');
    assert.equal(o.tracks, '1', o.text);
    assert.ok(o.marks.length === FRAMES && o.marks.every((v) => FACE.includes(v)), `every frame holds the face: ${o.marks}`);
    assert.deepEqual(o.notes, [{code: 'live', text: wording.video.problems.live}]);
    await removeVideo('live');
  });

  it('a 4K video: frames scaled down to max_side, a tracked verdict, with the 4K note', async () => {
    const [height, width] = index.face4k.size;
    const o = await checkAddedVideo('big', (v) => {
      v.loop = true;
      v.src = '/face4k.webm';
      return v.play();
    }, null, 'the 4K verdict');
    assert.deepEqual(await page.evaluate(() => [document.getElementById('big').videoWidth, document.getElementById('big').videoHeight]), [width, height]);
    assert.equal(o.state, 'done', o.text);
    const side = VIDEO_RULES.sampling.max_side;
    assert.equal(o.frameSize, `${side}x${Math.round((height * side) / width)}`, 'frames are judged at max_side');
    assert.equal(o.tracks, '1', o.text);
    assert.ok(o.marks.length === FRAMES && o.marks.every((v) => FACE.includes(v)), `every frame holds the face: ${o.marks}`);
    const note = wording.video.problems.too_large.replace('{width}', width).replace('{height}', height).replace('{max_side}', side);
    assert.deepEqual(o.notes, [{code: 'too_large', text: note}]);
    await removeVideo('big');
  });

  it('a Clear Key-encrypted video (EME): on screen it plays, read into a canvas it is black: the DRM message', async () => {
    const o = await checkAddedVideo('drm', (v, {url, clearkey}) => window.playClearKey(v, url, clearkey),
      {url: '/face-cenc.mp4', clearkey: index['face-cenc']}, 'the DRM answer');
    assert.equal(o.error, 'drm', o.text);
    assert.ok(o.text.includes(wording.video.problems.drm), o.text);
    assert.equal(o.frames, '0', 'said at the first frame: no black frame goes to the model');
    assert.equal(o.text.includes('Try again'), false, 'trying again cannot help');
    // What Chromium does with an EME video, even a Clear Key one that it decrypts in software:
    // the page shows the face, but drawing the element into a canvas gives black pixels (the
    // canvas is not tainted, so nothing tells the sampler but the pixels and video.mediaKeys).
    const read = await page.evaluate(() => {
      const v = document.getElementById('drm');
      const c = document.createElement('canvas');
      c.width = 64;
      c.height = 36;
      const ctx = c.getContext('2d');
      ctx.drawImage(v, 0, 0, 64, 36);
      return {protected: v.mediaKeys !== null, max: ctx.getImageData(0, 0, 64, 36).data.reduce((m, x, i) => (i % 4 === 3 ? m : Math.max(m, x)), 0)};
    });
    assert.deepEqual(read, {protected: true, max: 0});
    await page.keyboard.press('Escape');
    const shot = (await page.locator('#drm').screenshot()).toString('base64');
    const shown = await page.evaluate(async (png) => {
      const img = new Image();
      img.src = `data:image/png;base64,${png}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      return ctx.getImageData(0, 0, c.width, c.height).data.reduce((m, x, i) => (i % 4 === 3 ? m : Math.max(m, x)), 0);
    }, shot);
    assert.ok(shown > 100, `the decrypted video is on screen (brightest channel ${shown})`);
    await removeVideo('drm');
  });

  it('black frames without EME (a black screen, a fade from black) are not called DRM: checked, no face', async () => {
    const o = await checkAddedVideo('black', (v) => {
      const c = document.createElement('canvas');
      c.width = 320;
      c.height = 180;
      c.getContext('2d').fillRect(0, 0, 320, 180);
      v.srcObject = c.captureStream(10);
      return v.play();
    }, null, 'the black-frames answer');
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.verdict, 'no_face');
    assert.deepEqual(o.marks, Array(FRAMES).fill('no_face'));
    await removeVideo('black');
  });

  it('a paused video, a source changed and a video removed mid-way: a message, no spinner', async () => {
    await page.evaluate(() => document.getElementById('paused').scrollIntoView({block: 'center'}));
    await rightClickCheck('paused');
    let o = await waitFor(async () => settled(await overlayOf(page)), {what: 'the paused answer'});
    assert.equal(o.error, 'paused');
    assert.ok(o.text.includes(wording.video.problems.paused));

    // The source changes while frames are taken.
    await rightClickCheck('face');
    await waitFor(async () => (await overlayOf(page))?.state === 'sampling' || null, {what: 'sampling'});
    await page.evaluate(() => {
      document.getElementById('face').src = '/noface.webm';
      return document.getElementById('face').play();
    });
    o = await waitFor(async () => settled(await overlayOf(page)), {what: 'the source-change answer'});
    assert.equal(o.error, 'source_changed', o.text);

    // The video leaves the page while frames are taken: the check ends and its overlay goes.
    await page.evaluate(() => document.getElementById('noface').play());
    await rightClickCheck('noface');
    await waitFor(async () => (await overlayOf(page))?.state === 'sampling' || null, {what: 'sampling'});
    await page.evaluate(() => document.getElementById('noface').remove());
    await waitFor(async () => (await overlayOf(page)) === null, {timeout: 5000, what: 'the overlay to go with its video'});
  });

  it('with badges on for the site, the "Check video" control on a video starts the same check', async () => {
    await page.evaluate(() => {
      const v = document.getElementById('face');
      v.src = '/face.webm'; // back from the source-change step
      return v.play();
    });
    await waitFor(() => page.evaluate(() => document.getElementById('face').readyState >= 2), {what: '#face to load again'});
    const w = await session.worker();
    await w.evaluate(async () => {
      const got = await chrome.storage.local.get('settings');
      await chrome.storage.local.set({settings: {...got.settings, sites: ['127.0.0.1']}});
    });
    // The control sits in the extension's closed shadow root: found, and clicked by script, from
    // the content script's own world (the page cannot reach it at all).
    const scripted = () => session.contentScript(page, () => {
      const face = document.getElementById('face').getBoundingClientRect();
      const host = document.querySelector('unmask-layer');
      const buttons = host ? [...chrome.dom.openOrClosedShadowRoot(host).querySelectorAll('.vbutton')] : [];
      const b = buttons.find((x) => {
        const r = x.getBoundingClientRect();
        return !x.hidden && r.left >= face.left && r.top >= face.top && r.right <= face.right && r.bottom <= face.bottom;
      });
      if (!b) return null;
      b.click();
      return b.getBoundingClientRect().toJSON();
    });
    const box = await waitFor(scripted, {what: 'the Check video control on #face'});
    // A click from a script is ignored (isTrusted); a person's click starts the check.
    await sleep(500);
    assert.equal(await overlayOf(page), null, 'a scripted click started a check');
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 60000, what: 'the verdict from the control'});
    assert.equal(o.state, 'done', o.text);
    assert.equal(o.tracks, '1');
    assert.equal(o.frames, String(FRAMES));
  });

  it('a frame that is not base64, empty or over 4 MB is refused as unreadable, and a good one still judged', async () => {
    // What a page's content script could send: the worker checks the base64 before the offscreen document sees it.
    const replies = await session.contentScript(page, async () => {
      const ask = (data) => chrome.runtime.sendMessage({target: 'worker', type: 'videoFrame', data});
      return Promise.all([ask('not base64!'), ask(''), ask('A'.repeat(6 * 1024 * 1024)), ask(42)]);
    });
    for (const r of replies) {
      assert.equal(r.ok, false, JSON.stringify(r).slice(0, 200));
      assert.deepEqual([r.error.code, r.error.message], ['unreadable', wording.video.problems.unreadable]);
    }
    await rightClickCheck('face');
    const o = await waitFor(async () => settled(await overlayOf(page)), {timeout: 60000, what: 'a verdict after the refusals'});
    assert.equal(o.state, 'done', o.text);
  });

  it('recorded no errors in chrome://extensions', async () => {
    const errors = await session.extensionErrors();
    assert.deepEqual(errors.manifest, []);
    assert.deepEqual(errors.runtime.map((e) => `${e.source}: ${e.message}`), []);
  });
});
