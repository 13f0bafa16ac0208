// Sending a report ("this verdict is wrong") to the user's own server: POST /api/v1/feedback,
// JSON, with the API key like the second opinion. Only called when the user allowed the
// server and asked to send this report; the picture goes only when they ticked it.
import {toBase64} from './bytes.js';
import {call, errorFrom, headers, ServerProblem} from './secondopinion.js';

// report: {sha256, says, note, verdict, p_fake, model, image_url, page_url}; picture: Uint8Array or null.
// Its messages can be shown in a web page's overlay: they never say where the server is.
export async function sendReport({serverUrl, apiKey, timeoutS}, report, picture) {
  const where = 'your server';
  const body = JSON.stringify({...report, ...(picture ? {picture: toBase64(picture)} : {})});
  const response = await call(`${serverUrl}/api/v1/feedback`, {method: 'POST', body, headers: {...headers(apiKey), 'Content-Type': 'application/json'}}, timeoutS, where);
  if (response.status === 404) {
    throw new ServerProblem('rejected', `${where} takes no reports (no /api/v1/feedback): update it to this version of Unmask.`, {status: 404});
  }
  if (!response.ok) throw await errorFrom(response, where);
  try {
    return await response.json();
  } catch {
    throw new ServerProblem('bad_reply', `${where} took the report but answered with something that is not JSON.`);
  }
}
