// Where badges appear: the social sites named in manifest.json's content_scripts (on unless
// the user switches them off) and the sites the user switches on (each needs its own host
// permission, asked for at that moment).

export const USER_SCRIPT_ID = 'unmask-user-sites';

// The built-in sites are the manifest's content-script patterns: one list, in one place.
export function builtinPatterns(manifest = chrome.runtime.getManifest()) {
  return (manifest.content_scripts || []).flatMap((c) => c.matches || []);
}

// Does a match pattern such as https://*.reddit.com/* cover this URL? (Scheme and host only:
// every pattern here ends in /*.)
export function patternMatches(pattern, url) {
  const m = /^(\*|https?):\/\/(\*|\*\.[^/]+|[^/*]+)\//.exec(pattern);
  if (!m) return false;
  let u;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const scheme = u.protocol.slice(0, -1);
  if (m[1] === '*' ? !['http', 'https'].includes(scheme) : m[1] !== scheme) return false;
  const host = m[2];
  if (host === '*') return true;
  if (host.startsWith('*.')) return u.hostname === host.slice(2) || u.hostname.endsWith(host.slice(1));
  return u.hostname === host;
}

export function isBuiltinSite(url, patterns = builtinPatterns()) {
  return patterns.some((p) => patternMatches(p, url));
}

export function hostOf(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.hostname : null;
  } catch {
    return null;
  }
}

// The pattern asked for when the user switches a site on. Host permissions ignore ports.
export function originPattern(host) {
  return `*://${host}/*`;
}

// The pattern that covers fetching one image. Built-in hosts are granted for https only, and
// `*://` would ask for http too, so it must name the URL's own scheme.
export function fetchPattern(url) {
  const u = new URL(url);
  return `${u.protocol}//${u.hostname}/*`;
}

export function badgesEnabled(url, settings, patterns = builtinPatterns()) {
  const host = hostOf(url);
  if (!host) return false;
  if (settings.sites.includes(host)) return true;
  // Switching off reddit.com also switches off old.reddit.com.
  const off = settings.disabledSites.some((d) => host === d || host.endsWith(`.${d}`));
  return isBuiltinSite(url, patterns) && !off;
}

// Keep the registered content script for user-enabled sites in step with the settings and
// with the permissions actually granted (the user can revoke them in chrome://extensions).
export async function syncUserScripts(settings) {
  const granted = [];
  for (const host of settings.sites) {
    if (await chrome.permissions.contains({origins: [originPattern(host)]})) granted.push(originPattern(host));
  }
  const existing = await chrome.scripting.getRegisteredContentScripts({ids: [USER_SCRIPT_ID]});
  if (!granted.length) {
    if (existing.length) await chrome.scripting.unregisterContentScripts({ids: [USER_SCRIPT_ID]});
    return [];
  }
  const script = {id: USER_SCRIPT_ID, matches: granted, js: ['content.js'], runAt: 'document_idle', persistAcrossSessions: true};
  if (existing.length) await chrome.scripting.updateContentScripts([script]);
  else await chrome.scripting.registerContentScripts([script]);
  return granted;
}
