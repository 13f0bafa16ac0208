// Writing the history out (pure functions; the history page feeds them): JSON and CSV of the
// checks, and a zip of the reported pictures in the faces-v1 layout that `unmask evaluate
// --data` and `unmask train --extra` read (real/, fake/, manifest.csv with source
// user-reports), the same layout and columns as the server's `unmask feedback export`.

export const SOURCE = 'user-reports';
export const MANIFEST_COLUMNS = ['path', 'label', 'source', 'group', 'note', 'url', 'page_url', 'verdict', 'sha256'];
export const CHECK_COLUMNS = ['time', 'verdict', 'confidence', 'p_fake', 'faces', 'server_verdict', 'provenance', 'model', 'site', 'page_url', 'url', 'sha256', 'reported', 'note', 'sent'];
const EXTENSIONS = {JPEG: 'jpg', PNG: 'png', WebP: 'webp', GIF: 'gif', BMP: 'bmp'};

function csvCell(v) {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(values) {
  return `${values.map(csvCell).join(',')}\r\n`;
}

// What the file says of its origin (read on the device), else the server's note on it.
export const provenanceOf = (r) => (r.provenance && (r.provenance.statement || r.provenance.changed)) || (r.server && r.server.provenance) || '';

// One check as the flat row of the CSV export.
export function checkRow(r) {
  return {
    time: new Date(r.t).toISOString(), verdict: r.verdict, confidence: r.confidence, p_fake: r.p_fake, faces: r.device ? r.device.faces.length : '',
    server_verdict: r.server ? r.server.verdict : '', provenance: provenanceOf(r), model: r.model ? [r.model.name, r.model.version].filter(Boolean).join(' ') : '',
    site: r.site, page_url: r.pageUrl, url: r.url, sha256: r.hash, reported: r.report ? r.report.says : '', note: r.report ? r.report.note : '',
    sent: r.report && r.report.sent ? r.report.sent.state : '',
  };
}

// One check as the JSON export has it: everything but the thumbnail's bytes.
export function checkJson(r) {
  const {thumb, size, ...rest} = r;
  return {...rest, time: new Date(r.t).toISOString()};
}

// The training folder's rows: reported checks whose picture is kept, one per picture (its
// latest report wins); those without a picture are listed apart, never silently dropped.
export function trainingRows(records, hasPicture) {
  const latest = new Map();
  const without = [];
  for (const r of records) {
    if (!r.report) continue;
    if (!hasPicture(r.hash)) {
      without.push(r);
      continue;
    }
    const prev = latest.get(r.hash);
    if (!prev || prev.report.t <= r.report.t) latest.set(r.hash, r);
  }
  const rows = [...latest.values()].map((r) => ({
    path: `${r.report.says}/${r.hash}.${EXTENSIONS[r.format] || 'bin'}`, label: r.report.says, source: SOURCE, group: r.hash,
    note: r.report.note, url: r.fetchable ? r.url : '', page_url: r.pageUrl, verdict: r.verdict, sha256: r.hash,
  }));
  return {rows, without};
}

// --- a zip (stored, not deflated: pictures are compressed already) --------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// entries: [{name, data: Uint8Array | string}] -> Blob of a zip file. Names are ASCII paths.
export function zip(entries) {
  const encoder = new TextEncoder();
  const parts = [];
  const central = [];
  let offset = 0;
  for (const e of entries) {
    const name = encoder.encode(e.name);
    const data = typeof e.data === 'string' ? encoder.encode(e.data) : e.data;
    if (data.length >= 0xffffffff || offset >= 0xffffffff) throw new Error('the export is over 4 GB, more than a zip without ZIP64 holds; export fewer checks');
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true); // names in UTF-8
    local.setUint16(8, 0, true); // stored
    local.setUint16(12, 0x21, true); // 1980-01-01
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, name.length, true);
    parts.push(local, name, data);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint16(8, 0x0800, true);
    c.setUint16(14, 0x21, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, data.length, true);
    c.setUint32(24, data.length, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, offset, true);
    central.push(c, name);
    offset += 30 + name.length + data.length;
  }
  const centralSize = central.reduce((n, p) => n + p.byteLength, 0);
  if (entries.length > 0xffff) throw new Error(`the export holds ${entries.length} files, more than a zip without ZIP64 holds; export fewer checks`);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], {type: 'application/zip'});
}
