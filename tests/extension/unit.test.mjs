// The extension's plain modules under Node: reading image headers and limits, sensitivity,
// the wording and the faces-first rule (both against Python's own functions), where the
// overlay and the face boxes go, site patterns, settings, base64, and the second-opinion
// client against small HTTP servers (the client is what is under test here; the real server
// is in browser.test.mjs).
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {createServer} from 'node:http';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, it} from 'node:test';

import jpeg from 'jpeg-js';
import pngjs from 'pngjs';

import {base64Length, fromBase64, toBase64} from '../../extension/src/bytes.js';
import {combine, escalatesImage, judge, mergeServerFaces, requireSize} from '../../extension/src/facecheck.js';
import {drawnRect, faceRect, panelWidth, placePanelRect, smallestFaceFound} from '../../extension/src/geometry.js';
import {NEXT_STEP, nextStep} from '../../extension/src/ui.js';
import {checkImageBytes, ImageProblem, LIMITS, sniff} from '../../extension/src/imageinfo.js';
import {askServer, serverHealth} from '../../extension/src/secondopinion.js';
import {adjustCalibration, LEVELS} from '../../extension/src/sensitivity.js';
import {parseServerUrl, serverPattern, withDefaults} from '../../extension/src/settings.js';
import {badgesEnabled, builtinPatterns, isBuiltinSite, originPattern, patternMatches} from '../../extension/src/sites.js';
import {escalates, escalationLimits, verdict} from '../../extension/src/verdict.js';
import {describe as say, LABELS, pct, tag, wording} from '../../extension/src/wording.js';
import {fixtureImages, PYTHON, ROOT} from './harness/setup.mjs';

// Runs Python code that prints JSON, in the project (models/ importable).
function python(code) {
  return JSON.parse(execFileSync(PYTHON, ['-c', code], {cwd: ROOT, encoding: 'utf8', env: {...process.env, PYTHONPATH: ROOT}}));
}

const MANIFEST = JSON.parse(readFileSync(new URL('../../extension/manifest.json', import.meta.url), 'utf8'));

function png(width, height) {
  const p = new pngjs.PNG({width, height});
  p.data.fill(128);
  return new Uint8Array(pngjs.PNG.sync.write(p));
}

function jpg(width, height) {
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24; // noise: a real scan
  return new Uint8Array(jpeg.encode({data, width, height}, 80).data);
}

function gif(width, height) {
  // Header and logical screen, then a 1x1 image and the trailer: enough for a sniffer.
  const b = Buffer.from('474946383961000000000000002c000000000100010000020144003b', 'hex');
  b.writeUInt16LE(width, 6);
  b.writeUInt16LE(height, 8);
  return new Uint8Array(b);
}

function bmp(width, height) {
  const b = Buffer.alloc(58);
  b.write('BM', 0, 'ascii');
  b.writeUInt32LE(b.length, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(width, 18);
  b.writeInt32LE(-height, 22); // top-down rows: a negative height
  return new Uint8Array(b);
}

describe('imageinfo: format and size from the first bytes', () => {
  it('reads each supported format', async () => {
    assert.deepEqual(sniff(png(300, 200)), {format: 'PNG', width: 300, height: 200});
    assert.deepEqual(sniff(jpg(64, 48)), {format: 'JPEG', width: 64, height: 48});
    assert.deepEqual(sniff(gif(320, 240)), {format: 'GIF', width: 320, height: 240});
    assert.deepEqual(sniff(bmp(100, 80)), {format: 'BMP', width: 100, height: 80});
    // A WebP that Pillow wrote (the fixtures), lossy VP8.
    const {root} = await fixtureImages();
    assert.deepEqual(sniff(readFileSync(join(root, 'site/img/picture.webp'))), {format: 'WebP', width: 300, height: 300});
  });

  it('refuses what is not a supported image, saying what it is', () => {
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    assert.equal(sniff(svg).code, 'unsupported');
    assert.match(sniff(svg).message, /SVG/);
    const html = new TextEncoder().encode('<!doctype html><title>404</title>');
    assert.match(sniff(html).message, /web page/);
    const avif = Buffer.from('0000001c6674797061766966000000006176696600000000', 'hex');
    assert.match(sniff(avif).message, /AVIF/);
    assert.equal(sniff(new Uint8Array(0)).code, 'empty');
    // A JPEG start and nothing after it: no frame header.
    assert.equal(sniff(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])).code, 'corrupt');
  });

  it('applies the limits before anything is decoded', async () => {
    const {root} = await fixtureImages();
    const bomb = readFileSync(join(root, 'site/img/bomb.png'));
    assert.ok(bomb.length < 100000, 'the bomb is a small file');
    assert.throws(() => checkImageBytes(bomb), (e) => e instanceof ImageProblem && e.code === 'too_many_pixels' && /20000x20000/.test(e.message));
    // The smallest side is the model's min_face_side, said in the one vocabulary.
    assert.throws(() => checkImageBytes(png(40, 500), {minSide: 48}), (e) => e.code === 'too_small' && e.message === 'The image is 40x500 px. Too small to check: Unmask needs a face at least 48 px tall.');
    assert.deepEqual(checkImageBytes(png(48, 500), {minSide: 48}), {format: 'PNG', width: 48, height: 500});
    assert.throws(() => checkImageBytes(new Uint8Array(LIMITS.maxBytes + 1)), (e) => e.code === 'too_large');
    const good = jpg(64, 64);
    assert.deepEqual(checkImageBytes(good), {format: 'JPEG', width: 64, height: 64});
    assert.throws(() => checkImageBytes(good.subarray(0, Math.floor(good.length * 0.7))), (e) => e.code === 'truncated');
    assert.throws(() => checkImageBytes(good.subarray(0, 200)), (e) => e.code === 'truncated'); // cut before the scan
    const p = png(64, 64);
    assert.throws(() => checkImageBytes(p.subarray(0, p.length - 12)), (e) => e.code === 'truncated');
    assert.throws(() => checkImageBytes(readFileSync(join(root, 'site/img/truncated.jpg'))), (e) => e.code === 'truncated');
  });
});

describe('sensitivity', () => {
  const cal = {temperature: 1.3, fake_threshold: 0.8, real_threshold: 0.3, target_precision: 0.9};

  it('standard keeps the calibrated thresholds: the same verdicts as Python', () => {
    assert.deepEqual(adjustCalibration(cal, 'standard'), cal);
  });

  it('moves only the fake threshold: halfway to the real one (high) or to 1 (low)', () => {
    assert.equal(adjustCalibration(cal, 'high').fake_threshold, 0.55);
    assert.equal(adjustCalibration(cal, 'low').fake_threshold, 0.9);
    for (const level of LEVELS) {
      const c = adjustCalibration(cal, level);
      assert.equal(c.real_threshold, cal.real_threshold);
      assert.equal(c.temperature, cal.temperature);
    }
  });

  it('changes verdicts, never the confidence', () => {
    // Raw 0.8 calibrates to 0.744 at temperature 1.3: unsure at standard, fake at high (0.55).
    const standard = verdict(0.8, adjustCalibration(cal, 'standard'));
    const high = verdict(0.8, adjustCalibration(cal, 'high'));
    assert.equal(standard.verdict, 'uncertain');
    assert.equal(high.verdict, 'fake');
    assert.equal(high.confidence, standard.confidence);
    assert.equal(verdict(0.97, adjustCalibration(cal, 'low')).verdict, 'fake');
    assert.equal(verdict(0.9, adjustCalibration(cal, 'low')).verdict, 'uncertain');
  });

  it('works for any calibration: a threshold below 0.5, a model that never says fake', () => {
    const low = {temperature: 1, fake_threshold: 0.22, real_threshold: 0.08};
    assert.ok(adjustCalibration(low, 'high').fake_threshold < 0.22);
    assert.ok(adjustCalibration(low, 'low').fake_threshold > 0.22);
    const never = {temperature: 1, fake_threshold: 1.000001, real_threshold: 0.3};
    assert.equal(adjustCalibration(never, 'high').fake_threshold, 0.65);
    assert.equal(verdict(0.999, adjustCalibration(never, 'standard')).verdict, 'uncertain');
  });

  it('rejects an unknown level', () => {
    assert.throws(() => adjustCalibration(cal, 'max'), /unknown sensitivity/);
  });
});

describe('which device verdicts go to the server by themselves', () => {
  const cal = {temperature: 1, fake_threshold: 0.8, real_threshold: 0.2};
  const cascade = {escalate: {above: 0.4, below: 0.6}};

  it('with an escalation band: exactly those inside it, whatever the verdict', () => {
    assert.equal(escalates(verdict(0.5, cal), cascade), true);
    assert.equal(escalates(verdict(0.59, cal), cascade), true);
    assert.equal(escalates(verdict(0.7, cal), cascade), false, 'uncertain but outside the band');
    assert.equal(escalates(verdict(0.3, cal), cascade), false);
    assert.equal(escalates(verdict(0.6, cal), cascade), false, 'the band is open');
    const wide = {escalate: {above: 0.1, below: 0.9}};
    assert.equal(escalates(verdict(0.85, cal), wide), true, 'a confident verdict inside a wider band');
  });

  it('without one (or a broken one): every uncertain verdict', () => {
    for (const c of [undefined, null, {}, {escalate: {above: 'x', below: 0.6}}]) {
      assert.equal(escalates(verdict(0.7, cal), c), true);
      assert.equal(escalates(verdict(0.9, cal), c), false);
      assert.equal(escalates(verdict(0.1, cal), c), false);
    }
  });

  it('with every uncertain verdict asked for: the band and every uncertain one', () => {
    const all = {allUnsure: true};
    assert.equal(escalates(verdict(0.7, cal), cascade, all), true, 'uncertain outside the band');
    assert.equal(escalates(verdict(0.5, cal), cascade, all), true);
    assert.equal(escalates(verdict(0.9, cal), cascade, all), false, 'a confident fake');
    assert.equal(escalates(verdict(0.1, cal), cascade, all), false, 'a confident real');
    const wide = {escalate: {above: 0.1, below: 0.9}};
    assert.equal(escalates(verdict(0.85, cal), wide, all), true, 'the band still sends a confident verdict inside it');
  });

  it('says the band in the numbers the overlay shows (how far a face leans)', () => {
    assert.deepEqual(escalationLimits(cascade), {fake: 60, real: 60});
    assert.deepEqual(escalationLimits({escalate: {above: 0.35, below: 0.55}}), {fake: 55, real: 65});
    assert.equal(escalationLimits({}), null);
    // Inside the limits exactly when inside the band: a face leaning fake by 59% goes, by 61% not.
    const goes = (p) => escalates(verdict(p, cal), cascade);
    const lim = escalationLimits(cascade);
    for (const p of [0.41, 0.45, 0.55, 0.59, 0.61, 0.39, 0.7, 0.3]) {
      const v = verdict(p, cal);
      const lean = v.p_fake >= 0.5 ? lim.fake : lim.real;
      assert.equal(goes(p), 100 * v.confidence < lean, `p(fake) ${p}`);
    }
  });
});

describe('sites', () => {
  const patterns = builtinPatterns(MANIFEST);

  it('the built-in sites are the manifest content-script matches', () => {
    for (const url of ['https://x.com/home', 'https://twitter.com/a', 'https://www.facebook.com/', 'https://www.instagram.com/p/1', 'https://old.reddit.com/r/pics']) {
      assert.ok(isBuiltinSite(url, patterns), url);
    }
    for (const url of ['https://example.com/', 'http://x.com/', 'https://notx.com/', 'https://x.com.evil.net/']) {
      assert.ok(!isBuiltinSite(url, patterns), url);
    }
  });

  it('matches patterns by scheme and host', () => {
    assert.ok(patternMatches('*://127.0.0.1/*', 'http://127.0.0.1:8080/feed'));
    assert.ok(!patternMatches('*://127.0.0.1/*', 'file:///etc/passwd'));
    assert.ok(patternMatches('https://*.redd.it/*', 'https://i.redd.it/a.jpg'));
    assert.equal(originPattern('news.example.com'), '*://news.example.com/*');
  });

  it('badges: built-in sites unless switched off (subdomains too), user sites when switched on', () => {
    const s = withDefaults({sites: ['127.0.0.1'], disabledSites: ['reddit.com']});
    assert.ok(badgesEnabled('http://127.0.0.1:5000/', s, patterns));
    assert.ok(badgesEnabled('https://x.com/', s, patterns));
    assert.ok(!badgesEnabled('https://old.reddit.com/', s, patterns));
    assert.ok(!badgesEnabled('https://example.com/', s, patterns));
    assert.ok(!badgesEnabled('chrome://extensions', s, patterns));
  });
});

describe('settings', () => {
  it('fills defaults: the second opinion is off and there is no server', () => {
    const s = withDefaults(undefined);
    assert.equal(s.secondOpinion, false);
    assert.equal(s.serverUrl, '');
    assert.equal(s.sensitivity, 'standard');
  });

  it('reads a server address or says what is wrong with it', () => {
    assert.equal(parseServerUrl(' http://127.0.0.1:8000/ '), 'http://127.0.0.1:8000');
    assert.equal(parseServerUrl('https://unmask.example.org/base/'), 'https://unmask.example.org/base');
    assert.match(parseServerUrl('').message, /enter the address/);
    assert.match(parseServerUrl('127.0.0.1:8000').message, /http:\/\/ or https:\/\/ in front, like http:\/\/127\.0\.0\.1:8000/);
    assert.match(parseServerUrl('ftp://files.example.org').message, /must start with http/);
    assert.match(parseServerUrl('http://exa mple.org').message, /not a web address/);
  });

  it('takes plain http only for a server on this machine, and asks for exactly its scheme, host and port', () => {
    for (const url of ['http://localhost:8000', 'http://[::1]:8000', 'http://127.5.6.7:1', 'https://203.0.113.7:8443']) {
      assert.equal(typeof parseServerUrl(url), 'string', url);
    }
    for (const url of ['http://203.0.113.7:8000', 'http://unmask.example.org', 'http://127.0.0.1.evil.example', 'http://localhost.evil.example', 'http://10.0.0.2']) {
      assert.match(parseServerUrl(url).message, /use https:\/\/.*unencrypted/, url);
    }
    assert.equal(serverPattern('http://127.0.0.1:8000'), 'http://127.0.0.1:8000/*');
    assert.equal(serverPattern('https://unmask.example.org/base'), 'https://unmask.example.org/*');
    assert.equal(serverPattern('https://unmask.example.org:8443'), 'https://unmask.example.org:8443/*');
  });
});

describe('bytes across messages', () => {
  it('round-trips through base64, also in large chunks', () => {
    const b = new Uint8Array(200001).map((_, i) => (i * 7919) % 256);
    assert.deepEqual(fromBase64(toBase64(b)), b);
  });

  it('counts the bytes of base64 without decoding it, and refuses what is not base64', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 200001]) assert.equal(base64Length(toBase64(new Uint8Array(n).fill(255))), n, `${n} bytes`);
    for (const bad of ['abc', 'ab=c', 'a b=', '====', 'ab==\n', null, 42]) assert.equal(base64Length(bad), null, JSON.stringify(bad));
  });
});

describe('the second-opinion client', () => {
  async function withServer(handler, fn) {
    const server = createServer(handler);
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      return await fn(`http://127.0.0.1:${server.address().port}`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, {'content-type': 'application/json', ...headers});
    res.end(JSON.stringify(body));
  };
  const image = jpg(64, 64);

  it('posts the image as multipart `file` with the API key, and reads the verdict', async () => {
    let seen;
    await withServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen = {path: req.url, key: req.headers['x-api-key'], type: req.headers['content-type'], body};
        json(res, 200, {verdict: 'fake', confidence: 0.93, p_fake: 0.93, basis: 'model', model: {name: 'ensemble', version: 'v1'}, provenance: {generator_evidence: false}});
      });
    }, async (url) => {
      const r = await askServer({serverUrl: url, apiKey: 'k3y', timeoutS: 5}, image, 'JPEG');
      assert.equal(r.verdict, 'fake');
      assert.equal(r.confidence, 0.93);
      assert.equal(r.model, 'ensemble v1');
      assert.equal(r.provenance, null);
    });
    assert.equal(seen.path, '/api/v1/check');
    assert.equal(seen.key, 'k3y');
    assert.match(seen.type, /^multipart\/form-data/);
    assert.match(seen.body, /name="file"; filename="image.jpeg"/);
    assert.match(seen.body, /Content-Type: image\/jpeg/);
  });

  it('turns each failure into a message a person can act on', async () => {
    const cases = [
      [(req, res) => json(res, 401, {error: 'unauthorized', message: 'the API key is missing'}), 'unauthorized', /refused the API key: the API key is missing/],
      [(req, res) => json(res, 403, {error: 'origin_refused', message: 'requests from pages at chrome-extension://x are refused'}), 'origin_refused', /does not take requests from this extension: start it with UNMASK_CORS_ORIGINS=/],
      [(req, res) => json(res, 429, {error: 'rate_limited', message: 'slow down'}, {'Retry-After': '7'}), 'rate_limited', /try again in 7 s/],
      [(req, res) => json(res, 415, {error: 'unsupported_type', message: 'not an image type the server takes'}), 'rejected', /HTTP 415.*not an image type/],
      [(req, res) => json(res, 500, {error: 'internal', message: 'boom'}), 'server_error', /failed \(HTTP 500\): boom/],
      [(req, res) => res.writeHead(200, {'content-type': 'text/html'}).end('<html>hello</html>'), 'bad_reply', /not JSON/],
      [(req, res) => json(res, 200, {hello: 'world'}), 'bad_reply', /no verdict/],
      [(req, res) => res.writeHead(404).end(), 'rejected', /not an Unmask server/],
    ];
    for (const [handler, code, message] of cases) {
      await withServer(handler, async (url) => {
        await assert.rejects(askServer({serverUrl: url, apiKey: '', timeoutS: 5}, image, 'JPEG'), (e) => {
          assert.equal(e.code, code);
          assert.match(e.message, message);
          // The overlay shows it in a web page: not where the user's server is.
          assert.ok(!e.message.includes(new URL(url).host), e.message);
          return true;
        });
      });
    }
  });

  it('gives up on a server that does not answer, and says so', async () => {
    const held = [];
    await withServer((req, res) => held.push(res), async (url) => {
      const started = Date.now();
      await assert.rejects(askServer({serverUrl: url, apiKey: '', timeoutS: 1}, image, 'JPEG'), (e) => e.code === 'timeout' && /did not answer within 1 s/.test(e.message));
      assert.ok(Date.now() - started < 5000);
    });
  });

  it('reports an address where nothing listens', async () => {
    const server = createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${server.address().port}`;
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(askServer({serverUrl: url, apiKey: '', timeoutS: 5}, image, 'JPEG'), (e) => e.code === 'unreachable' && /check that it is running/.test(e.message) && !e.message.includes(url));
    await assert.rejects(serverHealth({serverUrl: url, apiKey: '', timeoutS: 5}), (e) => e.code === 'unreachable');
  });
});

describe('wording: the one vocabulary, as Python says it', () => {
  it('bundles models/wording.json itself', () => {
    assert.deepEqual(wording, JSON.parse(readFileSync(join(ROOT, 'models/wording.json'), 'utf8')));
    assert.equal(LABELS.no_face, 'No face found');
  });

  it('describes every verdict word for word as models.wording.describe', () => {
    const cases = [['fake', 0.93, 0.93], ['real', 0.8, 0.2], ['uncertain', 0.57, 0.43], ['uncertain', 0.625, 0.625], ['uncertain', 0.5, 0.5],
      ['real', 0.9951, 0.0049], ['fake', 0.125, 0.875], ['no_face', null, null], ['fake', null, null]];
    const want = python(`import json; from models.wording import describe; print(json.dumps([describe(*c) for c in ${JSON.stringify(cases).replaceAll('null', 'None')}]))`);
    assert.deepEqual(cases.map((c) => say(...c)), want);
    assert.equal(pct(0.625), '62%', "Python's round: halves to even");
  });

  it('tags faces and badges word for word as models.wording.tag: the confidence of the verdict, never p(fake)', () => {
    const cases = [['fake', 0.93], ['real', 0.97], ['real', 0.625], ['uncertain', 0.67], ['no_face', null], ['fake', null]];
    const want = python(`import json; from models.wording import tag; print(json.dumps([tag(*c) for c in ${JSON.stringify(cases).replaceAll('null', 'None')}]))`);
    assert.deepEqual(cases.map((c) => tag(...c)), want);
    assert.equal(tag('real', 0.97), 'Real 97%');
  });
});

describe('the overlay\'s next step', () => {
  it('offers the second opinion only before the server answered, and never contradicts the device', () => {
    assert.match(nextStep({verdict: 'uncertain'}, null), /Get a second opinion/);
    assert.match(nextStep({verdict: 'uncertain'}, {state: 'asking'}), /Get a second opinion/);
    for (const device of ['fake', 'real', 'uncertain']) {
      for (const server of ['fake', 'real', 'uncertain', 'no_face']) {
        const said = nextStep({verdict: device}, {state: 'done', verdict: server});
        assert.doesNotMatch(said, /second opinion/i, `${device} then ${server}`);
        if (server === 'fake' || server === 'real') assert.equal(said, NEXT_STEP[server]);
        else if (device !== 'uncertain') assert.doesNotMatch(said, /Neither/, 'the device could tell');
      }
    }
  });
});

describe('facecheck: faces first, the rule of models/inference.py', () => {
  const face = (verdict, p, extra = {}) => ({box: [0, 0, 60, 60], detector_score: 0.9, crop: [0, 0, 60], keypoints: [], verdict,
    confidence: Math.max(p, 1 - p), p_fake: p, p_fake_raw: p, summary: say(verdict, Math.max(p, 1 - p), p), ...extra});
  // The face contract's numbers for the tiled look, from the one contract (models/preprocessing.json).
  const faces = JSON.parse(readFileSync(join(ROOT, 'models/preprocessing.json'), 'utf8')).faces;
  const d = faces.detector;
  const contract = {tileSide: d.tile_side, tileOverlap: d.tile_overlap, tilesPerSide: d.tiles_per_side,
    tileFoundSide: d.tile_found_side, minFaceSide: faces.min_face_side};
  // FaceCheck.score adds may_miss_side to what the finder found, as combine reads it.
  const found = {too_small: 1, over_limit: 0, width: 640, height: 480, may_miss_side: smallestFaceFound(480, 640, contract)};

  it('says the smallest face found reliably exactly as models.faces.smallest_face_found', () => {
    const sizes = [[480, 640], [400, 300], [576, 576], [577, 300], [800, 1200], [3000, 4000], [100, 5000]];
    const want = python(`import json
from models.faces import smallest_face_found, tiles, face_contract
sizes = json.loads(${JSON.stringify(JSON.stringify(sizes))})
print(json.dumps([smallest_face_found(h, w) if tiles(h, w, face_contract()) else None for h, w in sizes]))`);
    assert.deepEqual(sizes.map(([h, w]) => smallestFaceFound(h, w, contract)), want);
    assert.equal(want[1], null); // a small picture: nothing is said about what may be missed
  });

  it('combines faces exactly as models.inference.combine', () => {
    const cases = [
      [face('fake', 0.9), face('real', 0.1)], // any face fake: fake
      [face('real', 0.1), face('real', 0.05)], // every face real: real
      [face('real', 0.1), face('uncertain', 0.4)], // else unsure
      [face('uncertain', 0.4), face('uncertain', 0.4, {box: [1, 1, 70, 70]})], // a tie: the first highest
      [face('uncertain', 0.55)],
      [],
    ];
    const want = python(`import json
from models.faces import Found
from models.inference import combine
cases = json.loads(${JSON.stringify(JSON.stringify(cases))})
print(json.dumps([combine(c, Found([], 1, 0, 640, 480)) for c in cases]))`);
    assert.deepEqual(cases.map((c) => combine(c, found)), want);
    assert.equal(want[5].verdict, 'no_face');
    assert.equal(want[5].p_fake, null);
  });

  it('judges cached raw scores at any calibration, and escalates when any face is in the band', () => {
    const cal = {temperature: 1, fake_threshold: 0.7, real_threshold: 0.3};
    const raw = {faces: [{box: [0, 0, 50, 50], p_raw: 0.2}, {box: [60, 0, 110, 50], p_raw: 0.5}], too_small: 0, over_limit: 0, width: 200, height: 100};
    const r = judge(raw, cal);
    assert.deepEqual(r.faces.map((f) => f.verdict), ['real', 'uncertain']);
    assert.equal(r.verdict, 'uncertain');
    assert.equal(r.p_fake, 0.5);
    assert.equal('p_raw' in r.faces[0], false);
    assert.equal(judge(raw, {...cal, fake_threshold: 0.45}).verdict, 'fake');
    const band = {escalate: {above: 0.45, below: 0.55}};
    assert.equal(escalatesImage(r, band), true);
    assert.equal(escalatesImage(judge({...raw, faces: [raw.faces[0]]}, cal), band), false);
    assert.equal(escalatesImage(judge({...raw, faces: []}, cal), band), false, 'no face, nothing to ask');
  });

  it('refuses an image too small to hold a judged face, as models.inference.require_size', () => {
    const want = python(`import json, numpy as np
from models.inference import require_size
try:
    require_size(np.zeros((40, 300, 3), np.uint8))
except ValueError as e:
    print(json.dumps([e.reason, str(e)]))`);
    assert.throws(() => requireSize(300, 40, 48), (e) => e.code === want[0] && e.message === want[1]);
    requireSize(48, 48, 48);
  });

  it("takes the server's faces, each with the device's verdict on the same face", () => {
    const device = [{box: [10, 10, 60, 60], verdict: 'uncertain', confidence: 0.6, p_fake: 0.6}, {box: [100, 10, 150, 60], verdict: 'real', confidence: 0.9, p_fake: 0.1}];
    const server = [{box: [101, 11, 151, 61], verdict: 'fake', confidence: 0.95, p_fake: 0.95}, {box: [300, 300, 350, 350], verdict: 'real', confidence: 0.8, p_fake: 0.2}];
    const merged = mergeServerFaces(device, server);
    assert.deepEqual(merged.map((f) => [f.source, f.verdict, f.device && f.device.verdict]), [['server', 'fake', 'real'], ['server', 'real', null]]);
  });
});

describe('geometry: face boxes where the page draws the picture, and the overlay by its image', () => {
  const box = {left: 100, top: 50, width: 400, height: 300};
  const file = {width: 900, height: 560};

  it('maps file pixels through object-fit and object-position', () => {
    assert.deepEqual(drawnRect(box, file), box);
    const contain = drawnRect(box, file, {fit: 'contain'});
    assert.equal(contain.width, 400);
    assert.ok(Math.abs(contain.top - (50 + (300 - 560 * 400 / 900) / 2)) < 1e-9);
    const cover = drawnRect(box, file, {fit: 'cover'});
    assert.equal(cover.height, 300);
    assert.ok(Math.abs(cover.left - (100 + (400 - 900 * 300 / 560) / 2)) < 1e-9);
    assert.equal(drawnRect(box, file, {fit: 'cover', position: '0% 0%'}).left, 100);
    assert.equal(drawnRect(box, file, {fit: 'none', position: 'left top', natural: {width: 900, height: 560}}).width, 900);
    const f = faceRect([90, 56, 180, 112], file, drawnRect(box, file));
    assert.deepEqual(f, {left: 140, top: 80, width: 40, height: 30});
  });

  const vp = {width: 1200, height: 860};
  const rect = (left, top, width, height) => ({left, top, width, height, right: left + width, bottom: top + height});
  const covers = (at, size, r) => Math.min(at.left + size.width, r.right) > Math.max(at.left, r.left) && Math.min(at.top + size.height, r.bottom) > Math.max(at.top, r.top);

  it('sizes the overlay to its image, within bounds', () => {
    assert.equal(panelWidth(360, 1200), 320);
    assert.equal(panelWidth(250, 1200), 250);
    assert.equal(panelWidth(100, 1200), 240);
    assert.equal(panelWidth(900, 300), 284);
  });

  it('puts it beside a picture when there is room, over none of it', () => {
    const img = rect(320, 200, 360, 360); // a 360 px picture in a feed column
    const at = placePanelRect(img, {width: 320, height: 260}, vp);
    assert.equal(at.where, 'right');
    assert.ok(!covers(at, {width: 320, height: 260}, img));
  });

  it('near the bottom of the page keeps it on screen, on its picture, off the neighbour above', () => {
    const neighbour = rect(130, 100, 300, 300);
    const img = rect(130, 420, 940, 430); // as wide as the page, at the bottom of the window
    const size = {width: 320, height: 280};
    const at = placePanelRect(img, size, vp, {others: [neighbour]});
    assert.ok(at.top >= 8 && at.top + size.height <= vp.height - 8 && at.left >= 8 && at.left + size.width <= vp.width - 8, JSON.stringify(at));
    assert.ok(!covers(at, size, neighbour), `${at.where} covers the neighbour`);
    assert.ok(covers(at, size, img), 'on its picture');
  });

  it('in a grid keeps off the faces it drew, then off the neighbours', () => {
    const grid = [rect(16, 40, 250, 250), rect(280, 40, 250, 250), rect(544, 40, 250, 250), rect(16, 304, 250, 250), rect(280, 304, 250, 250), rect(544, 304, 250, 250)];
    const others = grid.filter((_, i) => i !== 4);
    const size = {width: 250, height: 200};
    const face = rect(330, 340, 150, 180);
    const at = placePanelRect(grid[4], size, {width: 800, height: 600}, {others, faces: [face]});
    assert.ok(!covers(at, size, face), JSON.stringify(at));
    // Without a face to keep clear, its own picture rather than a neighbour.
    const bare = placePanelRect(grid[4], size, {width: 800, height: 600}, {others});
    assert.ok(others.every((o) => !covers(bare, size, o)), JSON.stringify(bare));
  });
});
