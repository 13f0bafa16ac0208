// The video check's costs in Chromium with the built extension (bench/video.py runs this).
//
//   node bench/video_bench.mjs CONFIG.json
//
// CONFIG: {media: DIR (face.webm at 720p, from tests/video/media.py), runs, frames, window_s, out}
// The page plays the 720p face video; each run right-clicks it and chooses "Check video for
// deepfake" in Chrome's own menu (headed Chromium under Xvfb, tests/extension/harness) and
// waits for the verdict. Measured, from the extension's own overlay (videocheck.js): the start
// of the check in the page (the menu's message arrived) until the first frame's
// verdict, each frame's JPEG sent until its faces came back judged (find + crop + classify every
// face in the offscreen document, TF.js wasm, one thread, plus the messages), each frame's grab
// on the page's main thread (draw, read, JPEG), the offscreen document's own steps per frame
// (decode, find, crop + classify); and the page's long tasks (PerformanceObserver
// 'longtask', over 50 ms) with the largest lateness of a 10 ms timer heartbeat. The first run
// (the offscreen document starts and loads both models) is kept apart.
import {readFileSync, rmSync, writeFileSync} from 'node:fs';

import {launch, sleep, waitFor} from '../tests/extension/harness/browser.mjs';
import {serveFiles} from '../tests/extension/harness/servers.mjs';
import {buildExtension, modelUnderTest} from '../tests/extension/harness/setup.mjs';

const PAGE = `<!doctype html><html><body style="margin:0">
<video id="v" src="/face.webm" muted autoplay loop playsinline style="display:block;width:960px;height:540px"></video>
<script>
  window.longTasks = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push(e.duration); }).observe({type: 'longtask', buffered: true});
  window.lateness = 0;
  let last = performance.now();
  setInterval(() => { const now = performance.now(); window.lateness = Math.max(window.lateness, now - last - 10); last = now; }, 10);
</script></body></html>`;

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const log = (m) => process.stderr.write(`[bench video] ${m}\n`);

async function main() {
  const model = await modelUnderTest(null);
  const ext = await buildExtension(model);
  const site = await serveFiles({dirs: [config.media], routes: {'/video.html': (req, res) => {
    res.writeHead(200, {'content-type': 'text/html'});
    res.end(PAGE);
  }}});
  const session = await launch(ext.out);
  const out = {model: model.note, runs: []};
  try {
    const worker = await session.worker();
    await worker.evaluate((s) => chrome.storage.local.set({settings: s}), {videoFrames: config.frames, videoWindowS: config.window_s});
    const page = await session.context.newPage();
    await page.goto(`${site.origin}/video.html`);
    await page.waitForFunction(() => document.getElementById('v').readyState >= 2 && !document.getElementById('v').paused);
    out.video = await page.evaluate(() => ({width: document.getElementById('v').videoWidth, height: document.getElementById('v').videoHeight}));
    for (let r = 0; r < config.runs + 1; r++) {
      await page.evaluate(() => {
        window.longTasks.length = 0;
        window.lateness = 0;
      });
      // The real menu: Chrome's context menu on the video, its "Check video for deepfake" item.
      await session.chooseContextMenuItem(page, page.locator('#v'));
      // The overlay is a closed shadow root: read in the content script's world (issue 18).
      const done = await waitFor(() => session.contentScript(page, () => {
        const host = document.querySelector('unmask-layer');
        const p = host && chrome.dom.openOrClosedShadowRoot(host).querySelector('.vpanel');
        return p && ['done', 'error'].includes(p.dataset.state) ? {...p.dataset} : null;
      }), {timeout: 180000, interval: 100, what: 'the video verdict'});
      if (done.state !== 'done') throw new Error(`the video check failed: ${done.error} ${done.detail || ''}`);
      const stalls = await page.evaluate(() => ({longTasks: [...window.longTasks], lateness: window.lateness}));
      out.runs.push({first_verdict_ms: Number(done.firstVerdictMs), frame_ms: done.frameMs.split(',').map(Number),
        grab_ms: done.grabMs.split(',').map(Number), steps: JSON.parse(done.frameSteps || '[]'), long_tasks_ms: stalls.longTasks, heartbeat_lateness_ms: stalls.lateness,
        verdict: done.verdict, tracks: Number(done.tracks)});
      log(`run ${r}: first frame verdict after ${done.firstVerdictMs} ms, ${done.frames} frames, ${done.verdict}`);
      await sleep(300);
    }
  } finally {
    await session.close();
    await site.close();
    rmSync(ext.out, {recursive: true, force: true});
  }
  writeFileSync(config.out, JSON.stringify(out, null, 1));
}

main().catch((e) => {
  process.stderr.write(`[bench video] error: ${e.stack || e}\n`);
  process.exit(1);
});
