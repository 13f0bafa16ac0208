// Provenance in the browser: extension/src/provenance.js, bundled as the build bundles it, run
// in a headless Chromium page on pictures without and with Content Credentials; and the
// built extension's size.
//
//   node bench/provenance_bench.mjs CONFIG.json    (bench/provenance.py writes CONFIG, reads OUT)
//
// CONFIG: {pictures: [{key, file, manifest}], runs, out}. OUT: {ms: {key: [ms...]}, extension}.
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as esbuild from 'esbuild';
import {chromium} from 'playwright-core';

import {build} from '../extension/build.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const bundle = await esbuild.build({
  entryPoints: [join(ROOT, 'extension/src/provenance.js')], bundle: true, write: false, format: 'iife', globalName: 'Provenance',
});
const browser = await chromium.launch({executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']});
const out = {ms: {}, tiers: {}};
try {
  const page = await browser.newPage();
  await page.setContent('<!doctype html><title>provenance bench</title>');
  await page.addScriptTag({content: bundle.outputFiles[0].text});
  for (const p of config.pictures) {
    const b64 = readFileSync(p.file).toString('base64');
    const r = await page.evaluate(async ({b64, runs}) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const ms = [];
      let last = null;
      for (let i = 0; i < runs + 3; i++) {
        const t0 = performance.now();
        last = await Provenance.readProvenance(bytes);
        if (i >= 3) ms.push(performance.now() - t0); // the first three warm the JIT
      }
      return {ms, tier: last.tier, c2pa: last.c2pa.present};
    }, {b64, runs: config.runs});
    out.ms[p.key] = r.ms;
    out.tiers[p.key] = {tier: r.tier, c2pa: r.c2pa};
    process.stderr.write(`provenance: ${p.key}: ${r.ms.length} runs\n`);
  }
} finally {
  await browser.close();
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
