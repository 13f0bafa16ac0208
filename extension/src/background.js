// The service worker: the context menu, and the one path every check takes:
//   image URL or bytes -> cache by URL -> download (host permissions) -> sniff and limits ->
//   cache by content hash -> faces found and scored in the offscreen document -> each face's
//   verdict at the user's sensitivity, combined into the picture's (facecheck.js) -> recent
//   checks; and, only when the user turned it on, the second opinion from their server.
// Chrome stops this worker when idle, so nothing here relies on memory surviving: results
// live in chrome.storage.local (cache.js), settings too (settings.js).
import {fromBase64, toBase64} from './bytes.js';
import * as cache from './cache.js';
import {escalatesImage, judge} from './facecheck.js';
import {sendReport} from './feedback.js';
import * as history from './historystore.js';
import {checkImageBytes, ImageProblem, LIMITS} from './imageinfo.js';
import {combineProvenance, readProvenance, withPixelEvidence} from './provenance.js';
import {askServer} from './secondopinion.js';
import {adjustCalibration} from './sensitivity.js';
import {getSettings, parseServerUrl, updateSettings} from './settings.js';
import {fetchPattern, hostOf, originPattern, syncUserScripts} from './sites.js';
import {checkCalibration} from './verdict.js';
import {videoHandlers} from './videoworker.js';
import {wording} from './wording.js';

const MENU_ID = 'unmask-check-image';
const VIDEO_MENU_ID = 'unmask-check-video';
const OFFSCREEN_URL = 'offscreen.html';
const RECENT_KEY = 'recent';
const RECENT_MAX = 20;
const FETCH_SLOTS = 4; // downloads at once; the model itself runs one image at a time
const KEEP_BYTES = 8; // recent images kept in memory for a second opinion without re-download
const KEEP_MAX_BYTES = 4 * 1024 * 1024; // ... if they are small enough
const CACHE_FORMAT = 'faces-2'; // what a cached entry holds: raw scores per face, and the file's provenance

class CheckProblem extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.code = code;
    Object.assign(this, extra);
  }
}

function problemOf(e) {
  if (e instanceof CheckProblem || e instanceof ImageProblem || (e && e.code)) {
    return {code: e.code, message: e.message, host: e.host || null, retryAfterS: e.retryAfterS || null};
  }
  console.error('Unmask: unexpected failure', e); // a bug, not a bad image: let it be seen
  return {code: 'internal', message: `Unmask failed unexpectedly: ${e && e.message ? e.message : e}`};
}

// --- the model: identity and calibration from the shipped metadata.json ------------------
let modelInfo = null;

function model() {
  if (!modelInfo) {
    modelInfo = (async () => {
      const response = await fetch(chrome.runtime.getURL('model/metadata.json'));
      const text = await response.text();
      const metadata = JSON.parse(text);
      checkCalibration(metadata.calibration);
      if (!metadata.faces || !Number.isInteger(metadata.faces.min_face_side)) throw new Error('it has no faces section');
      // Cached scores belong to one model: its metadata lists the sha256 of every file.
      const id = (await cache.sha256Hex(new TextEncoder().encode(`${CACHE_FORMAT}\n${text}`))).slice(0, 16);
      // One smallest size for every consumer: the contract's, so the server never refuses
      // an image the device judged.
      return {id, metadata, calibration: metadata.calibration, minSide: metadata.faces.min_face_side};
    })().catch((e) => {
      modelInfo = null;
      throw new CheckProblem('model_missing', `the extension's model/metadata.json cannot be read (${e.message}); reinstall or rebuild the extension`);
    });
  }
  return modelInfo;
}

// --- the offscreen document, where the detector runs ---------------------------------------
let creating = null;

async function ensureOffscreen() {
  const contexts = await chrome.runtime.getContexts({
    contextTypes: ['OFFSCREEN_DOCUMENT'],
    documentUrls: [chrome.runtime.getURL(OFFSCREEN_URL)],
  });
  if (contexts.length) return;
  if (!creating) {
    creating = chrome.offscreen
      .createDocument({url: OFFSCREEN_URL, reasons: ['WORKERS'], justification: 'Runs the deepfake detector (TensorFlow.js on WebAssembly) on this device.'})
      .finally(() => {
        creating = null;
      });
  }
  await creating;
}

async function askOffscreen(message) {
  await ensureOffscreen();
  const reply = await chrome.runtime.sendMessage({target: 'offscreen', ...message});
  if (!reply) throw new CheckProblem('model_error', 'the on-device detector did not answer; reload the extension');
  if (!reply.ok) throw new CheckProblem(reply.code, reply.message);
  return reply.value;
}

let modelQueue = Promise.resolve();

// One image at a time through the model, in the order asked.
function runModel(bytes, message = {type: 'check'}) {
  return runModelOn(toBase64(bytes), message);
}

// The same for bytes already in base64 (a video frame arrives so, and goes on as it is).
function runModelOn(data, message) {
  const job = modelQueue.then(() => askOffscreen({...message, data}));
  modelQueue = job.catch(() => {});
  return job;
}

// --- downloading --------------------------------------------------------------------------
let fetchesRunning = 0;
const fetchWaiting = [];

async function withFetchSlot(fn) {
  if (fetchesRunning >= FETCH_SLOTS) await new Promise((resolve) => fetchWaiting.push(resolve));
  fetchesRunning += 1;
  try {
    return await fn();
  } finally {
    fetchesRunning -= 1;
    if (fetchWaiting.length) fetchWaiting.shift()();
  }
}

async function readCapped(response, max) {
  const declared = Number(response.headers.get('content-length'));
  const tooLarge = (n) => new ImageProblem('too_large', `the image is over ${(max / 1048576).toFixed(0)} MB (${(n / 1048576).toFixed(1)} MB or more); Unmask does not check files that large`);
  if (declared > max) throw tooLarge(declared);
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw tooLarge(total);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

// The worker fetches http(s) images with the extension's host permissions (no CORS needed)
// and data: URLs directly. blob: URLs belong to the page: the content script sends bytes.
async function fetchImage(url) {
  if (/^blob:/i.test(url)) throw new CheckProblem('page_only', 'a blob: image can only be read in its page');
  if (!/^(https?|data):/i.test(url)) throw new CheckProblem('unsupported', `Unmask cannot read images from ${String(url).split(':')[0]}: addresses`);
  const host = hostOf(url);
  // Without a host permission the fetch would fail on CORS (and Chrome would log it as the
  // extension's error): say so, and let the page read it (the content script falls back).
  if (host && !(await chrome.permissions.contains({origins: [fetchPattern(url)]}))) {
    throw new CheckProblem('no_access', `Unmask has no permission to read images from ${host}`, {host});
  }
  return withFetchSlot(async () => {
    let response;
    try {
      response = await fetch(url, {cache: 'force-cache', credentials: 'omit', redirect: 'follow'});
    } catch (e) {
      throw new CheckProblem('fetch_failed', `could not download the image from ${host || 'its address'} (${e.message}); check your connection and try again`);
    }
    if (!response.ok) throw new CheckProblem('fetch_failed', `${host || 'the site'} answered HTTP ${response.status} for the image, so there is nothing to check`);
    return readCapped(response, LIMITS.maxBytes);
  });
}

// A few recent images stay in memory, so a second opinion right after a check needs no
// second download.
const keptBytes = new Map();

function keep(hash, bytes) {
  if (bytes.length > KEEP_MAX_BYTES) return;
  keptBytes.delete(hash);
  keptBytes.set(hash, bytes);
  while (keptBytes.size > KEEP_BYTES) keptBytes.delete(keptBytes.keys().next().value);
}

// --- recent checks, for the popup ----------------------------------------------------------
let recentChain = Promise.resolve();

function updateRecent(change) {
  recentChain = recentChain.then(async () => {
    const got = await chrome.storage.local.get(RECENT_KEY);
    const next = change(got[RECENT_KEY] || []).slice(0, RECENT_MAX);
    await chrome.storage.local.set({[RECENT_KEY]: next});
  }).catch((e) => console.warn('Unmask: recent checks not saved', e));
  return recentChain;
}

function shownUrl(url) {
  if (/^data:/i.test(url)) return 'data: image in the page';
  if (/^blob:/i.test(url)) return 'blob: image in the page';
  return url;
}

// --- the history of checks (historystore.js), and reports on them ------------------------------
const historyLimits = (settings) => ({days: settings.historyDays, quotaBytes: settings.historyQuotaMB * 1048576});
const fetchable = (url) => /^https?:/i.test(url);
const faceOfResult = (f) => ({box: f.box, verdict: f.verdict, confidence: f.confidence, p_fake: f.p_fake});

function serverSummary(server) {
  if (!server) return null;
  return {verdict: server.verdict, confidence: server.confidence, p_fake: server.p_fake, basis: server.basis || 'model',
    faces: Array.isArray(server.faces) ? server.faces.map(faceOfResult) : null, model: server.model || '', provenance: server.provenance || null};
}

// Keeps one check; a history that cannot be written never costs the user the verdict.
async function recordCheck({url, hash, entry, device, picture, server, m, settings, sender, reason}) {
  const t = Date.now();
  const pageUrl = (sender && (sender.url || (sender.tab && sender.tab.url))) || '';
  try {
    const record = await history.add({
      id: history.newId(t, hash), t, reason, hash, url: fetchable(url) ? url : shownUrl(url), fetchable: fetchable(url),
      pageUrl, site: hostOf(pageUrl) || hostOf(url) || '', thumb: entry.thumb || null, format: entry.f, width: entry.w, height: entry.h,
      // The picture's verdict as the overlay says it (provenance counted); the faces' in device.
      verdict: picture.verdict, basis: picture.basis, confidence: picture.confidence, p_fake: device.p_fake, sensitivity: settings.sensitivity,
      device: {verdict: device.verdict, confidence: device.confidence, p_fake: device.p_fake, faces: device.faces.map(faceOfResult),
        faces_too_small: device.faces_too_small || 0, faces_over_limit: device.faces_over_limit || 0},
      server: serverSummary(server), provenance: entry.pv || null, // what the file says of its origin (provenance.js)
      model: {name: m.metadata.name || '', version: m.metadata.version || ''}, report: null,
    }, historyLimits(settings));
    return {id: record.id, problem: null};
  } catch (e) {
    return {id: null, problem: problemOf(e).message};
  }
}

// A report may come from the history page, or from the overlay's content script for a check
// made on the same site (a content script speaks for its page, never for other sites' checks).
function mayReport(record, sender) {
  const extensionPage = sender && sender.url && sender.url.startsWith(chrome.runtime.getURL(''));
  if (extensionPage) return true;
  const origin = (u) => {
    try {
      return new URL(u).origin;
    } catch {
      return null;
    }
  };
  return Boolean(sender && sender.tab && sender.url && origin(sender.url) === origin(record.pageUrl));
}

// The picture's bytes for a report: kept in memory, sent by the page (blob:), or downloaded
// again and checked against the hash. Null, with the reason, when it is gone or changed.
async function pictureFor(record, data) {
  const have = await history.getPicture(record.hash);
  if (have) return {kept: true, problem: null};
  let bytes = data ? fromBase64(data) : keptBytes.get(record.hash) || null;
  let problem = null;
  if (!bytes && record.fetchable) {
    try {
      bytes = await fetchImage(record.url);
    } catch (e) {
      problem = `the picture could not be downloaded again (${problemOf(e).message})`;
    }
  } else if (!bytes) {
    problem = 'the picture lived only in its page, which no longer holds it';
  }
  if (bytes && (await cache.sha256Hex(bytes)) !== record.hash) {
    bytes = null;
    problem = 'the picture at that address has changed since it was checked';
  }
  if (!bytes) return {kept: false, problem: `${problem}; the report is kept without the picture, so it cannot be sent with it or exported for training`};
  await history.putPicture(record.hash, bytes, record.format);
  return {kept: true, problem: null};
}

// msg: {id, says: real|fake, note, send, includePicture, data?}
async function report(msg, sender) {
  const says = String(msg.says || '');
  if (says !== 'real' && says !== 'fake') throw new CheckProblem('bad_request', 'say whether the picture is real or fake');
  const record = await history.get(String(msg.id || ''));
  if (!record) throw new CheckProblem('not_found', 'this check is no longer in the history (cleared, or older than the days kept); check the picture again to report it');
  if (!mayReport(record, sender)) throw new CheckProblem('not_allowed', 'a page may only report checks made on it');
  const picture = await pictureFor(record, msg.data);
  const saved = {says, note: String(msg.note || '').slice(0, 2000), t: Date.now(), picture: picture.kept, sent: null};
  let stored = await history.update(record.id, (r) => ({...r, report: saved}));
  if (!stored) throw new CheckProblem('not_found', 'this check left the history while it was being reported; check the picture again');
  let sent = null;
  if (msg.send) {
    sent = await sendToServer(stored, Boolean(msg.includePicture) && picture.kept);
    stored = (await history.update(record.id, (r) => ({...r, report: {...r.report, sent}}))) || stored;
  }
  return {record: stored, pictureProblem: picture.problem, sent};
}

// Sends a kept report to the user's server, if they allowed the server; never throws: the
// report stays on the device whatever the server says, and the answer says what happened.
async function sendToServer(record, withPicture) {
  const settings = await getSettings();
  const serverUrl = parseServerUrl(settings.serverUrl);
  if (!settings.secondOpinion || serverUrl instanceof Error) {
    return {state: 'not_allowed', message: 'Not sent: your server is not allowed. Turn on the second opinion in Unmask options to send reports to it. The report is kept on this device.'};
  }
  const body = {sha256: record.hash, says: record.report.says, note: record.report.note, verdict: record.verdict,
    p_fake: typeof record.p_fake === 'number' ? record.p_fake : null, model: [record.model.name, record.model.version].filter(Boolean).join(' '),
    image_url: record.fetchable ? record.url : '', page_url: record.pageUrl || ''};
  let bytes = null;
  if (withPicture) {
    const pic = await history.getPicture(record.hash);
    bytes = pic ? new Uint8Array(pic.bytes) : null;
  }
  try {
    const reply = await sendReport({serverUrl, apiKey: settings.apiKey, timeoutS: settings.serverTimeoutS}, body, bytes);
    return {state: 'sent', id: reply.id, picture: Boolean(reply.picture_kept), t: Date.now(), message: `Sent to your server${reply.picture_kept ? ', with the picture' : ''}.`};
  } catch (e) {
    return {state: 'failed', code: e.code || 'failed', t: Date.now(), message: `Not sent: ${e.message} The report is kept on this device; send it again from the history.`};
  }
}

// msg: {id, includePicture}: send (again) a report kept in the history.
async function sendKeptReport(msg, sender) {
  const record = await history.get(String(msg.id || ''));
  if (!record || !record.report) throw new CheckProblem('not_found', 'there is no report on this check to send');
  if (!mayReport(record, sender)) throw new CheckProblem('not_allowed', 'a page may only report checks made on it');
  const sent = await sendToServer(record, Boolean(msg.includePicture) && record.report.picture);
  const stored = await history.update(record.id, (r) => ({...r, report: {...r.report, sent}}));
  return {record: stored || record, sent};
}

// --- checking ------------------------------------------------------------------------------
// off | none (no face: nothing to ask about) | auto (a face in the escalation band) | available
function secondOpinionMode(settings, device, cascade) {
  if (device.verdict === 'no_face') return 'none';
  if (!settings.secondOpinion || parseServerUrl(settings.serverUrl) instanceof Error) return 'off';
  return escalatesImage(device, cascade, {allUnsure: settings.sendAllUnsure}) ? 'auto' : 'available';
}

// C2PA credentials read and validated in the offscreen document's worker (c2paworker.js):
// the manifest store's JSON text. Called only for files that carry a C2PA marker.
async function verifyC2pa(bytes, mime) {
  return (await askOffscreen({type: 'c2pa', data: toBase64(bytes), mime})).json;
}

// What the cache keeps of a file's provenance: what is shown, not every finding's detail.
function keptProvenance(p) {
  if (!p.tier && !p.c2pa.present && !p.findings.length) return null;
  const {tier, ai, statement, changed, evidence, signer, claim_generator: claimGenerator, actions, validation_state: state, validation_codes: codes, findings} = p;
  const c2pa = {present: p.c2pa.present, verified: p.c2pa.verified};
  return {tier, ai, statement, changed, evidence, signer, claim_generator: claimGenerator, actions: actions.slice(0, 8), validation_state: state,
    validation_codes: codes, c2pa, findings: findings.slice(0, 8)};
}

// The cached entry as found faces with raw scores, for judge().
const foundOf = (entry) => ({faces: entry.faces, too_small: entry.ts, over_limit: entry.ol, width: entry.w, height: entry.h});

// Whose cache a URL lookup reads: the origin of the page (or extension page) that asks. A
// result found by URL is answered without downloading, so without asking whether the page
// could read that URL: another site's page must never get it (it would learn what the user
// checked elsewhere, and see images it cannot read).
function askerOf(sender) {
  for (const url of [sender && sender.origin, sender && sender.url, sender && sender.tab && sender.tab.url]) {
    try {
      const origin = url && new URL(url).origin;
      if (origin && origin !== 'null') return origin;
    } catch {
      // not a URL: try the next
    }
  }
  return null;
}

// Right-click checks started by the worker itself, by URL, while the page opens its overlay:
// the page's own request for that URL joins them instead of starting after them.
const started = new Map();

// Keyed by tab and URL: only the page the user right-clicked in joins.
function startCheck(url, tab) {
  const key = `${tab.id}|${url}`;
  const job = checkImage({url, reason: 'menu'}, {tab});
  started.set(key, job);
  job.catch(() => {}).finally(() => started.delete(key));
}

// msg: {url, data?: base64 bytes read by the page, reason: badge | menu}
function check(msg, sender) {
  const url = String(msg.url || '');
  return (!msg.data && sender && sender.tab && started.get(`${sender.tab.id}|${url}`)) || checkImage(msg, sender);
}

async function checkImage(msg, sender) {
  const url = String(msg.url || '');
  const asker = askerOf(sender);
  const [m, settings] = await Promise.all([model(), getSettings()]);
  let bytes = msg.data ? fromBase64(msg.data) : null;
  let hash = null;
  let entry = null;
  let cached = null;
  if (!bytes && asker) {
    const hit = await cache.byUrl(m.id, asker, url);
    if (hit) {
      hash = hit.hash;
      entry = hit.entry;
      cached = 'url';
    }
  }
  if (!entry) {
    if (!bytes) bytes = await fetchImage(url);
    const info = checkImageBytes(bytes, {minSide: m.minSide});
    hash = await cache.sha256Hex(bytes);
    keep(hash, bytes);
    entry = await cache.byHash(m.id, hash);
    if (entry) {
      cached = 'hash';
      if (asker) await cache.linkUrl(m.id, asker, url, hash);
    } else {
      // What the file says of its origin, from the same bytes (provenance.js), beside the faces.
      // And what only the decoded pixels show, as Python reads them: NovelAI's hidden metadata in
      // a PNG, the Stable Diffusion watermark in any format but JPEG (which destroys it).
      const pixelEvidence = {stealth: info.format === 'PNG', watermark: info.format !== 'JPEG'};
      const [r, read] = await Promise.all([runModel(bytes, {type: 'check', pixelEvidence}), readProvenance(bytes, {verify: verifyC2pa})]);
      const pv = withPixelEvidence(read, {stealth: r.stealth, watermark: r.watermark});
      // A picture without a face is cached too: it is not run again. The answer does not wait
      // for the write (right-click to verdict is the figure that counts); a failed write
      // loses a cache entry, not the check.
      entry = {faces: r.faces, ts: r.too_small, ol: r.over_limit, f: info.format, w: r.width, h: r.height, thumb: r.thumb, pv: keptProvenance(pv)};
      cache.put(m.id, asker, url, hash, entry).catch((e) => console.warn('Unmask: result not cached', e));
    }
  }
  const device = judge(foundOf(entry), adjustCalibration(m.calibration, settings.sensitivity));
  const provenance = entry.pv || null;
  const mode = secondOpinionMode(settings, device, m.metadata.cascade);
  const server = mode === 'off' || mode === 'none' ? null : await cache.serverResult(parseServerUrl(settings.serverUrl), hash);
  // Feeds are full of pictures without faces: only those asked about are listed.
  if ((!cached && device.verdict !== 'no_face') || msg.reason === 'menu') {
    const page = sender && sender.tab ? hostOf(sender.tab.url) : null;
    updateRecent((list) => [
      {hash, url: shownUrl(url), page, thumb: entry.thumb, verdict: device.verdict, confidence: device.confidence, p_fake: device.p_fake,
        faces: device.faces.length, server: server && {verdict: server.verdict, confidence: server.confidence, p_fake: server.p_fake}, t: Date.now()},
      ...list.filter((r) => r.hash !== hash),
    ]);
  }
  // The history: every right-click check; badged feed pictures with a face when the user chose so.
  const keepInHistory = msg.reason === 'menu' || (settings.historyFeed && !cached && device.verdict !== 'no_face');
  const picture = combineProvenance(device, provenance);
  const kept = keepInHistory ? await recordCheck({url, hash, entry, device, picture, server, m, settings, sender, reason: msg.reason === 'menu' ? 'menu' : 'badge'}) : {id: null, problem: null};
  return {
    url,
    hash,
    historyId: kept.id,
    historyProblem: kept.problem,
    cached,
    format: entry.f,
    width: entry.w,
    height: entry.h,
    device,
    // The picture's verdict once provenance is counted: signed or declared AI makes it fake.
    picture,
    provenance,
    sensitivity: settings.sensitivity,
    minSide: m.minSide,
    model: {name: m.metadata.name || '', version: m.metadata.version || ''},
    secondOpinion: server ? 'done' : mode,
    server: server ? {...server, state: 'done'} : null,
  };
}

// msg: {url, hash, data?}: ask the user's server about one image.
async function secondOpinion(msg) {
  const settings = await getSettings();
  if (!settings.secondOpinion) {
    throw new CheckProblem('second_opinion_off', 'the second opinion is off: turn it on in Unmask options (it sends the image to your server)');
  }
  const serverUrl = parseServerUrl(settings.serverUrl);
  if (serverUrl instanceof Error) throw new CheckProblem('no_server', serverUrl.message);
  const bytes = msg.data ? fromBase64(msg.data) : keptBytes.get(msg.hash) || (await fetchImage(String(msg.url || '')));
  const info = checkImageBytes(bytes, {minSide: (await model()).minSide});
  const hash = await cache.sha256Hex(bytes);
  let result = msg.retry ? null : await cache.serverResult(serverUrl, hash);
  if (!result) {
    result = await askServer({serverUrl, apiKey: settings.apiKey, timeoutS: settings.serverTimeoutS}, bytes, info.format);
    await cache.putServerResult(serverUrl, hash, result);
  }
  await updateRecent((list) => list.map((r) => (r.hash === hash ? {...r, server: {verdict: result.verdict, confidence: result.confidence, p_fake: result.p_fake}} : r)));
  try {
    for (const r of await history.byHash(hash)) {
      if (!r.server) await history.update(r.id, (x) => ({...x, server: serverSummary(result)}));
    }
  } catch (e) {
    problemOf(e); // the second opinion still reaches the overlay
  }
  return {hash, server: {...result, state: 'done'}};
}

// msg: {url, hash, data?}: "Show where it looked" for the faces the device judged in that
// image (its cached result), computed on this device (explain.js).
async function explain(msg) {
  const m = await model();
  const hash = String(msg.hash || '');
  const entry = await cache.byHash(m.id, hash);
  if (!entry) throw new CheckProblem('not_checked', 'this image has not been checked on this device yet; check it first');
  if (!entry.faces.length) throw new CheckProblem('no_face', 'there is no face in this image to show');
  const bytes = msg.data ? fromBase64(msg.data) : keptBytes.get(hash) || (await fetchImage(String(msg.url || '')));
  if ((await cache.sha256Hex(bytes)) !== hash) throw new CheckProblem('changed', 'the image changed since it was checked; check it again');
  keep(hash, bytes);
  return runModel(bytes, {type: 'explain', crops: entry.faces.map((f) => f.crop)});
}

async function stats() {
  const m = await model();
  const contexts = await chrome.runtime.getContexts({contextTypes: ['OFFSCREEN_DOCUMENT']});
  const live = contexts.length ? await askOffscreen({type: 'stats'}) : null;
  const {name, version} = m.metadata;
  return {model: {name, version, quantization: m.metadata.model.quantization}, modelId: m.id, calibration: m.calibration, cascade: m.metadata.cascade || null,
    runs: live ? live.runs : 0, backend: live ? live.backend : null};
}

// What a page needs before it queues images: the smallest image worth sending.
async function limits() {
  return {minSide: (await model()).minSide};
}

async function sitesChanged() {
  return {registered: await syncUserScripts(await getSettings())};
}

// The user switched badges on for a site (popup or options). With the permission granted,
// add the site, register the content script and start it in the tab; without it yet, wait
// for permissions.onAdded (Chrome's prompt may close the popup that asked).
const PENDING_KEY = 'pendingSites';

async function enableSite(msg) {
  const host = String(msg.host || '');
  if (!host) throw new CheckProblem('bad_request', 'no site given');
  if (!(await chrome.permissions.contains({origins: [originPattern(host)]}))) {
    const got = await chrome.storage.session.get(PENDING_KEY);
    const pending = {...(got[PENDING_KEY] || {}), [host]: {tabId: msg.tabId ?? null}};
    await chrome.storage.session.set({[PENDING_KEY]: pending});
    return {enabled: false, pending: true};
  }
  const settings = await getSettings();
  if (!settings.sites.includes(host)) await updateSettings({sites: [...settings.sites, host]});
  await sitesChanged();
  if (Number.isInteger(msg.tabId)) {
    try {
      await chrome.scripting.executeScript({target: {tabId: msg.tabId}, files: ['content.js']});
    } catch {
      // the tab moved on or closed: the registered script covers its next page
    }
  }
  return {enabled: true};
}

async function finishPendingSites() {
  const got = await chrome.storage.session.get(PENDING_KEY);
  const pending = got[PENDING_KEY] || {};
  for (const [host, {tabId}] of Object.entries(pending)) {
    if (await chrome.permissions.contains({origins: [originPattern(host)]})) {
      delete pending[host];
      await chrome.storage.session.set({[PENDING_KEY]: pending});
      await enableSite({host, tabId});
    }
  }
}

async function clearData() {
  const removed = await cache.clear();
  await chrome.storage.local.remove(RECENT_KEY);
  keptBytes.clear();
  return {removed};
}

async function openOptions(msg) {
  const hash = msg.allow ? `#allow=${encodeURIComponent(msg.allow)}` : '';
  await chrome.tabs.create({url: chrome.runtime.getURL(`options.html${hash}`)});
  return {};
}

const HANDLERS = {check, secondOpinion, explain, stats, limits, sitesChanged, enableSite, clearData, openOptions, report, sendKeptReport, ...videoHandlers({model, runModel: runModelOn}),
  // Test builds only: the browser tests' full disk (historystore.js); extension pages only.
  ...(UNMASK_TEST_HOOKS ? {testDiskFull: async (msg) => (history.setDiskFullForTests(msg.full), {})} : {})};
// What the content script in a web page may ask; the rest is for the extension's own pages.
const FROM_PAGES = new Set(['check', 'secondOpinion', 'explain', 'limits', 'openOptions', 'videoStart', 'videoFrame', 'captureTab', 'videoSecondOpinion', 'report', 'sendKeptReport']);

// Only this extension talks to the worker (it has no externally_connectable), but a page's
// renderer, if compromised, can send what its content script could: check who asks.
function allowed(type, sender) {
  if (!sender || sender.id !== chrome.runtime.id) return false;
  if (sender.url && sender.url.startsWith(chrome.runtime.getURL(''))) return true; // popup, options
  return FROM_PAGES.has(type) && Boolean(sender.tab) && sender.tab.id >= 0;
}

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (!msg || msg.target !== 'worker' || !HANDLERS[msg.type]) return false;
  if (!allowed(msg.type, sender)) {
    sendResponse({ok: false, error: {code: 'forbidden', message: `Unmask does not take "${String(msg.type)}" from there`}});
    return false;
  }
  HANDLERS[msg.type](msg, sender).then(
    (value) => sendResponse({ok: true, ...value}),
    (e) => sendResponse({ok: false, error: problemOf(e)}),
  );
  return true; // answer asynchronously
});

// --- the context menu ----------------------------------------------------------------------
async function tellTab(tabId, frameId, message) {
  try {
    const reply = await chrome.tabs.sendMessage(tabId, message, {frameId});
    return Boolean(reply && reply.shown);
  } catch {
    return false; // no content script in that frame yet
  }
}

const BADGE_TEXT = {fake: 'FAKE', real: 'REAL', uncertain: '?', no_face: '–'};

async function menuCheck(info, tab) {
  const message = {type: 'menu-check', srcUrl: info.srcUrl};
  const frameId = info.frameId || 0;
  // Images the worker can read itself (not blob:, which only the page holds) start now.
  if (tab && tab.id >= 0 && /^(https?|data):/i.test(info.srcUrl || '')) startCheck(info.srcUrl, tab);
  if (tab && tab.id >= 0) {
    if (await tellTab(tab.id, frameId, message)) return;
    try {
      // activeTab lets the overlay into this page for this click, on any site.
      await chrome.scripting.executeScript({target: {tabId: tab.id, frameIds: [frameId]}, files: ['content.js']});
      if (await tellTab(tab.id, frameId, message)) return;
    } catch {
      // a page extensions may not touch (the Web Store, browser pages): answer below
    }
  }
  // Nowhere to draw the overlay: check anyway; the answer goes to the popup's recent checks
  // and onto the toolbar icon.
  let text = '!';
  try {
    const r = await check({url: info.srcUrl, reason: 'menu'}, {tab});
    text = BADGE_TEXT[r.device.verdict];
  } catch (e) {
    problemOf(e);
  }
  if (tab && tab.id >= 0) await chrome.action.setBadgeText({tabId: tab.id, text});
}

// A video: the overlay in the page takes frames as it plays (videocheck.js). Where no overlay
// can be drawn, say so on the toolbar icon: a video is never downloaded to be checked here.
async function menuCheckVideo(info, tab) {
  const message = {type: 'menu-check-video', srcUrl: info.srcUrl || ''};
  const frameId = info.frameId || 0;
  if (!tab || tab.id < 0) return;
  if (await tellTab(tab.id, frameId, message)) return;
  try {
    await chrome.scripting.executeScript({target: {tabId: tab.id, frameIds: [frameId]}, files: ['content.js']});
    if (await tellTab(tab.id, frameId, message)) return;
  } catch {
    // a page extensions may not touch
  }
  await chrome.action.setBadgeText({tabId: tab.id, text: '!'});
  await chrome.action.setTitle({tabId: tab.id, title: `Unmask: ${wording.video.problems.unreadable}`});
}

chrome.contextMenus.onClicked.addListener((info, tab) => {
  if (info.menuItemId === MENU_ID) menuCheck(info, tab).catch((e) => problemOf(e));
  if (info.menuItemId === VIDEO_MENU_ID) menuCheckVideo(info, tab).catch((e) => problemOf(e));
});

chrome.runtime.onInstalled.addListener(() => {
  (async () => {
    await chrome.contextMenus.removeAll();
    chrome.contextMenus.create({id: MENU_ID, title: 'Check image for deepfake', contexts: ['image']});
    chrome.contextMenus.create({id: VIDEO_MENU_ID, title: wording.video.menu, contexts: ['video']});
    await sitesChanged();
  })().catch((e) => problemOf(e));
});

chrome.permissions.onAdded.addListener(() => finishPendingSites().catch((e) => problemOf(e)));
// The user can take a site's permission back in chrome://extensions: stop badging there.
chrome.permissions.onRemoved.addListener(() => sitesChanged().catch((e) => problemOf(e)));
