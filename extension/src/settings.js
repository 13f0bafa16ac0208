// The user's settings, in chrome.storage.local under one key. Every part of the extension
// (worker, content script, popup, options) reads them through here.
//
// Local, not sync: the API key and the list of sites stay on this device.

export const SETTINGS_KEY = 'settings';

export const DEFAULTS = Object.freeze({
  // Second opinion: off until the user turns it on and gives a server.
  secondOpinion: false,
  serverUrl: '',
  apiKey: '',
  // A server that has not answered after this long is reported as slow, with a retry.
  serverTimeoutS: 20,
  // Send every picture with a face called uncertain, not only those in the model's
  // escalation band (metadata.cascade).
  sendAllUnsure: false,
  // Hostnames where the user switched badges on (beyond the built-in social sites).
  sites: [],
  // Hostnames of built-in social sites where the user switched badges off.
  disabledSites: [],
  // low | standard | high: see sensitivity.js.
  sensitivity: 'standard',
  // Images smaller than this on screen (CSS px, either side) get no badge.
  minSide: 100,
  // Video checks: frames taken and over how many seconds of playback (null: models/video.json's
  // defaults, 16 over 8 s; videosampler.js keeps them within its bounds).
  videoFrames: null,
  videoWindowS: null,
  // The history of checks (historystore.js): days kept, most megabytes, and whether badged feed
  // pictures go in too (right-click checks always do).
  historyDays: 30,
  historyQuotaMB: 50,
  historyFeed: false,
});

export function withDefaults(stored) {
  const s = {...DEFAULTS, ...(stored || {})};
  s.sites = [...new Set((s.sites || []).map(String))];
  s.disabledSites = [...new Set((s.disabledSites || []).map(String))];
  return s;
}

export async function getSettings() {
  const got = await chrome.storage.local.get(SETTINGS_KEY);
  return withDefaults(got[SETTINGS_KEY]);
}

export async function updateSettings(changes) {
  const next = withDefaults({...(await getSettings()), ...changes});
  await chrome.storage.local.set({[SETTINGS_KEY]: next});
  return next;
}

// Loopback addresses never leave this machine: the only place plain http is allowed.
export function isLoopback(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

// The server URL as an origin-rooted base without a trailing slash, or an Error saying why not.
// The API key and the pictures travel to it: https, unless it runs on this machine.
export function parseServerUrl(text) {
  const raw = String(text || '').trim();
  if (!raw) return new Error('enter the address of your Unmask server, for example https://unmask.example.org or http://127.0.0.1:8000');
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) return new Error(`write the address with http:// or https:// in front, like http://${raw}`);
  let url;
  try {
    url = new URL(raw);
  } catch {
    return new Error(`"${raw}" is not a web address; write it like http://127.0.0.1:8000`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return new Error(`the server address must start with http:// or https://, not ${url.protocol}`);
  }
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    return new Error(`use https://${url.host}: over plain http the API key and your pictures would cross the network unencrypted (http is only for a server on this machine, such as http://127.0.0.1:8000)`);
  }
  return url.origin + url.pathname.replace(/\/+$/, '');
}

// The one host permission the second opinion needs: its scheme, host and port, nothing wider.
export function serverPattern(serverUrl) {
  const u = new URL(serverUrl);
  return `${u.protocol}//${u.host}/*`;
}
