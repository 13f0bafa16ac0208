// The page at /: send the picked or dropped file to the API and show what comes back:
// the faces found (boxes drawn over the picture), each face's verdict, the picture's verdict.
// Plain DOM code, no framework: each function fills one part of the page. Verdicts are said
// with the shared vocabulary (models/wording.json), which the template injects as JSON.
"use strict";

const API = "/api/v1";
const VIDEO_TYPES = ["video/mp4", "video/webm", "video/quicktime"];
const VIDEO_NAMES = /\.(mp4|m4v|webm|mov)$/i;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let WORDS = null; // models/wording.json, read from the page on load
let objectUrls = [];
let lastFile = null; // checked again once an API key is entered after a 401
let needsKey = false;
// Each pick starts a new run; an answer that arrives for an earlier run is dropped, and its
// requests are aborted, so a late answer never lands on a newer file's result.
let run = 0;
let aborter = null;

// Thrown (and ignored) when the run a piece of work belongs to is no longer the current one.
class Superseded extends Error {}
function stillCurrent(mine) {
  if (mine !== run) throw new Superseded();
}

function isVideo(file) {
  return VIDEO_TYPES.includes(file.type) || (!file.type && VIDEO_NAMES.test(file.name));
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

// POST the file as multipart `file`; resolve to the Response, or throw an Error whose
// message is the server's own explanation.
async function post(path, file, mine, query = "") {
  const form = new FormData();
  form.append("file", file, file.name);
  let resp;
  try {
    resp = await fetch(API + path + query, { method: "POST", body: form, headers: headers(), signal: aborter.signal });
  } catch (e) {
    stillCurrent(mine); // aborted because a newer file was picked
    throw new Error("The server cannot be reached. Check that it is running and try again.");
  }
  stillCurrent(mine);
  if (!resp.ok) {
    let message = `The server answered ${resp.status}.`;
    try {
      const body = await resp.json();
      if (body.message) message = body.message;
    } catch (e) { /* not JSON: keep the status line */ }
    stillCurrent(mine);
    if (resp.status === 401) {
      needsKey = true;
      $("key-box").open = true;
      $("api-key").focus();
    }
    const err = new Error(message);
    err.status = resp.status;
    throw err;
  }
  return resp;
}

function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
}

// "Fake 93%", "Real 97%", "Unsure": the confidence of the face's own verdict (wording.json `tag`).
function tagText(verdict, confidence) {
  const text = WORDS.tag[verdict] || verdict;
  return confidence === null || confidence === undefined ? text.replace(" {pct}", "") : text.replace("{pct}", pct(confidence));
}

// The faces in reading order: numbered from left to right. `index` keeps each face's place
// in the API's list (largest first), which /explain's per-face targets follow.
function inReadingOrder(faces) {
  return faces.map((f, index) => ({ ...f, index }))
    .sort((a, b) => a.box[0] - b.box[0])
    .map((f, k) => ({ ...f, n: k + 1 }));
}

function clearResult() {
  objectUrls.forEach((u) => URL.revokeObjectURL(u));
  objectUrls = [];
  $("result").hidden = true;
  $("error").hidden = true;
  $("picture").hidden = true;
  $("video-box").hidden = true;
  $("frames-box").hidden = true;
  $("heatmap").hidden = true;
  $("heatmap").removeAttribute("src");
  $("legend").hidden = true;
  $("faces-box").hidden = true;
  $("boxes").replaceChildren();
  $("heat-status").textContent = "";
  $("error-preview").hidden = true;
  $("error-preview").removeAttribute("src");
}

// The server's message, with the picked picture beside it when the browser can show it.
function showError(message, previewUrl) {
  $("status").textContent = "";
  $("error").textContent = message;
  $("error").hidden = false;
  const img = $("error-preview");
  if (previewUrl) {
    img.onload = () => { img.hidden = false; };
    img.onerror = () => { img.hidden = true; };
    img.src = previewUrl;
  }
}

function showVerdict(r) {
  const v = $("verdict");
  v.textContent = WORDS.labels[r.verdict] || r.verdict;
  v.dataset.verdict = r.verdict;
  // The summary comes from the server, in the shared words (models/wording.py describe); it
  // already holds the one number. Without a face, the label above already says "No face
  // found": the line below says what that means instead of repeating it.
  $("confidence").textContent = r.verdict === "no_face" ? (r.hint || WORDS.no_face_detail) : r.summary;
  $("rule").hidden = r.model_verdict.verdict === "no_face"; // no face judged: the fake/real rule does not apply
  const model = r.model_verdict;
  const basis = {
    model: "from the faces, judged by the models",
    "model+provenance": "from the faces, judged by the models; the file's provenance agrees",
    provenance: model.verdict === "no_face"
      ? "from the file's provenance alone (below): no face was judged"
      : `from the file's provenance (no calibrated confidence); the models alone said ${WORDS.labels[model.verdict]}` +
        (model.confidence === null ? "" : ` (${pct(model.confidence)})`),
    none: "",
  };
  $("basis").textContent = basis[r.basis] || "";
}

// The picture's faces as boxes over the image: an SVG in image pixels (viewBox), stretched
// to the image's displayed size, so the boxes follow it at any width.
function drawBoxes(r) {
  const svg = $("boxes");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${r.image.width} ${r.image.height}`);
  const font = Math.max(10, Math.round(Math.max(r.image.width, r.image.height) / 32));
  inReadingOrder(r.faces).forEach((f) => {
    const [x0, y0, x1, y1] = f.box;
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("class", `face ${f.verdict}`);
    const box = document.createElementNS(SVG, "rect");
    box.setAttribute("class", "face-box");
    Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 }).forEach(([k, val]) => box.setAttribute(k, val));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `Face ${f.n}: ${f.summary}`;
    box.append(title);
    const label = `${f.n} ${tagText(f.verdict, f.confidence)}`;
    const ty = y0 >= font * 1.3 ? y0 - font * 1.3 : y1;  // above the box, or below it at the top edge
    const width = font * 0.62 * label.length + font * 0.6;
    const tx = Math.max(0, Math.min(x0, r.image.width - width)); // kept inside the picture
    const tag = document.createElementNS(SVG, "rect");
    tag.setAttribute("class", "face-tag");
    Object.entries({ x: tx, y: ty, width, height: font * 1.3 }).forEach(([k, val]) => tag.setAttribute(k, val));
    const text = document.createElementNS(SVG, "text");
    Object.entries({ x: tx + font * 0.3, y: ty + font * 1.02, "font-size": font }).forEach(([k, val]) => text.setAttribute(k, val));
    text.textContent = label;
    g.append(box, tag, text);
    svg.append(g);
  });
}

function showFaces(r) {
  const body = $("faces").tBodies[0];
  body.replaceChildren();
  inReadingOrder(r.faces).forEach((f) => {
    const row = body.insertRow();
    row.className = f.verdict;
    row.insertCell().textContent = String(f.n);
    // Members far apart on this face: said beside its verdict, as a reason to be unsure.
    row.insertCell().textContent = f.disagreement ? `${f.summary}. ${f.disagreement.reason}` : f.summary;
    row.insertCell().textContent = f.box.map((v) => Math.round(v)).join(", ");
  });
  const notes = r.faces.length > 1 ? [WORDS.face_order] : [];
  if (r.faces_too_small) notes.push(`${r.faces_too_small} smaller face(s) seen but too small to judge.`);
  if (r.faces_over_limit) notes.push(`${r.faces_over_limit} more face(s) over the limit, not judged.`);
  $("faces-note").textContent = notes.join(" ");
  $("faces-box").hidden = r.faces.length === 0;
}

// What hot means depends on what each face's heat was computed for (X-Unmask-Target, in the
// API's order of faces; said here with the page's numbers, left to right).
function showLegend(targets, faces) {
  const says = WORDS.heat;
  const unique = [...new Set(targets)];
  $("legend-text").textContent = unique.length === 1
    ? says[unique[0]]
    : inReadingOrder(faces).map((f) => `Face ${f.n}: ${says[targets[f.index]]}`).join(" ");
  $("legend").hidden = false;
}

function showMembers(members) {
  const body = $("members").tBodies[0];
  body.replaceChildren();
  const none = !Object.keys(members || {}).length; // a single model, or no face
  $("members").hidden = none;
  $("members-title").hidden = none;
  for (const [name, score] of Object.entries(members || {})) {
    const row = body.insertRow();
    row.insertCell().textContent = name;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.title = `p(fake) ${score}`;
    const fill = document.createElement("span");
    fill.style.width = `${Math.round(score * 100)}%`;
    bar.append(fill);
    row.insertCell().append(bar);
    row.insertCell().textContent = `p(fake) ${pct(score)}`;
  }
}

// Tier (signed / declared / captured), its sentence, who signed and with what, the actions
// and the validation codes: all text from the file, so textContent only.
function showProvenance(p) {
  $("provenance-summary").textContent = p.statement || p.summary || "";
  $("provenance-summary").dataset.tier = p.tier || "";
  $("provenance-changed").textContent = p.changed || "";
  const details = [
    ["Tier", p.tier],
    ["Signed by", p.signer],
    ["Claim generator", p.claim_generator],
    ["Actions", (p.actions || []).map((a) => [a.action, a.digital_source_type && a.digital_source_type.split("/").pop()].filter(Boolean).join(" ")).join(", ")],
    ["Validation", [p.validation_state, ...(p.validation_codes || [])].filter(Boolean).join(": ")],
  ];
  const dl = $("provenance-details");
  dl.replaceChildren();
  for (const [name, value] of details) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.field = name;
    dl.append(dt, dd);
  }
  const list = $("provenance");
  list.replaceChildren();
  for (const f of p.findings || []) {
    const li = document.createElement("li");
    li.textContent = `${f.source.toUpperCase()}: ${f.message}`;
    if (f.evidence) li.className = "evidence";
    list.append(li);
  }
}

function showMeta(r) {
  const size = r.image ? `, ${r.image.width}×${r.image.height}` : "";
  $("meta").textContent = `${r.file.type}${size} · model ${r.model.name} ${r.model.version} on ${r.model.device} · ${r.time_ms} ms`;
}

async function checkImage(file, mine, url) {
  $("preview").src = url;
  $("status").textContent = "Finding and checking the faces…";
  const resp = await post("/check", file, mine);
  const result = await resp.json();
  stillCurrent(mine);
  $("status").textContent = "";
  showVerdict(result);
  drawBoxes(result);
  showFaces(result);
  showMembers(result.members);
  showProvenance(result.provenance);
  showMeta(result);
  $("picture").hidden = false;
  $("picture-controls").hidden = !result.faces.length;
  $("result").hidden = false;
  if (!result.faces.length) return; // nothing to explain: the summary says no face was found
  // The heatmap comes second: the verdict should not wait for gradients.
  $("heat-status").textContent = "drawing the heatmap…";
  try {
    const resp = await post("/explain", file, mine, "?draw=heat"); // the heat alone: the boxes are the page's own
    const targets = (resp.headers.get("X-Unmask-Target") || "fake").split(",");
    const blob = await resp.blob();
    stillCurrent(mine);
    const heatUrl = URL.createObjectURL(blob);
    objectUrls.push(heatUrl);
    $("heatmap").src = heatUrl;
    $("heatmap").hidden = false;
    $("heat-status").textContent = "";
    showLegend(targets.length === 1 ? result.faces.map(() => targets[0]) : targets, result.faces);
  } catch (e) {
    if (e instanceof Superseded) throw e;
    $("heat-status").textContent = `No heatmap: ${e.message}`;
  }
}

function showTimeline(result) {
  const bar = $("timeline");
  bar.replaceChildren();
  const total = result.frames.length || 1;
  for (const seg of result.timeline) {
    const div = document.createElement("div");
    div.className = seg.verdict;
    div.style.width = `${(100 * seg.frames) / total}%`;
    div.title = `${seg.start_s.toFixed(1)}–${seg.end_s.toFixed(1)} s: ${WORDS.labels[seg.verdict] || seg.verdict}`;
    bar.append(div);
  }
  $("video-note").textContent = `${result.frames_with_face} of ${result.frames_sampled} sampled frames show a face. ` +
    "Each frame is judged like a picture; the video's verdict comes from the frames with a face." +
    (result.verdict !== "no_face" && !result.calibrated_on_videos ? ` ${WORDS.video.calibration_single_frame}` : "");
  const body = $("frames").tBodies[0];
  body.replaceChildren();
  for (const f of result.frames) {
    const row = body.insertRow();
    row.insertCell().textContent = `${f.time_s.toFixed(2)} s`;
    row.insertCell().textContent = String(f.faces.length);
    row.insertCell().textContent = tagText(f.verdict, f.confidence);
  }
}

async function checkVideo(file, mine, url) {
  $("video-preview").src = url;
  $("status").textContent = "Checking the video (sampling frames, finding faces)…";
  const resp = await post("/check/video", file, mine);
  const result = await resp.json();
  stillCurrent(mine);
  $("status").textContent = "";
  showVerdict(result);
  showMembers(averageMembers(result.frames));
  $("members-title").textContent = "Each model (mean over frames, top face)";
  showProvenance(result.provenance);
  showMeta(result);
  showTimeline(result);
  $("video-box").hidden = false;
  $("frames-box").hidden = false;
  $("result").hidden = false;
}

// Each model's mean score over the frames with a face, on each frame's top face.
function averageMembers(frames) {
  const sums = {};
  let n = 0;
  for (const f of frames) {
    if (!f.faces.length) continue;
    const top = f.faces.reduce((a, b) => (b.p_fake > a.p_fake ? b : a));
    if (!top.members) continue;
    n += 1;
    for (const [k, v] of Object.entries(top.members)) sums[k] = (sums[k] || 0) + v;
  }
  for (const k of Object.keys(sums)) sums[k] = sums[k] / n;
  return sums;
}

async function handle(file) {
  if (!file) return;
  const mine = ++run;
  if (aborter) aborter.abort(); // the earlier file's requests: their answers are no longer wanted
  aborter = new AbortController();
  lastFile = file;
  needsKey = false;
  clearResult();
  $("members-title").textContent = "Each model (the face with the highest p(fake))";
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  const video = isVideo(file);
  try {
    await (video ? checkVideo(file, mine, url) : checkImage(file, mine, url));
  } catch (e) {
    if (e instanceof Superseded || mine !== run) return;
    showError(e.message, video ? null : url);
  }
}

function setup() {
  WORDS = JSON.parse($("wording").textContent);
  const drop = $("drop");
  $("file").addEventListener("change", (e) => handle(e.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    handle(e.dataTransfer.files[0]);
  });
  $("api-key").addEventListener("change", () => { if (needsKey && lastFile) handle(lastFile); });
  $("heat-opacity").addEventListener("input", (e) => {
    $("heatmap").style.opacity = String(e.target.value / 100);
  });
  $("show-boxes").addEventListener("change", (e) => { $("boxes").style.display = e.target.checked ? "" : "none"; });
}

document.addEventListener("DOMContentLoaded", setup);
