// Small HTTP servers for the browser tests: the pages and images, on 127.0.0.1 (and other
// loopback addresses, to have a second site), each logging the requests it gets.
import {createServer} from 'node:http';
import {readFile} from 'node:fs/promises';
import {extname, join, normalize} from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.jpg': 'image/jpeg', '.png': 'image/png',
  '.webp': 'image/webp', '.gif': 'image/gif', '.svg': 'image/svg+xml', '.json': 'application/json', '.webm': 'video/webm',
};

// Serves files from `dirs` (first match wins). HTML gets {{NAME}} replaced from `vars()`.
// `routes` maps a path to a handler(req, res) for anything else.
export async function serveFiles({dirs, host = '127.0.0.1', vars = () => ({}), routes = {}}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    requests.push({path, headers: req.headers, t: Date.now()});
    if (routes[path]) return routes[path](req, res);
    for (const dir of dirs) {
      const file = normalize(join(dir, path === '/' ? 'index.html' : path));
      if (!file.startsWith(normalize(dir))) break;
      let body;
      try {
        body = await readFile(file);
      } catch {
        continue;
      }
      const type = TYPES[extname(file)] || 'application/octet-stream';
      if (type.startsWith('text/html')) {
        body = Buffer.from(String(body).replace(/\{\{(\w+)\}\}/g, (m, k) => (k in vars() ? vars()[k] : m)));
      }
      res.writeHead(200, {'content-type': type, 'cache-control': 'no-store'});
      return res.end(body);
    }
    res.writeHead(404, {'content-type': 'text/plain'});
    res.end('not found');
  });
  return {...(await listen(server, host)), requests};
}

// A server that takes requests and never answers: a stuck second-opinion server.
export async function silentServer(host = '127.0.0.1') {
  const held = [];
  const server = createServer((req, res) => held.push(res));
  return {...(await listen(server, host)), held};
}

// Listen on a free port of `host`: {port, origin, close()}; close() drops open connections.
async function listen(server, host) {
  await new Promise((resolve) => server.listen(0, host, resolve));
  const {port} = server.address();
  return {
    port,
    origin: `http://${host}:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

// A port nothing listens on: bind one, note it, close it.
export async function deadPort(host = '127.0.0.1') {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, host, resolve));
  const {port} = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
