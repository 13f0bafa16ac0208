// Provenance in the browser: extension/src/provenance.js and its C2PA reader (c2pareader.js,
// c2pa-rs in wasm), bundled as the build bundles them, run in a headless Chromium page served
// here on 127.0.0.1, on pictures without and with Content Credentials; and the built
// extension's size. The page calls the reader directly (the extension calls it in a worker).
//
//   node bench/provenance_bench.mjs CONFIG.json    (bench/provenance.py writes CONFIG, reads OUT)
//
// CONFIG: {pictures: [{key, file, manifest}], pixel_sizes: [[w, h]...], runs, out}.
// OUT: {ms: {key: [ms...]}, pixel_ms: {WxH: [ms...]}, extension}.
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {createServer} from 'node:http';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as esbuild from 'esbuild';
import {chromium} from 'playwright-core';

import {build} from '../extension/build.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const bundle = async (entry, format, globalName) => (await esbuild.build({
  entryPoints: [join(ROOT, 'extension/src', entry)], bundle: true, write: false, format, globalName, loader: {'.pem': 'text'},
})).outputFiles[0].text;
const files = {
  '/': ['text/html', '<!doctype html><title>provenance bench</title>'],
  '/provenance.js': ['text/javascript', await bundle('provenance.js', 'iife', 'Provenance')],
  '/c2pareader.js': ['text/javascript', await bundle('c2pareader.js', 'esm')],
  '/c2pa_bg.wasm': ['application/wasm', readFileSync(join(ROOT, 'node_modules/@contentauth/c2pa-wasm/pkg/c2pa_bg.wasm'))],
};
config.pictures.forEach((p, i) => {
  files[`/p${i}`] = ['application/octet-stream', readFileSync(p.file)];
});
const server = createServer((req, res) => {
  const f = files[req.url];
  res.writeHead(f ? 200 : 404, {'content-type': f ? f[0] : 'text/plain'});
  res.end(f ? f[1] : 'not found');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']});
const out = {ms: {}, tiers: {}, first_ms: {}};
try {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.addScriptTag({url: '/provenance.js'});
  for (const [i, p] of config.pictures.entries()) {
    const r = await page.evaluate(async ({url, runs}) => {
      const reader = await import('/c2pareader.js');
      const verify = (b, mime) => reader.readManifestStore(b, mime, {wasm: '/c2pa_bg.wasm'});
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      const ms = [];
      let last = null;
      let first = null;
      for (let k = 0; k < runs + 3; k++) {
        const t0 = performance.now();
        last = await Provenance.readProvenance(bytes, {verify});
        const t = performance.now() - t0;
        if (k === 0) first = t;
        if (k >= 3) ms.push(t); // the first three warm the JIT (and the first with credentials starts the wasm)
      }
      return {ms, first, tier: last.tier, c2pa: last.c2pa.present};
    }, {url: `/p${i}`, runs: config.runs});
    out.ms[p.key] = r.ms;
    out.first_ms[p.key] = r.first;
    out.tiers[p.key] = {tier: r.tier, c2pa: r.c2pa};
    process.stderr.write(`provenance: ${p.key}: ${r.ms.length} runs\n`);
  }
  // What only decoded pixels show (offscreen.js, for pictures that are not JPEG): the Stable
  // Diffusion watermark and NovelAI's alpha-channel metadata, on pixels of each size.
  out.pixel_ms = {};
  for (const [w, h] of config.pixel_sizes) {
    out.pixel_ms[`${w}x${h}`] = await page.evaluate(async ({w, h, runs}) => {
      const px = new Uint8ClampedArray(w * h * 4);
      for (let i = 0; i < px.length; i++) px[i] = (Math.imul(i, 2654435761) >>> 24) & 255; // noise, alpha too
      const ms = [];
      for (let k = 0; k < runs + 3; k++) {
        const t0 = performance.now();
        Provenance.sdWatermark(px, w, h);
        await Provenance.novelaiStealth(px, w, h);
        if (k >= 3) ms.push(performance.now() - t0);
      }
      return ms;
    }, {w, h, runs: config.runs});
    process.stderr.write(`provenance: pixels ${w}x${h}: ${config.runs} runs\n`);
  }
} finally {
  await browser.close();
  server.close();
}
const dir = mkdtempSync(join(tmpdir(), 'unmask-bench-ext-'));
try {
  const built = await build({out: join(dir, 'dist'), zip: join(dir, 'ext.zip')});
  out.extension = {files: built.files, bytes: built.bytes, zip_bytes: statSync(join(dir, 'ext.zip')).size,
    model_bytes: built.model.bytes, provenance_js_bytes: statSync(join(ROOT, 'extension/src/provenance.js')).size};
} finally {
  rmSync(dir, {recursive: true, force: true});
}
writeFileSync(config.out, JSON.stringify(out));
