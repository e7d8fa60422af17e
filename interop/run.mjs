// The interop suite: the real upload widgets, unmodified, from npm, in headless Chromium,
// against the chunked-upload example server. See README.md.
//
//   cargo build --example server --features axum      (from the repository root, once)
//   cd interop && npm ci && npm test
//
// Environment: SERVER_BIN (default ../target/debug/examples/server, or under
// $CARGO_TARGET_DIR), CHROMIUM (default: `command -v chromium`), ONLY (a substring: run only
// the cases whose id contains it), KEEP=1 (keep the temp dir).

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const OUT = path.join(HERE, 'out');
const SHOTS = path.join(OUT, 'screenshots');
const LOGS = path.join(OUT, 'logs');
const SERVER_BIN = process.env.SERVER_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'debug', 'examples', 'server');
const ONLY = process.env.ONLY || '';

/** The chunk size every case uses (64 KiB). */
const CS = 64 * 1024;
/** Longest a case may take. */
const CASE_TIMEOUT_MS = 90_000;

const started = Date.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

// ---------------------------------------------------------------------------------------------
// Versions, binaries.

function packageVersion(name) {
  const file = path.join(HERE, 'node_modules', name, 'package.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

const WIDGET_PACKAGES = {
  'flow.js': '@flowjs/flow.js',
  'resumable.js': 'resumablejs',
  Dropzone: 'dropzone',
  'Fine Uploader': 'fine-uploader',
  Plupload: 'plupload',
  'tus-js-client': 'tus-js-client',
  Uppy: 'uppy',
};

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// The example server, started on a free port with a temp dir.

async function startServer(root) {
  const dir = path.join(root, 'uploads');
  const temp = path.join(root, 'chunks');
  const serverLog = fs.createWriteStream(path.join(OUT, 'server.log'));
  const child = spawn(SERVER_BIN, ['--addr', '127.0.0.1:0', '--dir', dir, '--temp', temp], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const recent = [];
  const onLine = (line) => {
    const clean = stripAnsi(line);
    serverLog.write(`${clean}\n`);
    recent.push(clean);
    if (recent.length > 2000) recent.splice(0, recent.length - 2000);
    current?.server.push(clean);
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) onLine(line);
    });
  }
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server printed no address in 10 s:\n${recent.join('\n')}`)), 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}:\n${recent.join('\n')}`));
    });
    const poll = setInterval(() => {
      const line = recent.find((l) => /listening on http:\/\//.test(l));
      if (line) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(/http:\/\/[^/\s]+/.exec(line)[0]);
      }
    }, 20);
  });
  return { child, origin, dir, temp };
}

// ---------------------------------------------------------------------------------------------
// The harness server: the test pages and node_modules, and a plain streaming reverse proxy of
// everything else to the example server (method, path, headers and body passed through as
// they are, both ways), so that the pages and the upload endpoint share one origin and the
// session cookie works without CORS.

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.gif': 'image/gif',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.swf': 'application/x-shockwave-flash',
  '.xap': 'application/x-silverlight-app',
};

/** What the driver can ask of the proxy: delay chunk uploads, count them; hold upload requests
 * without a cookie (cold cases: a slow first round trip, so that all of the widget's first
 * requests are on their way before any answer could set a cookie). */
const proxyControl = { delayMs: 0, uploadPosts: 0, holdCookielessMs: 0 };

function serveStatic(req, res, root, rel) {
  const file = path.resolve(root, `.${decodeURIComponent(rel)}`);
  if (!file.startsWith(root + path.sep)) {
    res.writeHead(403).end();
    return;
  }
  fs.readFile(file, (err, data) => {
    if (err) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[path.extname(file)] || 'application/octet-stream',
      'cache-control': 'no-store',
    });
    res.end(data);
  });
}

/** The text fields of the start of a multipart or urlencoded body, for the request log. */
function describeBody(prefix, total, contentType) {
  if (!total) return '';
  const ct = (contentType || '').toLowerCase();
  const text = prefix.toString('latin1');
  if (ct.startsWith('multipart/form-data')) {
    const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
    if (!m) return `<multipart, ${total} B>`;
    const boundary = `--${m[1] || m[2]}`;
    const fields = [];
    for (const part of text.split(boundary).slice(1)) {
      const end = part.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = part.slice(0, end);
      const name = /name="([^"]*)"/.exec(head)?.[1];
      const filename = /filename="([^"]*)"/.exec(head)?.[1];
      if (name === undefined) continue;
      if (filename !== undefined) {
        const type = /content-type:\s*([^\r\n]*)/i.exec(head)?.[1] || '';
        fields.push(`${name}=<file "${filename}" ${type}>`);
        break; // the bytes follow; fields after the file part are not logged
      }
      let value = part.slice(end + 4);
      const cut = value.lastIndexOf('\r\n');
      if (cut >= 0) value = value.slice(0, cut);
      fields.push(`${name}=${value.slice(0, 80)}`);
    }
    return `[${fields.join(' ')}] (${total} B)`;
  }
  if (ct.startsWith('application/x-www-form-urlencoded')) return `[${text.slice(0, 400)}]`;
  return `<raw body ${total} B${contentType ? `, ${contentType}` : ''}>`;
}

const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function startHarness(serverOrigin) {
  const upstream = new URL(serverOrigin);
  const pagesRoot = path.join(HERE, 'pages');
  const modulesRoot = path.join(HERE, 'node_modules');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://harness');
    if (req.method === 'GET' && url.pathname.startsWith('/pages/')) {
      serveStatic(req, res, pagesRoot, url.pathname.slice('/pages'.length));
      return;
    }
    if (req.method === 'GET' && url.pathname.startsWith('/node_modules/')) {
      serveStatic(req, res, modulesRoot, url.pathname.slice('/node_modules'.length));
      return;
    }
    proxy(req, res, url, upstream);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

function proxy(req, res, url, upstream) {
  const entry = {
    t: current ? Date.now() - current.t0 : 0,
    method: req.method,
    url: req.url,
    body: '',
    status: 'pending',
    response: '',
    // The session cookie the request carries and the one the answer sets (the log shows their
    // first 6 hex digits).
    session: /cu_session=([0-9a-f.]+)/.exec(req.headers.cookie || '')?.[1] || 'none',
    setSession: '',
  };
  current?.proxied.push(entry);
  const isChunkPost = (req.method !== 'GET' && url.pathname === '/upload') ||
    (req.method === 'PATCH' && url.pathname.startsWith('/tus/'));
  if (isChunkPost) proxyControl.uploadPosts += 1;

  let gone = false;
  res.on('close', () => {
    gone = true;
  });
  const forward = () => {
    if (gone || req.destroyed || res.destroyed || req.socket?.destroyed) {
      entry.status = 'client gone before forwarding';
      return;
    }
    const up = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.rawHeaders,
      setHost: false,
      agent: upstreamAgent,
    });
    // Tee the start of the request body for the log.
    const head = [];
    let headLength = 0;
    let total = 0;
    req.on('data', (piece) => {
      total += piece.length;
      if (headLength < 16384) {
        head.push(piece.subarray(0, 16384 - headLength));
        headLength += Math.min(piece.length, 16384 - headLength);
      }
    });
    req.on('end', () => {
      entry.body = describeBody(Buffer.concat(head), total, req.headers['content-type']);
    });
    req.pipe(up);
    up.on('response', (upRes) => {
      entry.status = upRes.statusCode;
      const set = [].concat(upRes.headers['set-cookie'] || []).join(' ');
      entry.setSession = /cu_session=([0-9a-f.]+)/.exec(set)?.[1] || '';
      res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
      let kept = '';
      upRes.on('data', (piece) => {
        if (kept.length < 600) kept += piece.toString('utf8').slice(0, 600 - kept.length);
      });
      upRes.on('end', () => {
        entry.response = kept;
      });
      upRes.pipe(res);
    });
    up.on('error', (err) => {
      entry.status = `upstream error: ${err.message}`;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end();
    });
    // The browser went away (an aborted XHR): cut the upstream request too, as a real
    // connection would be.
    res.on('close', () => {
      if (!res.writableFinished) {
        if (entry.status === 'pending') entry.status = 'aborted by the client';
        up.destroy();
      }
    });
  };
  const cookielessUpload = entry.session === 'none' && url.pathname.startsWith('/upload');
  if (cookielessUpload && proxyControl.holdCookielessMs > 0) setTimeout(forward, proxyControl.holdCookielessMs);
  else if (isChunkPost && proxyControl.delayMs > 0) setTimeout(forward, proxyControl.delayMs);
  else forward();
}

// ---------------------------------------------------------------------------------------------
// Test files: random bytes on disk, unique names per case.

let filesRoot = '';

function makeFile(prefix, label, size) {
  const name = `${prefix}-${label}.bin`;
  const data = crypto.randomBytes(size);
  const file = path.join(filesRoot, name);
  fs.writeFileSync(file, data);
  return { name, label, size, path: file, sha: sha256(data) };
}

/** 0 B (optional), 1 B, exactly one chunk, one chunk + 1 byte, about ten chunks. */
function standardFiles(prefix, { empty = true } = {}) {
  const files = [];
  if (empty) files.push(makeFile(prefix, '0B', 0));
  files.push(makeFile(prefix, '1B', 1));
  files.push(makeFile(prefix, 'chunk', CS));
  files.push(makeFile(prefix, 'chunk+1', CS + 1));
  files.push(makeFile(prefix, '10chunks', 10 * CS + 4321));
  return files;
}

/** One file of forty chunks and a bit, for pausing in the middle. */
function bigFile(prefix) {
  return [makeFile(prefix, '40chunks', 40 * CS + 777)];
}

// ---------------------------------------------------------------------------------------------
// Checks: what landed in the server's dir, byte for byte.

let uploadDir = '';

async function checkOnDisk(files, prefix, problems, serverNames = new Map()) {
  for (const f of files) {
    const name = serverNames.get(f.name) || f.name;
    const file = path.join(uploadDir, name);
    let data = null;
    const deadline = Date.now() + 5000;
    let waited = 0;
    while (Date.now() < deadline) {
      try {
        data = fs.readFileSync(file);
        break;
      } catch {
        await sleep(50);
        waited += 50;
      }
    }
    if (data === null) {
      problems.push(`${f.name}: not in the upload dir`);
      continue;
    }
    if (waited > 0) problems.push(`${f.name}: appeared in the upload dir ${waited} ms after the widget reported success`);
    if (data.length !== f.size) problems.push(`${f.name}: ${data.length} B on the server, ${f.size} B sent`);
    else if (sha256(data) !== f.sha) problems.push(`${f.name}: SHA-256 differs (${sha256(data).slice(0, 16)}... vs ${f.sha.slice(0, 16)}...)`);
  }
  // Exactly once: nothing else of this case in the dir (no "name (1).bin").
  const expected = new Set(files.map((f) => serverNames.get(f.name) || f.name));
  const extra = fs.readdirSync(uploadDir).filter((n) => n.startsWith(`${prefix}-`) && !expected.has(n));
  if (extra.length) problems.push(`unexpected files in the upload dir: ${extra.join(', ')}`);
}

function checkWidget(files, snapshot, problems) {
  for (const f of files) {
    const w = snapshot.files.find((e) => e.name === f.name);
    if (!w) problems.push(`${f.name}: the widget never took the file`);
    else if (w.status !== 'success') problems.push(`${f.name}: the widget reports ${w.status}: ${w.message}`);
    if (w?.duplicateTerminal) problems.push(`${f.name}: the widget reported the file finished twice`);
  }
  if (snapshot.completeEvents < 1) problems.push('the widget never fired its all-done event');
}

// ---------------------------------------------------------------------------------------------
// Per-case state, logs.

/** The running case: its start time and logs (the proxy and the server write here too). */
let current = null;

function attachPageLog(page) {
  const at = () => Date.now() - current.t0;
  page.on('console', (msg) => {
    if (['error', 'warning'].includes(msg.type()) || /\[Fine Uploader/.test(msg.text())) {
      current.page.push(`${at()}ms console.${msg.type()}: ${msg.text().slice(0, 400)}`);
    }
  });
  page.on('pageerror', (err) => current.page.push(`${at()}ms page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    current.page.push(`${at()}ms request failed: ${req.method()} ${req.url()} ${req.failure()?.errorText || ''}`);
  });
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (u.pathname.startsWith('/upload') || u.pathname === '/files') {
      current.page.push(`${at()}ms ${res.request().method()} ${u.pathname}${u.search.slice(0, 300)} -> ${res.status()}`);
    }
  });
}

function writeCaseLog(id, snapshot) {
  const lines = [];
  lines.push(`# ${id}`);
  if (snapshot) {
    lines.push('## widget events (page)');
    lines.push(...snapshot.log);
    if (snapshot.notes?.length) lines.push(`notes: ${snapshot.notes.join('; ')}`);
  }
  lines.push('## requests through the harness proxy (request fields -> status, response)');
  for (const e of current.proxied) {
    const cookie = `session=${e.session.slice(0, 6)}${e.setSession ? ` set-session=${e.setSession.slice(0, 6)}` : ''}`;
    lines.push(`${e.t}ms ${e.method} ${e.url} ${cookie} ${e.body} -> ${e.status} ${e.response.replace(/\s+/g, ' ').slice(0, 300)}`);
  }
  lines.push('## browser (failed requests, console, responses)');
  lines.push(...current.page);
  lines.push('## server log during the case');
  lines.push(...current.server);
  const file = path.join(LOGS, `${id}.log`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return { file, lines };
}

// ---------------------------------------------------------------------------------------------
// Widget cases.

const widgetPages = {
  'flow.js': 'flow.html',
  'resumable.js': 'resumable.html',
  Dropzone: 'dropzone.html',
  'Fine Uploader': 'fine-uploader.html',
  Plupload: 'plupload.html',
  'tus-js-client': 'tus.html',
  Uppy: 'uppy.html',
};

function widgetCases() {
  const cases = [];
  const add = (widget, id, title, opts, kind = 'basic', extra = {}) => cases.push({ widget, id, title, opts, kind, ...extra });

  for (const [widget, short] of [['flow.js', 'flow'], ['resumable.js', 'resumable']]) {
    // resumable.js refuses files under minFileSize (default 1 byte) on the client: allowing
    // empty files is the option a user sets for them.
    const base = short === 'resumable' ? { minFileSize: 0 } : {};
    add(widget, `${short}-test-on-force-off`, 'testChunks on, forceChunkSize off', { ...base, testChunks: true, forceChunkSize: false, simultaneousUploads: 3 });
    add(widget, `${short}-test-off-force-off`, 'testChunks off, forceChunkSize off', { ...base, testChunks: false, forceChunkSize: false, simultaneousUploads: 3 });
    add(widget, `${short}-test-on-force-on`, 'testChunks on, forceChunkSize on', { ...base, testChunks: true, forceChunkSize: true, simultaneousUploads: 3 });
    add(widget, `${short}-test-off-force-on`, 'testChunks off, forceChunkSize on', { ...base, testChunks: false, forceChunkSize: true, simultaneousUploads: 3 });
    add(widget, `${short}-octet`, "method: 'octet' (raw chunk bodies)", { ...base, method: 'octet', simultaneousUploads: 3 });
    add(widget, `${short}-pause`, 'pause and resume in the middle', { ...base, simultaneousUploads: 3 }, 'pause');
    add(widget, `${short}-failures`, 'every 3rd chunk POST aborted once, maxChunkRetries: 5', { ...base, simultaneousUploads: 3, maxChunkRetries: 5, chunkRetryInterval: 200 }, 'failures');
  }

  add('Dropzone', 'dropzone-parallel', 'parallelChunkUploads (files <= chunkSize go whole)', {});
  add('Dropzone', 'dropzone-force', 'forceChunking: true (every file chunked)', { forceChunking: true });
  add('Dropzone', 'dropzone-finalize', 'chunksUploaded -> POST /upload/done', { forceChunking: true, finalize: true });
  add('Dropzone', 'dropzone-pause', 'pause and resume', {}, 'unsupported', { reason: 'Dropzone has no pause/resume' });
  // retryChunks applies to chunked uploads only: files up to chunkSize go whole and are never
  // retried unless forceChunking makes them chunked too.
  add('Dropzone', 'dropzone-failures', 'every 3rd POST aborted once, retryChunks (forceChunking)', { forceChunking: true, retryChunks: true, retryChunksLimit: 5 }, 'failures');

  add('Fine Uploader', 'fine-concurrent', 'concurrent chunks + chunking.success.endpoint', {});
  add('Fine Uploader', 'fine-sequential', 'sequential chunks, no success endpoint', { chunking: { concurrent: { enabled: false }, success: { endpoint: null } } });
  add('Fine Uploader', 'fine-pause', 'pauseUpload / continueUpload in the middle', {}, 'pause');
  add('Fine Uploader', 'fine-failures', 'every 3rd POST aborted once, retry.enableAuto', { retry: { enableAuto: true, maxAutoAttempts: 5, autoAttemptDelay: 1 } }, 'failures');

  add('Plupload', 'plupload-multipart', 'multipart (default), one chunk at a time', {});
  add('Plupload', 'plupload-raw', 'multipart: false (raw chunk bodies)', { multipart: false });
  // Plupload's stop()/start() skips a chunk whose body was sent but not yet answered (a
  // widget bug, see README.md). The first case pauses exactly then and checks that the server
  // does not assemble a file with a hole; the second adds the page-side fix.
  add('Plupload', 'plupload-pause', 'stop() / start() while a chunk awaits its answer', {}, 'pause', { verify: pluploadSkippedChunk });
  add('Plupload', 'plupload-pause-fixed', 'stop() / start(), page resets file.loaded to the last acknowledged chunk', { resumeFromAcknowledged: true }, 'pause');
  add('Plupload', 'plupload-failures', 'every 3rd POST aborted once, max_retries: 5', { max_retries: 5 }, 'failures');

  // The page served without touching the example server first: no request carries a cookie
  // before the widget's first (parallel) requests, which must land in one session.
  // `bigFirst`: the ten-chunk file first, so that the widget's first parallel requests are
  // chunks of that one file (flow.js tests one chunk at a time per file: its parallel first
  // test requests are those of the small files, in the usual order).
  const cold = (widget, id, title, opts, { parallel = true, bigFirst = true } = {}) =>
    add(widget, id, `cold: ${title}`, opts, 'basic', { cold: true, parallel, bigFirst });
  cold('flow.js', 'flow-cold-multipart', 'parallel first chunks, multipart', { testChunks: false, simultaneousUploads: 3 });
  cold('flow.js', 'flow-cold-octet', "parallel first chunks, method: 'octet'", { testChunks: false, method: 'octet', simultaneousUploads: 3 });
  cold('flow.js', 'flow-cold-tests', 'parallel first test requests, then chunks', { testChunks: true, simultaneousUploads: 3 }, { bigFirst: false });
  cold('resumable.js', 'resumable-cold', 'parallel first chunks', { minFileSize: 0, testChunks: false, simultaneousUploads: 3 });
  cold('Dropzone', 'dropzone-cold', 'parallelChunkUploads, forceChunking, chunksUploaded -> /upload/done', { forceChunking: true, finalize: true });
  cold('Fine Uploader', 'fine-cold', 'concurrent chunks + success endpoint /upload/done', {});
  cold('Plupload', 'plupload-cold', 'multipart (one chunk at a time: nothing in parallel)', {}, { parallel: false });

  // tus-js-client: the whole file in one PATCH (its default), 64 KiB appends, parallelUploads
  // (partial uploads and a final one), both IETF drafts, X-HTTP-Method-Override, pause and
  // resume, a reload resuming from the URL tus-js-client kept, injected connection resets.
  add('tus-js-client', 'tus-chunk-unset', 'chunkSize unset (a whole file per PATCH)', {});
  add('tus-js-client', 'tus-chunk-64k', 'chunkSize: 64 KiB', { chunkSize: CS });
  add('tus-js-client', 'tus-parallel', 'parallelUploads: 3 (concatenation), chunkSize: 64 KiB', { parallelUploads: 3, chunkSize: CS });
  add('tus-js-client', 'tus-ietf-05', "protocol: 'ietf-draft-05', chunkSize: 64 KiB", { protocol: 'ietf-draft-05', chunkSize: CS });
  add('tus-js-client', 'tus-ietf-03', "protocol: 'ietf-draft-03', chunkSize: 64 KiB", { protocol: 'ietf-draft-03', chunkSize: CS });
  add('tus-js-client', 'tus-override', 'overridePatchMethod (POST + X-HTTP-Method-Override)', { overridePatchMethod: true, chunkSize: CS });
  add('tus-js-client', 'tus-pause', 'abort() / start() in the middle', { chunkSize: CS }, 'pause');
  add('tus-js-client', 'tus-reload', 'reload in the middle, re-add: resumes from the stored URL', { chunkSize: CS }, 'reload');
  add('tus-js-client', 'tus-failures', 'every 3rd PATCH aborted once (connection reset), retryDelays', { chunkSize: CS }, 'failures');
  add('tus-js-client', 'tus-parallel-failures', 'parallelUploads: 3 with every 3rd PATCH aborted once', { parallelUploads: 3, chunkSize: CS }, 'failures');

  // Uppy's bundle with its Tus plugin.
  add('Uppy', 'uppy-tus', 'Uppy.Tus, chunkSize: 64 KiB, limit: 3', { tus: { chunkSize: CS } });
  add('Uppy', 'uppy-tus-whole', 'Uppy.Tus, chunkSize unset', {});
  add('Uppy', 'uppy-tus-pause', 'pauseAll() / resumeAll() in the middle', { tus: { chunkSize: CS } }, 'pause');
  add('Uppy', 'uppy-tus-failures', 'every 3rd PATCH aborted once', { tus: { chunkSize: CS } }, 'failures');
  return cases;
}

/** A cold case's own checks: nothing reached the server with a cookie before the widget's first
 * requests, several of those went in parallel without one (where the widget sends in parallel),
 * and the server set one session for all of them. */
function checkCold(c, problems, info) {
  const proxied = current.proxied.filter((e) => e.status !== 'client gone before forwarding');
  const first = proxied[0];
  if (!first) {
    problems.push('no request reached the server');
    return;
  }
  if (first.session !== 'none') problems.push(`the first request to reach the server carried a cookie: ${first.method} ${first.url}`);
  if (!first.url.startsWith('/upload')) problems.push(`the first request to reach the server was not the widget's: ${first.method} ${first.url}`);
  const cookieless = proxied.filter((e) => e.session === 'none');
  const early = cookieless.filter((e) => e.url.startsWith('/upload'));
  if (c.parallel && early.length < 2) problems.push(`only ${early.length} upload request(s) went without a cookie: the first requests were not parallel`);
  const set = new Set(proxied.map((e) => e.setSession).filter(Boolean));
  const carried = new Set(proxied.map((e) => e.session).filter((v) => v !== 'none'));
  if (set.size !== 1) problems.push(`the server set ${set.size} different sessions: ${[...set].map((v) => v.slice(0, 6)).join(', ')}`);
  for (const v of carried) if (!set.has(v)) problems.push(`a request carried a session the server did not set in this case: ${v.slice(0, 6)}`);
  info.push(`${early.length} upload requests without a cookie, ${proxied.length - cookieless.length} with it; one session`);
}

/** The Plupload stop()/start() bug (README.md): at the pause, the chunk awaiting its answer is
 * aborted, and start() goes on with the next one. If the server had read that chunk whole
 * before the abort, the file completes and must be byte-identical; if not, the chunk is never
 * sent again, and the server must not assemble a file with a hole (Plupload reports success
 * all the same: that is the widget's bug, reported as information). */
async function pluploadSkippedChunk(files, snapshot, problems, info) {
  const [f] = files;
  const prefix = f.name.replace(/-40chunks\.bin$/, '');
  const aborted = current.proxied
    .filter((e) => /chunk=\d+ chunks=/.test(e.body) && e.status !== 200)
    .map((e) => Number(/chunk=(\d+)/.exec(e.body)[1]));
  const answered = new Set(current.proxied
    .filter((e) => /chunk=\d+ chunks=/.test(e.body) && e.status === 200)
    .map((e) => Number(/chunk=(\d+)/.exec(e.body)[1])));
  const skipped = aborted.filter((i) => !answered.has(i));
  if (fs.existsSync(path.join(uploadDir, f.name))) {
    if (skipped.length) info.push(`chunk ${skipped.join(', ')} aborted at the pause and never re-sent, but the server had read it whole`);
    checkWidget(files, snapshot, problems);
    await checkOnDisk(files, prefix, problems);
    return;
  }
  const w = snapshot.files.find((e) => e.name === f.name);
  info.push(`widget bug reproduced: chunk ${skipped.join(', ') || '?'} aborted at the pause, never re-sent; Plupload reports ${w?.status}; the server kept the upload unassembled`);
  if (!skipped.length) problems.push(`${f.name}: not assembled, and no chunk was skipped`);
  const extra = fs.readdirSync(uploadDir).filter((n) => n.startsWith(`${prefix}-`));
  if (extra.length) problems.push(`unexpected files in the upload dir: ${extra.join(', ')}`);
  const last = current.proxied.filter((e) => /chunk=\d+ chunks=/.test(e.body) && e.status === 200).pop();
  if (last && /"status":"assembled"/.test(last.response)) problems.push(`the last chunk was answered "assembled": ${last.response}`);
}

/** Most requests aborted per case. Without a bound, a widget that answers one failed chunk by
 * aborting its other chunks in flight and retrying them together (Fine Uploader with concurrent
 * chunks) loses one chunk of every retry round, and runs out of retries (maxAutoAttempts)
 * before every chunk has had its one failure. */
const MAX_ABORTS = 4;

/** Aborts every 3rd chunk POST, once per chunk (told by the request), at most MAX_ABORTS. */
async function injectFailures(page, stats) {
  const aborted = new Set();
  let posts = 0;
  const chunkRequest = (u) => {
    const { pathname } = new URL(u);
    return pathname === '/upload' || pathname.startsWith('/tus/');
  };
  await page.route(chunkRequest, async (route) => {
    const req = route.request();
    const isTus = new URL(req.url()).pathname.startsWith('/tus/');
    const isAppend = isTus ? req.method() === 'PATCH' || req.headers()['x-http-method-override'] === 'PATCH' : req.method() === 'POST';
    if (!isAppend) return route.continue();
    posts += 1;
    // Which chunk: the start of the body (the multipart fields, or the chunk's first bytes)
    // and the query string; when Chromium does not expose the body, the query string alone
    // (flow.js/resumable.js octet, Plupload raw), else nothing (then MAX_ABORTS still keeps a
    // chunk from failing more often than the retry settings allow).
    let key = null;
    let by = 'body';
    if (isTus) {
      // An append is told by its upload and offset.
      key = `${req.url()}@${req.headers()['upload-offset']}`;
      by = 'offset';
    } else try {
      const body = req.postDataBuffer();
      if (body) key = sha256(body.subarray(0, 2048)) + new URL(req.url()).search;
    } catch {
      key = null;
    }
    if (key === null) {
      by = new URL(req.url()).search ? 'query' : 'count';
      key = new URL(req.url()).search || `post-${posts}`;
    }
    if (posts % 3 === 0 && !aborted.has(key) && stats.aborted < MAX_ABORTS) {
      aborted.add(key);
      stats.aborted += 1;
      current.page.push(`${Date.now() - current.t0}ms injected failure: POST #${posts} aborted (chunk told by ${by})`);
      return route.abort('failed');
    }
    return route.continue();
  });
}

async function runWidgetCase(browser, harnessOrigin, c) {
  const problems = [];
  const info = [];
  const files = c.kind === 'pause' || c.kind === 'reload' ? bigFile(c.id) : c.bigFirst ? standardFiles(c.id).reverse() : standardFiles(c.id);
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  attachPageLog(page);
  let snapshot = null;
  try {
    const stats = { aborted: 0 };
    if (c.kind === 'failures') await injectFailures(page, stats);
    if (c.cold) proxyControl.holdCookielessMs = 300;
    const url = `${harnessOrigin}/pages/${widgetPages[c.widget]}?opts=${encodeURIComponent(JSON.stringify(c.opts))}${c.cold ? '&cold=1' : ''}`;
    await page.goto(url);
    await page.waitForFunction(() => window.harness && window.harness.ready && window.harness.session, null, { timeout: 15_000 });
    await page.locator('input[type=file]').first().setInputFiles(files.map((f) => f.path));

    if (c.kind === 'pause') await pauseInTheMiddle(page, c, problems, info);
    if (c.kind === 'reload') await reloadInTheMiddle(page, url, files, problems, info);

    await page.waitForFunction((n) => window.harness.settled(n), files.length, { timeout: CASE_TIMEOUT_MS, polling: 100 });
    // The widget's all-done event may come right after the last per-file event.
    await page.waitForFunction(() => window.harness.snapshot().completeEvents > 0, null, { timeout: 3000 }).catch(() => {});
    proxyControl.delayMs = 0;
    snapshot = await page.evaluate(() => window.harness.snapshot());
    if (c.verify) {
      await c.verify(files, snapshot, problems, info);
    } else {
      checkWidget(files, snapshot, problems);
      await checkOnDisk(files, c.id, problems);
    }
    if (c.cold) checkCold(c, problems, info);
    if (c.kind === 'failures') {
      if (stats.aborted === 0) problems.push('no chunk request was aborted: the failure injection did not happen');
      else info.push(`${stats.aborted} chunk requests aborted`);
    }
  } catch (err) {
    problems.push(`${err.message.split('\n')[0]}`);
    snapshot = await page.evaluate(() => window.harness && window.harness.snapshot()).catch(() => null);
  } finally {
    proxyControl.delayMs = 0;
    proxyControl.holdCookielessMs = 0;
  }
  const shot = path.join(SHOTS, `${c.id}.png`);
  await page.screenshot({ path: shot, fullPage: true, animations: 'disabled' }).catch(() => {});
  await context.close();
  return { problems, info, snapshot, shot };
}

/** Slows the appends down, reloads the page at about a third, adds the same file again: the
 * widget must find the upload it started (tus-js-client keeps its URL in localStorage) and
 * send only what the server lacks. */
async function reloadInTheMiddle(page, url, files, problems, info) {
  proxyControl.delayMs = 150;
  await page.waitForFunction(() => window.harness.overallProgress() >= 0.33, null, { timeout: 30_000, polling: 20 });
  const before = current.proxied.length;
  await page.reload();
  await page.waitForFunction(() => window.harness && window.harness.ready && window.harness.session, null, { timeout: 15_000 });
  proxyControl.delayMs = 0;
  await page.locator('input[type=file]').first().setInputFiles(files.map((f) => f.path));
  await page.waitForFunction((n) => window.harness.settled(n), files.length, { timeout: CASE_TIMEOUT_MS, polling: 100 });
  const after = current.proxied.slice(before);
  const creations = after.filter((e) => e.method === 'POST' && /^\/tus\/?$/.test(e.url)).length;
  const appends = after.filter((e) => e.method === 'PATCH').length;
  const total = Math.ceil(files[0].size / CS);
  info.push(`${appends} PATCHes after the reload (of ${total} for the whole file), ${creations} new uploads created`);
  if (creations > 0) problems.push(`the reloaded page created ${creations} new upload(s) instead of resuming`);
  if (appends >= total) problems.push(`${appends} PATCHes after the reload: the upload did not resume`);
}

/** Slows the chunk POSTs down, pauses at about a quarter, checks that nothing is sent while
 * paused, resumes. */
async function pauseInTheMiddle(page, c, problems, info) {
  proxyControl.delayMs = 600;
  await page.waitForFunction(() => window.harness.overallProgress() >= 0.1, null, { timeout: 30_000, polling: 20 });
  await page.evaluate(() => { window.harness.pause(); window.harness.markPaused(true); });
  const atPause = await page.evaluate(() => window.harness.overallProgress());
  await sleep(600); // requests already on their way arrive
  const before = proxyControl.uploadPosts;
  await sleep(1500);
  const during = proxyControl.uploadPosts - before;
  if (during > 0) problems.push(`${during} chunk POSTs reached the server during the pause`);
  const settled = await page.evaluate(() => window.harness.settled(1));
  if (settled) problems.push('the file finished before it could be paused');
  await page.screenshot({ path: path.join(SHOTS, `${c.id}-paused.png`), fullPage: true, animations: 'disabled' }).catch(() => {});
  info.push(`paused at ${Math.round(atPause * 100)}%`);
  proxyControl.delayMs = 0;
  await page.evaluate(() => { window.harness.markPaused(false); window.harness.resume(); });
}

// ---------------------------------------------------------------------------------------------
// The project's own page, served by the example server at `/`.

const PAGE_QUERY = `?chunkSize=${CS}&parallel=3`;

async function projectPage(browser, serverOrigin, query = PAGE_QUERY) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  attachPageLog(page);
  const counts = { posts: 0, tests: 0, testHits: 0, tusCreates: 0, tusPatches: 0 };
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.pathname === '/upload' && req.method() === 'POST') counts.posts += 1;
    if (u.pathname === '/upload' && req.method() === 'GET') counts.tests += 1;
    if (u.pathname === '/tus/' && req.method() === 'POST') counts.tusCreates += 1;
    if (u.pathname.startsWith('/tus/') && req.method() === 'PATCH') counts.tusPatches += 1;
  });
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (u.pathname === '/upload' && res.request().method() === 'GET' && res.status() === 200) counts.testHits += 1;
  });
  await page.goto(`${serverOrigin}/${query}`);
  await page.waitForFunction(() => window.uploadPage, null, { timeout: 15_000 });
  return { context, page, counts };
}

/**
 * One case of the project page: opens the page, runs `drive({ page, counts, info })` (which adds
 * the files and does what the case is about), then checks the page's file states and the bytes on
 * the server, takes the final screenshot and closes the page. Any exception is a problem.
 */
async function projectPageCase(browser, serverOrigin, id, files, drive, query = PAGE_QUERY) {
  const problems = [];
  const info = [];
  const { context, page, counts } = await projectPage(browser, serverOrigin, query);
  try {
    await drive({ page, counts, info, problems });
    await waitIdle(page, files.length);
    const names = checkPageStates(files, await pageFiles(page), problems);
    await checkOnDisk(files, id, problems, names);
  } catch (err) {
    problems.push(err.message.split('\n')[0]);
  }
  const shot = path.join(SHOTS, `${id}.png`);
  await page.screenshot({ path: shot, fullPage: true, animations: 'disabled' }).catch(() => {});
  await context.close();
  return { problems, info, shot };
}

async function pageFiles(page) {
  return page.evaluate(() => window.uploadPage.files());
}

function checkPageStates(files, states, problems) {
  const names = new Map();
  for (const f of files) {
    const s = states.find((x) => x.name === f.name);
    if (!s) problems.push(`${f.name}: not in the page's queue`);
    else if (s.state !== 'done') problems.push(`${f.name}: the page says ${s.state}${s.error ? `: ${s.error}` : ''}`);
    else names.set(f.name, s.serverName || f.name);
  }
  return names;
}

async function waitIdle(page, expected) {
  await page.waitForFunction((n) => window.uploadPage.files().length >= n, expected, { timeout: 15_000 });
  await page.evaluate(() => window.uploadPage.whenIdle());
}

const TUS_PAGE_QUERY = `${PAGE_QUERY}&protocol=tus`;

const projectCases = [
  {
    widget: 'project page',
    id: 'page-tus',
    title: 'tus (?protocol=tus): several files through the file picker',
    async run(browser, serverOrigin) {
      const files = standardFiles(this.id);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page, counts, info }) => {
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await waitIdle(page, files.length);
        info.push(`${counts.tusCreates} uploads created, ${counts.tusPatches} PATCHes`);
      }, TUS_PAGE_QUERY);
    },
  },
  {
    widget: 'project page',
    id: 'page-tus-reload',
    title: 'tus: reload in the middle, re-add the file: resumes at the server\'s offset',
    async run(browser, serverOrigin) {
      const files = bigFile(this.id);
      const total = Math.ceil(files[0].size / CS);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page, counts, info, problems }) => {
        await page.route((u) => new URL(u).pathname.startsWith('/tus/'), async (route) => {
          if (route.request().method() === 'PATCH') await sleep(120);
          return route.continue().catch(() => {});
        });
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await page.waitForFunction(() => {
          const [f] = window.uploadPage.files();
          return f && f.bytesConfirmed >= f.size / 3;
        }, null, { timeout: 30_000, polling: 20 });
        await page.reload();
        await page.waitForFunction(() => window.uploadPage, null, { timeout: 15_000 });
        const [createsAtReload, patchesAtReload] = [counts.tusCreates, counts.tusPatches];
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await waitIdle(page, files.length);
        const creates = counts.tusCreates - createsAtReload;
        const patches = counts.tusPatches - patchesAtReload;
        info.push(`${patchesAtReload} PATCHes before the reload, ${patches} after it (of ${total} chunks); ${creates} uploads created after it`);
        if (creates > 0) problems.push(`${creates} new uploads created after the reload: the stored URL was not used`);
        if (patches >= total) problems.push(`${patches} PATCHes after the reload: the upload did not resume`);
      }, TUS_PAGE_QUERY);
    },
  },
  {
    widget: 'project page',
    id: 'page-picker',
    title: 'several files through the file picker',
    async run(browser, serverOrigin) {
      const files = standardFiles(this.id);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page }) => {
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
      });
    },
  },
  {
    widget: 'project page',
    id: 'page-drop',
    title: 'several files dropped (synthetic drop, DataTransfer built in the page)',
    async run(browser, serverOrigin) {
      const files = standardFiles(this.id);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page }) => {
        const payload = files.map((f) => ({ name: f.name, b64: fs.readFileSync(f.path).toString('base64') }));
        const dataTransfer = await page.evaluateHandle((items) => {
          const dt = new DataTransfer();
          for (const item of items) {
            const bytes = Uint8Array.from(atob(item.b64), (ch) => ch.charCodeAt(0));
            dt.items.add(new File([bytes], item.name, { type: 'application/octet-stream', lastModified: 1_700_000_000_000 }));
          }
          return dt;
        }, payload);
        const zone = page.locator('[data-testid=drop-zone]');
        for (const type of ['dragenter', 'dragover', 'drop']) await zone.dispatchEvent(type, { dataTransfer });
      });
    },
  },
  {
    widget: 'project page',
    id: 'page-pause',
    title: 'pause and resume in the middle (the row\'s buttons)',
    async run(browser, serverOrigin) {
      const files = bigFile(this.id);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page, counts, info, problems }) => {
        await page.route((u) => new URL(u).pathname === '/upload', async (route) => {
          if (route.request().method() === 'POST') await sleep(120);
          return route.continue().catch(() => {});
        });
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await page.waitForFunction(() => {
          const [f] = window.uploadPage.files();
          return f && f.bytesConfirmed >= f.size / 4;
        }, null, { timeout: 30_000, polling: 20 });
        await page.screenshot({ path: path.join(SHOTS, `${this.id}-during.png`), fullPage: true, animations: 'disabled' });
        await page.locator('[data-testid=pause-button]').click();
        await page.waitForFunction(() => window.uploadPage.files()[0].state === 'paused', null, { timeout: 5000 });
        await sleep(600);
        const before = counts.posts + counts.tests;
        await sleep(1500);
        const during = counts.posts + counts.tests - before;
        if (during > 0) problems.push(`${during} requests sent while paused`);
        const [paused] = await pageFiles(page);
        info.push(`paused at ${Math.round((paused.bytesConfirmed / paused.size) * 100)}%`);
        await page.screenshot({ path: path.join(SHOTS, `${this.id}-paused.png`), fullPage: true, animations: 'disabled' });
        await page.locator('[data-testid=resume-button]').click();
      });
    },
  },
  {
    widget: 'project page',
    id: 'page-reload',
    title: 'reload in the middle, re-add the file: stored chunks skipped',
    async run(browser, serverOrigin) {
      const files = bigFile(this.id);
      const total = Math.max(Math.floor(files[0].size / CS), 1);
      return projectPageCase(browser, serverOrigin, this.id, files, async ({ page, counts, info, problems }) => {
        await page.route((u) => new URL(u).pathname === '/upload', async (route) => {
          if (route.request().method() === 'POST') await sleep(120);
          return route.continue().catch(() => {});
        });
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await page.waitForFunction(() => {
          const [f] = window.uploadPage.files();
          return f && f.bytesConfirmed >= f.size / 3;
        }, null, { timeout: 30_000, polling: 20 });
        await page.screenshot({ path: path.join(SHOTS, `${this.id}-during.png`), fullPage: true, animations: 'disabled' });
        const postsBefore = counts.posts;
        await page.reload();
        await page.waitForFunction(() => window.uploadPage, null, { timeout: 15_000 });
        const postsAtReload = counts.posts;
        const hitsAtReload = counts.testHits;
        await page.locator('[data-testid=file-input]').setInputFiles(files.map((f) => f.path));
        await waitIdle(page, files.length);
        const after = counts.posts - postsAtReload;
        const skipped = counts.testHits - hitsAtReload;
        info.push(`${postsBefore} chunk POSTs before the reload, ${after} after it (of ${total} chunks); ${skipped} chunks found stored`);
        if (after >= total) problems.push(`${after} chunk POSTs after the reload: stored chunks were not skipped (${total} chunks)`);
        if (skipped === 0) problems.push('no test request found a stored chunk after the reload');
      });
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Main.

async function main() {
  if (!fs.existsSync(SERVER_BIN)) {
    console.error(`The example server binary is missing: ${SERVER_BIN}\n` +
      'Build it first (from the repository root): cargo build --example server --features axum\n' +
      'or point SERVER_BIN at one.');
    process.exit(2);
  }
  const chromiumPath = findChromium();
  if (!chromiumPath) {
    console.error('No chromium on PATH: apt-get install -y chromium (or set CHROMIUM).');
    process.exit(2);
  }
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  fs.mkdirSync(LOGS, { recursive: true });

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chunked-upload-interop-'));
  filesRoot = path.join(root, 'files');
  fs.mkdirSync(filesRoot);

  const versions = Object.fromEntries(Object.entries(WIDGET_PACKAGES).map(([w, p]) => [w, `${p}@${packageVersion(p)}`]));
  versions.driver = `playwright-core@${packageVersion('playwright-core')}`;

  const server = await startServer(root);
  uploadDir = server.dir;
  const harness = await startHarness(server.origin);
  const cleanup = () => {
    server.child.kill('SIGTERM');
    harness.server.close();
    upstreamAgent.destroy();
    if (!process.env.KEEP) fs.rmSync(root, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const browserVersion = browser.version();

  console.log('chunked-upload interop: real widgets in headless Chromium against the example server');
  console.log(`  server   ${SERVER_BIN} at ${server.origin} (dir ${server.dir})`);
  console.log(`  harness  ${harness.origin} (test pages, node_modules; everything else proxied to the server)`);
  console.log(`  browser  ${chromiumPath} (Chromium ${browserVersion})`);
  for (const [w, v] of Object.entries(versions)) console.log(`  ${w.padEnd(14)} ${v}`);
  console.log('');

  const all = [...widgetCases(), ...projectCases].filter((c) => !ONLY || c.id.includes(ONLY));
  const results = [];
  for (const c of all) {
    const t0 = Date.now();
    current = { t0, proxied: [], page: [], server: [] };
    let outcome;
    if (c.kind === 'unsupported') {
      outcome = { skipped: c.reason, problems: [], info: [] };
    } else if (c.run) {
      outcome = await c.run(browser, server.origin);
    } else {
      outcome = await runWidgetCase(browser, harness.origin, c);
    }
    const ms = Date.now() - t0;
    const status = outcome.skipped ? 'n/a' : outcome.problems.length ? 'FAIL' : 'pass';
    const log = outcome.skipped ? null : writeCaseLog(c.id, outcome.snapshot);
    results.push({ ...c, status, ms, ...outcome });
    const extra = outcome.skipped ? ` (${outcome.skipped})` : outcome.info.length ? ` (${outcome.info.join('; ')})` : '';
    console.log(`${status.padEnd(4)} ${c.widget.padEnd(14)} ${c.title}${extra} [${(ms / 1000).toFixed(1)} s]`);
    if (status === 'FAIL') {
      for (const p of outcome.problems) console.log(`       - ${p}`);
      console.log(`       log: ${log.file}`);
      const tail = log.lines.slice(-60);
      for (const line of tail) console.log(`       | ${line.slice(0, 300)}`);
    }
  }

  await browser.close();
  cleanup();

  // The matrix: widget x case.
  console.log('\nMatrix (widget x case):');
  const widgets = [...new Set(results.map((r) => r.widget))];
  for (const w of widgets) {
    const version = versions[w] ? ` (${versions[w]})` : ' (served by the example server)';
    console.log(`  ${w}${version}`);
    for (const r of results.filter((x) => x.widget === w)) {
      console.log(`    ${r.status.padEnd(4)}  ${r.id.padEnd(29)} ${r.title}${r.skipped ? `: ${r.skipped}` : ''}`);
    }
  }
  const passed = results.filter((r) => r.status === 'pass').length;
  const failed = results.filter((r) => r.status === 'FAIL').length;
  const skipped = results.filter((r) => r.status === 'n/a').length;
  console.log(`\nChromium ${browserVersion}, ${versions.driver}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`Screenshots: ${SHOTS}`);
  console.log(`Logs: ${LOGS} (server: ${path.join(OUT, 'server.log')})`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
