// What the browser tests need besides the browser: fixture images, the model under test
// (with the Keras model it was converted from), Python's answers for the same files
// (models.inference.FaceCheck), the built extension, and the project's own second-opinion server.
//
// The model under test is the shipped one (extension/model/, converted from the bundled
// `tiny`) whenever it exists. Only while it does not, a development model is made (see
// tests/extension/fixtures.py), or UNMASK_EXTENSION_MODEL + UNMASK_EXTENSION_KERAS name one.
// Slow steps (images, the development model, predictions) are cached in .tmp/ under a
// hash of their inputs.
import {spawn} from 'node:child_process';
import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {basename, dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

import {build} from '../../../extension/build.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const PYTHON = join(ROOT, '.venv/bin/python');
export const UNMASK = join(ROOT, '.venv/bin/unmask');
const CACHE = join(ROOT, '.tmp/extension-tests');
const FIXTURES_PY = join(ROOT, 'tests/extension/fixtures.py');

// Runs a command; resolves {code, stdout, stderr}; rejects only if it cannot start.
export function run(cmd, args, {env = {}, cwd = ROOT, timeoutMs = 600000} = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {cwd, env: {...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env}});
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({code, stdout, stderr});
    });
  });
}

async function mustRun(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  return r;
}

function hashOf(...parts) {
  const h = createHash('sha256');
  for (const p of parts) h.update(existsSync(p) && statSync(p).isFile() ? readFileSync(p) : String(p));
  return h.digest('hex').slice(0, 12);
}

// Make `dir` with `make(tmpDir)` once; later calls reuse it. Older versions of the same
// thing (same name before the hash) are removed.
async function cached(dir, make) {
  if (existsSync(join(dir, '.done'))) return dir;
  mkdirSync(dirname(dir), {recursive: true});
  const kind = `${basename(dir).replace(/-[0-9a-f]{12}$/, '')}-`;
  for (const old of readdirSync(dirname(dir))) {
    if (old.startsWith(kind) && /^[^.]*-[0-9a-f]{12}$/.test(old)) rmSync(join(dirname(dir), old), {recursive: true, force: true});
  }
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, {recursive: true, force: true});
  mkdirSync(tmp, {recursive: true});
  await make(tmp);
  writeFileSync(join(tmp, '.done'), '');
  if (existsSync(join(dir, '.done'))) {
    rmSync(tmp, {recursive: true, force: true}); // another run made it meanwhile: use theirs
    return dir;
  }
  rmSync(dir, {recursive: true, force: true});
  renameSync(tmp, dir);
  return dir;
}

// What Python's answers depend on besides the model and the images.
const FACE_CODE = ['models/faces.py', 'models/inference.py', 'models/preprocessing.json', 'models/wording.json'].map((p) => join(ROOT, p));

export async function fixtureImages() {
  const dir = join(CACHE, `images-${hashOf(FIXTURES_PY, join(ROOT, 'tests/synthetic.py'), ...FACE_CODE)}`);
  await cached(dir, (tmp) => mustRun(PYTHON, [FIXTURES_PY, 'images', tmp]));
  return {root: dir, index: JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'))};
}

// {tfjs: folder for the extension, keras: what `unmask predict --model` takes, source, note}
export async function modelUnderTest(images) {
  const shipped = join(ROOT, 'extension/model');
  if (existsSync(join(shipped, 'metadata.json'))) {
    const meta = JSON.parse(readFileSync(join(shipped, 'metadata.json'), 'utf8'));
    const bundled = join(ROOT, 'models/bundled', meta.name || 'tiny');
    const info = join(bundled, 'detector.json');
    if (!existsSync(info)) throw new Error(`extension/model/ was converted from ${meta.name} ${meta.version}, but ${bundled} (its Keras model) is missing; rebuild the models with \`make models\``);
    const version = JSON.parse(readFileSync(info, 'utf8')).version;
    if (version !== meta.version) throw new Error(`extension/model/ holds ${meta.name} ${meta.version} but models/bundled/${meta.name} is ${version}: reconvert with \`unmask convert ${meta.name} --out extension/model\``);
    return {tfjs: shipped, keras: bundled, source: 'shipped', note: `the shipped model: extension/model (${meta.name} ${meta.version})`};
  }
  if (process.env.UNMASK_EXTENSION_MODEL) {
    if (!process.env.UNMASK_EXTENSION_KERAS) throw new Error('UNMASK_EXTENSION_MODEL is set: set UNMASK_EXTENSION_KERAS to the Keras model it was converted from');
    return {tfjs: process.env.UNMASK_EXTENSION_MODEL, keras: process.env.UNMASK_EXTENSION_KERAS, source: 'override', note: `UNMASK_EXTENSION_MODEL=${process.env.UNMASK_EXTENSION_MODEL}`};
  }
  const inputs = ['models/architectures.py', 'models/preprocessing.json', 'models/detector.py', 'models/inference.py', 'converter/export.py', 'converter/tfjs.py', 'converter/metadata.py', 'converter/faces.py']
    .map((p) => join(ROOT, p));
  const dir = join(CACHE, `devmodel-${hashOf(FIXTURES_PY, join(images.root, 'index.json'), ...inputs)}`);
  await cached(dir, (tmp) => mustRun(PYTHON, [FIXTURES_PY, 'devmodel', tmp, images.root]));
  return {tfjs: join(dir, 'tfjs'), keras: join(dir, 'keras'), source: 'development', note: 'extension/model/ does not exist yet: a development model made by tests/extension/fixtures.py'};
}

// Python's answer for every fixture image, as `unmask predict` and `unmask serve` give it:
// models.inference.FaceCheck with the Keras model (tests/extension/fixtures.py expect).
// Returns a Map from the path below the images root (site/img/feed_00.jpg) to the result
// ({verdict, p_fake, faces: [{box, p_fake, ...}], ...}) or {error: 'reason: message'}.
export async function pythonExpectations(model, images) {
  const key = hashOf(join(images.root, 'index.json'), model.keras, ...FACE_CODE, ...(existsSync(join(model.keras, 'detector.json')) ? [join(model.keras, 'detector.json')] : []));
  const dir = join(CACHE, `expect-${key}`);
  await cached(dir, (tmp) => mustRun(PYTHON, [FIXTURES_PY, 'expect', model.keras, images.root, join(tmp, 'expect.json')]));
  return new Map(Object.entries(JSON.parse(readFileSync(join(dir, 'expect.json'), 'utf8'))));
}

export async function buildExtension(model) {
  const out = mkdtempSync(join(tmpdir(), 'unmask-ext-'));
  return build({out, model: model.tfjs, zip: 'none', testHooks: true});
}

// The project's server (`unmask serve`) with a small ensemble, on a free port.
export async function startServer({port, env = {}}) {
  const models = join(CACHE, `ensemble-${hashOf(join(ROOT, 'tests/synthetic.py'), join(ROOT, 'models/architectures.py'))}`);
  await cached(models, (tmp) => mustRun(PYTHON, ['-c', `from pathlib import Path; from tests.synthetic import small_detector; small_detector(Path(${JSON.stringify(join(tmp, 'ensemble'))}), 'ensemble')`]));
  return launchServer({port, models, env});
}

export async function launchServer({port, models, env = {}}) {
  const child = spawn(UNMASK, ['serve', '--bind', `127.0.0.1:${port}`], {
    cwd: ROOT,
    env: {...process.env, TF_CPP_MIN_LOG_LEVEL: '2', UNMASK_MODELS_DIR: models, UNMASK_BATCHING: 'off', ...env},
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // its own process group: gunicorn's workers go with it
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const origin = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`unmask serve exited (${child.exitCode}):\n${log.slice(-3000)}`);
    try {
      const r = await fetch(`${origin}/api/v1/health`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > 120000) {
      process.kill(-child.pid, 'SIGKILL');
      throw new Error(`unmask serve did not become healthy within 120 s:\n${log.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    origin,
    port,
    models,
    log: () => log,
    stop: async () => {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      for (let i = 0; i < 50 && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    },
  };
}

export function tempDir(prefix = 'unmask-test-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

// Files with provenance and Python's reading of each (tests/extension/provenance_fixtures.py):
// {root, expect: {file: {tier, ai, statement, c2pa}}}.
export async function provenanceFixtures() {
  const inputs = ['tests/extension/provenance_fixtures.py', 'tests/server/files.py', 'models/provenance.py', 'models/provenance.json', 'models/watermark.py', 'models/wording.json']
    .map((p) => join(ROOT, p));
  const dir = join(CACHE, `provenance-${hashOf(...inputs)}`);
  await cached(dir, (tmp) => mustRun(PYTHON, [join(ROOT, 'tests/extension/provenance_fixtures.py'), tmp]));
  return {root: dir, expect: JSON.parse(readFileSync(join(dir, 'expect.json'), 'utf8'))};
}
