// What the content script draws on a page: corner badges and the overlay, all inside one
// closed shadow root on one host element outside the page's layout, so the page's styles
// cannot reach them, they cannot move anything on the page, and the page's scripts cannot
// read them: what the user checked elsewhere is nobody else's business.
//
// No element carries its result in attributes: the verdict is a class for the styles (the
// text says it anyway); the rest (p_fake, the URL, where it came from) stays in `state`, a
// WeakMap of this script's own. Only trusted events (a person's click or key) work the
// buttons: a page can dispatch events, not make them trusted.

import {mergeServerFaces} from './facecheck.js';
import {drawnRect, faceRect, panelWidth, placePanelRect} from './geometry.js';
import {confidenceText, describe, LABELS, tag, tooSmall, wording} from './wording.js';

export const NEXT_STEP = {
  fake: "Treat it as manipulated until shown otherwise. Don't share it as real; look for the original with a reverse image search.",
  real: 'No sign of a deepfake was found in the faces. That is not proof: if it matters, check where the image first appeared.',
  uncertain: "The on-device model can't tell. Get a second opinion, or check where the image came from before you trust or share it.",
  // After the second opinion, when the server cannot tell: no second opinion to offer.
  undecided: "Neither this device nor your server can tell. Check where the image came from before you trust or share it.",
  disputed: "Your server can't tell, although this device leaned one way. Check where the image came from before you trust or share it.",
};

// What to do next, from the last word: the server's once it answered.
export function nextStep(device, server) {
  if (!server || server.state !== 'done') return NEXT_STEP[device.verdict];
  if (server.verdict === 'fake' || server.verdict === 'real') return NEXT_STEP[server.verdict];
  return device.verdict === 'uncertain' ? NEXT_STEP.undecided : NEXT_STEP.disputed;
}

const STYLE = `
:host { all: initial; }
* { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.badge {
  position: absolute; transform: translateX(-100%); pointer-events: auto; cursor: pointer;
  display: flex; gap: 4px; align-items: center; padding: 2px 7px 2px 5px; border-radius: 10px;
  font-size: 11px; font-weight: 600; line-height: 16px; color: #fff; white-space: nowrap;
  background: rgba(40, 44, 52, 0.88); box-shadow: 0 1px 3px rgba(0,0,0,.4); user-select: none;
}
.badge[hidden], .faces[hidden] { display: none; }
.badge .dot { width: 8px; height: 8px; border-radius: 50%; background: #fff; flex: none; }
.badge.v-fake, .face.v-fake .tag { background: rgba(196, 43, 50, 0.92); }
.badge.v-real, .face.v-real .tag { background: rgba(30, 128, 74, 0.92); }
.badge.v-uncertain, .face.v-uncertain .tag { background: rgba(176, 120, 8, 0.92); }
.badge .ai { padding: 0 4px; margin-left: 2px; border-radius: 3px; background: #fff; color: rgb(196, 43, 50); font-weight: 700; }
.provenance { margin: 6px 0; }
.provenance .said { font-weight: 600; }
.provenance .changed { color: rgb(196, 43, 50); }
.badge .srv { padding-left: 5px; margin-left: 1px; border-left: 1px solid rgba(255,255,255,.5); font-weight: 500; }
.faces { position: absolute; overflow: hidden; pointer-events: none; }
.heat { position: absolute; image-rendering: auto; }
.face { position: absolute; border: 2px solid #fff; border-radius: 3px; box-shadow: 0 0 0 1px rgba(0,0,0,.45); }
.face.v-fake { border-color: #e0474e; }
.face.v-real { border-color: #2fa863; }
.face.v-uncertain { border-color: #e0a21c; }
.face .tag { position: absolute; left: -2px; bottom: 100%; padding: 0 5px; border-radius: 3px 3px 0 0; font-size: 11px; font-weight: 600; line-height: 16px; color: #fff; white-space: nowrap; }
.face.low .tag { left: 0; bottom: auto; top: 0; border-radius: 0 0 3px 0; }
.panel {
  position: absolute; pointer-events: auto; width: 300px; overflow-y: auto;
  background: #fff; color: #1d2330; border-radius: 10px; padding: 12px 14px 12px;
  box-shadow: 0 6px 24px rgba(0,0,0,.35); font-size: 13px; line-height: 1.4;
  border-top: 5px solid #9aa3b2;
}
.panel.v-fake { border-top-color: #c42b32; }
.panel.v-real { border-top-color: #1e804a; }
.panel.v-uncertain { border-top-color: #b07808; }
.panel h2 { margin: 0 24px 2px 0; font-size: 17px; }
.panel .conf { color: #4b5263; margin-bottom: 8px; }
.panel ol { margin: 6px 0; padding-left: 0; list-style: none; }
.panel ol li { margin: 2px 0; }
.panel ol .dev { color: #6b7180; font-size: 12px; }
.panel .next { margin: 8px 0; }
.panel .close { position: absolute; top: 6px; right: 8px; border: 0; background: none; font-size: 18px; cursor: pointer; color: #4b5263; }
.panel .second { border-top: 1px solid #e3e6ec; margin-top: 8px; padding-top: 8px; }
.panel .second b { font-weight: 600; }
.panel .msg { color: #5b6170; }
.panel .err { color: #a3242a; }
.panel button.act { margin-top: 6px; margin-right: 6px; border: 1px solid #2b59c3; background: #2b59c3; color: #fff; border-radius: 6px; padding: 4px 10px; font-size: 12px; cursor: pointer; }
.panel button.act.secondary { background: #fff; color: #2b59c3; }
.panel .small { font-size: 11px; color: #6b7180; margin-top: 6px; }
.panel .report { border-top: 1px solid #e3e6ec; margin-top: 8px; padding-top: 8px; }
.panel .report textarea { width: 100%; min-height: 38px; margin: 4px 0; font: inherit; font-size: 12px; resize: vertical; }
.panel .report label { display: block; font-size: 12px; margin: 2px 0; }
.panel .report .ok { color: #1e804a; }
`;

// What each drawn element shows, for placing it (a face's box) and for the tests' inspect().
export const state = new WeakMap();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), (event) => event.isTrusted && v(event));
    // data-* only names a control (data-action, data-field): results go in `state`.
    else if (k.startsWith('data-') || k === 'class' || k === 'role' || k === 'title' || k === 'tabindex' || k === 'aria-label') e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// The verdict as the element's class (its colours), replacing the one it had.
function showVerdict(node, verdict) {
  for (const c of [...node.classList]) if (c.startsWith('v-')) node.classList.remove(c);
  if (verdict) node.classList.add(`v-${verdict}`);
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
      this.root = this.host.attachShadow({mode: 'closed'});
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

// "Fake 93%", "Unsure", "No face": short enough for a badge or a face's tag (wording.json tag,
// as the server's page says it).
const shortText = tag;

// The faces as finally judged: the server's, face by face, once it answered with faces.
// Numbered left to right, as a person reads the picture (the finder lists the largest first).
export function facesShown(item) {
  const d = item.result.device;
  const s = item.server;
  const faces = s && s.state === 'done' && Array.isArray(s.faces) ? mergeServerFaces(d.faces, s.faces) : d.faces.map((f) => ({...f, source: 'device'}));
  return faces.sort((a, b) => a.box[0] - b.box[0] || a.box[1] - b.box[1]);
}

// A small label in an image's top-right corner: the picture's verdict from its faces. Only
// pictures with a judged face get one (inpage.js).
export function renderBadge(badge, item) {
  const d = item.result.device;
  badge.replaceChildren();
  showVerdict(badge, d.verdict);
  // since: when this badge first showed; at: when it reached its state (performance.now()).
  // A reader of the layer (the bench, through the test build's hook) then needs no watcher
  // in place before the badge comes, which a loaded machine cannot promise.
  const prev = state.get(badge);
  const now = performance.now();
  const shown = {src: item.src.slice(0, 300), state: item.state, verdict: d.verdict, pFake: d.p_fake, confidence: d.confidence,
    faces: d.faces.length, cached: item.result.cached || 'no', sensitivity: item.result.sensitivity,
    since: prev ? prev.since : now, at: prev && prev.state === item.state ? prev.at : now};
  state.set(badge, shown);
  badge.append(el('span', {class: 'dot'}), el('span', {class: 'label', textContent: shortText(d.verdict, d.confidence)}));
  const s = item.server;
  if (s) {
    shown.serverState = s.state;
    if (s.state === 'done') {
      shown.serverVerdict = s.verdict;
      badge.append(el('span', {class: 'srv', textContent: `Server: ${shortText(s.verdict, s.confidence)}`}));
    } else {
      badge.append(el('span', {class: 'srv', textContent: s.state === 'asking' ? 'Server…' : 'Server ✕'}));
    }
  }
  const p = item.result.provenance;
  if (p && p.ai) badge.append(el('span', {class: 'ai', textContent: wording.provenance.badge}));
  const faces = d.faces.length === 1 ? '1 face' : `${d.faces.length} faces`;
  badge.title = `${p && p.ai ? `${p.statement}. ` : ''}${describe(d.verdict, d.confidence, d.p_fake)} (${faces}, on this device). Click for details.`;
}

export function placeBadge(badge, rect) {
  badge.style.left = `${docX(rect.right) - 6}px`;
  badge.style.top = `${docY(rect.top) + 6}px`;
}

export function makeBadge(onclick) {
  return el('div', {class: 'badge', role: 'button', tabindex: 0, onclick, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && onclick(e)});
}

export function makePanel() {
  return el('div', {class: 'panel'});
}

export function makeFaces() {
  return el('div', {class: 'faces'});
}

// --- the faces over the image ----------------------------------------------------------------
function tagText(i, f) {
  return `${i + 1} ${shortText(f.verdict, f.confidence)}`;
}

export function renderFaces(frame, item) {
  frame.replaceChildren();
  const r = item.result;
  if (!r || !r.ok || !r.device.faces.length) {
    frame.hidden = true;
    return;
  }
  frame.hidden = false;
  state.set(frame, {source: item.server && item.server.state === 'done' && Array.isArray(item.server.faces) ? 'server' : 'device'});
  // The heat first, so the boxes and their tags lie above it; each over its own face's crop.
  const h = item.heat;
  if (h && h.state === 'done' && h.shown) h.heats.forEach((heat) => frame.append(heatCanvas(heat)));
  facesShown(item).forEach((f, i) => {
    const face = el('div', {class: `face v-${f.verdict}`}, el('span', {class: 'tag', textContent: tagText(i, f)}));
    state.set(face, {index: i + 1, verdict: f.verdict, pFake: f.p_fake, source: f.source, box: f.box});
    frame.append(face);
  });
}

// A face's heat as a grid x grid canvas that the browser scales smoothly over the crop: hot
// patches red to yellow and at most 70% opaque, cold ones clear, so the face shows through
// (a square root lifts the weaker patches next to the strongest).
function heatCanvas(heat) {
  const canvas = el('canvas', {class: 'heat'});
  state.set(canvas, {crop: heat.crop, strongest: heat.strongest, ms: heat.ms});
  canvas.width = canvas.height = heat.grid;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(heat.grid, heat.grid);
  heat.values.forEach((v, i) => img.data.set([255, Math.round(210 * (1 - v)), 0, Math.round(180 * Math.sqrt(v))], 4 * i));
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// The face boxes in file pixels, drawn where the page shows the picture (its object-fit and
// object-position), clipped to the element.
export function placeFaces(frame, img, file) {
  if (!img || !img.isConnected || frame.hidden) return;
  const rect = img.getBoundingClientRect();
  const cs = getComputedStyle(img);
  const px = (v) => parseFloat(v) || 0;
  const box = {
    left: rect.left + px(cs.borderLeftWidth) + px(cs.paddingLeft),
    top: rect.top + px(cs.borderTopWidth) + px(cs.paddingTop),
    width: img.clientWidth - px(cs.paddingLeft) - px(cs.paddingRight),
    height: img.clientHeight - px(cs.paddingTop) - px(cs.paddingBottom),
  };
  Object.assign(frame.style, {left: `${docX(box.left)}px`, top: `${docY(box.top)}px`, width: `${box.width}px`, height: `${box.height}px`});
  const drawn = drawnRect(box, file, {fit: cs.objectFit, position: cs.objectPosition, natural: {width: img.naturalWidth, height: img.naturalHeight}});
  for (const heat of frame.querySelectorAll('.heat')) {
    const [x, y, side] = state.get(heat).crop;
    const f = faceRect([x, y, x + side, y + side], file, drawn);
    Object.assign(heat.style, {left: `${f.left - box.left}px`, top: `${f.top - box.top}px`, width: `${f.width}px`, height: `${f.height}px`});
  }
  for (const face of frame.querySelectorAll('.face')) {
    const f = faceRect(state.get(face).box, file, drawn);
    Object.assign(face.style, {left: `${f.left - box.left}px`, top: `${f.top - box.top}px`, width: `${f.width}px`, height: `${f.height}px`});
    face.classList.toggle('low', f.top - box.top < 18); // no room above the box: the tag goes inside
  }
}

// --- the overlay -----------------------------------------------------------------------------
// Verdict, confidence, each face, what to do next, and the second opinion.
// handlers: {close, retry, allow, askServer, retryServer, openOptions}
export function renderPanel(panel, item, handlers) {
  const r = item.result;
  panel.replaceChildren();
  showVerdict(panel, null);
  const info = {state: item.state, src: item.src.slice(0, 300), where: (state.get(panel) || {}).where};
  state.set(panel, info);
  panel.setAttribute('role', 'dialog');
  panel.append(el('button', {class: 'close', title: 'Close', 'aria-label': 'Close', textContent: '×', onclick: handlers.close}));
  if (item.state === 'checking' || item.state === 'queued') {
    panel.append(el('h2', {textContent: 'Checking…'}), el('div', {class: 'msg', textContent: 'Looking for faces and for signs of a deepfake in them, on this device.'}));
    return;
  }
  if (!r || !r.ok) {
    const e = r ? r.error : {code: 'unknown', message: 'no answer'};
    info.error = e.code;
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
  Object.assign(info, {verdict: d.verdict, pFake: d.p_fake, confidence: d.confidence, faces: d.faces.length, cached: r.cached || 'no'});
  showVerdict(panel, d.verdict);
  const p = r.provenance;
  const said = provenanceSection(p);
  if (d.verdict === 'no_face') {
    // The headline says "No face found" (or, for a file that says it was made with AI, that it
    // is fake on that alone); what_is_checked says why (each said once).
    panel.append(...[el('h2', {textContent: p && p.ai ? LABELS.fake : LABELS.no_face}), said].filter(Boolean));
    if (p && p.ai) panel.append(el('div', {class: 'msg', textContent: LABELS.no_face}));
    if (d.faces_too_small) panel.append(el('div', {class: 'msg', textContent: `${countFaces(d.faces_too_small)} too small to judge. ${tooSmall(r.minSide)}`}));
    panel.append(el('div', {class: 'small', textContent: wording.what_is_checked}));
    return;
  }
  const shown = facesShown(item);
  // Signed or declared AI makes the picture fake; the faces' own verdict still shows below it.
  const overruled = p && p.ai && d.verdict !== 'fake';
  if (said) panel.append(el('h2', {textContent: LABELS[overruled ? 'fake' : d.verdict]}), said);
  else panel.append(el('h2', {textContent: LABELS[d.verdict]}));
  panel.append(
    el('div', {class: 'conf', textContent: `${overruled ? `The faces: ${describe(d.verdict, d.confidence, d.p_fake)}` : confidenceText(d.verdict, d.confidence, d.p_fake)} · checked on this device`}),
  );
  // One line per face when there are several; one face is said by the line above (and by
  // the second opinion's line, once the server answered).
  if (shown.length > 1) panel.append(facesList(shown));
  const more = [];
  if (d.faces_too_small) more.push(`${countFaces(d.faces_too_small)} too small to judge`);
  if (d.faces_over_limit) more.push(`${countFaces(d.faces_over_limit)} more not judged (the largest ${d.faces.length} were)`);
  if (d.faces.length > 1) panel.append(el('div', {class: 'small', textContent: `${wording.image_rule} ${wording.face_order}`}));
  if (more.length) panel.append(el('div', {class: 'small', textContent: `${capital(more.join('; '))}.`}));
  panel.append(el('div', {class: 'next', textContent: nextStep(overruled ? {...d, verdict: 'fake'} : d, item.server)}));
  if (handlers.heat) panel.append(heatSection(item, shown, handlers));
  // (A check opened again from the history cannot ask: it shows an answer it already has.)
  if (handlers.askServer || item.server) panel.append(secondOpinionSection(item, handlers));
  if (handlers.report && r.historyId) panel.append(reportSection(item, handlers));
  if (r.historyProblem) panel.append(el('div', {class: 'err small history-problem', textContent: `Not kept in your history: ${r.historyProblem}`}));
  const model = [r.model.name, r.model.version].filter(Boolean).join(' ');
  panel.append(el('div', {class: 'small', textContent: `Model ${model || 'on-device'} · sensitivity ${r.sensitivity}${r.cached ? ' · from cache' : ''}`}));
}

// What the file says of its origin: the tier's sentence, a changed picture said plainly, and
// who signed with what. Nothing when the file says nothing.
function provenanceSection(p) {
  if (!p || (!p.statement && !p.changed)) return null;
  const who = [p.signer && `Signed by ${p.signer}`, p.claim_generator && `made with ${p.claim_generator}`].filter(Boolean).join(', ');
  return el('div', {class: 'provenance'},
    p.statement ? el('div', {class: 'said', textContent: p.statement}) : null,
    p.changed ? el('div', {class: 'changed', textContent: p.changed}) : null,
    who ? el('div', {class: 'small', textContent: who}) : null,
    p.evidence && p.evidence.length ? el('div', {class: 'small', textContent: `${capital(p.evidence.join('; '))}.`}) : null);
}

const countFaces = (n) => (n === 1 ? '1 face' : `${n} faces`);

// One line per face, numbered as the boxes on the image; the server's verdict once it answered.
function facesList(faces) {
  return el('ol', {class: 'faces-list'}, faces.map((f, i) => el('li', {},
    `Face ${i + 1} — ${describe(f.verdict, f.confidence, f.p_fake)}`,
    f.source === 'server' ? el('span', {class: 'dev', textContent: f.device ? ` (server; this device: ${shortText(f.device.verdict, f.device.confidence)})` : ' (server)'}) : null)));
}

// "Show where it looked", and what the colours mean once shown.
function heatSection(item, faces, handlers) {
  const h = item.heat;
  const box = el('div', {class: 'explain'});
  const info = {heatState: h ? h.state : 'none'};
  state.set(box, info);
  const shown = h && h.state === 'done' && h.shown;
  box.append(el('button', {class: 'act secondary', textContent: h && h.state === 'asking' ? 'Looking…' : shown ? 'Hide where it looked' : 'Show where it looked',
    disabled: Boolean(h && h.state === 'asking'), onclick: handlers.heat}));
  if (shown) {
    const leans = new Set(item.result.device.faces.map((f) => (f.p_fake >= 0.5 ? 'fake' : 'real')));
    for (const lean of ['fake', 'real']) if (leans.has(lean)) box.append(el('div', {class: 'small', textContent: wording.heat[lean]}));
    const ms = h.heats.reduce((sum, x) => sum + x.ms, 0);
    box.append(el('div', {class: 'small', textContent: `Worked out on this device in ${ms} ms; only the square judged around ${faces.length > 1 ? 'each face' : 'the face'} is coloured.`}));
  }
  if (h && h.state === 'error') {
    info.heatError = h.error.code;
    box.append(el('div', {class: 'err', textContent: capital(h.error.message)}));
  }
  return box;
}

function secondOpinionSection(item, handlers) {
  const r = item.result;
  const s = item.server;
  const box = el('div', {class: 'second'});
  const shown = {serverState: s ? s.state : r.secondOpinion};
  state.set(box, shown);
  if (s && s.state === 'done') {
    shown.serverVerdict = s.verdict;
    box.append(el('div', {}, el('b', {textContent: 'Second opinion: '}), describe(s.verdict, s.confidence, s.p_fake)));
    if (s.provenance) box.append(el('div', {class: 'msg', textContent: `Provenance: ${s.provenance}`}));
    if (s.model) box.append(el('div', {class: 'small', textContent: `From your server (${s.model}, ${s.ms} ms)`}));
    return box;
  }
  if (s && s.state === 'asking') {
    box.append(el('div', {class: 'msg', textContent: 'Asking your server for a second opinion…'}));
    return box;
  }
  if (s && s.state === 'error') {
    shown.serverError = s.error.code;
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

// Only a person's click counts: a page's script can dispatch clicks on our elements, and those
// must never file a report.
const trusted = (fn) => (e) => (e && e.isTrusted ? fn(e) : undefined);

// "Is this wrong?": the user says what the picture really is, with a note; the report is kept
// with the check in the history, and sent to their server only if they allowed it and ask.
// item.report holds the form ({open, note, send, includePicture}) and what became of it
// ({state: saving | saved | error, message, sent}).
function reportSection(item, handlers) {
  const rep = item.report || (item.report = {open: false, note: '', send: handlers.serverAllowed, includePicture: false});
  const box = el('div', {class: 'report'});
  const info = {reportState: rep.state || (rep.open ? 'open' : 'closed')};
  state.set(box, info);
  if (rep.state === 'saved') {
    info.says = rep.says;
    box.append(el('div', {class: 'ok', textContent: `Report kept in your history: you said it is ${rep.says}.`}));
    if (rep.pictureProblem) box.append(el('div', {class: 'msg', textContent: capital(rep.pictureProblem)}));
    if (rep.sent) {
      info.sent = rep.sent.state;
      box.append(el('div', {class: rep.sent.state === 'sent' ? 'msg' : 'err', textContent: rep.sent.message}));
    }
    // Kept but not (yet) on the server: send it now, if the server is allowed.
    if (handlers.serverAllowed && handlers.sendAgain && !(rep.sent && rep.sent.state === 'sent')) {
      box.append(el('button', {class: 'act secondary', 'data-action': 'send', textContent: 'Send to my server', disabled: rep.sending,
        onclick: trusted(() => handlers.sendAgain({includePicture: false}))}));
      if (!rep.pictureProblem) {
        box.append(el('button', {class: 'act secondary', 'data-action': 'send-picture', textContent: 'Send with the picture', disabled: rep.sending,
          onclick: trusted(() => handlers.sendAgain({includePicture: true}))}));
      }
    }
    return box;
  }
  if (!rep.open) {
    box.append(el('button', {class: 'act secondary', 'data-action': 'report-open', textContent: 'Is this wrong?',
      onclick: trusted(() => handlers.reportOpen())}));
    return box;
  }
  const sendBox = el('input', {type: 'checkbox', checked: rep.send, disabled: !handlers.serverAllowed, 'data-field': 'send', onchange: (e) => {
    rep.send = e.target.checked;
    pictureBox.disabled = !rep.send;
  }});
  const pictureBox = el('input', {type: 'checkbox', checked: rep.includePicture, disabled: !rep.send || !handlers.serverAllowed, 'data-field': 'picture',
    onchange: (e) => (rep.includePicture = e.target.checked)});
  const say = (says) => trusted(() => handlers.report({says, note: rep.note, send: rep.send && handlers.serverAllowed, includePicture: rep.includePicture}));
  box.append(
    el('b', {textContent: 'Is this wrong? The picture is really…'}),
    el('textarea', {placeholder: 'Note (optional): how you know', maxLength: 2000, value: rep.note, 'data-field': 'note', oninput: (e) => (rep.note = e.target.value)}),
    el('label', {}, sendBox, handlers.serverAllowed ? ' Send the report to my server' : ' Send to my server (turn the second opinion on in options first)'),
    el('label', {}, pictureBox, ' Include the picture'),
    el('button', {class: 'act', 'data-says': 'real', textContent: 'It is real', disabled: rep.state === 'saving', onclick: say('real')}),
    el('button', {class: 'act', 'data-says': 'fake', textContent: 'It is fake', disabled: rep.state === 'saving', onclick: say('fake')}),
  );
  if (rep.state === 'saving') box.append(el('div', {class: 'msg', textContent: 'Saving the report…'}));
  if (rep.state === 'error') box.append(el('div', {class: 'err', textContent: capital(rep.message)}));
  return box;
}

// Beside its image, sized to it and inside the window, hiding as little of its faces as it
// can (geometry.js chooses where); at the top right of the window when the image is not in
// the page. faceBoxes: the drawn .face elements.
export function placePanel(panel, img, faceBoxes) {
  const vw = document.documentElement.clientWidth || window.innerWidth;
  const vh = document.documentElement.clientHeight || window.innerHeight;
  const rect = img && img.isConnected ? img.getBoundingClientRect() : null;
  panel.style.width = `${panelWidth(rect ? rect.width : 300, vw)}px`;
  panel.style.maxHeight = `${vh - 16}px`;
  const size = {width: panel.offsetWidth, height: panel.offsetHeight};
  let at;
  if (rect) {
    const others = Array.from(document.images, (i) => (i === img ? null : i.getBoundingClientRect()))
      .filter((o) => o && o.width > 0 && o.height > 0 && o.bottom > 0 && o.top < vh && o.right > 0 && o.left < vw);
    const faces = Array.from(faceBoxes || [], (f) => f.getBoundingClientRect());
    at = placePanelRect(rect, size, {width: vw, height: vh}, {others, faces});
  } else {
    at = {left: vw - size.width - 16, top: 16, where: 'window'};
  }
  state.set(panel, {...state.get(panel), where: at.where});
  panel.style.left = `${docX(at.left)}px`;
  panel.style.top = `${docY(at.top)}px`;
}

function capital(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

// What the layer shows now, as plain data: for the browser tests only (content.js exposes it
// in the content script's own world when the build has test hooks; pages never see it).
export function inspect(layer) {
  const root = layer.root;
  const box = (node) => node.getBoundingClientRect().toJSON();
  const of = (node) => ({...state.get(node)});
  if (!root || !layer.host.isConnected) return {badges: [], panel: null};
  const badges = [...root.querySelectorAll('.badge')].map((b) => ({...of(b), hidden: b.hidden, rect: box(b), text: b.innerText, title: b.title}));
  const panel = root.querySelector('.panel');
  if (!panel) return {badges, panel: null};
  const frame = root.querySelector('.faces');
  const framed = frame && !frame.hidden;
  const second = panel.querySelector('.second');
  const explain = panel.querySelector('.explain');
  const report = panel.querySelector('.report');
  return {
    badges,
    panel: {
      ...of(panel),
      text: panel.innerText,
      headline: (panel.querySelector('h2') || {}).textContent,
      rect: box(panel),
      viewport: {width: document.documentElement.clientWidth, height: document.documentElement.clientHeight},
      frame: framed ? {...of(frame), rect: box(frame)} : null,
      heats: framed ? [...frame.querySelectorAll('.heat')].map((c) => ({...of(c), rect: box(c)})) : [],
      boxes: framed ? [...frame.querySelectorAll('.face')].map((f) => {
        const {box: _file, ...face} = of(f);
        return {...face, tag: f.innerText, rect: box(f)};
      }) : [],
      second: second ? {...of(second), text: second.innerText} : null,
      explain: explain ? {...of(explain), text: explain.innerText} : null,
      report: report ? {...of(report), text: report.innerText} : null,
      buttons: [...panel.querySelectorAll('button')].map((b) => ({text: b.textContent, rect: box(b)})),
      controls: [...panel.querySelectorAll('[data-action], [data-field], [data-says]')].map((c) => ({...c.dataset, disabled: Boolean(c.disabled), rect: box(c)})),
    },
  };
}
