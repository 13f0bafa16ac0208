// The history page: the checks kept on this device (historystore.js), newest first, with
// filters and search; one check opened again with its overlay (ui.js draws it as the page
// did); "Is this wrong?" reports; export; retention and "Clear history".
// It reads the store directly (the extension's own origin); reports go through the worker,
// which holds the picture bytes and the server settings.
import {checkJson, checkRow, CHECK_COLUMNS, csvLine, MANIFEST_COLUMNS, provenanceOf, trainingRows, zip} from './export.js';
import * as store from './historystore.js';
import {getSettings, updateSettings} from './settings.js';
import {inspect, Layer, makeFaces, makePanel, placeFaces, placePanel, renderFaces, renderPanel} from './ui.js';
import {confidenceText, describe, LABELS} from './wording.js';

const $ = (id) => document.getElementById(id);
const SHOWN_MAX = 500; // rows drawn at once; the filters and search reach the rest

function status(id, text, ok = true) {
  $(id).textContent = text;
  $(id).className = ok ? 'status' : 'status err';
}

const toWorker = (type, extra = {}) => chrome.runtime.sendMessage({target: 'worker', type, ...extra})
  .catch((e) => ({ok: false, error: {code: 'no_reply', message: `Unmask's worker did not answer (${e.message}); try again`}}));

const ago = (t) => new Date(t).toLocaleString();
const mb = (n) => `${(n / 1048576).toFixed(n < 10485760 ? 2 : 0)} MB`;

function filters() {
  return {verdict: $('verdict').value, site: $('site').value, reported: $('reported').value, search: $('search').value};
}

function reportText(r) {
  if (!r.report) return '';
  const sent = r.report.sent ? ` · ${r.report.sent.state === 'sent' ? 'sent to your server' : r.report.sent.state === 'failed' ? 'not sent (failed)' : 'not sent'}` : '';
  return `You said: it is ${r.report.says}${r.report.note ? ` (“${r.report.note}”)` : ''}${sent}`;
}

function row(r) {
  const li = document.createElement('li');
  Object.assign(li.dataset, {id: r.id, verdict: r.verdict, reported: r.report ? r.report.says : '', site: r.site});
  const thumb = r.thumb ? Object.assign(document.createElement('img'), {src: r.thumb, alt: ''}) : Object.assign(document.createElement('div'), {className: 'nothumb'});
  const what = document.createElement('div');
  what.className = 'what';
  const line = document.createElement('div');
  const said = confidenceText(r.verdict, r.confidence, r.p_fake);
  const faces = r.device && r.device.faces.length > 1 ? ` (${r.device.faces.length} faces)` : '';
  line.append(Object.assign(document.createElement('span'), {className: `pill ${r.verdict}`, textContent: LABELS[r.verdict]}), said ? ` ${said}${faces}` : '');
  what.append(line);
  if (r.server) what.append(Object.assign(document.createElement('div'), {className: 'where', textContent: `Second opinion: ${describe(r.server.verdict, r.server.confidence, r.server.p_fake)}`}));
  const origin = provenanceOf(r);
  if (origin) what.append(Object.assign(document.createElement('div'), {className: 'where', textContent: `Provenance: ${origin}`}));
  what.append(Object.assign(document.createElement('div'), {className: 'where', textContent: `${r.site || 'page'} · ${ago(r.t)}`, title: r.pageUrl}));
  what.append(Object.assign(document.createElement('div'), {className: 'url', textContent: r.url, title: r.url}));
  if (r.report) what.append(Object.assign(document.createElement('div'), {className: 'rep', textContent: reportText(r)}));
  const open = Object.assign(document.createElement('button'), {className: 'secondary', textContent: 'Open'});
  open.dataset.action = 'open';
  open.onclick = () => (location.hash = `check=${encodeURIComponent(r.id)}`);
  li.append(thumb, what, open);
  return li;
}

async function showList() {
  let rows;
  try {
    rows = await store.list({...filters(), limit: SHOWN_MAX + 1});
  } catch (e) {
    $('list').replaceChildren();
    $('empty').hidden = false;
    $('empty').textContent = `The history cannot be read: ${e.message}`;
    return;
  }
  $('list').replaceChildren(...rows.slice(0, SHOWN_MAX).map(row));
  $('empty').hidden = rows.length > 0;
  $('more').hidden = rows.length <= SHOWN_MAX;
  $('more').textContent = `Showing the newest ${SHOWN_MAX}; search or filter to find older checks.`;
}

async function showUsage() {
  try {
    const [u, s] = await Promise.all([store.usage(), getSettings()]);
    $('usage').textContent = `${u.checks} check(s), ${u.reported} reported, ${mb(u.bytes)} of ${s.historyQuotaMB} MB; kept for ${s.historyDays} days.`;
    const sites = [...new Set((await store.list()).map((r) => r.site).filter(Boolean))].sort();
    const chosen = $('site').value;
    $('site').replaceChildren(new Option('Any site', ''), ...sites.map((h) => new Option(h, h)));
    $('site').value = sites.includes(chosen) ? chosen : '';
  } catch (e) {
    $('usage').textContent = `The history cannot be read: ${e.message}`;
  }
}

// --- one check, opened again with its overlay --------------------------------------------
const layer = new Layer();
// Test builds only (build.mjs testHooks): what the overlay shows, as content.js exposes it.
if (typeof UNMASK_TEST_HOOKS !== 'undefined' && UNMASK_TEST_HOOKS) globalThis.unmaskInspect = () => inspect(layer);
let opened = null; // {record, item, panel, faces}
let pictureUrl = null;

function itemOf(record, previous) {
  const report = record.report
    ? {state: 'saved', says: record.report.says, sent: record.report.sent, pictureProblem: record.report.picture ? null : 'the picture is not kept with this report'}
    : previous || null;
  return {
    src: record.url, state: 'done', report,
    result: {ok: true, historyId: record.id, url: record.url, hash: record.hash, device: record.device, sensitivity: record.sensitivity || 'standard',
      provenance: record.provenance || null, model: record.model, cached: null, minSide: null, secondOpinion: record.server ? 'done' : 'none'},
    server: record.server ? {...record.server, state: 'done'} : null,
  };
}

async function openCheck(id) {
  const record = await store.get(id);
  $('detail').hidden = false;
  $('browse').hidden = true;
  if (!record) {
    $('detail-where').textContent = 'This check is no longer in the history (cleared, or older than the days kept).';
    $('shown').removeAttribute('src');
    closeOverlay();
    return;
  }
  const picture = await store.getPicture(record.hash);
  if (pictureUrl) URL.revokeObjectURL(pictureUrl);
  pictureUrl = picture ? URL.createObjectURL(new Blob([picture.bytes])) : null;
  const img = $('shown');
  img.src = pictureUrl || record.thumb || '';
  await img.decode().catch(() => {});
  $('detail-where').textContent = `Checked ${ago(record.t)} on ${record.pageUrl || record.site || 'a page'} · ${record.url}${picture ? '' : ' · (the small thumbnail kept with the check; the picture itself is kept only once reported)'}`;
  const settings = await getSettings();
  opened = {record, item: itemOf(record, null), panel: makePanel(), faces: makeFaces(), serverAllowed: Boolean(settings.secondOpinion && settings.serverUrl)};
  layer.add(opened.faces);
  layer.add(opened.panel);
  drawOverlay();
}

function drawOverlay() {
  if (!opened) return;
  const img = $('shown');
  const {item} = opened;
  renderPanel(opened.panel, item, {
    close: () => (location.hash = ''),
    openOptions: () => chrome.runtime.openOptionsPage(),
    serverAllowed: opened.serverAllowed,
    reportOpen: () => {
      item.report = {...(item.report || {}), open: true};
      drawOverlay();
    },
    report: (choice) => fileReport(choice),
    sendAgain: ({includePicture}) => sendAgain(includePicture),
  });
  renderFaces(opened.faces, item);
  const file = fileGeometry(opened.record, Boolean(pictureUrl));
  placeFaces(opened.faces, img, file);
  placePanel(opened.panel, img, opened.faces.hidden ? [] : opened.faces.querySelectorAll('.face'));
}

// Face boxes are in the file's pixels. The thumbnail is the centre square of the file
// (offscreen.js), which is what object-fit: cover draws of the file in a square box: shown so,
// the boxes land on the faces (a face outside that square is clipped).
function fileGeometry(record, whole) {
  const img = $('shown');
  img.style.objectFit = whole ? 'fill' : 'cover';
  img.style.aspectRatio = whole ? '' : '1 / 1';
  return {width: record.width, height: record.height};
}

async function fileReport({says, note, send, includePicture}) {
  const {item, record} = opened;
  item.report = {...item.report, state: 'saving'};
  drawOverlay();
  const reply = await toWorker('report', {id: record.id, says, note, send, includePicture});
  if (!opened || opened.record.id !== record.id) return;
  item.report = reply.ok
    ? {...item.report, state: 'saved', says, sent: reply.sent, pictureProblem: reply.pictureProblem}
    : {...item.report, state: 'error', message: reply.error.message};
  if (reply.ok) opened.record = reply.record;
  drawOverlay();
}

async function sendAgain(includePicture) {
  const {item, record} = opened;
  item.report = {...item.report, sending: true};
  drawOverlay();
  const reply = await toWorker('sendKeptReport', {id: record.id, includePicture});
  if (!opened || opened.record.id !== record.id) return;
  item.report = {...item.report, sending: false, sent: reply.ok ? reply.sent : {state: 'failed', message: reply.error.message}};
  if (reply.ok) opened.record = reply.record;
  drawOverlay();
}

function closeOverlay() {
  layer.remove();
  opened = null;
}

function route() {
  const m = /check=([^&]+)/.exec(location.hash);
  if (m) return openCheck(decodeURIComponent(m[1]));
  closeOverlay();
  $('detail').hidden = true;
  $('browse').hidden = false;
  return Promise.all([showList(), showUsage()]);
}

// --- export ----------------------------------------------------------------------------
function download(blob, name) {
  const a = Object.assign(document.createElement('a'), {href: URL.createObjectURL(blob), download: name});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

const stamp = () => new Date().toISOString().slice(0, 10);

async function exportChecks(kind) {
  status('export-status', 'Exporting…');
  const rows = await store.list(filters());
  if (!rows.length) return status('export-status', 'Nothing to export: no check matches the filters.', false);
  rows.reverse(); // oldest first, like a log
  let blob;
  if (kind === 'json') {
    blob = new Blob([JSON.stringify({exported: new Date().toISOString(), checks: rows.map(checkJson)}, null, 1)], {type: 'application/json'});
  } else {
    const parts = [csvLine(CHECK_COLUMNS)];
    for (const r of rows) {
      const flat = checkRow(r);
      parts.push(csvLine(CHECK_COLUMNS.map((c) => flat[c])));
    }
    blob = new Blob(parts, {type: 'text/csv'});
  }
  download(blob, `unmask-history-${stamp()}.${kind}`);
  status('export-status', `Exported ${rows.length} check(s) as ${kind.toUpperCase()} (${mb(blob.size)}).`);
}

async function exportZip() {
  status('export-status', 'Exporting…');
  const reported = [];
  for await (const batch of store.each()) reported.push(...batch.filter((r) => r.report));
  if (!reported.length) return status('export-status', 'Nothing to export: no check is reported yet. Use “Is this wrong?” on a check first.', false);
  const pictures = new Map();
  for (const r of reported) {
    if (r.report.picture && !pictures.has(r.hash)) {
      const p = await store.getPicture(r.hash);
      if (p) pictures.set(r.hash, new Uint8Array(p.bytes));
    }
  }
  const {rows, without} = trainingRows(reported, (h) => pictures.has(h));
  if (!rows.length) return status('export-status', `None of the ${reported.length} reported check(s) has its picture kept (it could not be downloaded again), so there is nothing to train on. Export JSON to keep the reports.`, false);
  const top = 'unmask-reports';
  const entries = [{name: `${top}/manifest.csv`, data: [csvLine(MANIFEST_COLUMNS), ...rows.map((r) => csvLine(MANIFEST_COLUMNS.map((c) => r[c])))].join('')}];
  for (const r of rows) entries.push({name: `${top}/${r.path}`, data: pictures.get(r.sha256)});
  if (without.length) {
    entries.push({name: `${top}/without_picture.csv`, data: [csvLine(CHECK_COLUMNS), ...without.map((r) => csvLine(CHECK_COLUMNS.map((c) => checkRow(r)[c])))].join('')});
  }
  const blob = zip(entries);
  download(blob, `${top}.zip`);
  status('export-status', `Exported ${rows.length} reported picture(s) (${mb(blob.size)})${without.length ? `; ${without.length} report(s) without their picture are listed in without_picture.csv` : ''}. Unpack with: unzip ${top}.zip`);
}

// --- keeping -----------------------------------------------------------------------------
async function saveKeeping() {
  const days = Number($('days').value);
  const quota = Number($('quota').value);
  if (!Number.isInteger(days) || days < 1 || days > 3650) return status('keep-status', 'Keep checks for 1 to 3650 days.', false);
  if (!Number.isFinite(quota) || quota < 1 || quota > 500) return status('keep-status', 'Give at most 1 to 500 MB.', false);
  const s = await updateSettings({historyDays: days, historyQuotaMB: quota, historyFeed: $('feed').checked});
  const dropped = await store.prune({days: s.historyDays, quotaBytes: s.historyQuotaMB * 1048576});
  status('keep-status', `Saved.${dropped.checks ? ` ${dropped.checks} older check(s) removed.` : ''}`);
  route();
}

let clearArmed = false;

async function clearHistory() {
  if (!clearArmed) {
    clearArmed = true;
    $('clear').textContent = 'Really clear every check?';
    $('clear').className = 'danger';
    return;
  }
  clearArmed = false;
  $('clear').textContent = 'Clear history';
  $('clear').className = 'secondary';
  const n = await store.clear();
  status('keep-status', `Cleared ${n} check(s).`);
  route();
}

async function init() {
  const s = await getSettings();
  $('days').value = s.historyDays;
  $('quota').value = s.historyQuotaMB;
  $('feed').checked = s.historyFeed;
  let typing = null;
  $('search').oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(showList, 150);
  };
  for (const id of ['verdict', 'site', 'reported']) $(id).onchange = showList;
  $('back').onclick = () => (location.hash = '');
  $('export-json').onclick = () => exportChecks('json').catch((e) => status('export-status', `Export failed: ${e.message}`, false));
  $('export-csv').onclick = () => exportChecks('csv').catch((e) => status('export-status', `Export failed: ${e.message}`, false));
  $('export-zip').onclick = () => exportZip().catch((e) => status('export-status', `Export failed: ${e.message}`, false));
  $('save-keep').onclick = () => saveKeeping().catch((e) => status('keep-status', e.message, false));
  $('clear').onclick = () => clearHistory().catch((e) => status('keep-status', e.message, false));
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', drawOverlay);
  await route();
  document.body.dataset.ready = '1';
}

init();
