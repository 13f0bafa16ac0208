// The page at /: send the picked or dropped file to the API and show what comes back.
// Plain DOM code, no framework: each function fills one part of the page.
"use strict";

const API = "/api/v1";
const VIDEO_TYPES = ["video/mp4", "video/webm", "video/quicktime"];
const VIDEO_NAMES = /\.(mp4|m4v|webm|mov)$/i;
const $ = (id) => document.getElementById(id);
let objectUrls = [];
let lastFile = null; // checked again once an API key is entered after a 401
let needsKey = false;

function isVideo(file) {
  return VIDEO_TYPES.includes(file.type) || (!file.type && VIDEO_NAMES.test(file.name));
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

// POST the file as multipart `file`; resolve to the Response, or throw an Error whose
// message is the server's own explanation.
async function post(path, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  let resp;
  try {
    resp = await fetch(API + path, { method: "POST", body: form, headers: headers() });
  } catch (e) {
    throw new Error("the server cannot be reached; check that it is running and try again");
  }
  if (!resp.ok) {
    let message = `the server answered ${resp.status}`;
    try {
      const body = await resp.json();
      if (body.message) message = body.message;
    } catch (e) { /* not JSON: keep the status line */ }
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

function clearResult() {
  objectUrls.forEach((u) => URL.revokeObjectURL(u));
  objectUrls = [];
  $("result").hidden = true;
  $("error").hidden = true;
  $("picture").hidden = true;
  $("video-box").hidden = true;
  $("frames-box").hidden = true;
  $("heatmap").hidden = true;
  $("heat-status").textContent = "";
}

function showError(message) {
  $("status").textContent = "";
  $("error").textContent = message;
  $("error").hidden = false;
}

function showVerdict(r) {
  const v = $("verdict");
  v.textContent = r.verdict;
  v.dataset.verdict = r.verdict;
  $("confidence").textContent = r.confidence === null
    ? "confidence: none (the verdict rests on the file's provenance)"
    : `confidence ${pct(r.confidence)} · p(fake) ${pct(r.p_fake)}`;
  const basis = {
    model: "from the models",
    "model+provenance": "from the models; the file's provenance agrees",
    provenance: `from the file's provenance; the models alone said ${r.model_verdict.verdict} (${pct(r.model_verdict.confidence)})`,
  };
  $("basis").textContent = basis[r.basis] || "";
}

function showMembers(members) {
  const body = $("members").tBodies[0];
  body.replaceChildren();
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

function showProvenance(p) {
  $("provenance-summary").textContent = p.summary || "";
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

async function checkImage(file) {
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  $("preview").src = url;
  $("status").textContent = "Checking the image…";
  const result = await (await post("/check", file)).json();
  $("status").textContent = "";
  showVerdict(result);
  showMembers(result.members);
  showProvenance(result.provenance);
  showMeta(result);
  $("picture").hidden = false;
  $("result").hidden = false;
  // The heatmap comes second: the verdict should not wait for gradients.
  $("heat-status").textContent = "drawing the heatmap…";
  try {
    const png = await (await post("/explain", file)).blob();
    const heatUrl = URL.createObjectURL(png);
    objectUrls.push(heatUrl);
    $("heatmap").src = heatUrl;
    $("heatmap").hidden = false;
    $("heat-status").textContent = "";
  } catch (e) {
    $("heat-status").textContent = `no heatmap: ${e.message}`;
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
    div.title = `${seg.start_s.toFixed(1)}–${seg.end_s.toFixed(1)} s: ${seg.verdict}`;
    bar.append(div);
  }
  $("video-note").textContent = result.note || `${result.frames_with_face} of ${result.frames_sampled} sampled frames show a face`;
  const body = $("frames").tBodies[0];
  body.replaceChildren();
  for (const f of result.frames) {
    const row = body.insertRow();
    row.insertCell().textContent = `${f.time_s.toFixed(2)} s`;
    row.insertCell().textContent = f.face ? "yes" : "no";
    row.insertCell().textContent = f.verdict || "not scored";
    row.insertCell().textContent = pct(f.p_fake);
  }
}

async function checkVideo(file) {
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  $("video-preview").src = url;
  $("status").textContent = "Checking the video (sampling frames, finding faces)…";
  const result = await (await post("/check/video", file)).json();
  $("status").textContent = "";
  showVerdict(result);
  showMembers(averageMembers(result.frames));
  showProvenance(result.provenance);
  showMeta(result);
  showTimeline(result);
  $("video-box").hidden = false;
  $("frames-box").hidden = false;
  $("result").hidden = false;
}

// Each model's mean score over the scored frames.
function averageMembers(frames) {
  const sums = {};
  let n = 0;
  for (const f of frames) {
    if (!f.members || !Object.keys(f.members).length) continue;
    n += 1;
    for (const [k, v] of Object.entries(f.members)) sums[k] = (sums[k] || 0) + v;
  }
  for (const k of Object.keys(sums)) sums[k] = sums[k] / n;
  return sums;
}

async function handle(file) {
  if (!file) return;
  lastFile = file;
  needsKey = false;
  clearResult();
  try {
    await (isVideo(file) ? checkVideo(file) : checkImage(file));
  } catch (e) {
    showError(e.message);
  }
}

function setup() {
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
}

document.addEventListener("DOMContentLoaded", setup);
