// export.js: the history's CSV, the training folder's rows and the zip, under Node (the zip is
// read back by `unzip`, and its CRC compared with zlib's).
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {test} from 'node:test';
import {crc32 as zlibCrc32} from 'node:zlib';

import {checkJson, checkRow, csvLine, MANIFEST_COLUMNS, SOURCE, trainingRows, zip, crc32} from '../../extension/src/export.js';

const record = (over = {}) => ({
  id: 'a', t: Date.UTC(2026, 11, 2), hash: 'a'.repeat(64), url: 'https://x.example/a.jpg', fetchable: true, pageUrl: 'https://x.example/p', site: 'x.example',
  format: 'JPEG', verdict: 'real', confidence: 0.9, p_fake: 0.1, thumb: 'data:image/jpeg;base64,AAAA', size: 10,
  device: {verdict: 'real', faces: [{box: [1, 2, 3, 4], verdict: 'real'}]}, server: null, provenance: null, model: {name: 'tiny', version: '1'}, report: null, ...over,
});

test('CSV cells with commas, quotes and new lines are quoted', () => {
  assert.equal(csvLine(['a', 'b,c', 'say "hi"', 'two\nlines', null, 3]), 'a,"b,c","say ""hi""","two\nlines",,3\r\n');
});

test('a check flattens for the CSV, and the JSON leaves out the thumbnail', () => {
  const r = record({report: {says: 'fake', note: 'n', t: 1, picture: true, sent: {state: 'sent'}}});
  const row = checkRow(r);
  assert.equal(row.time, '2026-12-02T00:00:00.000Z');
  assert.equal(row.reported, 'fake');
  assert.equal(row.sent, 'sent');
  assert.equal(row.faces, 1);
  assert.ok(!('thumb' in checkJson(r)) && !('size' in checkJson(r)));
});

test('training rows: one per reported picture (the latest report wins), those without a picture apart', () => {
  const b = 'b'.repeat(64);
  const records = [
    record({id: '1', report: {says: 'fake', note: 'old', t: 1, picture: true}}),
    record({id: '2', report: {says: 'real', note: 'new', t: 2, picture: true}}),
    record({id: '3', hash: b, format: 'PNG', fetchable: false, url: 'data: image in the page', report: {says: 'fake', note: '', t: 3, picture: false}}),
    record({id: '4', hash: 'c'.repeat(64)}), // not reported
  ];
  const {rows, without} = trainingRows(records, (h) => h !== b);
  assert.deepEqual(rows, [{path: `real/${'a'.repeat(64)}.jpg`, label: 'real', source: SOURCE, group: 'a'.repeat(64), note: 'new',
    url: 'https://x.example/a.jpg', page_url: 'https://x.example/p', verdict: 'real', sha256: 'a'.repeat(64)}]);
  assert.deepEqual(without.map((r) => r.id), ['3']);
  assert.deepEqual(Object.keys(rows[0]), MANIFEST_COLUMNS);
});

test('the zip holds every file, byte for byte, and unzip finds no error', async () => {
  const bytes = new Uint8Array(70000).map((_, i) => (i * 31) % 256);
  assert.equal(crc32(bytes), zlibCrc32(bytes));
  const blob = zip([{name: 'top/manifest.csv', data: 'path,label\r\nfake/x.jpg,fake\r\n'}, {name: 'top/fake/x.jpg', data: bytes}]);
  const dir = mkdtempSync(join(tmpdir(), 'unmask-zip-'));
  try {
    writeFileSync(join(dir, 'r.zip'), Buffer.from(await blob.arrayBuffer()));
    execFileSync('unzip', ['-t', '-q', 'r.zip'], {cwd: dir});
    execFileSync('unzip', ['-q', 'r.zip'], {cwd: dir});
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'top/fake/x.jpg'))), bytes);
    assert.equal(readFileSync(join(dir, 'top/manifest.csv'), 'utf8'), 'path,label\r\nfake/x.jpg,fake\r\n');
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
});
