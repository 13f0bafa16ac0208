// Screenshots of the history and the report buttons for extension/README.md, from the real
// extension in Chromium: docs/screenshots/report.png ("Is this wrong?" in the overlay),
// history.png (the history page) and history-check.png (a check opened again from it).
//
//   node tests/extension/history-screenshots.mjs [--out docs/screenshots]
import {mkdirSync, rmSync, writeFileSync} from 'node:fs';
import {join, resolve} from 'node:path';
import {parseArgs} from 'node:util';

import {launch, sleep, waitFor} from './harness/browser.mjs';
import {serveFiles} from './harness/servers.mjs';
import {buildExtension, fixtureImages, modelUnderTest, ROOT} from './harness/setup.mjs';

const {values} = parseArgs({options: {out: {type: 'string', default: join(ROOT, 'docs/screenshots')}}});
const out = resolve(values.out);
mkdirSync(out, {recursive: true});
const log = (m) => console.error(`screenshots: ${m}`);

const until = (fn, what) => waitFor(fn, {timeout: 60000, interval: 200, what});

const images = await fixtureImages();
const model = await modelUnderTest(images);
const ext = await buildExtension(model);
const site = await serveFiles({dirs: [join(ROOT, 'tests/extension/pages'), join(images.root, 'site')]});
const session = await launch(ext.out);
// The overlay is a closed shadow root: read through the test build's unmaskInspect(), in the
// content script's world on a web page, in the page itself on the extension's history page.
const inUi = (p, fn, arg) => (p.url().startsWith('chrome-extension://') ? p.evaluate(fn, arg) : session.contentScript(p, fn, arg));
const shown = (page) => inUi(page, () => (globalThis.unmaskInspect ? globalThis.unmaskInspect().panel : null));
const panelRect = async (page) => (await shown(page)).rect;
// sel: [data-KEY=VALUE], a control of the overlay.
const control = async (page, sel) => {
  const [, key, value] = /^\[data-([a-z]+)=([\w-]+)\]$/.exec(sel);
  const c = (await shown(page)).controls.find((x) => x[key] === value);
  return {x: c.rect.left + c.rect.width / 2, y: c.rect.top + c.rect.height / 2};
};
// What the overlay (.panel) or its report form (.report) shows under `key`.
const state = async (page, sel, key) => {
  const p = await shown(page);
  return p && (sel === '.report' ? p.report && p.report[key] : p[key]);
};

try {
  const page = await session.context.newPage();
  await page.setViewportSize({width: 1000, height: 760});
  await page.goto(`http://localhost:${site.port}/reports.html`);
  for (const [id, says, note] of [['two', 'real', 'My own photo, taken at the match.'], ['one', null, 'The ear and the earring do not match the other side.']]) {
    await session.chooseContextMenuItem(page, page.locator(`#${id}`));
    await until(async () => (await state(page, '.panel', 'state')) === 'done', 'the overlay');
    let p = await control(page, '[data-action=report-open]');
    await page.mouse.click(p.x, p.y);
    await until(async () => (await state(page, '.report', 'reportState')) === 'open', 'the report form');
    p = await control(page, '[data-field=note]');
    await page.mouse.click(p.x, p.y);
    await page.keyboard.type(note);
    if (!says) break; // leave the form open for the picture
    p = await control(page, `[data-says=${says}]`);
    await page.mouse.click(p.x, p.y);
    await until(async () => (await state(page, '.report', 'reportState')) === 'saved', 'the report');
    await page.keyboard.press('Escape');
  }
  await sleep(300);
  const box = await page.locator('#one').boundingBox();
  const panel = await panelRect(page);
  const x0 = Math.max(0, Math.min(box.x, panel.left) - 16);
  const y0 = Math.max(0, Math.min(box.y, panel.top) - 16);
  writeFileSync(join(out, 'report.png'), await page.screenshot({clip: {x: x0, y: y0, width: Math.max(box.x + box.width, panel.right) + 16 - x0, height: Math.max(box.y + box.height, panel.bottom) + 16 - y0}}));
  log('report.png');
  let p = await control(page, '[data-says=fake]');
  await page.mouse.click(p.x, p.y);
  await until(async () => (await state(page, '.report', 'reportState')) === 'saved', 'the report');

  const history = await session.extensionPage('history.html');
  await history.setViewportSize({width: 900, height: 640});
  await history.waitForSelector('body[data-ready="1"]');
  await sleep(300);
  writeFileSync(join(out, 'history.png'), await history.screenshot());
  log('history.png');
  await history.click('#list li:first-child [data-action=open]');
  await until(async () => (await state(history, '.panel', 'state')) === 'done', 'the check opened again');
  await sleep(300);
  writeFileSync(join(out, 'history-check.png'), await history.screenshot());
  log('history-check.png');
  console.log(`Wrote report.png, history.png and history-check.png to ${out} (${model.note})`);
} finally {
  await session.close();
  await site.close();
  rmSync(ext.out, {recursive: true, force: true});
}
