// Screenshots for extension/README.md, taken from the real extension in Chromium on the test
// feed: docs/screenshots/feed.png (badges on the faces), overlay.png (right-click result: face
// boxes and the overlay, with the second opinion), heat.png ("Show where it looked" on a group
// photo) and popup.png (recent checks).
//
//   node tests/extension/screenshots.mjs [--out docs/screenshots]
//
// It uses the same model as the browser tests (the shipped one when extension/model/ exists)
// and starts `unmask serve` with a small test ensemble for the second opinion.
import {mkdirSync, rmSync, writeFileSync} from 'node:fs';
import {join, resolve} from 'node:path';
import {parseArgs} from 'node:util';

import {launch, sleep} from './harness/browser.mjs';
import {deadPort, serveFiles} from './harness/servers.mjs';
import {buildExtension, fixtureImages, modelUnderTest, ROOT, startServer} from './harness/setup.mjs';

const {values} = parseArgs({options: {out: {type: 'string', default: join(ROOT, 'docs/screenshots')}}});
const out = resolve(values.out);
mkdirSync(out, {recursive: true});

const log = (m) => console.error(`screenshots: ${m}`);
const images = await fixtureImages();
const model = await modelUnderTest(images);
log(`model: ${model.note}`);
const ext = await buildExtension(model);
const serverStarting = startServer({port: await deadPort(), env: {UNMASK_CORS_ORIGINS: `chrome-extension://${ext.id}`}});
let cdn;
const site = await serveFiles({dirs: [join(ROOT, 'tests/extension/pages'), join(images.root, 'site')], vars: () => ({CDN: cdn.origin, OTHER: cdn.origin, INLINE: images.index.inline_data_url})});
cdn = await serveFiles({dirs: [join(images.root, 'cdn')]});
const session = await launch(ext.out);
let server;

async function until(fn, what, timeout = 60000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

// A screenshot of the image (with its face boxes) and the overlay beside it.
async function imageAndOverlay(page, selector) {
  const box = await page.locator(selector).boundingBox();
  const panel = await session.contentScript(page, () => globalThis.unmaskInspect().panel.rect); // the test build's hook
  const x0 = Math.max(0, Math.min(box.x, panel.left) - 20);
  const y0 = Math.max(0, Math.min(box.y, panel.top) - 20);
  const x1 = Math.max(box.x + box.width, panel.right) + 20;
  const y1 = Math.max(box.y + box.height, panel.bottom) + 20;
  return page.screenshot({clip: {x: x0, y: y0, width: x1 - x0, height: y1 - y0}});
}

try {
  const feed = await session.context.newPage();
  await feed.setViewportSize({width: 1000, height: 820});
  await feed.goto(`${site.origin}/feed.html`);
  const popup = await session.openPopup(feed);
  await sleep(500);
  await popup.click('#badges');
  await session.acceptPermissionPrompt(() => session.hasHost('127.0.0.1'));
  await popup.detach();
  server = await serverStarting;
  // (127.0.0.1 is allowed now: saving asks for nothing more.)
  const options = await session.extensionPage('options.html');
  await options.fill('#server', server.origin);
  await options.check('#second');
  await options.click('#save-server');
  await until(async () => /Saved/.test(await options.locator('#server-status').textContent()), 'the options');
  // Every Unsure picture goes, so the feed has one with the server's opinion whatever the
  // shipped model's escalation band holds.
  await options.check('#all-unsure');
  await until(async () => /every picture/.test(await options.locator('#server-status').textContent()), 'every Unsure picture sent');
  await options.close();

  await feed.reload();

  // The feed, scrolled to a few posts with finished badges (and a second opinion).
  await feed.bringToFront();
  await feed.evaluate(() => document.getElementById('feed_02').scrollIntoView({block: 'start'}));
  await feed.evaluate(() => window.scrollBy(0, -60));
  // What the extension draws is read in its content script's world (the test build's unmaskInspect).
  const settled = () => session.contentScript(feed, () => {
    const shown = globalThis.unmaskInspect ? globalThis.unmaskInspect().badges.filter((b) => !b.hidden) : [];
    return shown.length >= 2 && shown.every((b) => b.state !== 'checking' && b.state !== 'queued' && b.serverState !== 'asking');
  });
  await until(settled, 'the badges');
  await sleep(500);
  writeFileSync(join(out, 'feed.png'), await feed.screenshot());
  log('feed.png');

  // The overlay for an image the device is unsure about, with the server's opinion.
  const plain = await session.context.newPage();
  await plain.setViewportSize({width: 1000, height: 820});
  await plain.goto(`${site.origin}/feed.html`);
  const unsure = await until(() => session.contentScript(feed, () => {
    const b = globalThis.unmaskInspect().badges.find((x) => x.verdict === 'uncertain' && x.serverState === 'done');
    return b ? [...document.images].find((i) => i.currentSrc.startsWith(b.src))?.id : null;
  }), 'an unsure image with a second opinion');
  await plain.evaluate((id) => document.getElementById(id).scrollIntoView({block: 'center'}), unsure);
  await session.chooseContextMenuItem(plain, plain.locator(`#${unsure}`));
  await until(() => session.contentScript(plain, () => {
    const p = globalThis.unmaskInspect().panel;
    return p && p.state === 'done' && p.second?.serverState === 'done';
  }), 'the overlay');
  await sleep(300);
  writeFileSync(join(out, 'overlay.png'), await imageAndOverlay(plain, `#${unsure}`));
  log('overlay.png');

  // "Show where it looked" on the group photo: the heat over each face, under the boxes.
  await plain.keyboard.press('Escape');
  const group = await session.context.newPage();
  await group.setViewportSize({width: 1280, height: 820}); // room for the overlay beside the picture
  await group.goto(`${site.origin}/group.html`);
  await until(() => group.evaluate(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)), 'the group page');
  await session.chooseContextMenuItem(group, group.locator('#group'));
  const shownPanel = () => session.contentScript(group, () => globalThis.unmaskInspect().panel);
  await until(async () => (await shownPanel())?.state === 'done', 'the group overlay');
  const show = (await shownPanel()).buttons.find((b) => b.text.includes('Show where it looked')).rect;
  await group.mouse.click(show.left + show.width / 2, show.top + show.height / 2);
  await until(async () => (await shownPanel())?.explain?.heatState === 'done', 'the heat', 120000);
  await sleep(300);
  writeFileSync(join(out, 'heat.png'), await imageAndOverlay(group, '#group'));
  await group.close();
  log('heat.png');

  // The popup over the feed, with the recent checks.
  const popup2 = await session.openPopup(plain);
  await sleep(800);
  writeFileSync(join(out, 'popup.png'), await popup2.screenshot());
  await popup2.detach();
  log('popup.png');
  console.log(`Wrote feed.png, overlay.png, heat.png and popup.png to ${out} (${model.note})`);
} finally {
  await session.close();
  if (server) await server.stop();
  await site.close();
  await cdn.close();
  rmSync(ext.out, {recursive: true, force: true});
}
