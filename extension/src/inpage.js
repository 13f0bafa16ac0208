// What the extension does inside a web page: badges on images as they scroll into view (on
// the built-in social sites and the sites the user switched on), and the overlay for a
// right-clicked image (on any site: the worker injects the script on the click). The work
// itself happens in the worker and the offscreen document; this file finds images, queues
// them, and draws. content.js calls start() once per page.
import {toBase64} from './bytes.js';
import {LIMITS} from './imageinfo.js';
import {SETTINGS_KEY, withDefaults} from './settings.js';
import {badgesEnabled} from './sites.js';
import {Layer, makeBadge, makePanel, placeBadge, placePanel, renderBadge, renderPanel} from './ui.js';

const MAX_CHECKS = 3; // checks in flight from this page
const MAX_SERVER = 2; // second opinions in flight from this page
const ROOT_MARGIN = '300px 0px'; // start a little before an image scrolls into view
// Not photos (SVG drawings, other formats) or too small: a badge would only be noise.
const QUIET_ERRORS = new Set(['unsupported', 'too_small']);

// --- talking to the worker -----------------------------------------------------------------
async function ask(type, payload = {}) {
  try {
    const reply = await chrome.runtime.sendMessage({target: 'worker', type, ...payload});
    return reply || {ok: false, error: {code: 'no_reply', message: 'Unmask did not answer; reload the page'}};
  } catch {
    return {ok: false, error: {code: 'extension_gone', message: 'Unmask was updated or switched off; reload the page to use it again'}};
  }
}

// Bytes of an image as the page sees it: for blob: URLs (which only the page can read), and
// for images the worker may not download.
async function readInPage(url) {
  const response = await fetch(url, {credentials: 'same-origin'});
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length > LIMITS.maxBytes) throw new Error('too large');
  return toBase64(bytes);
}

// A blob: URL belongs to the page, so its bytes are read here. Returns {data} (undefined for
// other URLs, which the worker fetches) or {error} when the page no longer holds the blob.
async function blobBytes(url) {
  if (!/^blob:/i.test(url)) return {};
  try {
    return {data: await readInPage(url)};
  } catch (e) {
    return {error: {code: 'page_only', message: `the page no longer holds this blob: image (${e.message})`}};
  }
}

async function checkUrl(url, reason) {
  const {data, error} = await blobBytes(url);
  if (error) return {ok: false, error};
  let reply = await ask('check', {url, data, reason});
  if (!reply.ok && reply.error.code === 'no_access') {
    // The page itself may be allowed to read it (same origin, or CORS).
    try {
      reply = await ask('check', {url, data: await readInPage(url), reason});
    } catch {
      // keep the no_access answer: the overlay offers to grant the permission
    }
  }
  return reply;
}

async function askServer(url, hash, retry) {
  const {data, error} = await blobBytes(url);
  if (error) return {ok: false, error};
  return ask('secondOpinion', {url, hash, data, retry});
}

const srcOf = (img) => img.currentSrc || img.src || '';

// --- state per image -------------------------------------------------------------------------
// item: {src, state: queued | checking | done | error, result, server: {state, ...} | null}
const layer = new Layer();
const items = new Map(); // img (or null for an image not found in the page) -> item
const badges = new Map(); // img -> badge element
let panel = null; // {img, el}

function redraw(img) {
  const item = items.get(img);
  const badge = badges.get(img);
  if (item && badge) renderBadge(badge, item);
  if (panel && panel.img === img && item) {
    renderPanel(panel.el, item, panelHandlers(img));
    placePanel(panel.el, img && img.isConnected ? img.getBoundingClientRect() : null);
  }
}

async function runCheck(img, item, reason) {
  item.state = 'checking';
  item.server = null;
  redraw(img);
  const result = await checkUrl(item.src, reason);
  if (items.get(img) !== item) return; // the image changed meanwhile
  item.result = result;
  item.state = result.ok ? 'done' : 'error';
  if (result.ok && result.server) item.server = result.server;
  if (reason === 'badge' && !result.ok && QUIET_ERRORS.has(result.error.code) && !(panel && panel.img === img)) {
    dropBadge(img);
    return;
  }
  redraw(img);
  if (result.ok && result.secondOpinion === 'auto') runServer(img, item, false);
}

let serverRunning = 0;
const serverWaiting = [];

async function runServer(img, item, retry) {
  item.server = {state: 'asking'};
  redraw(img);
  if (serverRunning >= MAX_SERVER) await new Promise((resolve) => serverWaiting.push(resolve));
  serverRunning += 1;
  let reply;
  try {
    reply = await askServer(item.src, item.result.hash, retry);
  } finally {
    serverRunning -= 1;
    if (serverWaiting.length) serverWaiting.shift()();
  }
  if (items.get(img) !== item) return;
  item.server = reply.ok ? reply.server : {state: 'error', error: reply.error};
  redraw(img);
}

// --- the overlay -----------------------------------------------------------------------------
function panelHandlers(img) {
  const item = () => items.get(img);
  return {
    close: closePanel,
    retry: () => item() && runCheck(img, item(), 'menu'),
    allow: (host) => ask('openOptions', {allow: host}),
    askServer: () => item() && runServer(img, item(), false),
    retryServer: () => item() && runServer(img, item(), true),
    openOptions: () => ask('openOptions'),
  };
}

function openPanel(img) {
  if (!panel) {
    panel = {img, el: layer.add(makePanel())};
  }
  panel.img = img;
  layer.add(panel.el);
  redraw(img);
}

function closePanel() {
  if (panel) panel.el.remove();
  panel = null;
}

// --- right-click ("Check image for deepfake") -----------------------------------------------
let lastContextTarget = null;

// The clicked <img>: the one under the right-click if it shows this URL, else any that does.
function findImage(srcUrl) {
  const shows = (img) => img && (srcOf(img) === srcUrl || img.src === srcUrl);
  if (shows(lastContextTarget)) return lastContextTarget;
  return Array.from(document.images).find(shows) || null;
}

function menuCheck(srcUrl) {
  const img = findImage(srcUrl);
  const item = {src: srcUrl, state: 'queued', result: null, server: null};
  items.set(img, item);
  openPanel(img);
  runCheck(img, item, 'menu');
}

// --- automatic badges ------------------------------------------------------------------------
let settings = withDefaults(null);
let watching = false;
const visible = new Set();
const queue = [];
let running = 0;
let pumpScheduled = false;
let layoutScheduled = false;

const intersection = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) {
      visible.add(e.target);
      consider(e.target);
    } else {
      visible.delete(e.target);
    }
  }
  scheduleLayout();
}, {rootMargin: ROOT_MARGIN});

const resizes = new ResizeObserver(() => scheduleLayout());

const mutations = new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === 'attributes') {
      if (r.target instanceof HTMLImageElement) consider(r.target); // lazy loaders swap src
      continue;
    }
    for (const node of r.addedNodes) {
      if (node instanceof HTMLImageElement) track(node);
      else if (node.querySelectorAll) node.querySelectorAll('img').forEach(track);
    }
  }
  scheduleLayout();
});

const tracked = new WeakSet();

function track(img) {
  if (tracked.has(img)) return;
  tracked.add(img);
  intersection.observe(img);
}

// Queue an image if it is on screen, loaded, big enough, and not already checked as it is now.
function consider(img) {
  if (!watching || !visible.has(img) || !img.isConnected) return;
  if (!img.complete || img.naturalWidth === 0) return; // still loading, or broken: its load event comes back here
  // Lazy-loading placeholders and icons: too few pixels to be worth a badge.
  if (Math.min(img.naturalWidth, img.naturalHeight) < LIMITS.minSide) return;
  const src = srcOf(img);
  if (!src) return;
  const rect = img.getBoundingClientRect();
  if (rect.width < settings.minSide || rect.height < settings.minSide) return;
  const known = items.get(img);
  if (known && known.src === src) return;
  items.set(img, {src, state: 'queued', result: null, server: null});
  if (!badges.has(img)) {
    badges.set(img, layer.add(makeBadge(() => openPanel(img))));
    resizes.observe(img);
  }
  queue.push(img);
  redraw(img);
  schedulePump();
  scheduleLayout();
}

// Checks start when the page is idle, a few at a time, so scrolling stays smooth.
function schedulePump() {
  if (pumpScheduled) return;
  pumpScheduled = true;
  requestIdleCallback(pump, {timeout: 300});
}

function pump() {
  pumpScheduled = false;
  while (running < MAX_CHECKS && queue.length) {
    const img = queue.shift();
    const item = items.get(img);
    if (!item || item.state !== 'queued') continue;
    if (!visible.has(img)) {
      // scrolled away before its turn: forget it until it comes back
      items.delete(img);
      dropBadge(img);
      continue;
    }
    running += 1;
    runCheck(img, item, 'badge').finally(() => {
      running -= 1;
      schedulePump();
    });
  }
}

function dropBadge(img) {
  const badge = badges.get(img);
  if (badge) badge.remove();
  badges.delete(img);
  resizes.unobserve(img);
}

function scheduleLayout() {
  if (layoutScheduled || !badges.size) return;
  layoutScheduled = true;
  requestAnimationFrame(layout);
}

function layout() {
  layoutScheduled = false;
  for (const [img, badge] of badges) {
    if (!img.isConnected) {
      items.delete(img);
      dropBadge(img);
      continue;
    }
    const show = visible.has(img);
    badge.hidden = !show;
    if (show) placeBadge(badge, img.getBoundingClientRect());
  }
  if (badges.size) layer.ensure();
}

function onLoad(e) {
  if (e.target instanceof HTMLImageElement) consider(e.target);
}

function startBadges() {
  if (watching) return;
  watching = true;
  document.querySelectorAll('img').forEach(track);
  mutations.observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: ['src', 'srcset']});
  document.addEventListener('load', onLoad, true);
  window.addEventListener('scroll', scheduleLayout, {capture: true, passive: true});
  window.addEventListener('resize', scheduleLayout, {passive: true});
  visible.forEach(consider);
}

function stopBadges() {
  if (!watching) return;
  watching = false;
  mutations.disconnect();
  document.removeEventListener('load', onLoad, true);
  window.removeEventListener('scroll', scheduleLayout, {capture: true});
  window.removeEventListener('resize', scheduleLayout);
  queue.length = 0;
  for (const img of [...badges.keys()]) {
    if (!panel || panel.img !== img) items.delete(img);
    dropBadge(img);
  }
}

// Badges come and go with the settings (the popup's switch, the options page).
function applySettings(next) {
  const before = settings;
  settings = withDefaults(next);
  if (!badgesEnabled(location.href, settings)) return stopBadges();
  const rejudge = watching && (before.sensitivity !== settings.sensitivity || before.secondOpinion !== settings.secondOpinion || before.minSide !== settings.minSide);
  if (rejudge) {
    stopBadges();
  }
  startBadges();
}

export function start() {
  document.addEventListener('keydown', (e) => e.key === 'Escape' && closePanel(), true);
  document.addEventListener('contextmenu', (e) => {
    lastContextTarget = e.composedPath().find((n) => n instanceof HTMLImageElement) || null;
  }, true);
  chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
    if (!msg || msg.type !== 'menu-check') return false;
    sendResponse({shown: true});
    menuCheck(String(msg.srcUrl || ''));
    return false;
  });
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && changes[SETTINGS_KEY]) applySettings(changes[SETTINGS_KEY].newValue);
  });
  chrome.storage.local.get(SETTINGS_KEY).then((got) => applySettings(got[SETTINGS_KEY]));
}
