/*
 * Upload page of the chunked-upload example server.
 *
 * Speaks the flow.js protocol: every file is cut into chunks, each chunk is
 * first tested with `GET /upload?flow...` (200 = already stored, 204 = absent)
 * and, when absent, sent with `POST /upload` as multipart/form-data. Because
 * the file identifier is deterministic, re-adding a file after a reload skips
 * every chunk the server already has, so the upload resumes.
 *
 * Or tus 1.0 (the "Protocol" setting, or `?protocol=tus`): `POST /tus/`
 * creates the upload, `HEAD` asks its offset, `PATCH` appends one chunk at a
 * time; the upload's URL is kept in localStorage, so re-adding the file after
 * a reload resumes at the server's offset.
 *
 * Layout of this file:
 *   1. Constants and small utilities (formatting, parsing)
 *   2. Settings (query string + the "Advanced settings" form)
 *   3. Chunk geometry and file identifiers
 *   4. Transport: test / upload one chunk, classify the server's answer
 *   5. UploadFile: the state model of one file
 *   6. Scheduler: the global pool of chunk requests, retries, back-off
 *   7. ServerProgress: optional server-side figures over Server-Sent Events
 *   8. FinishedFiles: the list of files stored on the server
 *   9. Views: rendering of the queue (pure reads of the state model)
 *  10. Input: drop zone, file pickers, folder traversal
 *  11. App: wiring, global actions and the `window.uploadPage` test hook
 *
 * No dependencies, no build step: plain ES2020 in a single IIFE.
 */
(() => {
  'use strict';

  /* ======================================================================= *
   * 1. Constants and utilities
   * ======================================================================= */

  /** Endpoints, relative so the page also works behind a path prefix. */
  const ENDPOINTS = Object.freeze({
    upload: 'upload',
    tus: 'tus/',
    files: 'files',
    progressEvents: 'progress/events',
  });

  const KIB = 1024;
  const DEFAULT_CHUNK_SIZE = 1024 * KIB;
  const MAX_CHUNK_SIZE = 1024 * 1024 * KIB; // 1 GiB: a sanity bound, not a protocol limit
  const DEFAULT_PARALLEL = 3;
  const MAX_PARALLEL = 16;

  /** Give up on a chunk after this many failed attempts (first try included). */
  const MAX_ATTEMPTS = 8;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;
  /** Upper bound for a server-provided Retry-After. */
  const RETRY_AFTER_CAP_MS = 10 * 60 * 1000;
  /** How often the queue is re-sampled (speed, countdowns) while uploading. */
  const TICK_MS = 500;
  /** Time constant of the exponential moving average of the speed. */
  const SPEED_WINDOW_MS = 3000;
  /**
   * How many times a file may be re-verified from chunk 1 when the server
   * reports a chunk missing after every chunk had been confirmed.
   */
  const MAX_VERIFY_PASSES = 2;
  /** Statuses that are final for a file: retrying cannot help. */
  const FATAL_STATUSES = new Set([400, 409, 413, 415]);
  /** Coalescing delay of finished-list reloads triggered by completed files. */
  const FINISHED_REFRESH_DELAY_MS = 300;
  /** Keep the progress stream open this long after the queue went idle. */
  const PROGRESS_STREAM_LINGER_MS = 5000;
  /** Close the progress stream after this many errors without a successful open. */
  const PROGRESS_STREAM_MAX_ERRORS = 3;
  /** Wait this long before trying the progress stream again after giving up. */
  const PROGRESS_STREAM_COOLDOWN_MS = 60000;

  const HTTP_REASONS = Object.freeze({
    400: 'Bad request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not found',
    408: 'Request timeout',
    409: 'Conflict',
    413: 'Too large',
    415: 'Unsupported file',
    429: 'Too many requests',
    500: 'Server error',
    502: 'Bad gateway',
    503: 'Server unavailable',
    504: 'Gateway timeout',
  });

  const clamp = (value, min, max) => Math.min(Math.max(value, min), max);

  /** Parses JSON, returning null instead of throwing on empty or invalid text. */
  function parseJson(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  /** "HTTP 503 Server unavailable", or "Network error" for status 0. */
  function describeStatus(status) {
    if (!status) return 'Network error';
    const reason = HTTP_REASONS[status];
    return reason ? `HTTP ${status} ${reason}` : `HTTP ${status}`;
  }

  /** Human-readable size with binary units: "512 B", "1.5 KiB", "4.00 GiB". */
  function formatBytes(bytes) {
    if (!Number.isFinite(bytes) || bytes < 0) return '—';
    if (bytes < KIB) return `${bytes} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let value = bytes / KIB;
    let unit = 0;
    while (value >= KIB && unit < units.length - 1) {
      value /= KIB;
      unit += 1;
    }
    const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
    return `${value.toFixed(digits)} ${units[unit]}`;
  }

  /** "3 s", "2 min 5 s", "1 h 4 min". */
  function formatDuration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '—';
    const total = Math.ceil(seconds);
    if (total < 60) return `${total} s`;
    if (total < 3600) {
      const s = total % 60;
      return s ? `${Math.floor(total / 60)} min ${s} s` : `${total / 60} min`;
    }
    const minutes = Math.floor(total / 60);
    const m = minutes % 60;
    return m ? `${Math.floor(minutes / 60)} h ${m} min` : `${minutes / 60} h`;
  }

  const dateFormatter = new Intl.DateTimeFormat(undefined, {
    dateStyle: 'medium',
    timeStyle: 'short',
  });

  function formatDate(ms) {
    return Number.isFinite(ms) ? dateFormatter.format(new Date(ms)) : '—';
  }

  /** Exponential back-off with ±15 % jitter: ~0.5 s, 1 s, 2 s, 4 s ... capped at 30 s. */
  function backoffDelay(attempt) {
    const base = Math.min(BACKOFF_BASE_MS * 2 ** Math.max(attempt - 1, 0), BACKOFF_CAP_MS);
    const jittered = base * (0.85 + Math.random() * 0.3);
    return Math.round(Math.min(jittered, BACKOFF_CAP_MS));
  }

  /** Retry-After is either delay-seconds or an HTTP date. Returns ms or null. */
  function parseRetryAfter(value) {
    if (!value) return null;
    const text = value.trim();
    if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, RETRY_AFTER_CAP_MS);
    const date = Date.parse(text);
    if (Number.isNaN(date)) return null;
    return clamp(date - Date.now(), 0, RETRY_AFTER_CAP_MS);
  }

  /** Parses an integer query parameter, falling back when missing or out of range. */
  function parseIntParam(raw, fallback, min, max) {
    if (raw === null || raw.trim() === '') return fallback;
    const value = Number(raw);
    return Number.isInteger(value) && value >= min && value <= max ? value : fallback;
  }

  /* ======================================================================= *
   * 2. Settings
   * ======================================================================= */

  /**
   * Upload settings. Defaults can be overridden from the query string, e.g.
   * `?chunkSize=65536&parallel=3` (chunkSize in bytes), which lets automated
   * tests use small chunks.
   */
  class Settings {
    constructor(search) {
      const params = new URLSearchParams(search);
      /** Nominal chunk size in bytes, used for files added from now on. */
      this.chunkSize = parseIntParam(params.get('chunkSize'), DEFAULT_CHUNK_SIZE, 1, MAX_CHUNK_SIZE);
      /** Maximum number of chunk requests in flight, all files together. */
      this.parallel = parseIntParam(params.get('parallel'), DEFAULT_PARALLEL, 1, MAX_PARALLEL);
      /** 'flow' (chunks in parallel) or 'tus' (appends in order), for files added from now on. */
      this.protocol = params.get('protocol') === 'tus' ? 'tus' : 'flow';
    }

    /** Binds the inputs of the settings form; `onChange` gets the setting name. */
    bind(chunkInput, parallelInput, protocolInput, onChange) {
      chunkInput.value = String(this.chunkSize / KIB);
      parallelInput.value = String(this.parallel);
      protocolInput.value = this.protocol;
      protocolInput.addEventListener('change', () => {
        this.protocol = protocolInput.value === 'tus' ? 'tus' : 'flow';
        onChange('protocol');
      });

      chunkInput.addEventListener('change', () => {
        const bytes = Math.round(Number(chunkInput.value) * KIB);
        if (chunkInput.value !== '' && Number.isFinite(bytes) && bytes >= 1 && bytes <= MAX_CHUNK_SIZE) {
          this.chunkSize = bytes;
          onChange('chunkSize');
        }
        chunkInput.value = String(this.chunkSize / KIB); // normalise or revert
      });

      parallelInput.addEventListener('change', () => {
        const value = Number(parallelInput.value);
        if (parallelInput.value !== '' && Number.isInteger(value) && value >= 1 && value <= MAX_PARALLEL) {
          this.parallel = value;
          onChange('parallel');
        }
        parallelInput.value = String(this.parallel);
      });
    }
  }

  /* ======================================================================= *
   * 3. Chunk geometry and identifiers (flow.js defaults, forceChunkSize off)
   * ======================================================================= */

  /**
   * Number of chunks: the last chunk absorbs the remainder, so it is between
   * one and two chunk sizes long; an empty file is one empty chunk.
   * Plain Number arithmetic is exact far beyond 4 GiB (up to 2^53 bytes).
   */
  function countChunks(size, chunkSize) {
    return Math.max(Math.floor(size / chunkSize), 1);
  }

  /** Byte range [start, end) of the 1-based chunk `number`. */
  function chunkRange(number, size, chunkSize, totalChunks) {
    const start = (number - 1) * chunkSize;
    const end = number === totalChunks ? size : start + chunkSize;
    return { start, end };
  }

  const stripUnsafe = (text) => text.replace(/[^0-9a-zA-Z_-]/g, '');

  /**
   * Deterministic identifier: the same file gets the same identifier after a
   * reload, which is what makes an upload resumable.
   */
  function makeIdentifier(file, relativePath) {
    let id = `${file.size}-${file.lastModified}-${stripUnsafe(file.name)}`;
    if (relativePath && relativePath !== file.name) id += `-${stripUnsafe(relativePath)}`;
    return id;
  }

  /* ======================================================================= *
   * 4. Transport
   * ======================================================================= */

  /*
   * Both requests resolve to a result object, never reject:
   *   { type: 'present' }                      test: chunk already stored
   *   { type: 'absent' }                       test: chunk must be uploaded
   *   { type: 'stored' }                       upload: chunk accepted
   *   { type: 'assembled', file: {name,size} } this chunk completed the file
   *   { type: 'retry', message, retryAfterMs } transient: try again later
   *   { type: 'fatal', message }               final for this file
   *   { type: 'aborted' }                      cancelled through the AbortSignal
   */

  /** The eight flow.js parameters describing one chunk, in protocol order. */
  function flowParams(upload, number) {
    const { start, end } = upload.range(number);
    return [
      ['flowChunkNumber', String(number)],
      ['flowChunkSize', String(upload.chunkSize)],
      ['flowCurrentChunkSize', String(end - start)],
      ['flowTotalSize', String(upload.size)],
      ['flowIdentifier', upload.identifier],
      ['flowFilename', upload.name],
      ['flowRelativePath', upload.relativePath],
      ['flowTotalChunks', String(upload.totalChunks)],
    ];
  }

  /**
   * Turns an HTTP answer into a result object.
   * @param {'test'|'upload'} kind
   */
  function classifyResponse(kind, status, bodyText, retryAfterHeader) {
    const body = parseJson(bodyText);
    const serverMessage = body && typeof body.error === 'string' && body.error ? body.error : null;

    if (status >= 200 && status < 300) {
      if (kind === 'test' && status === 204) return { type: 'absent' };
      if (body && body.success === false) {
        return { type: 'fatal', message: serverMessage || 'The server refused the chunk' };
      }
      if (body && body.status === 'assembled') {
        return { type: 'assembled', file: body.file && typeof body.file === 'object' ? body.file : null };
      }
      return { type: kind === 'test' ? 'present' : 'stored' };
    }

    const message = serverMessage || describeStatus(status);
    if (FATAL_STATUSES.has(status) || (body && body.preventRetry === true)) {
      return { type: 'fatal', message };
    }
    if (status === 0 || status === 408 || status === 429 || status >= 500) {
      return { type: 'retry', message, retryAfterMs: parseRetryAfter(retryAfterHeader) };
    }
    // Any other answer to a test (e.g. 404/405 from a server without chunk
    // testing) means "upload it", as in flow.js. For an upload it is final.
    if (kind === 'test') return { type: 'absent' };
    return { type: 'fatal', message };
  }

  const ABORTED = Object.freeze({ type: 'aborted' });
  const NETWORK_ERROR = Object.freeze({ type: 'retry', message: 'Network error', retryAfterMs: null });

  const transport = {
    /** `GET /upload?flow...`: is this chunk already stored? */
    async test(upload, number, signal) {
      const query = flowParams(upload, number)
        .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
        .join('&');
      try {
        const response = await fetch(`${ENDPOINTS.upload}?${query}`, {
          method: 'GET',
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { Accept: 'application/json' },
          signal,
        });
        const text = await response.text();
        return classifyResponse('test', response.status, text, response.headers.get('Retry-After'));
      } catch {
        return signal.aborted ? ABORTED : NETWORK_ERROR;
      }
    },

    /**
     * `POST /upload` as multipart/form-data: the flow fields first, then the
     * chunk as the `file` part. XMLHttpRequest rather than fetch, because its
     * upload progress events report the bytes in flight.
     * @param {(fraction: number) => void} onProgress share of the body sent
     */
    upload(upload, number, signal, onProgress) {
      return new Promise((resolve) => {
        if (signal.aborted) {
          resolve(ABORTED);
          return;
        }
        const form = new FormData();
        for (const [key, value] of flowParams(upload, number)) form.append(key, value);
        const { start, end } = upload.range(number);
        form.append('file', upload.file.slice(start, end), upload.name);

        const xhr = new XMLHttpRequest();
        const onAbortSignal = () => xhr.abort();
        const finish = (result) => {
          signal.removeEventListener('abort', onAbortSignal);
          resolve(result);
        };

        xhr.open('POST', ENDPOINTS.upload);
        xhr.setRequestHeader('Accept', 'application/json');
        xhr.upload.addEventListener('progress', (event) => {
          if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
        });
        xhr.addEventListener('load', () => {
          finish(classifyResponse('upload', xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
        });
        xhr.addEventListener('error', () => finish(NETWORK_ERROR));
        xhr.addEventListener('timeout', () => finish(NETWORK_ERROR));
        xhr.addEventListener('abort', () => finish(ABORTED));
        signal.addEventListener('abort', onAbortSignal, { once: true });
        xhr.send(form);
      });
    },
  };

  /*
   * tus 1.0: one request at a time per file. `test` finds the upload (the URL
   * kept in localStorage, then HEAD) or creates it (POST), and learns the
   * server's offset; `upload` appends the next chunk at that offset (PATCH).
   * Result objects as above, plus `stored` meaning "appended, more to send".
   */
  const TUS_HEADERS = Object.freeze({ 'Tus-Resumable': '1.0.0' });
  const tusKey = (upload) => `chunked-upload:tus:${upload.identifier}`;

  function tusMetadata(upload) {
    const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
    const pairs = [['filename', upload.name], ['relativePath', upload.relativePath]];
    if (upload.file.type) pairs.push(['filetype', upload.file.type]);
    return pairs.map(([key, value]) => `${key} ${b64(value)}`).join(',');
  }

  /** Turns a tus answer into a result object (after the offset was read from it). */
  function classifyTus(upload, status, bodyText, retryAfterHeader) {
    const message = (bodyText || '').trim().slice(0, 200) || describeStatus(status);
    if (status === 409 || status === 460) {
      upload.tusOffsetKnown = false; // ask the server (HEAD) before sending again
      return { type: 'retry', message, retryAfterMs: 0 };
    }
    if (status === 404 || status === 410) {
      // Gone (expired, or removed): start over with a new upload.
      upload.forgetTus();
      return { type: 'retry', message: 'The upload expired on the server; starting over', retryAfterMs: 0 };
    }
    if (status === 0 || status === 408 || status === 423 || status === 429 || status >= 500) {
      upload.tusOffsetKnown = false;
      return { type: 'retry', message, retryAfterMs: parseRetryAfter(retryAfterHeader) };
    }
    return { type: 'fatal', message };
  }

  const tusTransport = {
    async test(upload, number, signal) {
      const request = (method, url, headers) =>
        fetch(url, { method, credentials: 'same-origin', cache: 'no-store', headers: { ...TUS_HEADERS, ...headers }, signal });
      try {
        if (!upload.tusUrl) upload.tusUrl = localStorage.getItem(tusKey(upload));
        if (upload.tusUrl) {
          const head = await request('HEAD', upload.tusUrl, {});
          if (head.status === 200 || head.status === 204) {
            upload.setTusOffset(Number.parseInt(head.headers.get('Upload-Offset'), 10));
            if (upload.tusOffset === upload.size) return { type: 'assembled', file: { name: upload.name } };
            return { type: 'absent' };
          }
          if (head.status !== 404 && head.status !== 410 && head.status !== 403) {
            return classifyTus(upload, head.status, '', head.headers.get('Retry-After'));
          }
          upload.forgetTus(); // gone: create a new one
        }
        const created = await request('POST', ENDPOINTS.tus, {
          'Upload-Length': String(upload.size),
          'Upload-Metadata': tusMetadata(upload),
        });
        const text = await created.text();
        const location = created.headers.get('Location');
        if (created.status !== 201 || !location) return classifyTus(upload, created.status, text, created.headers.get('Retry-After'));
        upload.tusUrl = new URL(location, new URL(ENDPOINTS.tus, window.location.href)).pathname;
        try {
          localStorage.setItem(tusKey(upload), upload.tusUrl);
        } catch {
          // Private mode: the upload still works, it just cannot resume after a reload.
        }
        upload.setTusOffset(0);
        if (upload.size === 0) return { type: 'assembled', file: { name: upload.name } };
        return { type: 'absent' };
      } catch {
        return signal.aborted ? ABORTED : NETWORK_ERROR;
      }
    },

    async upload(upload, number, signal, onProgress) {
      if (!upload.tusUrl || !upload.tusOffsetKnown) {
        const found = await this.test(upload, number, signal);
        if (found.type !== 'absent') return found;
      }
      const { start, end } = upload.range(number);
      return new Promise((resolve) => {
        if (signal.aborted) {
          resolve(ABORTED);
          return;
        }
        const xhr = new XMLHttpRequest();
        const onAbortSignal = () => xhr.abort();
        const finish = (result) => {
          signal.removeEventListener('abort', onAbortSignal);
          resolve(result);
        };
        xhr.open('PATCH', upload.tusUrl);
        xhr.setRequestHeader('Tus-Resumable', '1.0.0');
        xhr.setRequestHeader('Upload-Offset', String(start));
        xhr.setRequestHeader('Content-Type', 'application/offset+octet-stream');
        xhr.upload.addEventListener('progress', (event) => {
          if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
        });
        xhr.addEventListener('load', () => {
          if (xhr.status === 204) {
            upload.setTusOffset(Number.parseInt(xhr.getResponseHeader('Upload-Offset'), 10));
            if (upload.tusOffset === upload.size) finish({ type: 'assembled', file: { name: upload.name } });
            else finish({ type: 'stored' });
            return;
          }
          finish(classifyTus(upload, xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')));
        });
        const broken = () => {
          upload.tusOffsetKnown = false; // part of the body may have been kept
          finish(NETWORK_ERROR);
        };
        xhr.addEventListener('error', broken);
        xhr.addEventListener('timeout', broken);
        xhr.addEventListener('abort', () => {
          upload.tusOffsetKnown = false;
          finish(ABORTED);
        });
        signal.addEventListener('abort', onAbortSignal, { once: true });
        xhr.send(upload.file.slice(start, end));
      });
    },

    /** Terminates a cancelled upload on the server (best effort). */
    cancel(upload) {
      if (!upload.tusUrl) return;
      fetch(upload.tusUrl, { method: 'DELETE', credentials: 'same-origin', headers: TUS_HEADERS }).catch(() => {});
      upload.forgetTus();
    },
  };

  /* ======================================================================= *
   * 5. UploadFile: the state model of one file
   * ======================================================================= */

  /** Exponential moving average of a transfer rate, in bytes per second. */
  class SpeedMeter {
    constructor(windowMs) {
      this.windowMs = windowMs;
      this.reset();
    }

    reset() {
      this.rate = 0;
      this.lastBytes = null;
      this.lastTime = 0;
      this.primed = false;
    }

    /** Feeds the running total of bytes sent at time `now` (ms). */
    sample(totalBytes, now) {
      if (this.lastBytes === null) {
        this.lastBytes = totalBytes;
        this.lastTime = now;
        return;
      }
      const elapsed = now - this.lastTime;
      if (elapsed <= 0) return;
      const instant = ((totalBytes - this.lastBytes) * 1000) / elapsed;
      const alpha = 1 - Math.exp(-elapsed / this.windowMs);
      this.rate = this.primed ? this.rate + alpha * (instant - this.rate) : instant;
      this.primed = true;
      this.lastBytes = totalBytes;
      this.lastTime = now;
    }
  }

  let nextKey = 1;

  /**
   * One file of the queue.
   *
   * Chunks are handed out in order: first any chunk put back (`requeued`,
   * after a pause, an abort or a transient error), then `nextChunk`, the first
   * chunk never started. In-flight requests live in `jobs` (owned by the
   * Scheduler). This keeps memory small even for files with many chunks.
   *
   * `status` is the lifecycle (active, done, failed, cancelled); `state()`
   * derives what the user sees from it and from the transient fields.
   */
  class UploadFile {
    constructor(file, relativePath, chunkSize, protocol = 'flow') {
      this.key = String(nextKey++);
      this.file = file;
      this.name = file.name;
      this.size = file.size;
      this.relativePath = relativePath || file.name;
      this.identifier = makeIdentifier(file, this.relativePath);
      this.chunkSize = chunkSize;
      /** 'flow' or 'tus'. A tus file is one job at a time: chunk 1, sent again and again. */
      this.protocol = protocol;
      this.totalChunks = protocol === 'tus' ? 1 : countChunks(this.size, chunkSize);
      /** tus: the upload's URL, and the server's offset (the next append starts there). */
      this.tusUrl = null;
      this.tusOffset = 0;
      this.tusOffsetKnown = false;

      /** @type {'active'|'done'|'failed'|'cancelled'} */
      this.status = 'active';
      this.paused = false;
      this.error = null;
      /** Final name on the server (may differ, e.g. "photo (1).jpg"). */
      this.serverName = null;

      this.nextChunk = 1;
      /** @type {Map<number, {phase: string, attempts: number}>} */
      this.requeued = new Map();
      /** @type {Map<number, object>} in-flight jobs by chunk number */
      this.jobs = new Map();

      this.confirmedChunks = 0;
      /** Bytes the server has confirmed (stored or already present). */
      this.bytesConfirmed = 0;
      /** Bytes actually transmitted (monotonic; skipped chunks excluded): feeds the speed. */
      this.bytesSent = 0;

      /** No new chunk of this file starts before this time (ms), after a transient error. */
      this.retryAt = 0;
      this.retryReason = null;
      /** All chunks confirmed, waiting for the server to report the file assembled. */
      this.finalizing = false;
      this.verifyPasses = 0;

      this.speed = new SpeedMeter(SPEED_WINDOW_MS);
      /** Latest server-side progress entry (from /progress/events), if any. */
      this.serverProgress = null;
    }

    range(number) {
      if (this.protocol === 'tus') {
        return { start: this.tusOffset, end: Math.min(this.size, this.tusOffset + this.chunkSize) };
      }
      return chunkRange(number, this.size, this.chunkSize, this.totalChunks);
    }

    /** tus: the server says its offset is `offset`. */
    setTusOffset(offset) {
      this.tusOffset = Number.isFinite(offset) ? clamp(offset, 0, this.size) : 0;
      this.tusOffsetKnown = Number.isFinite(offset);
      this.bytesConfirmed = this.tusOffset;
    }

    /** tus: forgets the upload's URL (it is gone, or cancelled). */
    forgetTus() {
      try {
        localStorage.removeItem(`chunked-upload:tus:${this.identifier}`);
      } catch {
        // No storage: nothing to forget.
      }
      this.tusUrl = null;
      this.tusOffsetKnown = false;
    }

    /** Active and not paused: the file still needs the network. */
    get isBusy() {
      return this.status === 'active' && !this.paused;
    }

    /** Bytes of chunks currently being sent. */
    get bytesInFlight() {
      let total = 0;
      for (const job of this.jobs.values()) total += job.sent;
      return total;
    }

    /** Bytes shown to the user: confirmed plus in flight. */
    get bytesShown() {
      return Math.min(this.size, this.bytesConfirmed + this.bytesInFlight);
    }

    hasPendingChunk() {
      return this.requeued.size > 0 || this.nextChunk <= this.totalChunks;
    }

    canStart(now) {
      return this.isBusy && this.retryAt <= now && this.hasPendingChunk();
    }

    /** The user-visible state at time `now`. */
    state(now = Date.now()) {
      if (this.status !== 'active') return this.status;
      if (this.paused) return 'paused';
      if (this.finalizing) return 'assembling';
      if (this.retryAt > now) return 'retrying';
      if (this.jobs.size === 0) return 'queued';
      if (this.protocol === 'tus') return 'uploading';
      if (!this.hasPendingChunk() && this.allJobsSent()) return 'assembling';
      return 'uploading';
    }

    /** True when every in-flight job is an upload whose body has been fully sent. */
    allJobsSent() {
      for (const job of this.jobs.values()) {
        if (job.phase !== 'upload' || job.sent < job.length) return false;
      }
      return true;
    }

    /** Takes the next chunk to process: the lowest requeued one, else the next new one. */
    takeChunk() {
      if (this.requeued.size > 0) {
        let lowest = Infinity;
        for (const number of this.requeued.keys()) lowest = Math.min(lowest, number);
        const task = this.requeued.get(lowest);
        this.requeued.delete(lowest);
        return { number: lowest, phase: task.phase, attempts: task.attempts };
      }
      const number = this.nextChunk;
      this.nextChunk += 1;
      return { number, phase: 'test', attempts: 0 };
    }

    /** Puts a chunk back to be processed again. */
    requeue(number, phase, attempts) {
      this.requeued.set(number, { phase, attempts });
    }

    /** Records a chunk the server has (stored now or before). */
    confirmChunk(number) {
      const { start, end } = this.range(number);
      this.confirmedChunks += 1;
      this.bytesConfirmed += end - start;
      if (this.confirmedChunks === this.totalChunks) {
        // Every chunk is on the server but no answer said "assembled" (e.g.
        // that answer was lost to a pause). Ask again with a test request.
        this.finalizing = true;
        this.requeue(this.totalChunks, 'finalize', 0);
      }
    }

    /** The server reported a chunk missing after all were confirmed: check every chunk again. */
    restartVerification() {
      this.verifyPasses += 1;
      this.nextChunk = 1;
      this.requeued.clear();
      this.confirmedChunks = 0;
      this.bytesConfirmed = 0;
      this.finalizing = false;
    }

    markAssembled(info) {
      this.status = 'done';
      this.serverName = info && typeof info.name === 'string' && info.name ? info.name : this.name;
      this.bytesConfirmed = this.size;
      this.finalizing = false;
      this.retryAt = 0;
      this.requeued.clear();
      this.speed.reset();
    }

    markFailed(message) {
      this.status = 'failed';
      this.error = message;
      this.retryAt = 0;
      this.speed.reset();
    }

    /** Makes a failed file active again; confirmed chunks are kept. */
    prepareRetry() {
      this.status = 'active';
      this.paused = false;
      this.error = null;
      this.retryAt = 0;
      this.retryReason = null;
      this.verifyPasses = 0;
      for (const task of this.requeued.values()) task.attempts = 0;
    }

    /** A plain snapshot for the test hook. */
    snapshot() {
      return {
        name: this.name,
        relativePath: this.relativePath,
        identifier: this.identifier,
        state: this.state(),
        serverName: this.serverName,
        protocol: this.protocol,
        tusUrl: this.tusUrl,
        bytesConfirmed: this.bytesConfirmed,
        size: this.size,
        error: this.error,
      };
    }
  }

  /* ======================================================================= *
   * 6. Scheduler: a global pool of chunk requests
   * ======================================================================= */

  /**
   * Runs chunk jobs, at most `limit` at a time across all files, taking files
   * in queue order and chunks in order within a file. A job holds one slot
   * and performs at most one request at a time: the test GET, then (if the
   * chunk is absent) the POST. A job waiting for a retry holds no slot.
   *
   * Events reported through `emit(type, file)`: 'change', 'done', 'failed'.
   */
  class Scheduler {
    constructor({ files, transport: net, tus, limit, emit }) {
      this.files = files; // live array owned by the App
      this.flowNet = net;
      this.tusNet = tus;
      this.limit = limit;
      this.emit = emit;
      this.active = 0;
      this.wakeTimer = null;
    }

    setLimit(limit) {
      this.limit = limit;
      this.pump();
    }

    /** Starts as many jobs as the pool allows, then arms a timer for the next retry. */
    pump() {
      const now = Date.now();
      while (this.active < this.limit) {
        const file = this.files.find((candidate) => candidate.canStart(now));
        if (!file) break;
        this.start(file, file.takeChunk());
      }
      this.armWakeTimer(now);
    }

    armWakeTimer(now) {
      let wakeAt = Infinity;
      for (const file of this.files) {
        if (file.isBusy && file.retryAt > now && file.hasPendingChunk()) {
          wakeAt = Math.min(wakeAt, file.retryAt);
        }
      }
      clearTimeout(this.wakeTimer);
      this.wakeTimer = null;
      if (wakeAt !== Infinity) {
        this.wakeTimer = setTimeout(() => {
          this.wakeTimer = null;
          this.pump();
        }, wakeAt - now + 10);
      }
    }

    start(file, task) {
      const { start, end } = file.range(task.number);
      const job = {
        file,
        number: task.number,
        phase: task.phase, // 'test' | 'upload' | 'finalize'
        attempts: task.attempts,
        length: end - start,
        sent: 0,
        controller: new AbortController(),
        cancelled: false,
        released: false,
      };
      file.jobs.set(job.number, job);
      this.active += 1;
      this.emit('change', file);

      this.execute(job)
        .catch((error) => {
          // A bug, not a network condition: surface it instead of hanging.
          console.error('chunked-upload: unexpected error', error);
          if (!job.cancelled) this.failFile(job, `Unexpected error: ${error && error.message}`);
        })
        .finally(() => {
          this.release(job);
          this.pump();
        });
    }

    /** Frees the job's pool slot (idempotent). */
    release(job) {
      if (job.released) return;
      job.released = true;
      this.active -= 1;
      if (job.file.jobs.get(job.number) === job) job.file.jobs.delete(job.number);
    }

    /**
     * Aborts every in-flight request of a file. With `requeue`, the chunks are
     * put back to be tested again later (a request aborted mid-way may or may
     * not have reached the server).
     */
    abortJobs(file, requeue) {
      for (const job of Array.from(file.jobs.values())) {
        job.cancelled = true;
        if (requeue) file.requeue(job.number, job.phase === 'finalize' ? 'finalize' : 'test', job.attempts);
        this.release(job);
        job.controller.abort();
      }
    }

    async execute(job) {
      const { file } = job;
      const { signal } = job.controller;
      const net = file.protocol === 'tus' ? this.tusNet : this.flowNet;

      if (job.phase === 'test' || job.phase === 'finalize') {
        const result = await net.test(file, job.number, signal);
        if (job.cancelled) return;
        if (result.type !== 'absent') {
          this.handleResult(job, result);
          return;
        }
        if (job.phase === 'finalize') {
          this.handleMissingChunk(job);
          return;
        }
        job.phase = 'upload';
        this.emit('change', file);
      }

      // tus: the range starts at the offset the test just learnt.
      const range = file.range(job.number);
      job.length = range.end - range.start;
      const result = await net.upload(file, job.number, signal, (fraction) => {
        this.onUploadProgress(job, fraction);
      });
      if (job.cancelled) return;
      this.handleResult(job, result);
    }

    onUploadProgress(job, fraction) {
      if (job.cancelled) return;
      const sent = Math.min(job.length, Math.round(job.length * fraction));
      if (sent <= job.sent) return;
      job.file.bytesSent += sent - job.sent;
      job.sent = sent;
      this.emit('change', job.file);
    }

    handleResult(job, result) {
      const { file } = job;
      this.release(job);
      switch (result.type) {
        case 'assembled':
          this.countSent(job);
          this.completeFile(file, result.file);
          return;
        case 'stored':
          this.countSent(job);
          if (file.protocol === 'tus') {
            // Appended: the next append starts at the new offset.
            file.retryAt = 0;
            file.requeue(job.number, 'upload', 0);
          } else {
            file.confirmChunk(job.number);
          }
          this.emit('change', file);
          return;
        case 'present':
          if (job.phase === 'finalize') {
            this.scheduleRetry(job, 'Waiting for the server to assemble the file', null);
          } else {
            file.confirmChunk(job.number);
            this.emit('change', file);
          }
          return;
        case 'retry':
          this.scheduleRetry(job, result.message, result.retryAfterMs);
          return;
        case 'fatal':
          this.failFile(job, result.message);
          return;
        default:
          // Aborted without being cancelled by us (e.g. by the browser): try again.
          file.requeue(job.number, job.phase, job.attempts);
          this.emit('change', file);
      }
    }

    /** Counts the unreported tail of a completed upload as sent. */
    countSent(job) {
      if (job.phase !== 'upload') return;
      job.file.bytesSent += job.length - job.sent;
      job.sent = job.length;
    }

    scheduleRetry(job, message, retryAfterMs) {
      const { file } = job;
      const attempts = job.attempts + 1;
      if (attempts >= MAX_ATTEMPTS) {
        const reason =
          job.phase === 'finalize'
            ? 'the server has every chunk but never reported the file as assembled'
            : `${message} (gave up after ${MAX_ATTEMPTS} attempts)`;
        file.requeue(job.number, job.phase, 0);
        this.failFile(job, reason);
        return;
      }
      file.requeue(job.number, job.phase, attempts);
      const delay = retryAfterMs !== null && retryAfterMs !== undefined ? retryAfterMs : backoffDelay(attempts);
      file.retryAt = Math.max(file.retryAt, Date.now() + delay);
      file.retryReason = message;
      file.speed.reset();
      this.emit('change', file);
    }

    /** A chunk vanished after every chunk had been confirmed: verify the whole file again. */
    handleMissingChunk(job) {
      const { file } = job;
      this.release(job);
      if (file.verifyPasses >= MAX_VERIFY_PASSES) {
        file.requeue(job.number, 'finalize', 0);
        this.failFile(job, 'the server keeps losing chunks of this file');
        return;
      }
      file.restartVerification();
      this.emit('change', file);
    }

    completeFile(file, info) {
      if (file.status !== 'active') return;
      this.abortJobs(file, false); // remaining requests are redundant now
      file.markAssembled(info);
      this.emit('done', file);
    }

    failFile(job, message) {
      const { file } = job;
      this.release(job);
      if (file.status !== 'active') return;
      if (!file.requeued.has(job.number)) file.requeue(job.number, job.phase === 'finalize' ? 'finalize' : 'test', 0);
      this.abortJobs(file, true);
      file.markFailed(message);
      this.emit('failed', file);
    }
  }

  /* ======================================================================= *
   * 7. ServerProgress: server-side figures over Server-Sent Events
   * ======================================================================= */

  /**
   * Subscribes to `GET /progress/events` while uploads are running. The
   * endpoint is optional: when it is missing (the browser closes the stream
   * on a non-200 answer) or keeps failing, the stream is closed and the page
   * silently relies on its own counting.
   */
  class ServerProgress {
    constructor(url, onEntry) {
      this.url = url;
      this.onEntry = onEntry;
      this.source = null;
      this.unavailable = false; // endpoint missing: never try again
      this.cooldownUntil = 0;
      this.errors = 0;
      this.everOpened = false;
      this.lingerTimer = null;
    }

    /** Opens the stream if it is not open and allowed. */
    ensureOpen() {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
      if (this.source || this.unavailable || typeof EventSource !== 'function') return;
      if (Date.now() < this.cooldownUntil) return;

      const source = new EventSource(this.url);
      this.source = source;
      this.errors = 0;
      source.addEventListener('open', () => {
        this.errors = 0;
        this.everOpened = true;
      });
      source.addEventListener('progress', (event) => {
        const entry = parseJson(event.data);
        if (entry && typeof entry.identifier === 'string') this.onEntry(entry);
      });
      source.addEventListener('error', () => this.onError(source));
    }

    onError(source) {
      if (source !== this.source) return;
      this.errors += 1;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (non-200 answer, wrong content type ...).
        if (!this.everOpened) this.unavailable = true;
        else this.cooldownUntil = Date.now() + PROGRESS_STREAM_COOLDOWN_MS;
        this.close();
      } else if (this.errors >= PROGRESS_STREAM_MAX_ERRORS) {
        // Still auto-reconnecting: stop it rather than retrying forever.
        this.cooldownUntil = Date.now() + PROGRESS_STREAM_COOLDOWN_MS;
        this.close();
      }
    }

    /** Closes the stream a little after the queue went idle, to catch the final events. */
    closeSoon() {
      if (!this.source || this.lingerTimer) return;
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = null;
        this.close();
      }, PROGRESS_STREAM_LINGER_MS);
    }

    close() {
      if (this.source) this.source.close();
      this.source = null;
    }
  }

  /* ======================================================================= *
   * 8. FinishedFiles: the files stored on the server
   * ======================================================================= */

  class FinishedFiles {
    constructor(listEl, statusEl, onSettled) {
      this.listEl = listEl;
      this.statusEl = statusEl;
      this.onSettled = onSettled;
      this.loading = false;
      this.wanted = false;
      this.timer = null;
      this.lastText = null;
    }

    /** True while a reload is scheduled or running. */
    get busy() {
      return this.loading || this.timer !== null;
    }

    /**
     * Reloads the list. Calls are coalesced: completions in quick succession
     * cause one trailing reload (after FINISHED_REFRESH_DELAY_MS) rather than
     * one request each. `immediate` skips the delay (page load, Refresh button).
     */
    refresh({ immediate = false } = {}) {
      this.wanted = true;
      if (this.loading) return; // reloads again when the current load ends
      if (this.timer !== null) {
        if (!immediate) return;
        clearTimeout(this.timer);
        this.timer = null;
      }
      if (immediate) {
        this.run();
      } else {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.run();
        }, FINISHED_REFRESH_DELAY_MS);
      }
    }

    run() {
      this.wanted = false;
      this.loading = true;
      this.load().finally(() => {
        this.loading = false;
        if (this.wanted) this.refresh();
        else this.onSettled();
      });
    }

    async load() {
      let response;
      try {
        response = await fetch(ENDPOINTS.files, {
          credentials: 'same-origin',
          cache: 'no-store',
          headers: { Accept: 'application/json' },
        });
      } catch {
        this.showStatus('Could not load the finished files (network error).');
        return;
      }
      const text = await response.text().catch(() => '');
      const data = parseJson(text);
      if (!response.ok || !Array.isArray(data)) {
        this.lastText = null;
        this.showStatus(`Could not load the finished files (${describeStatus(response.status)}).`);
        return;
      }
      if (text === this.lastText) return; // unchanged: keep the DOM as it is
      this.lastText = text;
      this.render(data.filter((item) => item && typeof item.name === 'string'));
    }

    showStatus(text) {
      this.statusEl.textContent = text;
      this.statusEl.hidden = false;
    }

    render(items) {
      items.sort((a, b) => (Number(b.modified) || 0) - (Number(a.modified) || 0));
      const fragment = document.createDocumentFragment();
      for (const item of items) fragment.append(this.renderItem(item));
      this.listEl.replaceChildren(fragment);
      if (items.length === 0) this.showStatus('No finished files yet.');
      else this.statusEl.hidden = true;
    }

    renderItem(item) {
      const li = document.createElement('li');
      li.className = 'finished-item';
      li.dataset.testid = 'finished-file';

      const name = document.createElement('span');
      name.className = 'finished-name';
      name.dataset.testid = 'finished-name';
      name.textContent = item.name;
      name.title = item.name;

      const size = document.createElement('span');
      size.className = 'finished-size';
      size.textContent = formatBytes(Number(item.size));

      const modified = Number(item.modified);
      const time = document.createElement('time');
      time.className = 'finished-date';
      if (Number.isFinite(modified)) time.dateTime = new Date(modified).toISOString();
      time.textContent = formatDate(modified);

      li.append(name, size, time);
      return li;
    }
  }

  /* ======================================================================= *
   * 9. Views
   * ======================================================================= */

  const STATE_LABELS = Object.freeze({
    queued: 'Queued',
    uploading: 'Uploading',
    paused: 'Paused',
    retrying: 'Retrying',
    assembling: 'Assembling',
    done: 'Done',
    failed: 'Failed',
    cancelled: 'Cancelled',
  });

  const SERVER_STATE_LABELS = Object.freeze({
    starting: 'starting',
    uploading: 'uploading',
    assembling: 'assembling',
    done: 'done',
    error: 'error',
  });

  /**
   * Computes everything a row displays from the state model. Pure: no DOM.
   */
  function describeFile(file, now) {
    const state = file.state(now);
    const shown = state === 'done' ? file.size : file.bytesShown;
    const fraction = file.size > 0 ? shown / file.size : state === 'done' ? 1 : 0;
    const confirmedFraction = file.size > 0 ? file.bytesConfirmed / file.size : state === 'done' ? 1 : 0;
    const percent = state === 'done' ? 100 : Math.min(99, Math.floor(fraction * 100));
    const transferring = state === 'uploading' || state === 'assembling';
    const rate = transferring ? file.speed.rate : 0;
    const remaining = file.size - shown;

    let stateText = STATE_LABELS[state];
    let detail = null;
    if (state === 'retrying') {
      stateText = `Retrying in ${Math.max(1, Math.ceil((file.retryAt - now) / 1000))} s`;
      detail = file.retryReason;
    } else if (state === 'failed') {
      stateText = `Failed: ${file.error}`;
    } else if (state === 'assembling' && file.finalizing && file.retryReason && file.retryAt > now) {
      detail = file.retryReason;
    }

    return {
      state,
      stateText,
      detail,
      percent,
      percentText: `${percent}%`,
      bytesText: `${formatBytes(shown)} of ${formatBytes(file.size)}`,
      confirmedFraction: clamp(confirmedFraction, 0, 1),
      fraction: clamp(fraction, 0, 1),
      speedText: transferring && rate > 0 ? `${formatBytes(rate)}/s` : '',
      etaText: transferring && rate > 0 && remaining > 0 ? `${formatDuration(remaining / rate)} left` : '',
      serverText: describeServerProgress(file.serverProgress),
      resultName: state === 'done' ? file.serverName : null,
      canToggle: file.status === 'active',
      paused: file.paused,
      canRetry: state === 'failed',
      removeLabel: file.status === 'active' ? 'Cancel' : 'Remove',
    };
  }

  /** "Server-side: 4.00 MiB of 10.0 MiB · 1.20 MiB/s · 5 s left · uploading". */
  function describeServerProgress(entry) {
    if (!entry) return null;
    const parts = [];
    const received = Number(entry.received);
    const size = Number(entry.size);
    if (Number.isFinite(received) && Number.isFinite(size)) {
      parts.push(`${formatBytes(received)} of ${formatBytes(size)}`);
    }
    const speed = Number(entry.speed);
    if (entry.state === 'uploading' && Number.isFinite(speed) && speed > 0) parts.push(`${formatBytes(speed)}/s`);
    const eta = entry.eta === null || entry.eta === undefined ? NaN : Number(entry.eta);
    if (entry.state === 'uploading' && Number.isFinite(eta)) parts.push(`${formatDuration(eta)} left`);
    parts.push(SERVER_STATE_LABELS[entry.state] || String(entry.state || 'unknown'));
    if (entry.state === 'error' && entry.error) parts.push(String(entry.error));
    return `Server-side: ${parts.join(' · ')}`;
  }

  /** Sets a text/attribute only when it changed, to keep DOM work minimal. */
  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function setHidden(element, hidden) {
    if (element.hidden !== hidden) element.hidden = hidden;
  }

  function setAttr(element, name, value) {
    if (element.getAttribute(name) !== value) element.setAttribute(name, value);
  }

  /** Sets a bar's width from a 0..1 fraction. */
  function setWidth(element, fraction) {
    const width = `${(fraction * 100).toFixed(2)}%`;
    if (element.style.width !== width) element.style.width = width;
  }

  /** The DOM row of one file. Reads the model through describeFile(). */
  class FileRowView {
    constructor(template, file) {
      const root = template.content.firstElementChild.cloneNode(true);
      this.root = root;
      root.dataset.key = file.key;
      this.el = {
        name: root.querySelector('.file-name'),
        size: root.querySelector('.file-size'),
        path: root.querySelector('.file-path'),
        progress: root.querySelector('.progress'),
        confirmed: root.querySelector('.progress-confirmed'),
        inflight: root.querySelector('.progress-inflight'),
        state: root.querySelector('.state-badge'),
        percent: root.querySelector('.file-percent'),
        speed: root.querySelector('.file-speed'),
        eta: root.querySelector('.file-eta'),
        detail: root.querySelector('.file-detail'),
        server: root.querySelector('.file-server'),
        result: root.querySelector('.file-result'),
        serverName: root.querySelector('.file-server-name'),
        toggle: root.querySelector('[data-action="toggle"]'),
        retry: root.querySelector('[data-action="retry"]'),
        remove: root.querySelector('[data-action="remove"]'),
      };

      // Static parts.
      this.el.name.textContent = file.name;
      this.el.name.title = file.relativePath;
      this.el.size.textContent = formatBytes(file.size);
      if (file.relativePath !== file.name) {
        this.el.path.textContent = file.relativePath;
        this.el.path.hidden = false;
      }
      this.el.progress.setAttribute('aria-label', `Upload progress of ${file.name}`);
      this.el.retry.setAttribute('aria-label', `Retry ${file.name}`);
    }

    update(file, now) {
      const view = describeFile(file, now);
      const { el } = this;
      const focused = this.root.contains(document.activeElement) ? document.activeElement : null;

      setAttr(this.root, 'data-state', view.state);
      setText(el.state, view.stateText);
      setAttr(el.state, 'data-state', view.state);
      setText(el.percent, view.percentText);
      setText(el.speed, view.speedText);
      setText(el.eta, view.etaText);

      setWidth(el.confirmed, view.confirmedFraction);
      setWidth(el.inflight, view.fraction);
      setAttr(el.progress, 'aria-valuenow', String(view.percent));
      setAttr(el.progress, 'aria-valuetext', `${view.percentText}, ${view.bytesText}`);

      setText(el.detail, view.detail || '');
      setHidden(el.detail, !view.detail);
      setText(el.server, view.serverText || '');
      setHidden(el.server, !view.serverText);
      setText(el.serverName, view.resultName || '');
      setHidden(el.result, !view.resultName);

      setHidden(el.toggle, !view.canToggle);
      setText(el.toggle, view.paused ? 'Resume' : 'Pause');
      setAttr(el.toggle, 'data-testid', view.paused ? 'resume-button' : 'pause-button');
      setAttr(el.toggle, 'aria-label', `${view.paused ? 'Resume' : 'Pause'} ${file.name}`);
      setHidden(el.retry, !view.canRetry);
      setText(el.remove, view.removeLabel);
      setAttr(el.remove, 'aria-label', `${view.removeLabel} ${file.name}`);

      // A focused button that just got hidden (Retry, Pause) hands focus to a visible one.
      if (focused && focused.hidden) {
        const fallback = this.root.querySelector('.file-actions button:not([hidden])');
        if (fallback) fallback.focus();
      }
    }
  }

  /** Polite screen-reader announcements. */
  class Announcer {
    constructor(element) {
      this.element = element;
    }

    say(message) {
      // Clearing first makes repeated identical messages announced again.
      this.element.textContent = '';
      requestAnimationFrame(() => {
        this.element.textContent = message;
      });
    }
  }

  /* ======================================================================= *
   * 10. Input: drop zone, pickers, folders
   * ======================================================================= */

  /** Promisified FileSystemFileEntry.file(). */
  function entryFile(entry) {
    return new Promise((resolve, reject) => entry.file(resolve, reject));
  }

  /** All entries of a directory (readEntries returns them in batches). */
  async function readDirectory(directory) {
    const reader = directory.createReader();
    const entries = [];
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (batch.length === 0) return entries;
      entries.push(...batch);
    }
  }

  /** Walks a dropped entry, collecting `{file, relativePath}` in `out`. */
  async function collectEntry(entry, out) {
    if (entry.isFile) {
      try {
        const file = await entryFile(entry);
        out.push({ file, relativePath: entry.fullPath.replace(/^\/+/, '') || file.name });
      } catch {
        out.failed += 1; // unreadable (permissions, vanished): skip it
      }
    } else if (entry.isDirectory) {
      let children;
      try {
        children = await readDirectory(entry);
      } catch {
        out.failed += 1;
        return;
      }
      for (const child of children) await collectEntry(child, out);
    }
  }

  /**
   * Files of a drop, including folder contents where the browser supports
   * webkitGetAsEntry. Items must be read synchronously, inside the event.
   */
  function filesFromDrop(dataTransfer) {
    const items = dataTransfer.items ? Array.from(dataTransfer.items) : [];
    const captured = items
      .filter((item) => item.kind === 'file')
      .map((item) => ({
        entry: typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null,
        file: item.getAsFile(),
      }));
    const plainFiles = Array.from(dataTransfer.files || []);

    return (async () => {
      const out = [];
      out.failed = 0;
      if (captured.length === 0) {
        for (const file of plainFiles) out.push({ file, relativePath: file.name });
        return out;
      }
      for (const { entry, file } of captured) {
        if (entry) await collectEntry(entry, out);
        else if (file) out.push({ file, relativePath: file.name });
      }
      return out;
    })();
  }

  /** Files chosen with an <input type=file> (with webkitdirectory, paths are kept). */
  function filesFromInput(input) {
    return Array.from(input.files || []).map((file) => ({
      file,
      relativePath: file.webkitRelativePath || file.name,
    }));
  }

  /** Wires the drop zone and both pickers; calls `onFiles(promiseOrArray)`. */
  function bindInput({ zone, fileInput, folderInput, chooseFiles, chooseFolder }, onFiles) {
    const openPicker = () => fileInput.click();

    chooseFiles.addEventListener('click', openPicker);
    if ('webkitdirectory' in folderInput) {
      chooseFolder.hidden = false;
      chooseFolder.addEventListener('click', () => folderInput.click());
    }

    for (const input of [fileInput, folderInput]) {
      input.addEventListener('change', () => {
        onFiles(filesFromInput(input));
        input.value = ''; // allows choosing the same file again
      });
    }

    // The zone behaves like a button: click, Enter and Space open the picker.
    zone.addEventListener('click', openPicker);
    zone.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        openPicker();
      } else if (event.key === ' ') {
        event.preventDefault(); // no page scroll; activate on keyup like a button
      }
    });
    zone.addEventListener('keyup', (event) => {
      if (event.key === ' ') openPicker();
    });

    const hasFiles = (event) =>
      !!event.dataTransfer && Array.from(event.dataTransfer.types || []).includes('Files');
    const setActive = (active) => zone.classList.toggle('is-dragover', active);

    zone.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      setActive(true);
    });
    zone.addEventListener('dragover', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      setActive(true);
    });
    zone.addEventListener('dragleave', (event) => {
      if (!zone.contains(event.relatedTarget)) setActive(false);
    });
    zone.addEventListener('drop', (event) => {
      event.preventDefault();
      setActive(false);
      if (event.dataTransfer) onFiles(filesFromDrop(event.dataTransfer));
    });

    // A file dropped next to the zone must not make the browser navigate to it.
    window.addEventListener('dragover', (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener('drop', (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
  }

  /* ======================================================================= *
   * 11. App
   * ======================================================================= */

  class App {
    constructor() {
      const $ = (id) => document.getElementById(id);
      this.dom = {
        zone: $('drop-zone'),
        fileInput: $('file-input'),
        folderInput: $('folder-input'),
        chooseFiles: $('choose-files'),
        chooseFolder: $('choose-folder'),
        chunkSize: $('chunk-size'),
        parallel: $('parallel'),
        protocol: $('protocol'),
        toolbar: $('queue-toolbar'),
        pauseAll: $('pause-all'),
        resumeAll: $('resume-all'),
        clearFinished: $('clear-finished'),
        summary: $('queue-summary'),
        empty: $('queue-empty'),
        list: $('file-list'),
        rowTemplate: $('file-row-template'),
        finishedList: $('finished-list'),
        finishedStatus: $('finished-status'),
        refreshFinished: $('refresh-finished'),
        announcer: $('announcer'),
      };

      /** @type {UploadFile[]} queue order = upload order */
      this.files = [];
      /** @type {Map<string, FileRowView>} by file key */
      this.views = new Map();
      this.dirty = new Set();
      this.renderQueued = false;
      this.ticker = null;
      this.pendingAdds = 0;
      this.idleWaiters = [];
      this.idleCheckQueued = false;

      this.settings = new Settings(window.location.search);
      this.announcer = new Announcer(this.dom.announcer);
      this.scheduler = new Scheduler({
        files: this.files,
        transport,
        tus: tusTransport,
        limit: this.settings.parallel,
        emit: (type, file) => this.onUploadEvent(type, file),
      });
      this.serverProgress = new ServerProgress(ENDPOINTS.progressEvents, (entry) => this.onServerProgress(entry));
      this.finished = new FinishedFiles(this.dom.finishedList, this.dom.finishedStatus, () => this.queueIdleCheck());
    }

    start() {
      this.settings.bind(this.dom.chunkSize, this.dom.parallel, this.dom.protocol, (name) => {
        if (name === 'parallel') this.scheduler.setLimit(this.settings.parallel);
      });
      bindInput(this.dom, (files) => this.addFiles(files));
      this.dom.list.addEventListener('click', (event) => this.onRowClick(event));
      this.dom.pauseAll.addEventListener('click', () => this.pauseAll());
      this.dom.resumeAll.addEventListener('click', () => this.resumeAll());
      this.dom.clearFinished.addEventListener('click', () => this.clearFinished());
      this.dom.refreshFinished.addEventListener('click', () => this.finished.refresh({ immediate: true }));
      this.finished.refresh({ immediate: true });
      this.renderSummary();
    }

    /* -- Adding files ------------------------------------------------------ */

    /** Accepts an array of `{file, relativePath}` or a promise of one (folder drops). */
    async addFiles(source) {
      this.pendingAdds += 1;
      let entries = [];
      try {
        entries = await source;
      } catch {
        entries = [];
      } finally {
        this.pendingAdds -= 1;
      }

      let added = 0;
      let skipped = 0;
      for (const { file, relativePath } of entries) {
        if (this.addFile(file, relativePath)) added += 1;
        else skipped += 1;
      }

      const parts = [];
      if (added) parts.push(`${added} ${added === 1 ? 'file' : 'files'} added to the queue.`);
      if (skipped) parts.push(`${skipped} already in the queue.`);
      if (entries.failed) parts.push(`${entries.failed} could not be read.`);
      if (parts.length) this.announcer.say(parts.join(' '));

      this.scheduler.pump();
      this.afterChange();
    }

    /** Queues one file unless the same file is already queued; returns whether it was added. */
    addFile(file, relativePath) {
      const identifier = makeIdentifier(file, relativePath || file.name);
      const existing = this.files.find((f) => f.identifier === identifier && f.status !== 'done');
      if (existing) {
        if (existing.status === 'failed') this.retry(existing);
        return false;
      }
      const upload = new UploadFile(file, relativePath, this.settings.chunkSize, this.settings.protocol);
      const view = new FileRowView(this.dom.rowTemplate, upload);
      this.files.push(upload);
      this.views.set(upload.key, view);
      this.dom.list.append(view.root);
      this.markDirty(upload);
      return true;
    }

    /* -- Per-file and global actions --------------------------------------- */

    onRowClick(event) {
      const button = event.target.closest('button[data-action]');
      if (!button) return;
      const row = button.closest('.file-row');
      const file = row && this.files.find((f) => f.key === row.dataset.key);
      if (!file) return;
      switch (button.dataset.action) {
        case 'toggle':
          if (file.paused) this.resume(file);
          else this.pause(file);
          this.announcer.say(`${file.name} ${file.paused ? 'paused' : 'resumed'}.`);
          break;
        case 'retry':
          this.retry(file);
          this.announcer.say(`Retrying ${file.name}.`);
          break;
        case 'remove':
          this.remove(file);
          break;
        default:
      }
    }

    pause(file) {
      if (file.status !== 'active' || file.paused) return;
      file.paused = true;
      file.retryAt = 0;
      this.scheduler.abortJobs(file, true);
      file.speed.reset();
      this.markDirty(file);
      this.scheduler.pump(); // hand the freed slots to other files
      this.afterChange();
    }

    resume(file) {
      if (file.status !== 'active' || !file.paused) return;
      file.paused = false;
      file.retryAt = 0;
      this.markDirty(file);
      this.scheduler.pump();
      this.afterChange();
    }

    retry(file) {
      if (file.status !== 'failed') return;
      file.prepareRetry();
      this.markDirty(file);
      this.scheduler.pump();
      this.afterChange();
    }

    /** Cancels an unfinished file, or removes a finished/failed one from the list. */
    remove(file, { quiet = false } = {}) {
      const wasActive = file.status === 'active';
      if (wasActive) {
        this.scheduler.abortJobs(file, false);
        file.status = 'cancelled';
        if (file.protocol === 'tus') tusTransport.cancel(file);
      }
      const index = this.files.indexOf(file);
      if (index !== -1) this.files.splice(index, 1);
      const view = this.views.get(file.key);
      if (view) {
        this.moveFocusAway(view.root);
        view.root.remove();
        this.views.delete(file.key);
      }
      this.dirty.delete(file);
      if (!quiet) this.announcer.say(`${file.name} ${wasActive ? 'cancelled' : 'removed from the list'}.`);
      this.scheduler.pump();
      this.afterChange();
    }

    /** Keeps keyboard focus in the list when a focused row disappears. */
    moveFocusAway(row) {
      if (!row.contains(document.activeElement)) return;
      const neighbour = row.nextElementSibling || row.previousElementSibling;
      const target = neighbour && neighbour.querySelector('button:not([hidden])');
      (target || this.dom.chooseFiles).focus();
    }

    pauseAll() {
      const targets = this.files.filter((f) => f.status === 'active' && !f.paused);
      if (targets.length === 0) return;
      for (const file of targets) this.pause(file);
      this.announcer.say(`${targets.length === 1 ? '1 upload' : `${targets.length} uploads`} paused.`);
    }

    resumeAll() {
      const targets = this.files.filter((f) => f.status === 'active' && f.paused);
      if (targets.length === 0) return;
      for (const file of targets) this.resume(file);
      this.announcer.say(`${targets.length === 1 ? '1 upload' : `${targets.length} uploads`} resumed.`);
    }

    clearFinished() {
      const done = this.files.filter((f) => f.status === 'done');
      for (const file of done) this.remove(file, { quiet: true });
      if (done.length) this.announcer.say(`${done.length} finished ${done.length === 1 ? 'upload' : 'uploads'} cleared.`);
    }

    /* -- Events from the model --------------------------------------------- */

    onUploadEvent(type, file) {
      this.markDirty(file);
      if (type === 'done') {
        const renamed = file.serverName !== file.name ? `, saved as ${file.serverName}` : '';
        this.announcer.say(`${file.name} uploaded${renamed}.`);
        this.finished.refresh();
      } else if (type === 'failed') {
        this.announcer.say(`${file.name} failed: ${file.error}`);
      }
      this.afterChange();
    }

    onServerProgress(entry) {
      for (const file of this.files) {
        if (file.identifier === entry.identifier) {
          file.serverProgress = entry;
          this.markDirty(file);
        }
      }
    }

    /** Starts/stops the ticker and progress stream, and resolves idle waiters. */
    afterChange() {
      const busy = this.files.some((file) => file.isBusy);
      if (busy) {
        this.serverProgress.ensureOpen();
        this.startTicker();
      } else {
        this.serverProgress.closeSoon();
        this.stopTicker();
      }
      this.queueIdleCheck();
    }

    /* -- Ticker: speed sampling and countdowns ------------------------------ */

    startTicker() {
      if (this.ticker) return;
      this.ticker = setInterval(() => this.tick(), TICK_MS);
    }

    stopTicker() {
      if (!this.ticker) return;
      clearInterval(this.ticker);
      this.ticker = null;
      this.markAllDirty(); // final repaint: speeds and countdowns disappear
    }

    tick() {
      const now = Date.now();
      let busy = false;
      for (const file of this.files) {
        if (!file.isBusy) continue;
        busy = true;
        const state = file.state(now);
        if (state === 'uploading' || state === 'assembling') file.speed.sample(file.bytesSent, now);
        else file.speed.reset();
        this.markDirty(file);
      }
      if (!busy) this.afterChange();
    }

    /* -- Rendering (batched per animation frame) ---------------------------- */

    markDirty(file) {
      this.dirty.add(file);
      this.requestRender();
    }

    markAllDirty() {
      for (const file of this.files) this.dirty.add(file);
      this.requestRender();
    }

    requestRender() {
      if (this.renderQueued) return;
      this.renderQueued = true;
      requestAnimationFrame(() => {
        this.renderQueued = false;
        this.render();
      });
    }

    render() {
      const now = Date.now();
      for (const file of this.dirty) {
        const view = this.views.get(file.key);
        if (view) view.update(file, now);
      }
      this.dirty.clear();
      this.renderSummary();
    }

    renderSummary() {
      const { files } = this;
      const hasFiles = files.length > 0;
      setHidden(this.dom.empty, hasFiles);
      setHidden(this.dom.toolbar, !hasFiles);
      setHidden(this.dom.summary, !hasFiles);
      if (!hasFiles) return;

      let size = 0;
      let shown = 0;
      let rate = 0;
      let done = 0;
      let failed = 0;
      for (const file of files) {
        size += file.size;
        shown += file.status === 'done' ? file.size : file.bytesShown;
        if (file.status === 'done') done += 1;
        if (file.status === 'failed') failed += 1;
        if (file.isBusy) rate += file.speed.rate;
      }
      const parts = [`${files.length} ${files.length === 1 ? 'file' : 'files'}`, `${done} done`];
      if (failed) parts.push(`${failed} failed`);
      parts.push(`${formatBytes(shown)} of ${formatBytes(size)}`);
      if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
      setText(this.dom.summary, parts.join(' · '));

      // aria-disabled rather than disabled: the buttons stay focusable, so
      // keyboard focus is not lost when, e.g., "Pause all" has nothing left to do.
      const canPause = files.some((f) => f.status === 'active' && !f.paused);
      const canResume = files.some((f) => f.status === 'active' && f.paused);
      setAttr(this.dom.pauseAll, 'aria-disabled', String(!canPause));
      setAttr(this.dom.resumeAll, 'aria-disabled', String(!canResume));
      setAttr(this.dom.clearFinished, 'aria-disabled', String(done === 0));
    }

    /* -- Idle detection (test hook) ------------------------------------------ */

    isIdle() {
      return this.pendingAdds === 0 && !this.finished.busy && !this.files.some((f) => f.isBusy);
    }

    /** Checks idleness after the current synchronous work, so follow-up actions register first. */
    queueIdleCheck() {
      if (this.idleCheckQueued) return;
      this.idleCheckQueued = true;
      queueMicrotask(() => {
        this.idleCheckQueued = false;
        if (this.idleWaiters.length === 0 || !this.isIdle()) return;
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
      });
    }

    whenIdle() {
      return new Promise((resolve) => {
        this.idleWaiters.push(resolve);
        this.queueIdleCheck();
      });
    }
  }

  /* -- Boot ------------------------------------------------------------------ */

  function boot() {
    const app = new App();
    app.start();

    /**
     * Test hook for automated browser tests.
     *   uploadPage.files()    -> [{name, relativePath, identifier, state, serverName, bytesConfirmed, size, error}]
     *   uploadPage.whenIdle() -> Promise resolved once no file is queued, uploading,
     *                            retrying or assembling (and the finished list has loaded)
     */
    window.uploadPage = Object.freeze({
      files: () => app.files.map((file) => file.snapshot()),
      whenIdle: () => app.whenIdle(),
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
