// What a video check shows (videocheck.js keeps the state): progress while frames are taken,
// a timeline strip with one mark per sampled frame coloured by its face verdict, each track's
// box on the frame shown, the video's verdict with its confidence, and "Get a second opinion".
// The words come from models/wording.json. Every element carries data-* attributes with its
// state, which drive the styles and which the browser tests read.
import {placePanelRect, panelWidth} from './geometry.js';
import {videoRect} from './videosampler.js';
import {confidenceText, describe, LABELS, tag as shortTag, wording} from './wording.js';

const W = wording.video;

const STYLE = `
.vpanel { position: absolute; pointer-events: auto; width: 300px; background: #fff; color: #1d2330; border-radius: 10px;
  padding: 12px 14px; box-shadow: 0 6px 24px rgba(0,0,0,.35); font-size: 13px; line-height: 1.4; border-top: 5px solid #9aa3b2; }
.vpanel[data-verdict="fake"] { border-top-color: #c42b32; }
.vpanel[data-verdict="real"] { border-top-color: #1e804a; }
.vpanel[data-verdict="uncertain"] { border-top-color: #b07808; }
.vpanel h2 { margin: 0 24px 2px 0; font-size: 17px; }
.vpanel .conf, .vpanel .msg { color: #4b5263; }
.vpanel .err { color: #a3242a; }
.vpanel .small { font-size: 11px; color: #6b7180; margin-top: 6px; }
.vpanel .close { position: absolute; top: 6px; right: 8px; border: 0; background: none; font-size: 18px; cursor: pointer; color: #4b5263; }
.vpanel .bar { height: 4px; background: #e3e6ec; border-radius: 2px; margin: 6px 0; overflow: hidden; }
.vpanel .bar i { display: block; height: 100%; background: #2b59c3; }
.vpanel .timeline { display: flex; gap: 2px; margin: 8px 0 4px; }
.vpanel .mark { flex: 1; height: 14px; border-radius: 2px; background: #d5d9e0; cursor: pointer; border: 0; padding: 0; }
.vpanel .mark[data-verdict="fake"] { background: #c42b32; }
.vpanel .mark[data-verdict="real"] { background: #1e804a; }
.vpanel .mark[data-verdict="uncertain"] { background: #e0a21c; }
.vpanel .mark[data-verdict="no_face"] { background: #9aa3b2; }
.vpanel .mark[data-current] { outline: 2px solid #1d2330; outline-offset: 1px; }
.vpanel ol { margin: 6px 0; padding-left: 20px; }
.vpanel button.act { margin-top: 6px; border: 1px solid #2b59c3; background: #2b59c3; color: #fff; border-radius: 6px; padding: 4px 10px; font-size: 12px; cursor: pointer; }
.vpanel button.act.secondary { background: #fff; color: #2b59c3; }
.vpanel .second { border-top: 1px solid #e3e6ec; margin-top: 8px; padding-top: 8px; }
.vtracks { position: absolute; pointer-events: none; overflow: hidden; }
.vtracks .track { position: absolute; border: 2px solid #fff; border-radius: 3px; box-shadow: 0 0 0 1px rgba(0,0,0,.45); }
.vtracks .track[data-verdict="fake"] { border-color: #e0474e; }
.vtracks .track[data-verdict="real"] { border-color: #2fa863; }
.vtracks .track[data-verdict="uncertain"] { border-color: #e0a21c; }
.vtracks .track span { position: absolute; left: -2px; bottom: 100%; padding: 0 5px; font-size: 11px; font-weight: 600; line-height: 16px; color: #fff; background: rgba(40,44,52,.88); white-space: nowrap; }
.vbutton { position: absolute; pointer-events: auto; cursor: pointer; border: 0; border-radius: 10px; padding: 2px 8px; font: 600 11px/16px system-ui, sans-serif;
  color: #fff; background: rgba(40, 44, 52, 0.88); box-shadow: 0 1px 3px rgba(0,0,0,.4); }
.vbutton[hidden] { display: none; }
`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || ['class', 'role', 'title', 'aria-label', 'style'].includes(k)) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// A click from the person, not from the page's script (a page can call .click() on anything).
const trusted = (fn) => (e) => e.isTrusted && fn(e);

const docX = (x) => x + window.scrollX;
const docY = (y) => y + window.scrollY;

// The overlay's elements: {root (style + panel + track boxes, added to the layer), panel, boxes}.
export function makeVideoOverlay() {
  const panel = el('div', {class: 'vpanel', role: 'dialog'});
  const boxes = el('div', {class: 'vtracks'});
  const root = el('div', {class: 'video-check'}, el('style', {textContent: STYLE}), boxes, panel);
  return {root, panel, boxes};
}

export function makeVideoButton(onclick) {
  return el('button', {class: 'vbutton', textContent: W.button, title: W.never, onclick: trusted(onclick)},
    el('style', {textContent: STYLE}));
}

// check: videocheck.js VideoCheck (state, frames, rows, result, server, ...);
// handlers: {close, select(k), askServer, openOptions, retry}
export function renderVideoOverlay(overlay, check, handlers) {
  const {panel} = overlay;
  const s = check.state;
  panel.replaceChildren();
  for (const k of Object.keys(panel.dataset)) delete panel.dataset[k];
  Object.assign(panel.dataset, {state: s, frames: check.rows.filter(Boolean).length, planned: check.plan ? check.plan.frames : 0});
  if (check.via) panel.dataset.via = check.via;
  if (check.firstVerdictMs !== null) panel.dataset.firstVerdictMs = Math.round(check.firstVerdictMs);
  if (check.frameMs.length) panel.dataset.frameMs = check.frameMs.map((ms) => ms.toFixed(1)).join(',');
  if (check.frameSteps.length) panel.dataset.frameSteps = JSON.stringify(check.frameSteps);
  if (check.frames.length) panel.dataset.grabMs = check.frames.map((f) => f.grabMs.toFixed(1)).join(',');
  if (check.frames.length) panel.dataset.frameSize = `${check.frames.at(-1).width}x${check.frames.at(-1).height}`; // as judged (4K: scaled down)
  panel.append(el('button', {class: 'close', title: 'Close', 'aria-label': 'Close', textContent: '×', onclick: trusted(handlers.close)}));
  if (s === 'error') {
    panel.dataset.error = check.problem.code;
    if (check.detail) panel.dataset.detail = check.detail.slice(0, 300);
    panel.append(el('h2', {textContent: "Can't check this video"}), el('div', {class: 'err', textContent: check.problem.message}));
    if (check.problem.code !== 'drm') panel.append(el('button', {class: 'act secondary', textContent: 'Try again', onclick: trusted(handlers.retry)}));
    return;
  }
  const done = check.rows.filter(Boolean).length;
  const total = check.plan ? check.plan.frames : 0;
  if (s === 'starting' || s === 'sampling' || s === 'judging') {
    panel.append(el('h2', {textContent: 'Checking the video…'}),
      el('div', {class: 'msg', textContent: s === 'judging' ? W.judging : W.sampling.replace('{done}', check.frames.length).replace('{total}', total)}),
      el('div', {class: 'bar'}, el('i', {style: `width: ${total ? Math.round((100 * (check.frames.length + done)) / (2 * total)) : 0}%`})));
  } else {
    const r = check.result;
    Object.assign(panel.dataset, {verdict: r.verdict, confidence: r.confidence, pFake: r.p_fake, tracks: r.tracks.filter((t) => t.judged).length,
      calibration: r.calibration});
    if (r.verdict === 'no_face') {
      panel.append(el('h2', {textContent: LABELS.no_face}), el('div', {class: 'msg', textContent: wording.no_face}));
    } else {
      panel.append(el('h2', {textContent: LABELS[r.verdict]}),
        el('div', {class: 'conf', textContent: `${confidenceText(r.verdict, r.confidence, r.p_fake)} · ${W.tracks.replace('{n}', r.tracks.filter((t) => t.judged).length).replace('{frames}', done)}`}));
      if (!r.calibrated_on_videos) panel.append(el('div', {class: 'small', textContent: W.calibration_single_frame}));
      const judged = r.tracks.filter((t) => t.judged);
      if (judged.length > 1) {
        panel.append(el('ol', {}, judged.map((t) => el('li', {'data-verdict': t.verdict}, `${describe(t.verdict, t.confidence, t.p_fake)} (${t.frames.length} frames)`))));
        panel.append(el('div', {class: 'small', textContent: W.rule}));
      }
    }
  }
  panel.append(timeline(check, handlers));
  for (const n of check.notes) panel.append(el('div', {class: 'small', 'data-note': n.code, textContent: n.text}));
  if (s === 'done') panel.append(secondOpinion(check, handlers));
  panel.append(el('div', {class: 'small', textContent: `${W.never} Model ${[check.model.name, check.model.version].filter(Boolean).join(' ') || 'on-device'} · sensitivity ${check.sensitivity || 'standard'}`}));
}

function timeline(check, handlers) {
  const total = check.plan ? check.plan.frames : 0;
  const strip = el('div', {class: 'timeline', role: 'list'});
  for (let k = 0; k < total; k++) {
    const row = check.rows[k];
    const v = row ? row.verdict : null;
    strip.append(el('button', {class: 'mark', 'data-index': k, 'data-verdict': v, 'data-current': k === check.current ? '' : null,
      title: row ? `${row.time_s.toFixed(2)} s: ${row.verdict === 'no_face' ? LABELS.no_face : describe(row.verdict, row.confidence, row.p_fake)}` : '',
      onclick: trusted(() => row && handlers.select(k))}));
  }
  return strip;
}

function secondOpinion(check, handlers) {
  const s = check.server;
  const box = el('div', {class: 'second', 'data-server-state': s ? s.state : check.secondOpinion ? 'available' : 'off'});
  if (check.result.verdict === 'no_face') return box;
  if (s && s.state === 'done') {
    box.dataset.serverVerdict = s.verdict;
    box.dataset.serverPFake = s.p_fake;
    box.append(el('div', {}, el('b', {textContent: 'Second opinion: '}), describe(s.verdict, s.confidence, s.p_fake)),
      el('div', {class: 'small', textContent: `From your server (${s.model}, ${s.ms} ms), on the ${check.frames.length} frames taken here`}));
  } else if (s && s.state === 'asking') {
    box.append(el('div', {class: 'msg', textContent: 'Sending the frames to your server…'}));
  } else if (s && s.state === 'error') {
    box.dataset.serverError = s.error.code;
    box.append(el('div', {class: 'err', textContent: `Second opinion failed: ${s.error.message}`}),
      el('button', {class: 'act secondary', textContent: 'Retry', onclick: trusted(handlers.askServer)}));
  } else if (check.secondOpinion) {
    box.append(el('button', {class: 'act', textContent: W.second_opinion, onclick: trusted(handlers.askServer)}),
      el('div', {class: 'small', textContent: `Sends the ${check.frames.length} frames taken here (JPEG), not the video.`}));
  } else {
    box.append(el('div', {class: 'msg', textContent: 'Second opinion: off. It sends the sampled frames to a server you choose, only when you turn it on.'}),
      el('button', {class: 'act secondary', textContent: 'Open options', onclick: trusted(handlers.openOptions)}));
  }
  return box;
}

// Each judged track's box on the frame shown (the last one taken, or the mark chosen), where
// the page draws the video now.
export function placeVideoOverlay(overlay, check) {
  const {panel, boxes} = overlay;
  const video = check.video;
  const vw = document.documentElement.clientWidth || innerWidth;
  const vh = document.documentElement.clientHeight || innerHeight;
  const connected = video && video.isConnected;
  const rect = connected ? video.getBoundingClientRect() : null;
  panel.style.width = `${panelWidth(rect ? rect.width : 300, vw)}px`;
  panel.style.maxHeight = `${vh - 16}px`;
  const size = {width: panel.offsetWidth, height: panel.offsetHeight};
  const at = rect ? placePanelRect(rect, size, {width: vw, height: vh}, {others: [], faces: []}) : {left: vw - size.width - 16, top: 16, where: 'window'};
  panel.dataset.where = at.where;
  panel.style.left = `${docX(at.left)}px`;
  panel.style.top = `${docY(at.top)}px`;
  boxes.replaceChildren();
  const k = check.current;
  const row = k !== null ? check.rows[k] : null;
  if (!connected || !row || !row.faces.length || check.state === 'error') {
    boxes.hidden = true;
    return;
  }
  boxes.hidden = false;
  const {box, drawn} = videoRect(video);
  Object.assign(boxes.style, {left: `${docX(box.left)}px`, top: `${docY(box.top)}px`, width: `${box.width}px`, height: `${box.height}px`});
  const frame = check.frames[k];
  const [v0, v1, v2, v3] = frame.view;
  const tracks = check.result ? check.result.tracks : [];
  for (const face of row.faces) {
    const track = face.track !== undefined ? tracks[face.track] : null;
    if (track && !track.judged) continue;
    const [x0, y0, x1, y1] = face.box;
    const fx = (x) => drawn.left + drawn.width * (v0 + (x / frame.width) * (v2 - v0)) - box.left;
    const fy = (y) => drawn.top + drawn.height * (v1 + (y / frame.height) * (v3 - v1)) - box.top;
    const shown = track || face;
    boxes.append(el('div', {class: 'track', 'data-track': face.track ?? '', 'data-verdict': shown.verdict, 'data-box': face.box.join(','),
      style: `left: ${fx(x0)}px; top: ${fy(y0)}px; width: ${fx(x1) - fx(x0)}px; height: ${fy(y1) - fy(y0)}px`},
    el('span', {textContent: `${track ? `Face ${face.track + 1} ` : ''}${shortTag(shown.verdict, shown.confidence)}`})));
  }
}

// The "Check video" control in a video's top-left corner (feeds with badges on).
export function placeVideoButton(button, video) {
  const r = video.getBoundingClientRect();
  button.style.left = `${docX(r.left) + 6}px`;
  button.style.top = `${docY(r.top) + 6}px`;
}
