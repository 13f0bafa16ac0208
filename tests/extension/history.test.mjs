// The history of checks and "Is this wrong?" reports, with the built extension in a real
// Chromium (headed under Xvfb, the real context menu), against pages served here and the
// project's own server (`unmask serve`, gunicorn) for reports:
//
//   node --test tests/extension/history.test.mjs
//
// In order (later steps build on earlier ones): right-click checks appear in the history page
// with hash, boxes, model and thumbnail; a page script cannot open or file a report, a
// person's click files one, and with the server not allowed no request is made; the report
// survives a browser restart (same profile); with the server allowed, a report with its
// picture reaches /feedback and `unmask feedback export` returns it; a refusing or unreachable
// server and a picture that is gone leave the report kept, with a message; the zip export is
// a folder `unmask evaluate` reads; thousands of checks export and prune oldest first, reports
// kept; "Clear history"; and Chrome recorded no errors.
import assert from 'node:assert/strict';
import {createHash} from 'node:crypto';
import {mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {after, before, describe, it} from 'node:test';

import {launch, sleep, waitFor} from './harness/browser.mjs';
import {deadPort, serveFiles} from './harness/servers.mjs';
import {buildExtension, fixtureImages, modelUnderTest, provenanceFixtures, run, startServer, tempDir, UNMASK} from './harness/setup.mjs';

const KEY = 'history-test-key';

// What a page hands the browser to download (an <a download> clicked), kept in window.downloads.
const captureDownloads = (page) => page.evaluate(() => {
  window.downloads = [];
  HTMLAnchorElement.prototype.click = function click() {
    if (this.download) window.downloads.push({name: this.download, href: this.href});
  };
});

// The overlay's state, and where its controls are (for real clicks at those points), read in
// the extension's own world: on a web page the content script's isolated world (the layer is a
// closed shadow root), on the history page the page itself; the test build's unmaskInspect().
let session;
const inUi = (p, fn, arg) => (p.url().startsWith('chrome-extension://') ? p.evaluate(fn, arg) : session.contentScript(p, fn, arg));

async function overlayOf(page) {
  return (await inUi(page, () => {
    const p = globalThis.unmaskInspect && globalThis.unmaskInspect().panel;
    if (!p) return null;
    const at = (key, value) => {
      const c = p.controls.find((x) => x[key] === value);
      return c ? {x: c.rect.left + c.rect.width / 2, y: c.rect.top + c.rect.height / 2, disabled: c.disabled} : null;
    };
    return {...p, boxes: p.boxes.length,
      controls: {open: at('action', 'report-open'), note: at('field', 'note'), send: at('field', 'send'), picture: at('field', 'picture'),
        real: at('says', 'real'), fake: at('says', 'fake'), sendPicture: at('action', 'send-picture')}};
  })) ?? null;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

describe('the history of checks and reports, in Chromium', {timeout: 20 * 60000}, () => {
  let images, ext, site, page, server, profile, listener, serverStarting, serverDir, feedbackDb, gone = false;
  const file = (name) => readFileSync(join(images.root, 'site/img', name));

  // The extension's own API and storage, as its pages use them.
  const inExtension = async (fn, arg) => {
    const p = await session.extensionPage('history.html');
    try {
      return await p.evaluate(fn, arg);
    } finally {
      await p.close();
    }
  };
  const toWorker = (message) => inExtension((m) => chrome.runtime.sendMessage({target: 'worker', ...m}), message);
  const setSettings = (changes) => inExtension(async (c) => {
    const {settings = {}} = await chrome.storage.local.get('settings');
    await chrome.storage.local.set({settings: {...settings, ...c}});
  }, changes);
  // Every check in the history, newest first, read straight from IndexedDB.
  const records = () => inExtension(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('unmask-history');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const get = open.result.transaction('checks').objectStore('checks').getAll();
      get.onsuccess = () => resolve(get.result.sort((a, b) => b.t - a.t));
    };
  }));

  // Right-click an image, choose the item, wait for the verdict.
  async function rightClickCheck(id) {
    await session.chooseContextMenuItem(page, page.locator(`#${id}`));
    return waitFor(async () => {
      const o = await overlayOf(page);
      return o && ['done', 'error'].includes(o.state) ? o : null;
    }, {what: `the overlay for #${id}`});
  }
  const click = async (point) => {
    assert.ok(point, 'the control is not on screen');
    await page.mouse.click(point.x, point.y);
  };

  before(async () => {
    images = await fixtureImages();
    const model = await modelUnderTest(images);
    ext = await buildExtension(model);
    // The picture behind /img/gone.jpg disappears (404) when the test says so.
    const goneRoute = (req, res) => {
      if (gone) {
        res.writeHead(404, {'content-type': 'text/plain'});
        return res.end('gone');
      }
      res.writeHead(200, {'content-type': 'image/png', 'cache-control': 'no-store'});
      return res.end(file('feed_02.png'));
    };
    site = await serveFiles({dirs: [join(import.meta.dirname, 'pages'), join(images.root, 'site')], routes: {'/img/gone.png': goneRoute}});
    // A server that records requests: where reports must NOT go while the server is not allowed.
    listener = await serveFiles({dirs: []});
    profile = tempDir('unmask-history-profile-');
    session = await launch(ext.out, {profile});
    serverDir = tempDir('unmask-feedback-');
    feedbackDb = join(serverDir, 'feedback.sqlite3');
    // The server takes half a minute to load TensorFlow: start it now, use it later.
    serverStarting = startServer({port: await deadPort(), env: {UNMASK_API_KEY: KEY, UNMASK_CORS_ORIGINS: `chrome-extension://${session.id}`,
      UNMASK_FEEDBACK_URI: `sqlite:///${feedbackDb}`}}).then((s) => s, (e) => ({error: e}));
    page = await session.context.newPage();
    await page.goto(`http://localhost:${site.port}/reports.html`);
  });

  after(async () => {
    if (serverStarting) {
      const s = await serverStarting;
      if (s && !s.error) await s.stop();
    }
    if (session) await session.close();
    for (const s of [site, listener]) if (s) await s.close();
    for (const d of [profile, serverDir]) if (d) rmSync(d, {recursive: true, force: true});
    if (ext) rmSync(ext.out, {recursive: true, force: true});
  });

  it('keeps every right-click check, and lists it in the history page with its faces, hash, model and thumbnail', async () => {
    const overlay = await rightClickCheck('one');
    assert.equal(overlay.state, 'done', overlay.text);
    const [record] = await records();
    assert.ok(record, 'nothing in the history after a right-click check');
    assert.equal(record.url, `http://localhost:${site.port}/img/feed_01.jpg`);
    assert.equal(record.pageUrl, `http://localhost:${site.port}/reports.html`);
    assert.equal(record.hash, sha256(file('feed_01.jpg')));
    assert.equal(record.verdict, overlay.verdict);
    assert.equal(record.device.faces.length, overlay.boxes);
    assert.ok(record.device.faces.every((f) => f.box.length === 4 && ['fake', 'real', 'uncertain'].includes(f.verdict)));
    const metadata = JSON.parse(readFileSync(join(ext.out, 'model/metadata.json'), 'utf8'));
    assert.deepEqual(record.model, {name: metadata.name, version: metadata.version});
    assert.match(record.thumb, /^data:image\/jpeg;base64,/);
    assert.ok(record.thumb.length < 8000, `the thumbnail is ${record.thumb.length} characters: not small`);

    await rightClickCheck('two');
    const history = await session.extensionPage('history.html');
    await history.waitForSelector('body[data-ready="1"]');
    const rows = await history.$$eval('#list li', (lis) => lis.map((li) => ({...li.dataset, text: li.innerText})));
    assert.equal(rows.length, 2);
    assert.match(rows[0].text, /feed_00\.jpg/, 'newest first');
    assert.match(rows[1].text, /feed_01\.jpg/);
    assert.equal(rows[0].site, 'localhost');
    // Search and filters.
    await history.fill('#search', 'feed_01');
    await waitFor(async () => (await history.$$('#list li')).length === 1, {what: 'the search to narrow the list'});
    await history.fill('#search', '');
    await history.selectOption('#reported', 'yes');
    await waitFor(async () => !(await history.isHidden('#empty')), {what: 'no reported check yet'});
    await history.close();
    await page.keyboard.press('Escape');
  });

  it('keeps a badged feed picture only once the user turns that on', async () => {
    // The worker's own path for a badge, with the bytes as a page sends them.
    const badge = (name) => toWorker({type: 'check', url: `http://localhost:${site.port}/img/${name}`, reason: 'badge', data: file(name).toString('base64')});
    const before = (await records()).length;
    let reply = await badge('feed_04.jpg');
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.equal(reply.historyId, null);
    assert.equal((await records()).length, before, 'a badged picture went into the history while that is off');
    await setSettings({historyFeed: true});
    reply = await badge('feed_05.jpg');
    assert.ok(reply.historyId, 'a badged picture was not kept with the feed option on');
    const [kept] = await records();
    assert.equal(kept.reason, 'badge');
    assert.equal(kept.hash, sha256(file('feed_05.jpg')));
    await setSettings({historyFeed: false});
  });

  it('keeps what a file says of its origin with its check, and the verdict it makes', async () => {
    const fx = await provenanceFixtures();
    const [name, want] = Object.entries(fx.expect).find(([, w]) => w.ai && w.statement);
    const reply = await toWorker({type: 'check', url: `http://localhost:${site.port}/${name}`, reason: 'menu', data: readFileSync(join(fx.root, name)).toString('base64')});
    assert.equal(reply.ok, true, JSON.stringify(reply));
    const kept = (await records()).find((r) => r.id === reply.historyId);
    assert.equal(kept.provenance.statement, want.statement);
    assert.equal(kept.verdict, 'fake', 'the history keeps the faces\' verdict, not the picture\'s');
    assert.equal(kept.verdict, reply.picture.verdict);
  });

  it('files a report from the overlay on a person\'s click only, and sends nothing while the server is not allowed', async () => {
    await setSettings({secondOpinion: false, serverUrl: listener.origin});
    await rightClickCheck('one');
    // A page script clicks the buttons (and the shadow root's inside if it can reach it): nothing happens.
    await page.evaluate(() => {
      const root = document.querySelector('unmask-layer').shadowRoot;
      if (root) root.querySelector('[data-action=report-open]').click();
    });
    await sleep(300);
    assert.equal((await overlayOf(page)).report.reportState, 'closed', 'an untrusted click opened the report form');
    await click((await overlayOf(page)).controls.open);
    const form = await waitFor(async () => {
      const o = await overlayOf(page);
      return o.report.reportState === 'open' ? o : null;
    }, {what: 'the report form'});
    assert.ok(form.controls.send.disabled, 'sending is offered while the server is not allowed');
    await page.evaluate(() => {
      const root = document.querySelector('unmask-layer').shadowRoot;
      if (root) root.querySelector('[data-says=fake]').click();
    });
    await sleep(300);
    assert.equal((await overlayOf(page)).report.reportState, 'open', 'an untrusted click filed a report');
    await click(form.controls.note);
    await page.keyboard.type('the ears do not match');
    await click((await overlayOf(page)).controls.fake);
    const saved = await waitFor(async () => {
      const o = await overlayOf(page);
      return o.report.reportState === 'saved' ? o : null;
    }, {what: 'the report to be kept'});
    assert.match(saved.report.text, /you said it is fake/);
    const [record] = await records();
    assert.equal(record.report.says, 'fake');
    assert.equal(record.report.note, 'the ears do not match');
    assert.equal(record.report.picture, true, 'the reported picture is kept for export');
    // Asked straight to send, the worker still refuses while the server is not allowed.
    const reply = await toWorker({type: 'sendKeptReport', id: record.id, includePicture: true});
    assert.equal(reply.ok, true);
    assert.equal(reply.sent.state, 'not_allowed');
    assert.match(reply.sent.message, /not allowed/);
    assert.deepEqual(listener.requests, [], 'a request went out while the server was not allowed');
    await page.keyboard.press('Escape');
  });

  it('keeps the report across a browser restart', async () => {
    const before = (await records()).find((r) => r.report);
    await session.close();
    session = await launch(ext.out, {profile});
    page = await session.context.newPage();
    await page.goto(`http://localhost:${site.port}/reports.html`);
    const after = (await records()).find((r) => r.id === before.id);
    assert.ok(after, 'the reported check is gone after the restart');
    assert.deepEqual(after.report, before.report);
    // Opened again from the history page, with its overlay: verdict, boxes and the report.
    const history = await session.extensionPage(`history.html#check=${encodeURIComponent(before.id)}`);
    await history.waitForSelector('body[data-ready="1"]');
    const shown = await overlayOf(history).then((o) => ({...o, report: o.report.reportState}));
    assert.equal(shown.verdict, before.verdict);
    assert.equal(shown.boxes, before.device.faces.length);
    assert.equal(shown.report, 'saved');
    assert.match(shown.text, /you said it is fake/);
    await history.close();
  });

  it('sends a report with its picture to the allowed server, which `unmask feedback export` returns', async () => {
    server = await serverStarting;
    if (server.error) throw server.error;
    await setSettings({secondOpinion: true, serverUrl: server.origin, apiKey: KEY});
    await rightClickCheck('two');
    await click((await overlayOf(page)).controls.open);
    const form = await waitFor(async () => {
      const o = await overlayOf(page);
      return o.report.reportState === 'open' ? o : null;
    }, {what: 'the report form'});
    assert.equal(form.controls.send.disabled, false);
    await click(form.controls.picture);
    await click(form.controls.real);
    const saved = await waitFor(async () => {
      const o = await overlayOf(page);
      return o.report.reportState === 'saved' ? o : null;
    }, {what: 'the report to be sent'});
    assert.equal(saved.report.sent, 'sent', saved.report.text);
    assert.match(saved.report.text, /with the picture/);
    await page.keyboard.press('Escape');

    // The report kept earlier, while the server was not allowed, sent now from the history page.
    const earlier = (await records()).find((r) => r.report && r.report.says === 'fake');
    assert.equal(earlier.report.sent.state, 'not_allowed');
    const history = await session.extensionPage(`history.html#check=${encodeURIComponent(earlier.id)}`);
    await history.waitForSelector('body[data-ready="1"]');
    const sendAt = (await overlayOf(history)).controls.sendPicture;
    await history.mouse.click(sendAt.x, sendAt.y);
    await waitFor(async () => (await overlayOf(history)).report.sent === 'sent',
      {what: 'the kept report to be sent from the history'});
    await history.close();

    const exported = await run(UNMASK, ['feedback', 'export', '--format', 'json', '--db', `sqlite:///${feedbackDb}`]);
    assert.equal(exported.code, 0, exported.stderr);
    const reports = JSON.parse(exported.stdout).reports;
    assert.deepEqual(reports.map((r) => [r.sha256, r.says, r.has_picture]), [
      [sha256(file('feed_00.jpg')), 'real', true],
      [sha256(file('feed_01.jpg')), 'fake', true],
    ]);
    assert.equal(reports[0].image_url, `http://localhost:${site.port}/img/feed_00.jpg`);
    assert.equal(reports[1].note, 'the ears do not match');
  });

  it('keeps a report when the server refuses it, cannot be reached, or the picture is gone, and says which', async () => {
    const [record] = (await records()).filter((r) => r.report && r.report.says === 'real');
    await setSettings({apiKey: 'wrong-key'});
    let reply = await toWorker({type: 'sendKeptReport', id: record.id, includePicture: false});
    assert.equal(reply.sent.state, 'failed');
    assert.match(reply.sent.message, /refused the API key.*kept on this device/s);
    await setSettings({serverUrl: `http://127.0.0.1:${await deadPort()}`, apiKey: KEY});
    reply = await toWorker({type: 'sendKeptReport', id: record.id, includePicture: false});
    assert.equal(reply.sent.state, 'failed');
    assert.match(reply.sent.message, /cannot reach your server/); // shown in pages too: never where it is
    const kept = (await records()).find((r) => r.id === record.id);
    assert.equal(kept.report.says, 'real', 'the failed sends lost the report');
    assert.equal(kept.report.sent.state, 'failed');

    // A picture that is gone: checked, then the site drops it and the worker forgets it.
    await setSettings({secondOpinion: false});
    await rightClickCheck('gone');
    const goneRecord = (await records())[0];
    assert.match(goneRecord.url, /gone\.png$/);
    await page.keyboard.press('Escape');
    gone = true;
    await session.stopWorker(); // the worker's memory of recent pictures goes with it
    reply = await toWorker({type: 'report', id: goneRecord.id, says: 'fake', note: ''});
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.match(reply.pictureProblem, /could not be downloaded again.*kept without the picture/s);
    const stored = (await records()).find((r) => r.id === goneRecord.id);
    assert.equal(stored.report.says, 'fake');
    assert.equal(stored.report.picture, false);
    // A report on a check that is no longer kept is refused with a reason.
    reply = await toWorker({type: 'report', id: 'no-such-check', says: 'fake'});
    assert.equal(reply.ok, false);
    assert.match(reply.error.message, /no longer in the history/);
  });

  it('exports the reported pictures as a zip whose folder `unmask evaluate` reads', async () => {
    const history = await session.extensionPage('history.html');
    await history.waitForSelector('body[data-ready="1"]');
    await captureDownloads(history);
    await history.click('#export-zip');
    await waitFor(async () => /Exported/.test(await history.textContent('#export-status')), {what: 'the export'});
    assert.match(await history.textContent('#export-status'), /2 reported picture\(s\).*1 report\(s\) without their picture.*unzip/s);
    const zipped = await history.evaluate(async () => {
      const d = window.downloads.at(-1);
      const bytes = new Uint8Array(await (await fetch(d.href)).arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return {name: d.name, data: btoa(s)};
    });
    await history.close();
    assert.equal(zipped.name, 'unmask-reports.zip');
    const dir = tempDir('unmask-export-');
    try {
      writeFileSync(join(dir, zipped.name), Buffer.from(zipped.data, 'base64'));
      const unzip = await run('unzip', ['-q', zipped.name], {cwd: dir});
      assert.equal(unzip.code, 0, unzip.stderr);
      const manifest = readFileSync(join(dir, 'unmask-reports/manifest.csv'), 'utf8').trim().split(/\r?\n/);
      assert.equal(manifest[0], 'path,label,source,group,note,url,page_url,verdict,sha256');
      assert.equal(manifest.length, 3);
      assert.ok(manifest.some((l) => l.startsWith(`fake/${sha256(file('feed_01.jpg'))}.jpg,fake,user-reports,`) && l.includes('the ears do not match')));
      assert.ok(manifest.some((l) => l.startsWith(`real/${sha256(file('feed_00.jpg'))}.jpg,real,user-reports,`)));
      assert.deepEqual(readFileSync(join(dir, 'unmask-reports/real', `${sha256(file('feed_00.jpg'))}.jpg`)), file('feed_00.jpg'));
      mkdirSync(join(dir, 'eval'));
      const evaluated = await run(UNMASK, ['evaluate', 'tiny', '--data', join(dir, 'unmask-reports'), '--split', 'all', '--out', join(dir, 'eval'), '--quiet']);
      assert.equal(evaluated.code, 0, evaluated.stderr.slice(-3000));
      const metrics = JSON.parse(readFileSync(join(dir, 'eval', 'metrics.json'), 'utf8'));
      assert.ok(JSON.stringify(metrics).includes('user-reports'), 'the evaluation does not name the user-reports source');
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });

  it('when the browser has no room left, still gives the verdict, says the check was not kept, and loses no report', async () => {
    const reportedBefore = (await records()).filter((r) => r.report);
    // Chromium offers no way to shrink its quota any more (DevTools' overrideQuotaForOrigin does
    // nothing since 156): the test build writes checks as a browser with a full disk does.
    const full = await toWorker({type: 'testDiskFull', full: true});
    assert.equal(full.ok, true, JSON.stringify(full));
    try {
      const overlay = await rightClickCheck('two');
      assert.equal(overlay.state, 'done', 'the verdict was lost with the history');
      assert.ok(overlay.verdict);
      assert.match(overlay.text, /Not kept in your history: the browser has no room left for the history.*your reports are kept/s);
      assert.equal(overlay.report, null, 'a check not kept offers a report it cannot keep');
    } finally {
      await toWorker({type: 'testDiskFull', full: false});
      await page.keyboard.press('Escape');
    }
    const after = (await records()).filter((r) => r.report);
    assert.deepEqual(after.map((r) => [r.id, r.report.says]), reportedBefore.map((r) => [r.id, r.report.says]));
  });

  it('exports thousands of checks, keeps under its quota by dropping the oldest unreported first, and clears', async () => {
    const history = await session.extensionPage('history.html');
    await history.waitForSelector('body[data-ready="1"]');
    // 3,000 older checks of 1 KB each, written straight into the store.
    await history.evaluate(() => new Promise((resolve, reject) => {
      const open = indexedDB.open('unmask-history');
      open.onsuccess = () => {
        const t = open.result.transaction('checks', 'readwrite');
        const checks = t.objectStore('checks');
        const base = Date.now() - 86400000;
        for (let i = 0; i < 3000; i++) {
          checks.put({id: `bulk-${String(i).padStart(5, '0')}`, t: base + i, hash: i.toString(16).padStart(64, '0'), url: `https://bulk.example/${i}.jpg`,
            pageUrl: 'https://bulk.example/', site: 'bulk.example', verdict: 'real', confidence: 0.9, p_fake: 0.1, thumb: null, fetchable: true,
            device: {verdict: 'real', faces: [{box: [1, 2, 3, 4], verdict: 'real', confidence: 0.9, p_fake: 0.1}]}, server: null, provenance: null,
            model: {name: 'tiny', version: 'x'}, report: null, pad: 'x'.repeat(900), size: 1200});
        }
        t.oncomplete = resolve;
        t.onerror = () => reject(t.error);
      };
    }));
    await history.reload();
    await history.waitForSelector('body[data-ready="1"]');
    assert.equal((await history.$$('#list li')).length, 500, 'the page draws at most 500 rows at once');
    assert.match(await history.textContent('#more'), /newest 500/);
    await captureDownloads(history);
    await history.click('#export-json');
    await waitFor(async () => /Exported/.test(await history.textContent('#export-status')), {what: 'the JSON export'});
    const exported = await history.evaluate(async () => JSON.parse(await (await fetch(window.downloads.at(-1).href)).text()).checks);
    const total = (await records()).length;
    assert.ok(total > 3000);
    assert.equal(exported.length, total);
    assert.ok(exported.every((c) => !('thumb' in c)), 'the JSON export carries thumbnails');
    await history.click('#export-csv');
    await waitFor(async () => /as CSV/.test(await history.textContent('#export-status')), {what: 'the CSV export'});
    const csvLines = await history.evaluate(async () => (await (await fetch(window.downloads.at(-1).href)).text()).trim().split('\r\n').length);
    assert.equal(csvLines, total + 1);

    // A quota of 1 MB: the oldest unreported checks go; every report stays.
    const reportedBefore = (await records()).filter((r) => r.report).map((r) => r.id).sort();
    await history.fill('#quota', '1');
    await history.click('#save-keep');
    await waitFor(async () => /Saved/.test(await history.textContent('#keep-status')), {what: 'the new quota'});
    const left = await records();
    assert.deepEqual(left.filter((r) => r.report).map((r) => r.id).sort(), reportedBefore, 'a reported check was dropped');
    const bytes = left.reduce((n, r) => n + r.size, 0);
    assert.ok(bytes <= 1048576, `${bytes} bytes left over a 1 MB quota`);
    assert.ok(!left.some((r) => r.id === 'bulk-00000'), 'the oldest check stayed');
    assert.ok(left.some((r) => r.id === 'bulk-02999'), 'a newer check went before the oldest');

    await history.click('#clear');
    await history.click('#clear');
    await waitFor(async () => /Cleared/.test(await history.textContent('#keep-status')), {what: 'the history to clear'});
    assert.deepEqual(await records(), []);
    await history.close();
  });

  it('recorded no errors in chrome://extensions', async () => {
    const errors = await session.extensionErrors();
    assert.deepEqual(errors.manifest, []);
    assert.deepEqual(errors.runtime.map((e) => `${e.source}: ${e.message}`), []);
  });
});
