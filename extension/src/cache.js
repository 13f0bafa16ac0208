// Results cached in chrome.storage.local, so they survive the service worker being stopped
// (Chrome stops it after 30 s idle) and the browser restarting.
//
// Two keys per image, both scoped to the model that produced the score:
//   u|MODEL|ASKER|URL -> {h: content hash}   (http(s) only: data: and blob: URLs are keyed by hash)
//   h|MODEL|HASH      -> {p: raw p(fake), f: format, w, h, thumb, t}
// ASKER is the origin of the page that asked (background.js askerOf): a URL seen on one site
// is found by URL only on that site; elsewhere it is downloaded again (with the permission
// check that goes with it) and found by its content hash.
// Stored is the raw score, not the verdict, so a change of sensitivity applies at once.
// Server answers are cached by content hash too: s|SERVER|HASH -> the server's verdict.

const MAX_ENTRIES = 3000; // about 3 MB with thumbnails, inside storage.local's 10 MB
const SWEEP_EVERY = 100; // writes between sweeps

let writes = 0;

const urlKey = (model, asker, url) => `u|${model}|${asker}|${url}`;
const hashKey = (model, hash) => `h|${model}|${hash}`;
const serverKey = (server, hash) => `s|${server}|${hash}`;

export function cacheableUrl(url) {
  return /^https?:/i.test(url || '');
}

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// {hash, entry} for a URL seen before with this model, or null.
export async function byUrl(model, asker, url) {
  if (!cacheableUrl(url)) return null;
  const k = urlKey(model, asker, url);
  const got = await chrome.storage.local.get(k);
  if (!got[k]) return null;
  const entry = await byHash(model, got[k].h);
  return entry ? {hash: got[k].h, entry} : null;
}

export async function byHash(model, hash) {
  const k = hashKey(model, hash);
  const got = await chrome.storage.local.get(k);
  return got[k] || null;
}

export async function put(model, asker, url, hash, entry) {
  const items = {[hashKey(model, hash)]: {...entry, t: Date.now()}};
  if (asker && cacheableUrl(url)) items[urlKey(model, asker, url)] = {h: hash, t: Date.now()};
  await chrome.storage.local.set(items);
  await maybeSweep(model);
}

export async function linkUrl(model, asker, url, hash) {
  if (cacheableUrl(url)) await chrome.storage.local.set({[urlKey(model, asker, url)]: {h: hash, t: Date.now()}});
}

export async function serverResult(server, hash) {
  const k = serverKey(server, hash);
  const got = await chrome.storage.local.get(k);
  return got[k] || null;
}

export async function putServerResult(server, hash, result) {
  await chrome.storage.local.set({[serverKey(server, hash)]: {...result, t: Date.now()}});
  await maybeSweep(null);
}

// Drop entries of other models, then the oldest, down to MAX_ENTRIES.
async function maybeSweep(model) {
  writes += 1;
  if (writes % SWEEP_EVERY !== 0) return;
  await sweep(model);
}

export async function sweep(model) {
  const all = await chrome.storage.local.get(null);
  const keys = Object.keys(all).filter((k) => /^[uhs]\|/.test(k));
  const stale = model ? keys.filter((k) => k[0] !== 's' && k.split('|')[1] !== model) : [];
  const live = keys.filter((k) => !stale.includes(k)).sort((a, b) => (all[a].t || 0) - (all[b].t || 0));
  const excess = live.slice(0, Math.max(0, live.length - MAX_ENTRIES));
  const drop = [...stale, ...excess];
  if (drop.length) await chrome.storage.local.remove(drop);
  return drop.length;
}

export async function clear() {
  const all = await chrome.storage.local.get(null);
  const keys = Object.keys(all).filter((k) => /^[uhs]\|/.test(k));
  if (keys.length) await chrome.storage.local.remove(keys);
  return keys.length;
}
