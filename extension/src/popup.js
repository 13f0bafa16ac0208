// The toolbar popup: the badge switch for the site in the current tab, and recent checks.
import {getSettings, updateSettings} from './settings.js';
import {badgesEnabled, builtinPatterns, hostOf, isBuiltinSite, originPattern} from './sites.js';
import {confidenceText, describe, LABELS, wording} from './wording.js';

const $ = (id) => document.getElementById(id);

function ago(t) {
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

async function currentTab() {
  const [tab] = await chrome.tabs.query({active: true, currentWindow: true});
  return tab || null;
}

async function showSite(tab) {
  const host = tab && tab.url ? hostOf(tab.url) : null;
  const box = $('badges');
  const note = $('site-note');
  if (!host) {
    box.disabled = true;
    $('host').textContent = 'this page';
    note.textContent = 'Badges work on web pages (http and https).';
    return;
  }
  $('host').textContent = host;
  const settings = await getSettings();
  const builtin = isBuiltinSite(tab.url, builtinPatterns());
  box.checked = badgesEnabled(tab.url, settings);
  note.textContent = siteNote(host, builtin, box.checked);
  box.onchange = () => toggle(tab, host, builtin, box.checked).catch((e) => {
    note.textContent = e.message;
    note.className = 'note err';
  });
}

// What the switch does now, in its present state.
function siteNote(host, builtin, on) {
  if (on) return `Badges on for ${host}: pictures with faces get one as you scroll. Nothing leaves your device.`;
  if (builtin) return 'A social site: badges are off here. Switch on to see them again.';
  return 'Switching on asks Chrome for permission to read this site’s images. They never leave your device.';
}

async function toggle(tab, host, builtin, on) {
  const settings = await getSettings();
  const note = $('site-note');
  if (builtin) {
    const covers = (d) => host === d || host.endsWith(`.${d}`);
    const disabledSites = on ? settings.disabledSites.filter((d) => !covers(d)) : [...settings.disabledSites, host];
    await updateSettings({disabledSites});
  } else if (on) {
    // Chrome asks the user; its prompt can close this popup before the answer comes back, so
    // the worker finishes the job when the permission arrives (see enableSite there).
    // Tell the worker first, in this same task: once the prompt shows, this page may be gone.
    const told = chrome.runtime.sendMessage({target: 'worker', type: 'enableSite', host, tabId: tab.id});
    const granted = await chrome.permissions.request({origins: [originPattern(host)]}).catch((e) => e);
    await told;
    if (granted instanceof Error) throw granted;
    if (!granted) {
      $('badges').checked = false;
      note.textContent = `Not switched on: Unmask needs permission to read images on ${host}.`;
      return;
    }
    await chrome.runtime.sendMessage({target: 'worker', type: 'enableSite', host, tabId: tab.id});
  } else {
    await updateSettings({sites: settings.sites.filter((h) => h !== host)});
    await chrome.runtime.sendMessage({target: 'worker', type: 'sitesChanged'});
  }
  note.textContent = siteNote(host, builtin, on);
  note.className = 'note';
}

function entry(r) {
  const li = document.createElement('li');
  li.dataset.verdict = r.verdict;
  const thumb = r.thumb ? Object.assign(document.createElement('img'), {src: r.thumb, alt: ''}) : Object.assign(document.createElement('div'), {className: 'nothumb'});
  const what = document.createElement('div');
  what.className = 'what';
  const pill = Object.assign(document.createElement('span'), {className: `pill ${r.verdict}`, textContent: LABELS[r.verdict]});
  const line = document.createElement('div');
  const said = confidenceText(r.verdict, r.confidence, r.p_fake);
  const faces = r.faces > 1 ? ` (${r.faces} faces)` : '';
  line.append(pill, said ? ` ${said}${faces}` : '');
  what.append(line);
  if (r.server) {
    what.append(Object.assign(document.createElement('div'), {className: 'server', textContent: `Second opinion: ${describe(r.server.verdict, r.server.confidence, r.server.p_fake)}`}));
  }
  what.append(Object.assign(document.createElement('div'), {className: 'where', textContent: `${r.page ? `${r.page} · ` : ''}${ago(r.t)}`, title: r.url}));
  li.append(thumb, what);
  return li;
}

async function showRecent() {
  const {recent = []} = await chrome.storage.local.get('recent');
  $('recent').replaceChildren(...recent.map(entry));
  $('empty').hidden = recent.length > 0;
}

async function showModel() {
  const reply = await chrome.runtime.sendMessage({target: 'worker', type: 'stats'}).catch(() => null);
  if (!reply || !reply.ok) {
    $('model').textContent = reply ? reply.error.message : 'The detector did not answer; close and reopen this popup.';
    $('model').classList.add('err');
    return;
  }
  const m = reply.model || {};
  $('model').textContent = `${wording.what_is_checked} Model ${[m.name, m.version].filter(Boolean).join(' ')}, on this device${reply.backend ? ` (${reply.backend})` : ''}. Nothing leaves it unless you turn on the second opinion.`;
}

$('history').onclick = (e) => {
  e.preventDefault();
  chrome.tabs.create({url: chrome.runtime.getURL('history.html')});
};

$('options').onclick = (e) => {
  e.preventDefault();
  chrome.runtime.openOptionsPage();
};

currentTab().then(showSite);
showRecent();
showModel();
chrome.storage.onChanged.addListener((changes) => changes.recent && showRecent());
