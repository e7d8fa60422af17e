/*
 * Shared by the widget test pages (flow.html, resumable.html, ...): reads the case's widget
 * options from the query string, draws a small status table, and exposes `window.harness`,
 * which the driver (run.mjs) reads. Nothing here talks to the server: only the widgets do.
 *
 *   ?opts=<JSON>   options merged (deeply) over the page's defaults for the widget
 *
 * The page reports the widget's own events here:
 *   harness.added(name, size)       the widget accepted a file
 *   harness.progress(name, 0..1)    the widget's progress for it
 *   harness.retry(name)             the widget is retrying (where it says so)
 *   harness.success(name, response) the widget's per-file success event
 *   harness.error(name, message)    the widget's per-file error event
 *   harness.complete()              the widget's "all done" event
 */
(function () {
  'use strict';

  const params = new URLSearchParams(location.search);
  const opts = params.has('opts') ? JSON.parse(params.get('opts')) : {};

  /** Deep merge of plain objects (arrays and other values are replaced). */
  function merge(target, source) {
    for (const [key, value] of Object.entries(source || {})) {
      if (value && typeof value === 'object' && !Array.isArray(value) &&
          target[key] && typeof target[key] === 'object' && !Array.isArray(target[key])) {
        merge(target[key], value);
      } else {
        target[key] = value;
      }
    }
    return target;
  }

  const files = new Map();
  let paused = false;
  const log = [];
  let completeEvents = 0;
  const started = performance.now();

  function note(text) {
    log.push(`${Math.round(performance.now() - started)}ms ${text}`);
  }

  function text(value) {
    if (value === undefined || value === null) return '';
    if (typeof value === 'string') return value;
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  }

  function render(entry) {
    if (!entry.row) {
      const tbody = document.querySelector('#status tbody');
      if (!tbody) return;
      entry.row = document.createElement('tr');
      entry.row.dataset.testid = 'status-row';
      for (let i = 0; i < 5; i++) entry.row.append(document.createElement('td'));
      tbody.append(entry.row);
    }
    const [name, size, bar, state, message] = entry.row.children;
    name.textContent = entry.name;
    size.textContent = formatSize(entry.size);
    bar.innerHTML = '';
    const meter = document.createElement('progress');
    meter.max = 1;
    meter.value = entry.progress;
    bar.append(meter, ` ${Math.round(entry.progress * 100)}%`);
    const shown = entry.status === 'uploading' && paused ? 'paused' : entry.status;
    state.textContent = shown + (entry.retries ? ` (${entry.retries} retries)` : '');
    state.className = `state-${entry.status}`;
    message.textContent = entry.message.slice(0, 160);
  }

  function entry(name) {
    let e = files.get(name);
    if (!e) {
      e = { name, size: 0, status: 'added', progress: 0, message: '', retries: 0, row: null };
      files.set(name, e);
    }
    return e;
  }

  const harness = {
    opts,
    merge,
    ready: false,
    version: '',
    /** Set by the page when the widget can pause: () => void. */
    pause: null,
    resume: null,
    /** Widget-specific notes for the report (e.g. "no pause in this widget"). */
    notes: [],

    added(name, size) {
      const e = entry(name);
      e.size = size;
      e.status = 'uploading';
      note(`added ${name} (${size} B)`);
      render(e);
    },
    progress(name, fraction) {
      const e = entry(name);
      if (e.status === 'uploading' && Number.isFinite(fraction)) e.progress = Math.max(0, Math.min(1, fraction));
      render(e);
    },
    retry(name) {
      const e = entry(name);
      e.retries += 1;
      note(`retry ${name}`);
      render(e);
    },
    success(name, response) {
      const e = entry(name);
      if (e.status === 'success' || e.status === 'error') {
        note(`second terminal event (success) for ${name}: ${text(response)}`);
        e.duplicateTerminal = true;
        return;
      }
      e.status = 'success';
      e.progress = 1;
      e.message = text(response);
      note(`success ${name}: ${e.message}`);
      render(e);
    },
    error(name, message) {
      const e = entry(name);
      if (e.status === 'success' || e.status === 'error') {
        note(`second terminal event (error) for ${name}: ${text(message)}`);
        e.duplicateTerminal = true;
        return;
      }
      e.status = 'error';
      e.message = text(message);
      note(`error ${name}: ${e.message}`);
      render(e);
    },
    complete() {
      completeEvents += 1;
      note('complete (the widget\'s all-done event)');
      const summary = document.getElementById('summary');
      if (summary) summary.textContent = `All done (${[...files.values()].filter((f) => f.status === 'success').length} of ${files.size} succeeded)`;
    },
    note,
    /** The driver paused (true) or resumed (false) the widget: shown in the table. */
    markPaused(value) {
      paused = value;
      note(value ? 'paused' : 'resumed');
      for (const e of files.values()) render(e);
    },

    /** Whether `n` files were added and each has had its success or error event. */
    settled(n) {
      if (files.size < n) return false;
      for (const e of files.values()) if (e.status !== 'success' && e.status !== 'error') return false;
      return true;
    },
    /** Fraction of all bytes the widget reports done (for pausing in the middle). */
    overallProgress() {
      let total = 0;
      let done = 0;
      for (const e of files.values()) {
        total += e.size;
        done += e.size * e.progress;
      }
      return total ? done / total : 0;
    },
    snapshot() {
      return {
        files: [...files.values()].map(({ row, ...rest }) => rest),
        completeEvents,
        log,
        notes: harness.notes,
      };
    },
  };

  window.harness = harness;

  // The example server scopes uploads by a session cookie that it signs. These pages are served
  // by the harness, not by the server, so they have no cookie when they load.
  //
  //   ?cold=1   the page sends nothing: the widget's first requests (parallel chunks, test
  //             requests) reach the server without a cookie, and must still land in one
  //             session (the server derives it from the client; see the README).
  //   otherwise the page asks GET /progress first (as an app showing the user's uploads
  //             would), which sets the session before the widget sends anything.
  harness.cold = params.get('cold') === '1';
  harness.session = harness.cold;
  if (!harness.cold) {
    fetch('/progress', { credentials: 'same-origin', cache: 'no-store' })
      .then(() => { harness.session = true; })
      .catch((e) => note(`GET /progress failed: ${e}`));
  }
  document.addEventListener('DOMContentLoaded', () => {
    const config = document.getElementById('config');
    if (config) config.textContent = `options: ${JSON.stringify(opts)}`;
  });
})();
