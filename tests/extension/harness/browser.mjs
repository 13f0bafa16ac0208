// A real Chromium with the built extension loaded, for the browser tests.
//
// Headed Chromium under Xvfb (not headless) so that the things a person does work for real:
// the native context menu (right-click, chosen with xdotool) and Chrome's permission prompt
// (accepted with the keyboard). The extension is loaded through CDP Extensions.loadUnpacked
// with developer mode on, so that Chrome records the extension's errors (which the tests
// read from chrome://extensions).
import {execFile, spawn} from 'node:child_process';
import {mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {promisify} from 'node:util';

import {chromium} from 'playwright-core';

const CHROMIUM = process.env.UNMASK_CHROMIUM || '/usr/bin/chromium';
const run = promisify(execFile);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `fn` until it returns something truthy, and returns that; fails after `timeout` ms
// with what it last returned.
export async function waitFor(fn, {timeout = 30000, interval = 150, what = 'condition'} = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(interval);
  }
}

async function startXvfb() {
  const proc = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1000x24', '-nolisten', 'tcp'], {stdio: ['ignore', 'ignore', 'pipe', 'pipe']});
  const display = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Xvfb did not start within 10 s')), 10000);
    proc.stdio[3].on('data', (d) => {
      clearTimeout(timer);
      resolve(`:${String(d).trim()}`);
    });
    proc.on('exit', (code) => reject(new Error(`Xvfb exited (${code}); is the xvfb package installed?`)));
  });
  return {proc, display};
}

function devtoolsUrl(proc) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`Chromium did not open DevTools within 30 s:\n${seen.slice(-2000)}`)), 30000);
    proc.stderr.on('data', (d) => {
      seen += d;
      const m = /DevTools listening on (ws:\S+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`Chromium exited (${code}):\n${seen.slice(-2000)}`)));
  });
}

// profile: a user-data folder to reuse (a browser restart keeps it); by default a new one,
// removed on close.
export async function launch(extDir, {profile: keep = null} = {}) {
  const xvfb = await startXvfb();
  const profile = keep || mkdtempSync(join(tmpdir(), 'unmask-chromium-'));
  const args = [
    '--no-sandbox', '--test-type', '--disable-gpu', '--disable-quic', '--no-first-run', '--no-default-browser-check',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-search-engine-choice-screen',
    '--password-store=basic', '--remote-debugging-port=0', '--enable-unsafe-extension-debugging',
    '--window-position=0,0', '--window-size=1200,950', `--user-data-dir=${profile}`, 'about:blank',
  ];
  const proc = spawn(CHROMIUM, args, {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, DISPLAY: xvfb.display}});
  try {
    const browser = await chromium.connectOverCDP(await devtoolsUrl(proc));
    const cdp = await browser.newBrowserCDPSession();
    const context = browser.contexts()[0];
    const page = context.pages()[0] || (await context.newPage());
    await page.goto('chrome://extensions');
    await page.evaluate(() => chrome.developerPrivate.updateProfileConfiguration({inDeveloperMode: true}));
    const {id} = await cdp.send('Extensions.loadUnpacked', {path: extDir});
    return new Session({xvfb, proc, profile, keepProfile: Boolean(keep), browser, cdp, context, extensionsPage: page, id});
  } catch (e) {
    proc.kill('SIGKILL');
    xvfb.proc.kill('SIGKILL');
    if (!keep) rmSync(profile, {recursive: true, force: true});
    throw e;
  }
}

// The extension `origin`'s content-script world in a page: an isolated world, not the page's
// own (auxData.isDefault), in the frame `frameId` (any frame when null).
export const isContentScriptWorld = (c, origin, frameId = null) => c.origin === origin && Boolean(c.auxData) && !c.auxData.isDefault
  && (frameId === null || c.auxData.frameId === frameId);

// Runs fn(arg) (a function, or its source) in the content-script world, on the CDP session
// `s` that has that world's id; what it returns, by value (promises awaited).
export async function evaluateInWorld(s, contextId, fn, arg) {
  const r = await s.send('Runtime.evaluate', {expression: `(${fn})(${JSON.stringify(arg)})`, contextId, awaitPromise: true, returnByValue: true});
  if (r.exceptionDetails) throw new Error(`in the content script: ${r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text}`);
  return r.result.value;
}

// Runs fn(arg) in the content-script world of the extension at `origin` in `page`'s main
// frame (Playwright `context`): the isolated world that the page's own scripts cannot reach,
// where the test build exposes unmaskInspect() (extension/src/content.js). Resolves undefined
// when the page has no content script of ours.
export async function inContentScript(context, origin, page, fn, arg) {
  const s = await context.newCDPSession(page);
  try {
    const contexts = [];
    s.on('Runtime.executionContextCreated', (e) => contexts.push(e.context));
    await s.send('Runtime.enable');
    const {frameTree} = await s.send('Page.getFrameTree');
    const world = contexts.find((c) => isContentScriptWorld(c, origin, frameTree.frame.id));
    if (!world) return undefined;
    return await evaluateInWorld(s, world.id, fn, arg);
  } finally {
    await s.detach().catch(() => {});
  }
}

// A page target that Playwright does not attach to (the action popup), driven over CDP.
class TargetSession {
  constructor(cdp, sessionId) {
    this.cdp = cdp;
    this.sessionId = sessionId;
    this.next = 1;
    this.pending = new Map();
    this.listener = (e) => {
      if (e.sessionId !== this.sessionId) return;
      const m = JSON.parse(e.message);
      if (m.id && this.pending.has(m.id)) {
        const {resolve, reject} = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) reject(new Error(`${m.error.message} (${m.error.code})`));
        else resolve(m.result);
      }
    };
    cdp.on('Target.receivedMessageFromTarget', this.listener);
  }

  send(method, params = {}) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject});
      this.cdp.send('Target.sendMessageToTarget', {sessionId: this.sessionId, message: JSON.stringify({id, method, params})}).catch(reject);
    });
  }

  async evaluate(expression) {
    const r = await this.send('Runtime.evaluate', {expression, awaitPromise: true, returnByValue: true});
    if (r.exceptionDetails) throw new Error(`in the popup: ${r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text}`);
    return r.result.value;
  }

  // A real mouse click at the centre of the element that `selector` finds.
  async click(selector) {
    const box = await this.evaluate(`(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', {type, x: box.x, y: box.y, button: 'left', clickCount: 1});
    }
  }

  async screenshot() {
    const r = await this.send('Page.captureScreenshot', {format: 'png'});
    return Buffer.from(r.data, 'base64');
  }

  // Close the popup (as clicking elsewhere would) and let go of it.
  async close() {
    await this.send('Runtime.evaluate', {expression: 'window.close()'}).catch(() => {});
    return this.detach();
  }

  detach() {
    this.cdp.off('Target.receivedMessageFromTarget', this.listener);
    return this.cdp.send('Target.detachFromTarget', {sessionId: this.sessionId}).catch(() => {});
  }
}

export class Session {
  constructor(fields) {
    Object.assign(this, fields);
  }

  get origin() {
    return `chrome-extension://${this.id}`;
  }

  async worker() {
    const mine = (w) => w.url().startsWith(`${this.origin}/`);
    const found = this.context.serviceWorkers().filter(mine).at(-1);
    return found || this.context.waitForEvent('serviceworker', {predicate: mine, timeout: 15000});
  }

  // An extension page in a tab, to call the extension's APIs from.
  async extensionPage(path = 'options.html') {
    const page = await this.context.newPage();
    await page.goto(`${this.origin}/${path}`);
    return page;
  }

  // inContentScript, for this session's extension.
  async contentScript(page, fn, arg) {
    return inContentScript(this.context, this.origin, page, fn, arg);
  }

  // Chrome stops idle workers after 30 s; do it now, as that would.
  async stopWorker() {
    const page = await this.extensionPage('manifest.json'); // an extension page that sends nothing

    const s = await this.context.newCDPSession(page);
    await s.send('ServiceWorker.enable');
    await s.send('ServiceWorker.stopAllWorkers');
    await s.detach();
    await page.close();
  }

  // What chrome://extensions lists for this extension: errors and warnings it recorded.
  async extensionErrors() {
    return this.extensionsPage.evaluate(async (id) => {
      const info = await chrome.developerPrivate.getExtensionInfo(id);
      return {runtime: info.runtimeErrors, manifest: info.manifestErrors, warnings: info.installWarnings, collecting: info.errorCollection};
    }, this.id);
  }

  xdotool(...args) {
    return run('xdotool', args.map(String), {env: {...process.env, DISPLAY: this.xvfb.display}});
  }

  // Screen coordinates of a point in a page's viewport (the window sits at 0,0).
  async screenPoint(page, x, y) {
    const g = await page.evaluate(() => ({sx: window.screenX, sy: window.screenY, ow: window.outerWidth, oh: window.outerHeight, iw: window.innerWidth, ih: window.innerHeight}));
    return {x: Math.round(g.sx + (g.ow - g.iw) / 2 + x), y: Math.round(g.sy + (g.oh - g.ih) + y)};
  }

  // The whole X screen as a PNG (browser UI included), for a failing test to leave behind.
  async screenshotScreen(path) {
    const py = process.env.UNMASK_PYTHON || new URL('../../../.venv/bin/python', import.meta.url).pathname;
    await run(py, ['-c', `from PIL import ImageGrab; ImageGrab.grab(xdisplay=${JSON.stringify(this.xvfb.display)}).save(${JSON.stringify(path)})`]);
    return path;
  }

  async visibleWindows() {
    const r = await this.xdotool('search', '--onlyvisible', '--classname', '.*').catch(() => ({stdout: ''}));
    return new Set(r.stdout.split('\n').filter(Boolean));
  }

  // A real right-click on the element, then the extension's item in Chrome's context menu
  // (just above "Inspect", the last item, when the extension adds one item). The menu is its
  // own X window: wait for it to open before choosing, and to close after.
  async chooseContextMenuItem(page, locator) {
    await page.bringToFront();
    await locator.scrollIntoViewIfNeeded();
    const box = await locator.boundingBox();
    const p = await this.screenPoint(page, box.x + box.width / 2, box.y + box.height / 2);
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = await this.visibleWindows();
      await this.xdotool('mousemove', p.x, p.y);
      await sleep(100);
      await this.xdotool('click', '3');
      let menu = null;
      for (let i = 0; i < 50 && !menu; i++) {
        await sleep(100);
        menu = [...(await this.visibleWindows())].find((w) => !before.has(w));
      }
      if (!menu) continue; // the click was lost (a busy machine): right-click again
      await sleep(200);
      await this.xdotool('key', 'Up', 'Up', 'Return');
      for (let i = 0; i < 50 && (await this.visibleWindows()).has(menu); i++) await sleep(100);
      return;
    }
    throw new Error('the context menu did not open');
  }

  // Chrome's "Unmask has requested additional permissions" prompt: Allow (Tab from the
  // default Deny button, then Enter). The prompt is drawn inside the browser window, so X
  // cannot tell when it is up: wait, answer, and check with `granted()`; once more if needed.
  async acceptPermissionPrompt(granted) {
    for (let attempt = 0; attempt < 2; attempt++) {
      await sleep(1500 + attempt * 2000);
      await this.xdotool('key', 'Tab', 'Return');
      for (let i = 0; i < 20; i++) {
        if (await granted()) return;
        await sleep(150);
      }
    }
    throw new Error('the permission prompt was not accepted');
  }

  // Whether the extension holds the host permission for `host` now.
  async hasHost(host) {
    const w = await this.worker();
    return w.evaluate((h) => chrome.permissions.contains({origins: [`*://${h}/*`]}), host);
  }

  // Open the toolbar popup for a tab (as a click on the extension's icon does).
  async openPopup(page) {
    const tabs = await this.cdp.send('Target.getTargets', {filter: [{type: 'tab'}]});
    const url = page.url();
    const tab = tabs.targetInfos.find((t) => t.url === url);
    if (!tab) throw new Error(`no tab shows ${url}`);
    await page.bringToFront();
    await this.cdp.send('Extensions.triggerAction', {id: this.id, targetId: tab.targetId});
    for (let i = 0; i < 50; i++) {
      const {targetInfos} = await this.cdp.send('Target.getTargets');
      const popup = targetInfos.find((t) => t.type === 'page' && t.url === `${this.origin}/popup.html`);
      if (popup) {
        const {sessionId} = await this.cdp.send('Target.attachToTarget', {targetId: popup.targetId, flatten: false});
        const s = new TargetSession(this.cdp, sessionId);
        await s.send('Runtime.enable');
        return s;
      }
      await sleep(100);
    }
    throw new Error('the popup did not open');
  }

  async close() {
    const exited = this.proc.exitCode !== null ? Promise.resolve() : new Promise((resolve) => this.proc.once('exit', resolve));
    try {
      await this.cdp.send('Browser.close'); // lets Chromium end its own child processes
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(5000)]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
    await exited;
    this.xvfb.proc.kill('SIGKILL');
    if (this.keepProfile) return;
    try {
      rmSync(this.profile, {recursive: true, force: true, maxRetries: 10, retryDelay: 300});
    } catch {
      // a straggling helper still writing: the temp folder stays behind
    }
  }
}
