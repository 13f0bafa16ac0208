// The history of checks (the store), on this device: IndexedDB in the extension's own origin (web pages
// and content scripts cannot open it). The worker writes it; the history page reads it.
//
//   checks:   one record per check {id, t, url, pageUrl, site, hash, thumb, verdict, confidence,
//             p_fake, faces: [{box, verdict, confidence, p_fake}], width, height, server,
//             provenance, model: {name, version}, reason, report, size}
//   pictures: the picture's bytes {hash, bytes, format, size}, kept only for reported checks,
//             so that a report can be sent with its picture or exported for training.
//
// Retention: checks older than `days` go, then the oldest until the whole history is under
// `quotaBytes` (well under what Chrome gives the extension). Reported checks go last.

import {DEFAULTS} from './settings.js';

const DB_NAME = 'unmask-history';
const DB_VERSION = 1;
const DEFAULT_DAYS = DEFAULTS.historyDays;
const DEFAULT_QUOTA_BYTES = DEFAULTS.historyQuotaMB * 1048576;
const DAY_MS = 86400000;

let opening = null;

export function open() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        const checks = db.createObjectStore('checks', {keyPath: 'id'});
        checks.createIndex('t', 't');
        checks.createIndex('hash', 'hash');
        db.createObjectStore('pictures', {keyPath: 'hash'});
      };
      req.onsuccess = () => {
        req.result.onclose = () => (opening = null); // Chrome closed it (storage cleared): open again next time
        resolve(req.result);
      };
      req.onerror = () => reject(storageError(req.error));
      req.onblocked = () => reject(new HistoryProblem('storage_blocked', 'the history is being upgraded in another Unmask page; close it and try again'));
    }).catch((e) => {
      opening = null;
      throw e;
    });
  }
  return opening;
}

export class HistoryProblem extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function storageError(e) {
  if (e && e.name === 'QuotaExceededError') {
    return new HistoryProblem('quota_exceeded', 'the browser has no room left for the history, even after dropping older unreported checks; your reports are kept. Clear some history, or free disk space.');
  }
  return new HistoryProblem('storage_failed', `the history could not be read or written (${e ? e.message || e.name : 'unknown error'})`);
}

// Run fn(stores) in one transaction; resolves with fn's value once the transaction committed.
async function tx(names, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    let t;
    try {
      t = db.transaction(names, mode);
    } catch (e) {
      reject(storageError(e));
      return;
    }
    let value;
    t.oncomplete = () => resolve(value);
    t.onerror = () => reject(storageError(t.error));
    t.onabort = () => reject(storageError(t.error));
    const stores = Object.fromEntries([].concat(names).map((n) => [n, t.objectStore(n)]));
    Promise.resolve(fn(stores)).then((v) => (value = v), (e) => {
      reject(e);
      try {
        t.abort();
      } catch {
        // already finished
      }
    });
  });
}

const req = (r) => new Promise((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});

// Roughly what a record costs on disk: its JSON, thumbnail included.
export const sizeOf = (record) => JSON.stringify(record).length;

export function newId(t, hash) {
  return `${String(t).padStart(14, '0')}-${hash.slice(0, 12)}-${Math.random().toString(36).slice(2, 6)}`;
}

// What this context thinks the history weighs, so that not every add reads it all: pruned
// when the first add comes, when the quota would be passed, and every PRUNE_EVERY adds (days).
let estimate = null;
let adds = 0;
const PRUNE_EVERY = 50;

// Test builds only (build.mjs testHooks): the browser tests need a browser whose disk is full,
// and Chromium gives them no way to shrink its quota (DevTools' Storage.overrideQuotaForOrigin
// does nothing since Chromium 156). With this set, writing a check fails as such a browser
// fails it, with a QuotaExceededError; deleting still works, as it does there.
let diskFullForTests = false;
export function setDiskFullForTests(full) {
  if (UNMASK_TEST_HOOKS) diskFullForTests = Boolean(full);
}

function putCheck(r) {
  return tx('checks', 'readwrite', ({checks}) => {
    if (UNMASK_TEST_HOOKS && diskFullForTests) throw storageError(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
    return req(checks.put(r));
  });
}

export async function add(record, {days = DEFAULT_DAYS, quotaBytes = DEFAULT_QUOTA_BYTES} = {}) {
  const r = {...record, size: 0};
  r.size = sizeOf(r);
  if (r.size > quotaBytes) throw new HistoryProblem('quota_exceeded', `this check (${r.size} bytes) is larger than the history's whole quota; raise the quota`);
  adds += 1;
  if (estimate === null || estimate + r.size > quotaBytes || adds % PRUNE_EVERY === 0) {
    estimate = (await prune({days, quotaBytes, room: r.size})).bytes;
  }
  try {
    await putCheck(r);
  } catch (e) {
    if (e.code !== 'quota_exceeded') throw e;
    // The browser's own quota ran out before ours: make room once among the unreported checks
    // (a report is never dropped for this), then give up with the message.
    estimate = (await prune({days, quotaBytes: Math.floor((await usage()).bytes / 2), room: r.size, keepReported: true})).bytes;
    await putCheck(r);
  }
  estimate += r.size;
  return r;
}

export function get(id) {
  return tx('checks', 'readonly', ({checks}) => req(checks.get(String(id))));
}

// Change one record with fn(record) -> record, atomically. Null when it is gone.
export function update(id, fn) {
  return tx('checks', 'readwrite', async ({checks}) => {
    const current = await req(checks.get(String(id)));
    if (!current) return null;
    const next = fn(current);
    next.size = sizeOf({...next, size: 0});
    await req(checks.put(next));
    return next;
  });
}

// Every check whose hash is `hash` (one picture, checked more than once).
export function byHash(hash) {
  return tx('checks', 'readonly', ({checks}) => req(checks.index('hash').getAll(hash)));
}

// Checks newest first, filtered: {verdict, site, reported: 'yes'|'no', search (in the URLs), limit}.
export function list({verdict = '', site = '', reported = '', search = '', limit = Infinity} = {}) {
  const needle = String(search).trim().toLowerCase();
  const keep = (r) => (!verdict || r.verdict === verdict)
    && (!site || r.site === site)
    && (!reported || (reported === 'yes') === Boolean(r.report))
    && (!needle || `${r.url}\n${r.pageUrl || ''}`.toLowerCase().includes(needle));
  return tx('checks', 'readonly', ({checks}) => new Promise((resolve, reject) => {
    const out = [];
    const cursor = checks.index('t').openCursor(null, 'prev');
    cursor.onerror = () => reject(cursor.error);
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (!c || out.length >= limit) return resolve(out);
      if (keep(c.value)) out.push(c.value);
      c.continue();
    };
  }));
}

// Every check, oldest first, in batches (an export of thousands never holds a second copy).
export async function* each(batch = 500) {
  let after = null;
  for (;;) {
    const rows = await tx('checks', 'readonly', ({checks}) => req(checks.index('t').getAll(after === null ? null : IDBKeyRange.lowerBound(after, true), batch)));
    if (!rows.length) return;
    yield rows;
    after = rows.at(-1).t;
    if (rows.length < batch) return;
  }
}

export function putPicture(hash, bytes, format) {
  if (estimate !== null) estimate += bytes.length;
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return tx('pictures', 'readwrite', ({pictures}) => req(pictures.put({hash, bytes: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), format, size: b.byteLength})));
}

export function getPicture(hash) {
  return tx('pictures', 'readonly', ({pictures}) => req(pictures.get(hash)));
}

// {checks, bytes}: what the history holds now.
export function usage() {
  return tx(['checks', 'pictures'], 'readonly', async ({checks, pictures}) => {
    const rows = await req(checks.getAll());
    const pics = await req(pictures.getAll());
    return {checks: rows.length, reported: rows.filter((r) => r.report).length, pictures: pics.length,
      bytes: rows.reduce((n, r) => n + (r.size || 0), 0) + pics.reduce((n, p) => n + p.size, 0)};
  });
}

// Drop checks past `days`, then the oldest unreported, then the oldest reported, until the
// history plus `room` fits in quotaBytes; pictures no check refers to go with them.
export function prune({days = DEFAULT_DAYS, quotaBytes = DEFAULT_QUOTA_BYTES, room = 0, now = Date.now(), keepReported = false} = {}) {
  return tx(['checks', 'pictures'], 'readwrite', async ({checks, pictures}) => {
    const rows = (await req(checks.getAll())).sort((a, b) => a.t - b.t);
    const pics = new Map((await req(pictures.getAll())).map((p) => [p.hash, p.size]));
    const users = new Map(); // picture hash -> reported checks that keep it
    for (const r of rows) if (r.report) users.set(r.hash, (users.get(r.hash) || 0) + 1);
    let total = rows.reduce((n, r) => n + (r.size || 0), 0) + [...users.keys()].reduce((n, h) => n + (pics.get(h) || 0), 0);
    const drop = new Set();
    const dropRow = (r) => {
      drop.add(r.id);
      total -= r.size || 0;
      if (r.report) {
        users.set(r.hash, users.get(r.hash) - 1);
        if (!users.get(r.hash)) total -= pics.get(r.hash) || 0;
      }
    };
    const cutoff = now - days * DAY_MS;
    for (const r of rows) if (r.t < cutoff) dropRow(r);
    for (const reported of keepReported ? [false] : [false, true]) {
      for (const r of rows) {
        if (total + room <= quotaBytes) break;
        if (!drop.has(r.id) && Boolean(r.report) === reported) dropRow(r);
      }
    }
    for (const id of drop) checks.delete(id);
    let picturesDropped = 0;
    for (const h of pics.keys()) {
      if (!users.get(h)) {
        pictures.delete(h);
        picturesDropped += 1;
      }
    }
    return {checks: drop.size, pictures: picturesDropped, bytes: total};
  });
}

export function clear() {
  estimate = null;
  return tx(['checks', 'pictures'], 'readwrite', async ({checks, pictures}) => {
    const n = await req(checks.count());
    await req(checks.clear());
    await req(pictures.clear());
    return n;
  });
}
