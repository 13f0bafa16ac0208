// The options page: second opinion (server, API key), sites with badges, sensitivity, data.
// Permission requests happen here, inside the click that asks for them, as Chrome requires.
import {adjustCalibration} from './sensitivity.js';
import {initVideoOptions} from './videooptions.js';
import {escalationLimits} from './verdict.js';
import {serverHealth} from './secondopinion.js';
import {getSettings, parseServerUrl, serverPattern, updateSettings} from './settings.js';
import {builtinPatterns, originPattern} from './sites.js';

const $ = (id) => document.getElementById(id);

function status(id, text, ok = true) {
  $(id).textContent = text;
  $(id).className = ok ? 'status' : 'status err';
}

// A reply, or {ok: false, error} when the worker could not answer (it was being restarted).
const toWorker = (type, extra = {}) => chrome.runtime.sendMessage({target: 'worker', type, ...extra})
  .catch((e) => ({ok: false, error: {code: 'no_reply', message: `Unmask's worker did not answer (${e.message}); try again`}}));

// --- second opinion ---
async function saveServer() {
  const serverUrl = parseServerUrl($('server').value);
  const on = $('second').checked;
  const timeout = Number($('timeout').value);
  if (on && serverUrl instanceof Error) return status('server-status', serverUrl.message, false);
  if (!Number.isFinite(timeout) || timeout < 2 || timeout > 120) return status('server-status', 'give a time between 2 and 120 seconds', false);
  let note = '';
  if (!(serverUrl instanceof Error)) {
    // Exactly the server's scheme, host and port. Granted, the worker reaches the server
    // without CORS; refused, the server must answer this extension's origin with CORS.
    const pattern = serverPattern(serverUrl);
    const granted = await chrome.permissions.request({origins: [pattern]});
    if (!granted) note = ` Without access to ${new URL(serverUrl).host}, the server must list this extension in UNMASK_CORS_ORIGINS.`;
  }
  await updateSettings({
    secondOpinion: on,
    serverUrl: serverUrl instanceof Error ? '' : serverUrl,
    apiKey: $('apikey').value.trim(),
    serverTimeoutS: timeout,
    sendAllUnsure: $('all-unsure').checked,
  });
  status('server-status', `Saved. Second opinion ${on ? 'on' : 'off'}.${note}`);
}

async function testServer() {
  const serverUrl = parseServerUrl($('server').value);
  if (serverUrl instanceof Error) return status('server-status', serverUrl.message, false);
  status('server-status', 'Asking the server…');
  try {
    const health = await serverHealth({serverUrl, apiKey: $('apikey').value.trim(), timeoutS: Number($('timeout').value) || 20});
    const model = health.model ? ` Model: ${[health.model.name, health.model.version].filter(Boolean).join(' ')}.` : '';
    status('server-status', `The server answers (${health.status}).${model}`);
  } catch (e) {
    status('server-status', e.message, false);
  }
}

// Which pictures go by themselves, in the numbers the overlay shows ("Leans fake (57%)").
function showBand(cascade) {
  const limits = escalationLimits(cascade);
  const how = !limits
    ? 'Which go by themselves: every picture with a face the device calls “Unsure”.'
    : limits.fake === limits.real
      ? `Which go by themselves: pictures with a face that leans fake or real by less than ${limits.fake}% (the overlay shows how far each face leans).`
      : `Which go by themselves: pictures with a face that leans fake by less than ${limits.fake}% or real by less than ${limits.real}% (the overlay shows how far each face leans).`;
  $('band').textContent = `${how} Any other picture goes only when you ask, from its overlay.`;
}

// --- sites ---
async function showSites() {
  const settings = await getSettings();
  const builtin = [...new Set(builtinPatterns().map((p) => p.replace(/^[^:]+:\/\/(\*\.)?/, '').replace(/\/\*$/, '')))];
  $('builtin').replaceChildren(...builtin.map((host) => {
    const li = document.createElement('li');
    const box = Object.assign(document.createElement('input'), {type: 'checkbox', checked: !settings.disabledSites.includes(host)});
    box.onchange = async () => {
      const now = await getSettings();
      const others = now.disabledSites.filter((h) => h !== host);
      await updateSettings({disabledSites: box.checked ? others : [...others, host]});
      status('sites-status', `Badges ${box.checked ? 'on' : 'off'} on ${host}.`);
    };
    li.append(box, ` ${host} (built in)`);
    return li;
  }));
  $('user-sites').replaceChildren(...settings.sites.map((host) => {
    const li = document.createElement('li');
    const remove = Object.assign(document.createElement('button'), {className: 'secondary', textContent: 'Remove'});
    remove.onclick = async () => {
      const now = await getSettings();
      await updateSettings({sites: now.sites.filter((h) => h !== host)});
      await toWorker('sitesChanged');
      status('sites-status', `Badges off on ${host}.`);
      showSites();
    };
    li.append(`${host} `, remove);
    return li;
  }));
}

function cleanHost(text) {
  const raw = String(text || '').trim();
  if (!raw) return null;
  try {
    return new URL(raw.includes('://') ? raw : `https://${raw}`).hostname || null;
  } catch {
    return null;
  }
}

async function addSite() {
  const host = cleanHost($('new-site').value);
  if (!host) return status('sites-status', 'write a site like news.example.com', false);
  const granted = await chrome.permissions.request({origins: [originPattern(host)]});
  if (!granted) return status('sites-status', `Not added: Unmask needs permission to read images on ${host}.`, false);
  await toWorker('enableSite', {host});
  $('new-site').value = '';
  status('sites-status', `Badges on for ${host} (reload its pages).`);
  showSites();
}

// --- sensitivity ---
async function showThresholds(level) {
  const reply = await toWorker('stats');
  if (!reply || !reply.ok) return ($('thresholds').textContent = reply ? reply.error.message : '');
  showBand(reply.cascade);
  const cal = adjustCalibration(reply.calibration, level);
  const fake = cal.fake_threshold > 1 ? 'never' : `from ${Math.round(cal.fake_threshold * 100)}%`;
  $('thresholds').textContent = `Now: “fake” ${fake} calibrated probability of fake, “real” up to ${Math.round(cal.real_threshold * 100)}%, “unsure” between.`;
}

// --- one-off grant from the overlay ("Allow HOST…") ---
function showAllow() {
  const m = /allow=([^&]+)/.exec(location.hash);
  if (!m) return;
  const host = decodeURIComponent(m[1]);
  $('allow-box').hidden = false;
  $('allow-host').textContent = host;
  $('allow-host2').textContent = host;
  $('allow').onclick = async () => {
    const granted = await chrome.permissions.request({origins: [originPattern(host)]});
    status('allow-status', granted ? `Allowed. Right-click the image again to check it.` : 'Not allowed.', granted);
  };
}

async function init() {
  const s = await getSettings();
  $('second').checked = s.secondOpinion;
  $('server').value = s.serverUrl;
  $('apikey').value = s.apiKey;
  $('timeout').value = s.serverTimeoutS;
  $('all-unsure').checked = s.sendAllUnsure;
  $('all-unsure').onchange = async () => {
    await updateSettings({sendAllUnsure: $('all-unsure').checked});
    status('server-status', $('all-unsure').checked ? 'Saved: every picture with an “Unsure” face goes to your server (while the second opinion is on).' : 'Saved: only the pictures described above go by themselves.');
  };
  $('ext-id').textContent = chrome.runtime.id;
  $('ext-id2').textContent = chrome.runtime.id;
  for (const radio of document.querySelectorAll('input[name=sensitivity]')) {
    radio.checked = radio.value === s.sensitivity;
    radio.onchange = async () => {
      await updateSettings({sensitivity: radio.value});
      showThresholds(radio.value);
    };
  }
  $('save-server').onclick = () => saveServer().catch((e) => status('server-status', e.message, false));
  $('test-server').onclick = () => testServer();
  $('add-site').onclick = () => addSite().catch((e) => status('sites-status', e.message, false));
  $('clear').onclick = async () => {
    const reply = await toWorker('clearData');
    status('clear-status', reply && reply.ok ? `Cleared ${reply.removed} stored results.` : 'Could not clear.', Boolean(reply && reply.ok));
  };
  showAllow();
  showSites();
  showThresholds(s.sensitivity);
  initVideoOptions();
}

init();
