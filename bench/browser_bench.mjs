// The browser half of the benchmarks: the built extension in headless Chromium, timed.
//
//   node bench/browser_bench.mjs CONFIG.json      (bench/browser.py writes CONFIG and reads OUT)
//
// CONFIG: {models: [{key, tfjs}], images: DIR, feed: [NAME], click: [NAME], click_no_face: [NAME],
//          infer: [NAME], pictures: [{key, name}],
//          runs: {cold, checks, loads, inferences, steps, finds, decodes, feeds}, out: FILE}
// feed, click and infer are pictures with a face; click_no_face candidate pictures without one,
// of which the first runs.no_face_clicks that the face finder finds no face in are clicked.
//
// For each model, the extension is built from extension/ (extension/build.mjs, with that model,
// with the test hooks that let the bench watch its closed overlay) into a temporary folder, plus one page of ours, bench-probe.html (bench/browser_probe.js).
// Pages and images are served over HTTPS by this script, under the names of a site the
// extension badges by default (www.reddit.com, images on i.redd.it), which Chromium maps to
// 127.0.0.1 (--host-resolver-rules; a throwaway self-signed certificate). Measured:
//   cold:   the extension's offscreen document created, then its first 'check' message
//           answered (wasm start + both models loaded and warmed up + one image);
//   checks: the offscreen document's 'check' message per image once warm (decode, find the
//           faces, crop and classify each, thumbnail);
//   probe:  in an offscreen document of ours with the extension's detector.js, faces.js and
//           facecheck.js: wasm start, each model's load (fetch + loadGraphModel + warm-up run),
//           the face search and the whole face check per named picture, the classifier per
//           face crop, and the offscreen document's check step by step; it also makes sure
//           every face picture holds a face and every no-face picture none;
//   clicks: "Check image for deepfake" (dispatched to the worker's onClicked listener:
//           headless Chromium has no native menu) until the overlay shows the verdict, on
//           pictures with a face and, alternately, on pictures without ("No face found");
//   feeds:  a feed page of face pictures, navigation start until every badge is shown (a
//           badge comes only with a verdict on a face), with the page's long tasks
//           (PerformanceObserver 'longtask') and the largest lateness of a 10 ms timer
//           heartbeat (the longest main-thread stall, also under 50 ms).
// Also counts who downloaded the images (page, content script, worker). Writes raw figures to
// OUT; bench/browser.py turns them into medians and percentiles.
import {execFileSync, spawn} from 'node:child_process';
import {createServer} from 'node:https';
import {mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

import * as esbuild from 'esbuild';
import {chromium} from 'playwright-core';

import {build} from '../extension/build.mjs';
import {evaluateInWorld, inContentScript, isContentScriptWorld} from '../tests/extension/harness/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const CHROMIUM = process.env.UNMASK_CHROMIUM || '/usr/bin/chromium';
const SITE = 'www.reddit.com';
const CDN = 'i.redd.it';
const MENU_ID = 'unmask-check-image'; // extension/src/background.js
const WAIT_MS = 180000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `promise`, or `fallback` after ms (the timer is cleared, so nothing keeps Node waiting).
async function within(promise, ms, fallback = null) {
  let timer;
  try {
    return await Promise.race([promise, new Promise((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
const STARTED = Date.now();
const log = (msg) => process.stderr.write(`browser ${((Date.now() - STARTED) / 1000).toFixed(1)}s: ${msg}\n`);

class BenchError extends Error {}

async function until(fn, what, timeout = WAIT_MS, interval = 100) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new BenchError(`timed out after ${timeout / 1000} s waiting for ${what}`);
    await sleep(interval);
  }
}

function selfSignedCert(dir) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${SITE}`,
      '-keyout', key, '-out', cert], {stdio: 'ignore'});
  } catch (e) {
    throw new BenchError(`openssl could not make a certificate for the local HTTPS server (${e.message}); install openssl`);
  }
  return {key: readFileSync(key), cert: readFileSync(cert)};
}

function feedPage(names) {
  const imgs = names.map((n, i) => `<img id="f${i}" src="https://${CDN}/${n}" width="140" height="140" alt="">`).join('\n');
  return `<!doctype html><meta charset="utf-8"><title>bench feed</title>
<style>body{margin:8px;font:14px system-ui} main{display:grid;grid-template-columns:repeat(8,150px);gap:6px} img{display:block}</style>
<main>${imgs}</main>`;
}

function plainPage(names) {
  const imgs = names.map((n, i) => `<img id="c${i}" src="https://${CDN}/${n}" width="120" height="120" alt="">`).join('\n');
  return `<!doctype html><meta charset="utf-8"><title>bench click</title>
<style>main{display:grid;grid-template-columns:repeat(10,124px);gap:4px} img{display:block;object-fit:cover}</style><main>${imgs}</main>`;
}

async function serve(config, tls) {
  const requests = [];
  const pages = {'/bench/feed.html': feedPage(config.feed), '/bench/plain.html': plainPage([...config.click, ...config.click_no_face])};
  const server = createServer(tls, (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'https://x').pathname);
    if (pages[path]) {
      res.writeHead(200, {'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store'});
      return res.end(pages[path]);
    }
    const name = path.slice(1);
    if (/^[\w.-]+\.(jpg|png)$/.test(name)) {
      try {
        const body = readFileSync(join(config.images, name));
        requests.push({name, origin: req.headers.origin || null, mode: req.headers['sec-fetch-mode'] || null, dest: req.headers['sec-fetch-dest'] || null, site: req.headers['sec-fetch-site'] || null});
        res.writeHead(200, {'content-type': name.endsWith('.png') ? 'image/png' : 'image/jpeg', 'cache-control': 'no-store', 'access-control-allow-origin': '*'});
        return res.end(body);
      } catch {
        // fall through to 404
      }
    }
    res.writeHead(404, {'content-type': 'text/plain'});
    res.end('not found');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.requests = requests;
  return server;
}

// Every picture the probe reads: to time, and to make sure of its faces.
const probeImages = (config) => [...new Set([...config.infer, ...config.pictures.map((p) => p.name), ...config.feed, ...config.click, ...config.click_no_face])];

// The extension as `npm run build` makes it, with the model under test, plus our probe page.
async function buildExtension(model, config) {
  const out = mkdtempSync(join(tmpdir(), 'unmask-bench-ext-'));
  // The test build: its content script lets the bench watch the closed overlay (unmaskInspect).
  const info = await build({out, model: model.tfjs, zip: 'none', testHooks: true});
  await esbuild.build({
    entryPoints: [join(HERE, 'browser_probe.js')], outfile: join(out, 'bench-probe.js'), bundle: true, minify: true,
    format: 'esm', target: 'chrome116', logLevel: 'warning', absWorkingDir: ROOT, legalComments: 'none',
  });
  writeFileSync(join(out, 'bench-probe.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="bench-probe.js"></script>\n');
  mkdirSync(join(out, 'bench-images'));
  for (const n of probeImages(config)) copyFileSync(join(config.images, n), join(out, 'bench-images', n));
  return info;
}

async function launch(extDir, port) {
  const profile = mkdtempSync(join(tmpdir(), 'unmask-bench-chromium-'));
  const rules = [SITE, CDN].map((h) => `MAP ${h} 127.0.0.1:${port}`).join(',');
  const args = [
    '--headless=new', '--no-sandbox', '--test-type', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--no-default-browser-check', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-search-engine-choice-screen', '--password-store=basic', '--remote-debugging-port=0',
    '--enable-unsafe-extension-debugging', '--ignore-certificate-errors', `--host-resolver-rules=${rules}`,
    '--window-size=1280,1100', `--user-data-dir=${profile}`, 'about:blank',
  ];
  // Its own process group, so that closing it also ends its renderer and helper processes.
  const proc = spawn(CHROMIUM, args, {stdio: ['ignore', 'ignore', 'pipe'], detached: true});
  let browser = null;
  const close = async () => {
    if (browser) await within(browser.close().catch(() => {}), 10000);
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    if (proc.pid && proc.exitCode === null && proc.signalCode === null) await new Promise((r) => proc.once('exit', r));
    proc.stderr.destroy();
    try {
      rmSync(profile, {recursive: true, force: true, maxRetries: 10, retryDelay: 300});
    } catch (e) {
      log(`could not remove the profile ${profile}: ${e.message}`);
    }
  };
  try {
    const wsUrl = await new Promise((res, rej) => {
      let seen = '';
      const timer = setTimeout(() => rej(new BenchError(`Chromium (${CHROMIUM}) did not start within 60 s:\n${seen.slice(-1500)}`)), 60000);
      proc.stderr.on('data', (d) => {
        seen += d;
        const m = /DevTools listening on (ws:\S+)/.exec(seen);
        if (m) {
          clearTimeout(timer);
          res(m[1]);
        }
      });
      proc.on('error', (e) => {
        clearTimeout(timer);
        rej(new BenchError(`cannot start Chromium at ${CHROMIUM}: ${e.message}; install it (make chromium) or set UNMASK_CHROMIUM`));
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        rej(new BenchError(`Chromium exited (${code}):\n${seen.slice(-1500)}`));
      });
    });
    browser = await chromium.connectOverCDP(wsUrl);
    const context = browser.contexts()[0];
    const cdp = await browser.newBrowserCDPSession();
    const page = context.pages()[0] || (await context.newPage());
    await page.goto('chrome://extensions');
    await page.evaluate(() => chrome.developerPrivate.updateProfileConfiguration({inDeveloperMode: true}));
    const {id} = await cdp.send('Extensions.loadUnpacked', {path: extDir});
    const origin = `chrome-extension://${id}`;
    const mine = (w) => w.url().startsWith(`${origin}/`);
    const worker = context.serviceWorkers().find(mine) || (await context.waitForEvent('serviceworker', {predicate: mine, timeout: 30000}));
    return {browser, context, worker, page, origin, version: browser.version(), close};
  } catch (e) {
    await close();
    throw e;
  }
}

// --- in the service worker ----------------------------------------------------------------
const closeOffscreen = (worker) => worker.evaluate(async () => {
  const open = await chrome.runtime.getContexts({contextTypes: ['OFFSCREEN_DOCUMENT']});
  if (open.length) await chrome.offscreen.closeDocument();
});

const openOffscreen = (worker, url) => worker.evaluate((url) => chrome.offscreen.createDocument({
  url, reasons: ['WORKERS'], justification: 'benchmark',
}), url);

// One 'check' message to the extension's offscreen document; ms from sending to the answer.
const offscreenCheck = (worker, data) => worker.evaluate(async (data) => {
  const t0 = performance.now();
  const reply = await chrome.runtime.sendMessage({target: 'offscreen', type: 'check', data});
  const ms = performance.now() - t0;
  if (!reply || !reply.ok) throw new Error(`the offscreen document refused the image: ${JSON.stringify(reply)}`);
  return {ms, faces: reply.value.faces.length};
}, data);

async function setSettings(worker, changes) {
  await worker.evaluate(async (changes) => {
    const got = await chrome.storage.local.get('settings');
    await chrome.storage.local.set({settings: {...(got.settings || {}), ...changes}});
  }, changes);
}

// The extension's own "clear data" (cache of verdicts, recent checks), so that every image
// goes through the model again.
async function clearData(ctx) {
  const page = await ctx.context.newPage();
  try {
    await page.goto(`${ctx.origin}/popup.html`);
    const r = await page.evaluate(() => chrome.runtime.sendMessage({target: 'worker', type: 'clearData'}));
    if (!r || !r.ok) throw new BenchError(`the extension did not clear its cache: ${JSON.stringify(r)}`);
  } finally {
    await page.close();
  }
}

// --- the measurements ---------------------------------------------------------------------
async function measureOffscreen(ctx, config, b64) {
  const cold = [];
  for (let i = 0; i < config.runs.cold; i++) {
    await closeOffscreen(ctx.worker);
    const t0 = Date.now();
    await openOffscreen(ctx.worker, 'offscreen.html');
    const first = await offscreenCheck(ctx.worker, b64[i % b64.length]);
    cold.push({create_ms: Date.now() - t0 - first.ms, first_check_ms: first.ms});
    log(`  cold start ${i + 1}/${config.runs.cold}: ${(Date.now() - t0).toFixed(0)} ms`);
  }
  const checks = [];
  const faces = [];
  for (let i = 0; i < config.runs.checks; i++) {
    const r = await offscreenCheck(ctx.worker, b64[i % b64.length]);
    checks.push(r.ms);
    faces.push(r.faces);
  }
  log(`  ${checks.length} warm checks in the offscreen document`);
  await closeOffscreen(ctx.worker);
  if (faces.some((n) => !n)) throw new BenchError('the offscreen document found no face in a picture the probe found one in');
  return {cold, check_ms: checks, faces};
}

async function measureProbe(ctx, config) {
  await closeOffscreen(ctx.worker);
  await openOffscreen(ctx.worker, 'bench-probe.html');
  const reply = await ctx.worker.evaluate((msg) => chrome.runtime.sendMessage(msg), {
    target: 'bench-probe', loads: config.runs.loads, inferences: config.runs.inferences, stepRuns: config.runs.steps,
    finds: config.runs.finds, decodes: config.runs.decodes, images: config.infer, pictures: config.pictures,
    verify: {face: [...new Set([...config.feed, ...config.click, ...config.infer])], none: config.click_no_face},
  });
  await closeOffscreen(ctx.worker);
  if (!reply || !reply.ok) throw new BenchError(`the probe page failed: ${reply ? reply.message : 'no answer'}`);
  const v = reply.value;
  // A feed picture without a face would never get its badge; a click would be timed on the
  // wrong path: refuse the pictures rather than measure something else.
  if (v.verify.face_missing.length) throw new BenchError(`the extension's face finder finds no face in ${v.verify.face_missing.length} face picture(s): ${v.verify.face_missing.slice(0, 5).join(', ')}`);
  const found = Object.entries(v.pictures).map(([k, p]) => `${k} ${p.faces} face(s) in ${p.views} view(s)`).join(', ');
  log(`  probe: ${v.load_ms.length} model loads, ${v.inference_ms.length} face crops classified on ${v.backend.backend}; ${found}`);
  return v;
}

// The overlay is a closed shadow root whose elements carry no verdict, so the page's own
// scripts cannot watch it (issue 18): these observers run in the content script's isolated
// world (the test build's unmaskInspect, extension/src/content.js), on the same main thread
// and clock as the page. chrome.dom opens the closed root there.
//
// Arms a watch for the overlay of `src` showing its verdict; __benchClickDone() then resolves
// with when it did. Armed before the click, so nothing it times can slip past it.
const CLICK_WATCH = (src) => {
  const key = src.slice(0, 300);
  const observers = [];
  let found;
  const done = new Promise((resolve) => (found = resolve));
  globalThis.__benchClickDone = () => done;
  const look = () => {
    const host = document.querySelector('unmask-layer');
    const root = host && chrome.dom.openOrClosedShadowRoot(host);
    const p = root && root.querySelector('.panel');
    const s = p && globalThis.unmaskInspect.shown(p);
    if (s && s.src === key && (s.state === 'done' || s.state === 'error')) {
      const t = performance.timeOrigin + performance.now();
      observers.forEach((o) => o.disconnect());
      const title = p.querySelector('h2');
      found({t, state: s.state, verdict: s.verdict || null, faces: Number(s.faces || 0), title: title ? title.textContent : null, error: s.error || null});
      return true;
    }
    return false;
  };
  if (look()) return 'already shown';
  const observe = (target, options, fn) => {
    const o = new MutationObserver(fn);
    observers.push(o);
    o.observe(target, options);
  };
  const watchLayer = (host) => observe(chrome.dom.openOrClosedShadowRoot(host), {subtree: true, childList: true, attributes: true}, look);
  const host = document.querySelector('unmask-layer');
  if (host) watchLayer(host);
  else {
    // The layer (on <html>) appears with the first overlay: then watch inside its shadow root.
    observe(document.documentElement, {childList: true}, (records, o) => {
      const h = document.querySelector('unmask-layer');
      if (h) {
        o.disconnect();
        watchLayer(h);
        look();
      }
    });
  }
  return 'armed';
};

async function measureClicks(ctx, config, noFaceNames) {
  await setSettings(ctx.worker, {disabledSites: ['reddit.com']}); // no badges: only the click checks
  await clearData(ctx);
  const page = await ctx.context.newPage();
  await page.goto(`https://${SITE}/bench/plain.html`);
  await page.bringToFront();
  await until(() => page.evaluate(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)), 'the click page images');
  await until(() => inContentScript(ctx.context, ctx.origin, page, HAS_HOOKS), "the extension's content script, built with test hooks");
  const one = async (name, wantFace) => {
    const src = `https://${CDN}/${name}`;
    const armed = await inContentScript(ctx.context, ctx.origin, page, CLICK_WATCH, src);
    if (armed !== 'armed') throw new BenchError(`cannot watch the overlay for ${name} from the content script (${armed})`);
    const t0 = await ctx.worker.evaluate(async ({src, menuId, pageUrl}) => {
      // Without the "tabs" permission the tab comes without its URL, as it does for a real click.
      const [tab] = await chrome.tabs.query({active: true, lastFocusedWindow: true});
      const t = performance.timeOrigin + performance.now();
      chrome.contextMenus.onClicked.dispatch({menuItemId: menuId, srcUrl: src, frameId: 0, pageUrl, mediaType: 'image', editable: false}, tab);
      return t;
    }, {src, menuId: MENU_ID, pageUrl: page.url()});
    const waiting = inContentScript(ctx.context, ctx.origin, page, () => globalThis.__benchClickDone(), null)
      .catch((e) => ({state: 'error', error: e.message}));
    const end = await within(waiting, WAIT_MS);
    if (!end) throw new BenchError(`no verdict in the overlay for ${name} within ${WAIT_MS / 1000} s`);
    if (end.state !== 'done') throw new BenchError(`the overlay for ${name} shows an error: ${end.error}`);
    if ((end.verdict !== 'no_face') !== wantFace) {
      throw new BenchError(`the overlay for ${name} says ${end.verdict} (${end.title}); the bench expected ${wantFace ? 'a face' : 'no face'}`);
    }
    await page.keyboard.press('Escape');
    return {ms: end.t - t0, verdict: end.verdict, faces: end.faces, title: end.title};
  };
  // The first click also starts the offscreen document and loads both models: kept apart.
  const first = await one(config.click[0], true);
  // Then pictures with a face and pictures without, alternately, so that both see the same
  // state of the machine.
  const faces = config.click.slice(1);
  const none = noFaceNames;
  const warm = [];
  const noFace = [];
  for (let i = 0; i < Math.max(faces.length, none.length); i++) {
    if (i < faces.length) warm.push(await one(faces[i], true));
    if (i < none.length) noFace.push(await one(none[i], false));
  }
  log(`  ${warm.length + 1} right-clicks on faces, ${noFace.length} on pictures without one`);
  await page.close();
  return {
    first_ms: first.ms, warm_ms: warm.map((c) => c.ms), warm_faces: warm.map((c) => c.faces), warm_verdicts: warm.map((c) => c.verdict),
    no_face_ms: noFace.map((c) => c.ms), no_face_title: noFace.length ? noFace[0].title : null,
  };
}

const HAS_HOOKS = () => typeof globalThis.unmaskInspect === 'function' && typeof globalThis.unmaskInspect.shown === 'function';

// Main-world observers in the feed page, from before its first script: long tasks, and a 10 ms
// timer heartbeat whose lateness shows any main-thread stall (long tasks only report those
// over 50 ms). Each beat's lateness is kept with its time, to take the largest up to the
// moment the last badge was shown.
const FEED_OBSERVER = `(() => {
  const b = window.__bench = {longtasks: [], lags: []};
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) b.longtasks.push(e.duration); }).observe({type: 'longtask', buffered: true});
    b.longtaskSupported = true;
  } catch (e) { b.longtaskSupported = false; }
  const BEAT = 10;
  let due = performance.now() + BEAT;
  let top = 0;
  const beat = () => {
    const t = performance.now();
    if (t - due > top) { top = t - due; b.lags.push([t, top]); }
    due = t + BEAT;
    setTimeout(beat, BEAT);
  };
  setTimeout(beat, BEAT);
})();`;

// In the content script's world: the badge states, from every change of the layer. Times
// come from the badges themselves (ui.js stamps since/at), so a counter installed after the
// first badges came (a loaded machine) still reads when each came and finished.
const BADGE_COUNTER = (want) => {
  const b = globalThis.__benchBadges = {firstBadge: null, done: null, finished: 0, errors: 0, badges: 0};
  const count = (root) => {
    const badges = root.querySelectorAll('.badge');
    let fin = 0;
    let err = 0;
    let last = null;
    for (const x of badges) {
      const s = globalThis.unmaskInspect.shown(x);
      if (!s) continue;
      if (b.firstBadge === null || s.since < b.firstBadge) b.firstBadge = s.since;
      if (s.state === 'done' || s.state === 'error') {
        fin++;
        if (s.state === 'error') err++;
        last = last === null ? s.at : Math.max(last, s.at);
      }
    }
    Object.assign(b, {badges: badges.length, finished: fin, errors: err});
    if (fin >= want && b.done === null) b.done = last;
  };
  const watch = (host) => {
    const root = chrome.dom.openOrClosedShadowRoot(host);
    new MutationObserver(() => count(root)).observe(root, {subtree: true, childList: true, attributes: true});
    count(root);
  };
  const host = document.querySelector('unmask-layer');
  if (host) {
    watch(host);
  } else {
    new MutationObserver((rs, mo) => {
      for (const r of rs) {
        for (const n of r.addedNodes) {
          if (n.localName === 'unmask-layer') {
            mo.disconnect();
            watch(n);
            return;
          }
        }
      }
    }).observe(document, {childList: true, subtree: true});
  }
  return typeof globalThis.unmaskInspect === 'function' && typeof globalThis.unmaskInspect.shown === 'function';
};

async function measureFeeds(ctx, config) {
  await setSettings(ctx.worker, {disabledSites: []});
  const runs = [];
  for (let i = 0; i < config.runs.feeds; i++) {
    await clearData(ctx);
    const page = await ctx.context.newPage();
    await page.setViewportSize({width: 1280, height: 1100});
    await page.addInitScript(FEED_OBSERVER);
    // The badge counter goes into the content script's world the moment Chromium makes it.
    const cdp = await ctx.context.newCDPSession(page);
    let world = null;
    let installed = null;
    cdp.on('Runtime.executionContextCreated', ({context}) => {
      if (world || !isContentScriptWorld(context, ctx.origin)) return;
      world = context.id;
      installed = evaluateInWorld(cdp, world, BADGE_COUNTER, config.feed.length).catch((e) => e);
    });
    await cdp.send('Runtime.enable');
    await page.goto(`https://${SITE}/bench/feed.html?n=${config.feed.length}`);
    await until(() => installed, "the extension's content script in the feed page");
    const ok = await installed;
    if (ok !== true) throw new BenchError(`cannot count the badges from the content script: ${ok instanceof Error ? ok.message : 'not a build with test hooks'}`);
    const b = await until(async () => {
      const s = await evaluateInWorld(cdp, world, () => globalThis.__benchBadges, null);
      return s && s.done !== null ? s : null;
    }, `badges on all ${config.feed.length} feed images`, WAIT_MS, 200);
    const main = await page.evaluate(() => window.__bench);
    await cdp.detach().catch(() => {});
    await page.close();
    if (b.errors) throw new BenchError(`${b.errors} of the feed's badges show an error`);
    const lags = main.lags.filter(([t]) => t <= b.done);
    runs.push({
      pass_ms: b.done, first_badge_ms: b.firstBadge, badges: b.badges,
      longtask_supported: main.longtaskSupported, longtasks: main.longtasks, max_timer_lag_ms: lags.length ? lags.at(-1)[1] : 0,
    });
    log(`  feed pass ${i + 1}/${config.runs.feeds}: ${b.badges} badges in ${b.done.toFixed(0)} ms`);
  }
  return runs;
}

async function benchModel(model, config, port) {
  log(`${model.key}: building the extension with ${model.tfjs}`);
  const built = await buildExtension(model, config);
  let ctx = null;
  try {
    ctx = await launch(built.out, port);
    const b64 = config.infer.map((n) => readFileSync(join(config.images, n)).toString('base64'));
    const offscreen = await measureOffscreen(ctx, config, b64);
    const probe = await measureProbe(ctx, config);
    // The no-face candidates the finder finds a face in (a false face) are left out.
    const dropped = probe.verify.face_in_no_face;
    const noFace = config.click_no_face.filter((n) => !dropped.includes(n)).slice(0, config.runs.no_face_clicks);
    if (noFace.length < config.runs.no_face_clicks) {
      throw new BenchError(`the extension's face finder finds a face in ${dropped.length} of ${config.click_no_face.length} no-face pictures (${dropped.slice(0, 5).join(', ')}): too few left to click`);
    }
    const clicks = await measureClicks(ctx, config, noFace);
    clicks.no_face_dropped = dropped;
    const feeds = await measureFeeds(ctx, config);
    const stats = await ctx.worker.evaluate(async () => {
      const open = await chrome.runtime.getContexts({contextTypes: ['OFFSCREEN_DOCUMENT']});
      return open.length ? chrome.runtime.sendMessage({target: 'offscreen', type: 'stats'}) : null;
    });
    return {
      chromium: ctx.version, extension: {version: built.version, bytes: built.bytes, files: built.files, model_bytes: built.model.bytes},
      offscreen_backend: stats && stats.ok ? stats.value.backend : null, offscreen, probe, clicks, feeds,
    };
  } finally {
    if (ctx) await ctx.close();
    rmSync(built.out, {recursive: true, force: true});
  }
}

// Who downloaded the images: the page's <img> elements, the content script reading them in the
// page (the extension's fallback when its worker may not fetch them), or the worker itself.
function fetchKinds(requests) {
  const kinds = {page_img: 0, content_script: 0, extension_worker: 0, other: 0};
  for (const r of requests) {
    if (r.dest === 'image') kinds.page_img += 1;
    else if (r.origin === `https://${SITE}`) kinds.content_script += 1;
    else if (!r.origin || r.origin.startsWith('chrome-extension://')) kinds.extension_worker += 1;
    else kinds.other += 1;
  }
  return kinds;
}

async function main() {
  const configPath = process.argv[2];
  if (!configPath) throw new BenchError('usage: node bench/browser_bench.mjs CONFIG.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  const tlsDir = mkdtempSync(join(tmpdir(), 'unmask-bench-tls-'));
  const server = await serve(config, selfSignedCert(tlsDir));
  const results = {};
  try {
    for (const model of config.models) {
      server.requests.length = 0;
      results[model.key] = await benchModel(model, config, server.address().port);
      results[model.key].image_fetches = fetchKinds(server.requests);
    }
  } finally {
    server.closeAllConnections();
    server.close();
    rmSync(tlsDir, {recursive: true, force: true});
  }
  writeFileSync(config.out, JSON.stringify(results, null, 1));
}

main().catch((e) => {
  process.stderr.write(`browser: error: ${e instanceof BenchError ? e.message : e.stack || e}\n`);
  process.exit(2);
});
