// What the extension does inside a web page: badges on the pictures with faces as they scroll
// into view (on the built-in social sites and the sites the user switched on), and the overlay
// for a right-clicked image, with a box on each face (on any site: the worker injects the
// script on the click). The work itself happens in the worker and the offscreen document;
// this file finds images, queues them, and draws. content.js calls start() once per page.
import {toBase64} from './bytes.js';
import {LIMITS} from './imageinfo.js';
import {SETTINGS_KEY, withDefaults} from './settings.js';
import {badgesEnabled} from './sites.js';
import {closeVideoChecks, layoutVideoChecks, menuCheckVideo, rememberContextTarget, VideoButtons} from './videocheck.js';
import {inspect as inspectLayer, Layer, makeBadge, makeFaces, makePanel, placeBadge, placeFaces, placePanel, renderBadge, renderFaces, renderPanel} from './ui.js';

const MAX_CHECKS = 3; // checks in flight from this page
const MAX_SERVER = 2; // second opinions in flight from this page
const ROOT_MARGIN = '300px 0px'; // start a little before an image scrolls into view

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

// Ask the worker about an image (check, secondOpinion, explain): it downloads the image
// itself, or gets the bytes read here (blob: URLs, and images it has no permission for, which
// the page itself may read: same origin, or CORS).
async function askAbout(type, url, payload) {
  const {data, error} = await blobBytes(url);
  if (error) return {ok: false, error};
  let reply = await ask(type, {url, data, ...payload});
  if (!reply.ok && reply.error.code === 'no_access' && !data) {
    try {
      reply = await ask(type, {url, data: await readInPage(url), ...payload});
    } catch {
      // keep the no_access answer: the overlay offers to grant the permission
    }
  }
  return reply;
}

const checkUrl = (url, reason) => askAbout('check', url, {reason});
const askServer = (url, hash, retry) => askAbout('secondOpinion', url, {hash, retry});

const srcOf = (img) => img.currentSrc || img.src || '';

// --- state per image -------------------------------------------------------------------------
// item: {src, state: queued | checking | done | error, result, server: {state, ...} | null}
const layer = new Layer();
const videoButtons = new VideoButtons({layer, ask}); // "Check video" where badges are on
const items = new Map(); // img (or null for an image not found in the page) -> item
const badges = new Map(); // img -> badge element
let panel = null; // {img, el, faces}

// A judged face, or a file that says it was made with AI, gets a badge.
const judged = (item) => item && item.state === 'done' && (item.result.device.verdict !== 'no_face' || Boolean(item.result.provenance && item.result.provenance.ai));

function redraw(img) {
  const item = items.get(img);
  // A badge only on a picture where a face was judged: feeds are mostly other pictures.
  if (watching && judged(item) && img && !badges.has(img)) {
    badges.set(img, layer.add(makeBadge(() => openPanel(img))));
    resizes.observe(img);
    scheduleLayout();
  }
  const badge = badges.get(img);
  if (badge) {
    if (judged(item)) renderBadge(badge, item);
    else dropBadge(img);
  }
  if (panel && panel.img === img && item) {
    renderPanel(panel.el, item, panelHandlers(img));
    renderFaces(panel.faces, item);
    if (item.result && item.result.ok) placeFaces(panel.faces, img, item.result.device);
    placePanel(panel.el, img, panel.faces.hidden ? [] : panel.faces.querySelectorAll('.face'));
  }
}

async function runCheck(img, item, reason) {
  item.state = 'checking';
  item.server = null;
  item.heat = null;
  redraw(img);
  const result = await checkUrl(item.src, reason);
  if (items.get(img) !== item) return; // the image changed meanwhile
  item.result = result;
  item.state = result.ok ? 'done' : 'error';
  if (result.ok && result.server) item.server = result.server;
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

// "Show where it looked": the heat over each face, computed on the device on request; the
// button then shows and hides it.
async function toggleHeat(img) {
  const item = items.get(img);
  if (!item || !item.result || !item.result.ok) return;
  if (item.heat && item.heat.state === 'done') {
    item.heat.shown = !item.heat.shown;
    return redraw(img);
  }
  if (item.heat && item.heat.state === 'asking') return;
  item.heat = {state: 'asking'};
  redraw(img);
  const reply = await askAbout('explain', item.src, {hash: item.result.hash});
  if (items.get(img) !== item) return;
  item.heat = reply.ok ? {state: 'done', heats: reply.heats, shown: true} : {state: 'error', error: reply.error};
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
    heat: () => toggleHeat(img),
    serverAllowed: serverAllowed(),
    reportOpen: () => {
      if (!item()) return;
      item().report = {...(item().report || {}), open: true};
      redraw(img);
    },
    report: (choice) => item() && fileReport(img, item(), choice),
    sendAgain: ({includePicture}) => item() && sendAgain(img, item(), includePicture),
  };
}

// The user's server may get reports only when they turned it on (the second opinion).
const serverAllowed = () => Boolean(settings.secondOpinion && settings.serverUrl);

async function sendAgain(img, item, includePicture) {
  item.report = {...item.report, sending: true};
  redraw(img);
  const reply = await ask('sendKeptReport', {id: item.result.historyId, includePicture});
  if (items.get(img) !== item) return;
  item.report = {...item.report, sending: false, sent: reply.ok ? reply.sent : {state: 'failed', message: reply.error.message}};
  redraw(img);
}

// The picture as the page holds it, kept with a report (the worker checks its hash): the
// worker may have no permission to download it again, and a blob: only the page can read.
async function reportBytes(url) {
  if (/^blob:/i.test(url)) return blobBytes(url);
  if (!/^https?:/i.test(url)) return {}; // data: URLs the worker reads itself
  try {
    return {data: await readInPage(url)};
  } catch {
    return {}; // the worker tries itself, and says so if the picture is gone
  }
}

async function fileReport(img, item, {says, note, send, includePicture}) {
  item.report = {...item.report, state: 'saving'};
  redraw(img);
  const {data} = await reportBytes(item.src);
  const reply = await ask('report', {id: item.result.historyId, says, note, send, includePicture, data});
  if (items.get(img) !== item) return;
  item.report = reply.ok
    ? {...item.report, state: 'saved', says, sent: reply.sent, pictureProblem: reply.pictureProblem}
    : {...item.report, state: 'error', message: reply.error.message};
  redraw(img);
}

function openPanel(img) {
  if (!panel) {
    panel = {img, el: makePanel(), faces: makeFaces()};
  }
  panel.img = img;
  layer.add(panel.faces);
  layer.add(panel.el); // above the boxes
  redraw(img);
}

function closePanel() {
  if (panel) {
    panel.el.remove();
    panel.faces.remove();
  }
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
let minSide = null; // the model's min_face_side, from the worker
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

// Badges are not in the page's layout, so anything that moves a picture must move its badge:
// scrolling, resizing, a picture or the page changing size (ResizeObserver), any change to the
// page's DOM or attributes (a class that starts a fade, content pushed in above), images
// loading, and CSS transitions and animations (followed frame by frame while they run).
const resizes = new ResizeObserver(() => scheduleLayout());

const SOURCE_ATTRIBUTES = new Set(['src', 'srcset', 'sizes', 'media', 'type']);

const mutations = new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === 'attributes') {
      if (!SOURCE_ATTRIBUTES.has(r.attributeName)) continue;
      // Lazy loaders swap src; a <picture>'s <source> changes which file its <img> shows.
      if (r.target instanceof HTMLImageElement) consider(r.target);
      else if (r.target instanceof HTMLSourceElement && r.target.parentElement) r.target.parentElement.querySelectorAll('img').forEach(consider);
      continue;
    }
    r.addedNodes.forEach((node) => videoButtons.scan(node)); // new videos get a "Check video" control
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
  if (!watching || minSide === null || !visible.has(img) || !img.isConnected) return;
  if (!img.complete || img.naturalWidth === 0) return; // still loading, or broken: its load event comes back here
  // Placeholders and icons: too small to hold a face the model judges.
  if (Math.min(img.naturalWidth, img.naturalHeight) < minSide) return;
  const src = srcOf(img);
  if (!src) return;
  const rect = img.getBoundingClientRect();
  if (rect.width < settings.minSide || rect.height < settings.minSide) return;
  const known = items.get(img);
  if (known && known.src === src) return;
  items.set(img, {src, state: 'queued', result: null, server: null});
  if (badges.has(img)) dropBadge(img); // a new picture in the same element
  queue.push(img);
  schedulePump();
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
      items.delete(img); // scrolled away before its turn: forget it until it comes back
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
  if (layoutScheduled || (!badges.size && !panel && !videoButtons.buttons.size)) return;
  layoutScheduled = true;
  requestAnimationFrame(layout);
}

// While a transition or animation runs somewhere in the page, lay out every frame.
let followUntil = 0;

function follow(ms = 1000) {
  followUntil = Math.max(followUntil, performance.now() + ms);
  scheduleLayout();
}

const onMotionStart = () => follow();
const onMotionEnd = () => scheduleLayout();

// Whether something of the page's own that stays put on screen (a sticky or fixed header, a
// bar) covers the point (x, y) of the viewport over `img`. An overlay that scrolls with the
// image (Instagram lays one over its pictures) does not count.
function coveredAt(img, x, y) {
  if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) return true;
  const top = document.elementsFromPoint(x, y).find((e) => e !== layer.host);
  if (!top || top === img || img.contains(top)) return false;
  for (let e = top; e && e !== document.documentElement; e = e.parentElement) {
    if (e.contains(img)) return false;
    const position = getComputedStyle(e).position;
    if (position === 'fixed' || position === 'sticky') return true;
  }
  return false;
}

// Where the picture is now, read on every layout: a badge is shown only on a picture that is
// rendered, on screen, and still shows the file its badge is about.
function onScreen(img, rect) {
  if (rect.width <= 0 || rect.height <= 0) return false; // display: none, or detached from layout
  if (rect.bottom <= 0 || rect.right <= 0 || rect.top >= innerHeight || rect.left >= innerWidth) return false;
  return !img.checkVisibility || img.checkVisibility({visibilityProperty: true});
}

function layout() {
  layoutScheduled = false;
  for (const [img, badge] of badges) {
    if (!img.isConnected) {
      items.delete(img);
      dropBadge(img);
      continue;
    }
    const item = items.get(img);
    if (item && srcOf(img) !== item.src && img.src !== item.src) {
      // The picture shows another file now (a <picture> source chosen anew on resize, a
      // carousel): its badge is about the old one.
      badge.hidden = true;
      consider(img);
      continue;
    }
    const rect = img.getBoundingClientRect();
    let show = onScreen(img, rect);
    if (show) {
      placeBadge(badge, rect);
      badge.hidden = false;
      // The layer paints above everything: hide a badge that the page's header now covers.
      const b = badge.getBoundingClientRect();
      show = ![[b.left + 1, b.top + 1], [b.right - 1, b.top + 1], [b.left + 1, b.bottom - 1], [b.right - 1, b.bottom - 1]]
        .some(([x, y]) => coveredAt(img, x, y));
    }
    badge.hidden = !show;
  }
  if (panel) {
    const item = items.get(panel.img);
    if (item && item.result && item.result.ok) placeFaces(panel.faces, panel.img, item.result.device);
  }
  if (badges.size || panel || videoButtons.buttons.size) layer.ensure();
  if (performance.now() < followUntil) scheduleLayout();
  layoutVideoChecks();
  videoButtons.layout();
}

function onLoad(e) {
  if (e.target instanceof HTMLImageElement) consider(e.target);
  scheduleLayout(); // a picture that loads can move every picture below it
}

// Any other change to the page (classes, styles, content) may move pictures.
const moves = new MutationObserver(() => scheduleLayout());
const MOTION = {transitionrun: onMotionStart, animationstart: onMotionStart, transitionend: onMotionEnd, transitioncancel: onMotionEnd, animationend: onMotionEnd};

async function startBadges() {
  if (watching) return;
  watching = true;
  if (minSide === null) {
    const reply = await ask('limits');
    if (!reply.ok) {
      watching = false; // the extension is gone or has no model: nothing to badge with
      return;
    }
    minSide = reply.minSide;
    if (!watching) return;
  }
  document.querySelectorAll('img').forEach(track);
  videoButtons.scan();
  scheduleLayout();
  mutations.observe(document.documentElement, {childList: true, subtree: true, attributes: true, attributeFilter: [...SOURCE_ATTRIBUTES]});
  moves.observe(document.documentElement, {childList: true, subtree: true, attributes: true, characterData: true});
  resizes.observe(document.documentElement);
  for (const [type, fn] of Object.entries(MOTION)) document.addEventListener(type, fn, true);
  document.addEventListener('load', onLoad, true);
  window.addEventListener('scroll', scheduleLayout, {capture: true, passive: true});
  window.addEventListener('resize', scheduleLayout, {passive: true});
  visible.forEach(consider);
}

function stopBadges() {
  if (!watching) return;
  watching = false;
  mutations.disconnect();
  moves.disconnect();
  resizes.unobserve(document.documentElement);
  for (const [type, fn] of Object.entries(MOTION)) document.removeEventListener(type, fn, true);
  document.removeEventListener('load', onLoad, true);
  window.removeEventListener('scroll', scheduleLayout, {capture: true});
  window.removeEventListener('resize', scheduleLayout);
  queue.length = 0;
  for (const img of [...badges.keys()]) dropBadge(img);
  videoButtons.stop();
  for (const img of [...items.keys()]) if (!panel || panel.img !== img) items.delete(img);
}

// Badges come and go with the settings (the popup's switch, the options page).
function applySettings(next) {
  const before = settings;
  settings = withDefaults(next);
  if (!badgesEnabled(location.href, settings)) return stopBadges();
  const rejudge = watching && (before.sensitivity !== settings.sensitivity || before.secondOpinion !== settings.secondOpinion || before.sendAllUnsure !== settings.sendAllUnsure || before.minSide !== settings.minSide);
  if (rejudge) {
    stopBadges();
  }
  startBadges();
}

// For the browser tests (content.js, test builds only).
export const inspect = () => inspectLayer(layer);

export function start() {
  // The page can dispatch events too: only a person's own keys and clicks count.
  document.addEventListener('keydown', (e) => {
    if (!e.isTrusted || e.key !== 'Escape') return;
    closePanel();
    closeVideoChecks();
  }, true);
  window.addEventListener('resize', () => panel && redraw(panel.img), {passive: true});
  document.addEventListener('contextmenu', (e) => {
    if (!e.isTrusted) return;
    lastContextTarget = e.composedPath().find((n) => n instanceof HTMLImageElement) || null;
    rememberContextTarget(e);
  }, true);
  // A removed video ends its check at once, not at the next frame.
  new MutationObserver((records) => records.some((r) => r.removedNodes.length) && layoutVideoChecks())
    .observe(document.documentElement, {childList: true, subtree: true});
  chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
    // Only the extension's worker asks for an overlay.
    if (!msg || sender.id !== chrome.runtime.id || sender.tab) return false;
    if (msg.type === 'menu-check-video') {
      sendResponse({shown: menuCheckVideo(String(msg.srcUrl || ''), {layer, ask})});
      return false;
    }
    if (msg.type !== 'menu-check') return false;
    sendResponse({shown: true});
    menuCheck(String(msg.srcUrl || ''));
    return false;
  });
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && changes[SETTINGS_KEY]) applySettings(changes[SETTINGS_KEY].newValue);
  });
  chrome.storage.local.get(SETTINGS_KEY).then((got) => applySettings(got[SETTINGS_KEY]));
}
