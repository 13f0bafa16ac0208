// What the content script draws on a page: corner badges and the overlay, all inside one
// shadow root on one host element outside the page's layout, so the page's styles cannot
// reach them and they cannot move anything on the page.
//
// Every element carries data-* attributes with its state (verdict, p_fake, ...): they drive
// the styles, and the browser tests read them.

export const LABELS = {fake: 'Likely fake', real: 'Likely real', uncertain: 'Unsure'};
const SHORT = {fake: 'Fake', real: 'Real', uncertain: 'Unsure'};

export const NEXT_STEP = {
  fake: "Treat it as manipulated until shown otherwise. Don't share it as real; look for the original with a reverse image search.",
  real: 'No sign of a deepfake was found. That is not proof: if it matters, check where the image first appeared.',
  uncertain: "The on-device model can't tell. Get a second opinion, or check where the image came from before you trust or share it.",
};

export const pct = (x) => `${Math.round(x * 100)}%`;

const STYLE = `
:host { all: initial; }
* { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.badge {
  position: absolute; transform: translateX(-100%); pointer-events: auto; cursor: pointer;
  display: flex; gap: 4px; align-items: center; padding: 2px 7px 2px 5px; border-radius: 10px;
  font-size: 11px; font-weight: 600; line-height: 16px; color: #fff; white-space: nowrap;
  background: rgba(40, 44, 52, 0.88); box-shadow: 0 1px 3px rgba(0,0,0,.4); user-select: none;
}
.badge[hidden] { display: none; }
.badge .dot { width: 8px; height: 8px; border-radius: 50%; background: #9aa3b2; flex: none; }
.badge[data-verdict="fake"] { background: rgba(196, 43, 50, 0.92); }
.badge[data-verdict="real"] { background: rgba(30, 128, 74, 0.92); }
.badge[data-verdict="uncertain"] { background: rgba(176, 120, 8, 0.92); }
.badge[data-verdict] .dot { background: #fff; }
.badge[data-state="checking"] .dot { animation: pulse 1s ease-in-out infinite; }
.badge[data-state="error"] { background: rgba(90, 94, 104, 0.92); }
.badge .srv { padding-left: 5px; margin-left: 1px; border-left: 1px solid rgba(255,255,255,.5); font-weight: 500; }
@keyframes pulse { 50% { opacity: .2; } }
.panel {
  position: absolute; pointer-events: auto; width: 300px; max-width: calc(100vw - 16px);
  background: #fff; color: #1d2330; border-radius: 10px; padding: 12px 14px 12px;
  box-shadow: 0 6px 24px rgba(0,0,0,.35); font-size: 13px; line-height: 1.4;
  border-top: 5px solid #9aa3b2;
}
.panel[data-verdict="fake"] { border-top-color: #c42b32; }
.panel[data-verdict="real"] { border-top-color: #1e804a; }
.panel[data-verdict="uncertain"] { border-top-color: #b07808; }
.panel h2 { margin: 0 24px 2px 0; font-size: 17px; }
.panel .conf { color: #4b5263; margin-bottom: 8px; }
.panel .next { margin: 8px 0; }
.panel .close { position: absolute; top: 6px; right: 8px; border: 0; background: none; font-size: 18px; cursor: pointer; color: #4b5263; }
.panel .second { border-top: 1px solid #e3e6ec; margin-top: 8px; padding-top: 8px; }
.panel .second b { font-weight: 600; }
.panel .msg { color: #5b6170; }
.panel .err { color: #a3242a; }
.panel button.act { margin-top: 6px; margin-right: 6px; border: 1px solid #2b59c3; background: #2b59c3; color: #fff; border-radius: 6px; padding: 4px 10px; font-size: 12px; cursor: pointer; }
.panel button.act.secondary { background: #fff; color: #2b59c3; }
.panel .small { font-size: 11px; color: #6b7180; margin-top: 6px; }
`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || k === 'class' || k === 'role' || k === 'title' || k === 'tabindex' || k === 'aria-label') e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// The host element and its shadow root, created on first use.
export class Layer {
  constructor() {
    this.host = null;
    this.root = null;
  }

  ensure() {
    if (!this.host) {
      this.host = document.createElement('unmask-layer');
      this.host.style.cssText = 'all: initial; position: absolute; top: 0; left: 0; width: 0; height: 0; overflow: visible; z-index: 2147483647; pointer-events: none;';
      this.root = this.host.attachShadow({mode: 'open'});
      this.root.append(el('style', {textContent: STYLE}));
    }
    // Pages that rebuild their DOM can drop the host: put it back.
    if (!this.host.isConnected) document.documentElement.append(this.host);
    return this.root;
  }

  add(node) {
    this.ensure().append(node);
    return node;
  }

  remove() {
    if (this.host) this.host.remove();
  }
}

// Document coordinates of a point of the viewport (the host sits at the document's origin).
const docX = (x) => x + window.scrollX;
const docY = (y) => y + window.scrollY;

// A small label in an image's top-right corner.
export function renderBadge(badge, item) {
  const r = item.result;
  badge.replaceChildren();
  for (const k of Object.keys(badge.dataset)) delete badge.dataset[k];
  badge.dataset.src = item.src.slice(0, 300);
  badge.dataset.state = item.state;
  if (item.state === 'checking' || item.state === 'queued') {
    badge.append(el('span', {class: 'dot'}), el('span', {class: 'label', textContent: 'Checking'}));
    badge.title = 'Unmask is checking this image on your device';
    return;
  }
  if (!r || !r.ok) {
    const message = r ? r.error.message : 'not checked';
    badge.dataset.error = r ? r.error.code : 'unknown';
    badge.append(el('span', {class: 'dot'}), el('span', {class: 'label', textContent: "Can't check"}));
    badge.title = `Unmask could not check this image: ${message}. Click for details.`;
    return;
  }
  const d = r.device;
  Object.assign(badge.dataset, {verdict: d.verdict, pFake: d.p_fake, confidence: d.confidence, cached: r.cached || 'no', sensitivity: r.sensitivity});
  badge.append(el('span', {class: 'dot'}), el('span', {class: 'label', textContent: d.verdict === 'uncertain' ? SHORT.uncertain : `${SHORT[d.verdict]} ${pct(d.confidence)}`}));
  const s = item.server;
  if (s) {
    badge.dataset.serverState = s.state;
    if (s.state === 'done') {
      badge.dataset.serverVerdict = s.verdict;
      badge.append(el('span', {class: 'srv', textContent: `Server: ${SHORT[s.verdict]}${s.confidence !== null && s.verdict !== 'uncertain' ? ` ${pct(s.confidence)}` : ''}`}));
    } else if (s.state === 'asking') {
      badge.append(el('span', {class: 'srv', textContent: 'Server…'}));
    } else {
      badge.append(el('span', {class: 'srv', textContent: 'Server ✕'}));
    }
  }
  badge.title = `${LABELS[d.verdict]} (on this device, confidence ${pct(d.confidence)}). Click for details.`;
}

export function placeBadge(badge, rect) {
  badge.style.left = `${docX(rect.right) - 6}px`;
  badge.style.top = `${docY(rect.top) + 6}px`;
}

// The overlay: verdict, confidence, what to do next, and the second opinion.
// handlers: {close, retry, allow, askServer, retryServer, openOptions}
export function renderPanel(panel, item, handlers) {
  const r = item.result;
  panel.replaceChildren();
  for (const k of Object.keys(panel.dataset)) delete panel.dataset[k];
  panel.dataset.state = item.state;
  panel.dataset.src = item.src.slice(0, 300);
  panel.setAttribute('role', 'dialog');
  panel.append(el('button', {class: 'close', title: 'Close', 'aria-label': 'Close', textContent: '×', onclick: handlers.close}));
  if (item.state === 'checking' || item.state === 'queued') {
    panel.append(el('h2', {textContent: 'Checking…'}), el('div', {class: 'msg', textContent: 'Looking for signs of a deepfake, on this device.'}));
    return;
  }
  if (!r || !r.ok) {
    const e = r ? r.error : {code: 'unknown', message: 'no answer'};
    panel.dataset.error = e.code;
    panel.append(el('h2', {textContent: "Can't check this image"}), el('div', {class: 'err', textContent: capital(e.message)}));
    if (e.code === 'no_access' && e.host) {
      panel.append(
        el('div', {class: 'next', textContent: `Unmask reads images itself, which needs your permission for ${e.host}. Nothing leaves your device.`}),
        el('button', {class: 'act', textContent: `Allow ${e.host}…`, onclick: () => handlers.allow(e.host)}),
      );
    }
    if (!['too_many_pixels', 'unsupported', 'too_small', 'too_large'].includes(e.code)) {
      panel.append(el('button', {class: 'act secondary', textContent: 'Try again', onclick: handlers.retry}));
    }
    return;
  }
  const d = r.device;
  Object.assign(panel.dataset, {verdict: d.verdict, pFake: d.p_fake, confidence: d.confidence});
  panel.append(
    el('h2', {textContent: LABELS[d.verdict]}),
    el('div', {class: 'conf', textContent: `${confidenceText(d)} · checked on this device`}),
    el('div', {class: 'next', textContent: NEXT_STEP[d.verdict]}),
  );
  panel.append(secondOpinionSection(item, handlers));
  const model = [r.model.name, r.model.version].filter(Boolean).join(' ');
  panel.append(el('div', {class: 'small', textContent: `Model ${model || 'on-device'} · sensitivity ${r.sensitivity}${r.cached ? ' · from cache' : ''}`}));
}

function secondOpinionSection(item, handlers) {
  const r = item.result;
  const s = item.server;
  const box = el('div', {class: 'second', 'data-server-state': s ? s.state : r.secondOpinion});
  if (s && s.state === 'done') {
    box.dataset.serverVerdict = s.verdict;
    const conf = s.confidence !== null && s.confidence !== undefined ? `, confidence ${pct(s.confidence)}` : '';
    box.append(el('div', {}, el('b', {textContent: 'Second opinion: '}), `${LABELS[s.verdict]}${conf}`));
    if (s.provenance) box.append(el('div', {class: 'msg', textContent: `Provenance: ${s.provenance}`}));
    if (s.model) box.append(el('div', {class: 'small', textContent: `From your server (${s.model}, ${s.ms} ms)`}));
    return box;
  }
  if (s && s.state === 'asking') {
    box.append(el('div', {class: 'msg', textContent: 'Asking your server for a second opinion…'}));
    return box;
  }
  if (s && s.state === 'error') {
    box.dataset.serverError = s.error.code;
    box.append(
      el('div', {class: 'err', textContent: `Second opinion failed: ${s.error.message}`}),
      el('button', {class: 'act secondary', textContent: 'Retry', onclick: handlers.retryServer}),
    );
    return box;
  }
  if (r.secondOpinion === 'off') {
    box.append(
      el('div', {class: 'msg', textContent: r.device.verdict === 'uncertain'
        ? 'A second opinion from a larger model can help. It is off: turning it on sends the images you ask about to the server you choose.'
        : 'Second opinion: off. It sends an image to a server you choose, only when you turn it on.'}),
      el('button', {class: 'act secondary', textContent: 'Open options', onclick: handlers.openOptions}),
    );
    return box;
  }
  box.append(el('button', {class: 'act', textContent: 'Ask the second opinion', onclick: handlers.askServer}));
  return box;
}

// Over the image's top-left corner, kept inside the viewport.
export function placePanel(panel, rect) {
  const w = panel.offsetWidth || 300;
  const h = panel.offsetHeight || 160;
  const left = Math.min(Math.max(rect ? rect.left + 8 : window.innerWidth - w - 16, 8), window.innerWidth - w - 8);
  const top = Math.min(Math.max(rect ? rect.top + 8 : 16, 8), Math.max(8, window.innerHeight - h - 8));
  panel.style.left = `${docX(left)}px`;
  panel.style.top = `${docY(top)}px`;
}

export function makeBadge(onclick) {
  return el('div', {class: 'badge', role: 'button', tabindex: 0, onclick, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && onclick(e)});
}

export function makePanel() {
  return el('div', {class: 'panel'});
}

// The calibrated confidence. When unsure, which way it leans and that it is not enough.
export function confidenceText(d) {
  if (d.verdict !== 'uncertain') return `Confidence ${pct(d.confidence)}`;
  return `Leans ${d.p_fake >= 0.5 ? 'fake' : 'real'} (${pct(d.confidence)}), not enough to call it`;
}

function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}
