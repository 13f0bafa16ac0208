// Provenance in the built extension, in a real Chromium: the files of
// tests/extension/provenance_fixtures.py on a page, right-clicked (the overlay says what
// Python says of each, Content Credentials read by c2pa-rs in wasm in the offscreen
// document's worker), and as a feed with badges on (an "AI" mark on exactly the files that
// say they were made with AI, with a face or without one).
//
//   node --test tests/extension/provenance.browser.test.mjs
import assert from 'node:assert/strict';
import {readdirSync, rmSync} from 'node:fs';
import {after, before, describe, it} from 'node:test';

import {LABELS, wording} from '../../extension/src/wording.js';
import {launch, sleep, waitFor} from './harness/browser.mjs';
import {serveFiles} from './harness/servers.mjs';
import {buildExtension, fixtureImages, modelUnderTest, provenanceFixtures} from './harness/setup.mjs';

const RIGHT_CLICKED = ['xmp_ai.jpg', 'a1111.png', 'c2pa_ai.jpg', 'chart_a1111.png', 'novelai_stealth.png', 'sdxl_watermark.png', 'sdxl_watermark.jpg', 'plain.jpg', 'text_bomb.png'];

// The extension draws in a closed shadow root: read it in the content script's own world.
let session;

const panelText = async (page) => (await session.contentScript(page, () => {
  const host = document.querySelector('unmask-layer');
  const panel = host && chrome.dom.openOrClosedShadowRoot(host).querySelector('.panel');
  if (!panel || /Checking…/.test(panel.innerText)) return null;
  return panel.innerText;
})) ?? null;

// The badge over an image, if any: its text.
const badgeText = async (page, id) => (await session.contentScript(page, (id) => {
  const r = document.getElementById(id).getBoundingClientRect();
  const host = document.querySelector('unmask-layer');
  const badges = host ? [...chrome.dom.openOrClosedShadowRoot(host).querySelectorAll('.badge')].filter((b) => !b.hidden) : [];
  const on = badges.find((b) => {
    const br = b.getBoundingClientRect();
    return br.width > 0 && br.right <= r.right + 1 && br.right >= r.left && br.top >= r.top - 1 && br.top <= r.bottom;
  });
  return on ? {text: on.innerText, ai: Boolean(on.querySelector('.ai'))} : null;
}, id)) ?? null;

describe('provenance in the extension, in Chromium', {timeout: 15 * 60000}, () => {
  let fx, ext, site;
  const names = () => Object.keys(fx.expect);
  const id = (name) => name.replace(/\W/g, '_');

  before(async () => {
    fx = await provenanceFixtures();
    ext = await buildExtension(await modelUnderTest(await fixtureImages()));
    const page = () => `<!doctype html><meta charset="utf-8"><title>provenance</title><body style="margin:0">${
      names().map((n) => `<p><img id="${id(n)}" src="/${n}" width="240" style="display:block"></p>`).join('')}</body>`;
    site = await serveFiles({dirs: [fx.root], routes: {'/page.html': (req, res) => {
      res.writeHead(200, {'content-type': 'text/html; charset=utf-8'});
      res.end(page());
    }}});
    session = await launch(ext.out);
  });

  after(async () => {
    if (session) await session.close();
    if (site) await site.close();
    if (ext) rmSync(ext.out, {recursive: true, force: true});
  });

  it('right-click: the overlay says what Python says of each file', async () => {
    // A site without badges, its images same-origin: the page reads them for the extension.
    const page = await session.context.newPage();
    await page.goto(`http://localhost:${site.port}/page.html`);
    for (const name of RIGHT_CLICKED) {
      const want = fx.expect[name];
      await session.chooseContextMenuItem(page, page.locator(`#${id(name)}`));
      const text = await waitFor(() => panelText(page), {what: `the overlay for ${name}`});
      const said = want.statement;
      if (want.ai) {
        const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
        assert.ok(lines.slice(0, 3).includes(LABELS.fake), `${name}: the overlay does not call it fake:\n${text}`);
        assert.ok(text.includes(said), `${name}: the overlay does not say "${said}":\n${text}`);
        // Credentials are read by c2pa-rs in the offscreen document's worker: who signed, with what.
        if (want.signer) assert.ok(text.includes(`Signed by ${want.signer}, made with ${want.claim_generator}`), `${name}: no signer line:\n${text}`);
      } else {
        assert.ok(!text.includes(wording.provenance.declared) && !text.includes('made with AI'), `${name}: a claim where Python sees none:\n${text}`);
      }
      await page.keyboard.press('Escape');
      await waitFor(async () => !(await panelText(page)), {what: 'the overlay to close'});
    }
    await page.close();
  });

  it('feed: an AI mark on the badge of exactly the files that say they were made with AI', async () => {
    const feed = await session.context.newPage();
    await feed.goto(`${site.origin}/page.html`);
    const popup = await session.openPopup(feed);
    await waitFor(() => popup.evaluate('document.getElementById("host").textContent === "127.0.0.1" && !document.getElementById("badges").checked'), {what: 'the popup'});
    await popup.click('#badges');
    if (!(await session.hasHost('127.0.0.1'))) await session.acceptPermissionPrompt(() => session.hasHost('127.0.0.1'));
    const settings = async () => (await (await session.worker()).evaluate(() => chrome.storage.local.get('settings'))).settings || {};
    await waitFor(async () => (await settings()).sites?.includes('127.0.0.1'), {what: '127.0.0.1 switched on'});
    await popup.close();
    await feed.bringToFront();
    await feed.mouse.move(300, 300);
    for (const name of names()) {
      await feed.evaluate((i) => document.getElementById(i).scrollIntoView({block: 'center'}), id(name));
      if (fx.expect[name].ai) {
        const badge = await waitFor(() => badgeText(feed, id(name)), {what: `a badge on ${name}`}).catch(async (e) => {
          const w = await session.worker();
          const answer = await w.evaluate((url) => new Promise((resolve) => chrome.runtime.sendMessage({target: 'worker', type: 'check', url, reason: 'badge'}, resolve)), `${site.origin}/${name}`).catch((x) => String(x));
          throw new Error(`${e.message}; the worker's answer: ${JSON.stringify(answer).slice(0, 600)}`);
        });
        assert.ok(badge.ai && badge.text.includes(wording.provenance.badge), `${name}: no AI mark on its badge (${badge.text})`);
      } else {
        await sleep(1500);
        const badge = await badgeText(feed, id(name));
        assert.ok(!badge || !badge.ai, `${name}: an AI mark where Python sees no claim`);
      }
    }
    assert.ok(readdirSync(fx.root).length > names().length);
  });
});
