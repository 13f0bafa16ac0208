// The second opinion: send one image to the user's Unmask server (POST /api/v1/check,
// multipart `file`) and read its verdict. Only ever called when the user has turned the
// second opinion on. Every failure becomes a message a person can act on, and a request
// never waits longer than the timeout, so nothing on screen stays "checking" forever.
// askServer's messages are shown in web pages (the overlay) and never name the server's address;
// serverHealth's are for the options page, which shows it anyway.

export class ServerProblem extends Error {
  // code: unreachable | timeout | unauthorized | rate_limited | rejected | server_error | bad_reply
  constructor(code, message, {status = null, retryAfterS = null} = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

// The picture's verdicts, as models/inference.py gives them.
const VERDICTS = ['fake', 'real', 'uncertain', 'no_face'];

// A face the server judged: its box in image pixels and its verdict (the rest is dropped).
const isFace = (f) => f && Array.isArray(f.box) && f.box.length === 4 && f.box.every(Number.isFinite) && VERDICTS.slice(0, 3).includes(f.verdict);
const faceOf = (f) => ({
  box: f.box,
  verdict: f.verdict,
  confidence: typeof f.confidence === 'number' ? f.confidence : null,
  p_fake: typeof f.p_fake === 'number' ? f.p_fake : null,
});

const FORMAT_TYPES = {JPEG: 'image/jpeg', PNG: 'image/png', WebP: 'image/webp', GIF: 'image/gif', BMP: 'image/bmp'};

export function headers(apiKey) {
  return apiKey ? {'X-API-Key': apiKey} : {};
}

// where: how messages name the server ("your server", or "the server at https://…").
export async function call(url, init, timeoutS, where) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  try {
    return await fetch(url, {...init, signal: controller.signal, credentials: 'omit', cache: 'no-store'});
  } catch (e) {
    if (controller.signal.aborted) {
      throw new ServerProblem('timeout', `${where} did not answer within ${timeoutS} s; it may be busy or stuck. Try again in a moment.`);
    }
    throw new ServerProblem('unreachable', `cannot reach ${where} (${e.message}); check that it is running and that the address in Unmask's options is right.`);
  } finally {
    clearTimeout(timer);
  }
}

// path: what was asked, named when the server does not know it (404).
export async function errorFrom(response, where, path = '/api/v1/check') {
  let message = '';
  let code = '';
  try {
    const body = await response.json();
    message = body && body.message ? String(body.message) : '';
    code = body && body.error ? String(body.error) : '';
  } catch {
    // not JSON: keep the status line only
  }
  const s = response.status;
  const said = message ? `: ${message}` : '';
  if (s === 403 && code === 'origin_refused') {
    return new ServerProblem('origin_refused', `${where} does not take requests from this extension: start it with UNMASK_CORS_ORIGINS=${globalThis.location ? globalThis.location.origin : 'chrome-extension://<id>'}.`, {status: s});
  }
  if (s === 401 || s === 403) return new ServerProblem('unauthorized', `${where} refused the API key${said}. Check the key in Unmask's options.`, {status: s});
  if (s === 429) {
    const retry = Number(response.headers.get('Retry-After'));
    const retryAfterS = Number.isFinite(retry) && retry > 0 ? retry : null;
    return new ServerProblem('rate_limited', `the server is limiting requests${retryAfterS ? `; try again in ${retryAfterS} s` : '; try again shortly'}.`, {status: s, retryAfterS});
  }
  if (s === 404) return new ServerProblem('rejected', `${where} answered 404: it is not an Unmask server, or not this version (no ${path}).`, {status: s});
  if (s >= 400 && s < 500) return new ServerProblem('rejected', `the server could not use this image (HTTP ${s})${said}`, {status: s});
  return new ServerProblem('server_error', `${where} failed (HTTP ${s})${said}. Try again later.`, {status: s});
}

// The server's model as people read it: "ensemble 20261122-…".
export const modelOf = (body) => (body.model ? [body.model.name, body.model.version].filter(Boolean).join(' ') : '');

// POST a form to the user's server (path: /api/v1/check, /api/v1/check/frames) and return its
// JSON answer, which must carry a verdict; `ms` is added: how long the server took.
export async function postForVerdict({serverUrl, apiKey, timeoutS}, path, form) {
  const where = 'your server';
  const started = Date.now();
  const response = await call(`${serverUrl}${path}`, {method: 'POST', body: form, headers: headers(apiKey)}, timeoutS, where);
  if (!response.ok) throw await errorFrom(response, where, path);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ServerProblem('bad_reply', `${where} answered with something that is not JSON; is it an Unmask server?`);
  }
  if (!body || !VERDICTS.includes(body.verdict)) {
    throw new ServerProblem('bad_reply', `${where} gave no verdict; is it an Unmask server?`);
  }
  return {body, ms: Date.now() - started};
}

// bytes: Uint8Array of the image; format: from imageinfo.sniff. Returns the server's verdict.
export async function askServer(server, bytes, format) {
  const form = new FormData();
  const type = FORMAT_TYPES[format] || 'application/octet-stream';
  form.append('file', new Blob([bytes], {type}), `image.${(format || 'bin').toLowerCase()}`);
  const {body, ms} = await postForVerdict(server, '/api/v1/check', form);
  return {
    verdict: body.verdict,
    confidence: typeof body.confidence === 'number' ? body.confidence : null,
    p_fake: typeof body.p_fake === 'number' ? body.p_fake : null,
    faces: Array.isArray(body.faces) ? body.faces.filter(isFace).map(faceOf) : null,
    basis: body.basis || 'model',
    provenance: body.provenance && body.provenance.generator_evidence ? String(body.provenance.summary || 'generator metadata found') : null,
    model: modelOf(body),
    ms,
  };
}

// GET /api/v1/health, for the options page's "Test connection".
export async function serverHealth({serverUrl, apiKey, timeoutS}) {
  const base = new URL(serverUrl).origin;
  const where = `the server at ${base}`;
  const response = await call(`${serverUrl}/api/v1/health`, {headers: headers(apiKey)}, timeoutS, where);
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ServerProblem('bad_reply', `${base} answered, but not as an Unmask server (no JSON at /api/v1/health).`);
  }
  if (!response.ok) {
    if (response.status === 503) throw new ServerProblem('server_error', `the server at ${base} is up but not ready: ${body.message || body.status || 'model not loaded'}.`, {status: 503});
    throw await errorFrom(new Response(JSON.stringify(body), {status: response.status, headers: response.headers}), where);
  }
  return body;
}
