//! Upload progress: bytes received per upload (chunks stored plus bytes still streaming in),
//! state, speed and ETA, reported per scope.
//!
//! The monitor is in memory, per process; it is rebuilt from what is stored when an upload it
//! does not know is touched again (after a restart, or on another server of a cluster), so
//! `received` stays right across restarts and resumes.
//!
//! # JSON shape
//!
//! Each [`Progress`] serializes as:
//!
//! ```json
//! {
//!   "identifier": "13632-prettifyjs",  // the widget's upload identifier
//!   "filename": "prettify.js",
//!   "state": "uploading",               // starting | uploading | assembling | done | error
//!   "received": 524288,                 // bytes stored + bytes streaming in, never above size
//!   "size": 1048576,                    // null when the widget does not declare it (Plupload)
//!   "speed": 1234567.0,                 // bytes per second over the last few seconds
//!   "eta": 0.4,                         // seconds, null when unknown
//!   "started_at": 1700000000000,        // Unix milliseconds
//!   "updated_at": 1700000000400,
//!   "finished_at": null,                // set for done and error
//!   "error": null                       // the reason, for state "error"
//! }
//! ```
//!
//! Reports never show other scopes' uploads, and an identifier unknown in the caller's scope is
//! not found (never "starting", as nginx's upload-progress module answers).
//!
//! Behind a buffering reverse proxy the server only sees a chunk once the proxy has received
//! all of it, so `received` moves in chunk-sized steps; disable request buffering for the upload
//! route (nginx `proxy_request_buffering off`) for byte-level progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::now_ms;
use crate::upload::UploadInfo;

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Known, no byte received yet.
    Starting,
    /// Chunks are arriving.
    Uploading,
    /// Every chunk is stored; the file is being assembled.
    Assembling,
    /// Assembled.
    Done,
    /// Failed for good (see `error`).
    Error,
}

/// One upload's progress, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The widget's upload identifier.
    pub identifier: String,
    /// The file name the widget sent.
    pub filename: String,
    /// Where the upload stands.
    pub state: State,
    /// Bytes stored plus bytes of chunks still streaming in (never above `size`).
    pub received: u64,
    /// The file's size, when declared.
    pub size: Option<u64>,
    /// Bytes per second over the last few seconds.
    pub speed: f64,
    /// Seconds until done at the current speed, when it can be told.
    pub eta: Option<f64>,
    /// When the upload was first seen (Unix milliseconds).
    pub started_at: u64,
    /// When bytes last arrived or the state last changed (Unix milliseconds).
    pub updated_at: u64,
    /// When it finished (done or error; Unix milliseconds).
    pub finished_at: Option<u64>,
    /// Why it failed, for [`State::Error`].
    pub error: Option<String>,
}

/// Settings of the progress monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressConfig {
    /// Uploads whose declared size is below this many bytes are not tracked (default 0: all).
    pub threshold: u64,
    /// How long finished (done or error) entries stay reportable (default 5 minutes).
    pub retention: Duration,
    /// How long an unfinished upload with no activity stays tracked (default 1 hour; the
    /// upload itself stays resumable on disk until it expires).
    pub idle_retention: Duration,
    /// Most entries kept; beyond it the oldest finished, then the longest idle, are dropped
    /// (default 10 000).
    pub max_entries: usize,
}

impl Default for ProgressConfig {
    fn default() -> ProgressConfig {
        ProgressConfig {
            threshold: 0,
            retention: Duration::from_secs(300),
            idle_retention: Duration::from_secs(3600),
            max_entries: 10_000,
        }
    }
}

/// Speed is measured over roughly this window.
const SPEED_WINDOW: Duration = Duration::from_secs(3);
/// Samples kept for the speed estimate.
const SAMPLES: usize = 8;

#[derive(Debug)]
struct Entry {
    scope: String,
    identifier: String,
    filename: String,
    size: Option<u64>,
    state: State,
    stored: u64,
    /// Bytes of chunks streaming in now, shared with their [`ChunkProgress`] guards.
    streaming: Arc<AtomicU64>,
    /// Last time bytes arrived, as milliseconds since `Monitor::epoch` (set by guards).
    touched: Arc<AtomicU64>,
    started_at: u64,
    changed_at: u64,
    finished_at: Option<u64>,
    finished_instant: Option<Instant>,
    error: Option<String>,
    samples: [(u64, u64); SAMPLES],
    sample_count: usize,
}

impl Entry {
    fn received(&self) -> u64 {
        let r = self.stored + self.streaming.load(Ordering::Relaxed);
        self.size.map_or(r, |s| r.min(s))
    }

    fn last_activity_ms(&self, epoch_ms: u64) -> u64 {
        let touched = self.touched.load(Ordering::Relaxed);
        let touched = if touched == 0 { 0 } else { epoch_ms + touched };
        self.changed_at.max(touched)
    }

    /// Records (now, received) if the last sample is old enough, and returns the speed.
    fn speed(&mut self, now_ms: u64) -> f64 {
        let received = self.received();
        let last = if self.sample_count == 0 {
            None
        } else {
            Some(self.samples[(self.sample_count - 1) % SAMPLES])
        };
        if last.is_none_or(|(t, _)| now_ms.saturating_sub(t) >= 250) {
            self.samples[self.sample_count % SAMPLES] = (now_ms, received);
            self.sample_count += 1;
        }
        let window_start = now_ms.saturating_sub(SPEED_WINDOW.as_millis() as u64);
        let oldest = (0..self.sample_count.min(SAMPLES))
            .map(|i| self.samples[(self.sample_count - 1 - i) % SAMPLES])
            .take_while(|&(t, _)| t >= window_start)
            .last();
        match oldest {
            Some((t, r)) if now_ms > t && received >= r => {
                (received - r) as f64 * 1000.0 / (now_ms - t) as f64
            }
            _ => 0.0,
        }
    }
}

/// Tracks uploads in progress; part of every [`Uploads`](crate::Uploads)
/// ([`Uploads::progress`](crate::Uploads::progress)).
#[derive(Debug)]
pub struct ProgressMonitor {
    config: ProgressConfig,
    epoch: Instant,
    epoch_ms: u64,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped on every change, so pollers (server-sent events) can tell when to look again;
    /// shared with the [`ChunkProgress`] guards.
    version: Arc<AtomicU64>,
}

impl ProgressMonitor {
    /// A monitor with these settings.
    pub fn new(config: ProgressConfig) -> ProgressMonitor {
        ProgressMonitor {
            config,
            epoch: Instant::now(),
            epoch_ms: now_ms(),
            entries: Mutex::new(HashMap::new()),
            version: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ProgressConfig {
        &self.config
    }

    /// A number that changes whenever any entry changes (bytes, state). Compare with an earlier
    /// value to know whether a report would differ; cheap enough to poll.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The uploads of `scope`, oldest first.
    pub fn report_scope(&self, scope: &str) -> Vec<Progress> {
        let now = now_ms();
        let mut entries = self.lock();
        self.purge(&mut entries, now);
        let mut out: Vec<Progress> = entries
            .values_mut()
            .filter(|e| e.scope == scope)
            .map(|e| self.snapshot(e, now))
            .collect();
        out.sort_by(|a, b| (a.started_at, &a.identifier).cmp(&(b.started_at, &b.identifier)));
        out
    }

    /// The upload `identifier` of `scope`, if tracked. An identifier of another scope is not
    /// found.
    pub fn report(&self, scope: &str, identifier: &str) -> Option<Progress> {
        let now = now_ms();
        let mut entries = self.lock();
        self.purge(&mut entries, now);
        entries
            .values_mut()
            .find(|e| e.scope == scope && e.identifier == identifier)
            .map(|e| self.snapshot(e, now))
    }

    /// Whether the upload with storage key `key` is tracked.
    pub(crate) fn is_tracked(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// The uploads of `scope` that changed since `cursor` last looked (all of them the first
    /// time), for pushing updates (server-sent events). Cheap when nothing changed: it compares
    /// the monitor's [`version`](Self::version) first.
    pub fn changes(&self, scope: &str, cursor: &mut ProgressCursor) -> Vec<Progress> {
        let version = self.version();
        // While an upload moves, its speed and ETA change even when no byte arrives (a paused
        // upload slows down to 0): keep looking until everything sent stands still.
        if cursor.version == Some(version) && !cursor.moving {
            return Vec::new();
        }
        cursor.version = Some(version);
        cursor.moving = false;
        let mut changed = Vec::new();
        for p in self.report_scope(scope) {
            // Speed in KiB/s is precise enough to tell a change worth sending.
            let seen = (p.state, p.received, p.updated_at, (p.speed / 1024.0) as u64);
            cursor.moving |= p.speed > 0.0;
            if cursor.seen.get(&p.identifier) != Some(&seen) {
                cursor.seen.insert(p.identifier.clone(), seen);
                changed.push(p);
            }
        }
        changed
    }

    /// Number of tracked uploads (all scopes).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops finished entries past their retention and idle ones past theirs; returns how many
    /// were dropped. Reports do this too, so it need not be called; the sweep calls it.
    pub fn purge_expired(&self) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        self.purge(&mut entries, now_ms());
        before - entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, e: &mut Entry, now: u64) -> Progress {
        if e.state == State::Starting && e.received() > 0 {
            e.state = State::Uploading;
        }
        let speed = if matches!(e.state, State::Uploading | State::Starting) {
            e.speed(now)
        } else {
            0.0
        };
        let received = e.received();
        let eta = match (e.state, e.size) {
            (State::Done, _) => Some(0.0),
            (State::Uploading, Some(size)) if speed > 0.0 => {
                Some(size.saturating_sub(received) as f64 / speed)
            }
            _ => None,
        };
        Progress {
            identifier: e.identifier.clone(),
            filename: e.filename.clone(),
            state: e.state,
            received,
            size: e.size,
            speed,
            eta,
            started_at: e.started_at,
            updated_at: e.last_activity_ms(self.epoch_ms),
            finished_at: e.finished_at,
            error: e.error.clone(),
        }
    }

    fn purge(&self, entries: &mut HashMap<String, Entry>, now: u64) {
        let retention = self.config.retention;
        let idle = self.config.idle_retention.as_millis() as u64;
        let epoch_ms = self.epoch_ms;
        entries.retain(|_, e| match e.finished_instant {
            Some(at) => at.elapsed() <= retention,
            None => {
                e.streaming.load(Ordering::Relaxed) > 0
                    || now.saturating_sub(e.last_activity_ms(epoch_ms)) <= idle
            }
        });
    }

    /// Makes room for one more entry under `max_entries`.
    fn make_room(&self, entries: &mut HashMap<String, Entry>) {
        if entries.len() < self.config.max_entries {
            return;
        }
        self.purge(entries, now_ms());
        while entries.len() >= self.config.max_entries.max(1) {
            let epoch_ms = self.epoch_ms;
            let victim = entries
                .iter()
                .min_by_key(|(_, e)| (e.finished_at.is_none(), e.last_activity_ms(epoch_ms)))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
    }

    // ---- updates from `save()` ----

    /// Whether `upload` is to be tracked (its declared size is not below the threshold) but is
    /// not yet: then [`observe`](Self::observe) should be told what is stored.
    pub(crate) fn wants(&self, key: &str, upload: &UploadInfo) -> bool {
        self.tracks(upload) && !self.is_tracked(key)
    }

    fn tracks(&self, upload: &UploadInfo) -> bool {
        upload.total_size.is_none_or(|s| s >= self.config.threshold)
    }

    /// Notes that upload `key` exists with `stored` bytes, creating its entry if untracked.
    pub(crate) fn observe(&self, key: &str, upload: &UploadInfo, stored: u64) {
        if !self.tracks(upload) {
            return;
        }
        let now = now_ms();
        let mut entries = self.lock();
        if !entries.contains_key(key) {
            self.make_room(&mut entries);
            entries.insert(
                key.to_owned(),
                Entry {
                    scope: upload.scope.clone(),
                    identifier: upload.identifier.clone(),
                    filename: upload.filename.clone(),
                    size: upload.total_size,
                    state: if stored > 0 {
                        State::Uploading
                    } else {
                        State::Starting
                    },
                    stored,
                    streaming: Arc::new(AtomicU64::new(0)),
                    touched: Arc::new(AtomicU64::new(0)),
                    started_at: now,
                    changed_at: now,
                    finished_at: None,
                    finished_instant: None,
                    error: None,
                    samples: [(0, 0); SAMPLES],
                    sample_count: 0,
                },
            );
        } else if let Some(e) = entries.get_mut(key)
            && e.stored != stored
            && e.finished_at.is_none()
        {
            e.stored = stored;
            e.changed_at = now;
        }
        self.bump();
    }

    /// A chunk starts streaming in; its bytes count until the guard is dropped. A chunk already
    /// stored (a duplicate) is not counted twice.
    pub(crate) fn chunk(&self, key: &str, duplicate: bool) -> ChunkProgress {
        let entries = self.lock();
        let counters = match entries.get(key) {
            Some(e) if !duplicate && e.finished_at.is_none() => {
                Some((Arc::clone(&e.streaming), Arc::clone(&e.touched)))
            }
            _ => None,
        };
        ChunkProgress {
            counters,
            version: Arc::clone(&self.version),
            epoch: self.epoch,
            bytes: 0,
        }
    }

    /// A chunk was stored: the upload now holds `stored` bytes.
    pub(crate) fn stored(&self, key: &str, stored: u64) {
        let now = now_ms();
        if let Some(e) = self.lock().get_mut(key)
            && e.finished_at.is_none()
        {
            e.stored = stored;
            e.state = State::Uploading;
            e.changed_at = now;
        }
        self.bump();
    }

    /// The upload's assembly started.
    pub(crate) fn assembling(&self, key: &str) {
        self.set_state(key, State::Assembling, None);
    }

    /// The upload is assembled (`size` bytes).
    pub(crate) fn done(&self, key: &str, size: u64) {
        if let Some(e) = self.lock().get_mut(key) {
            e.stored = e.size.unwrap_or(size);
            e.size.get_or_insert(size);
        }
        self.set_state(key, State::Done, None);
    }

    /// The upload failed for good.
    pub(crate) fn failed(&self, key: &str, reason: String) {
        self.set_state(key, State::Error, Some(reason));
    }

    /// The upload's storage is gone (expired): stop tracking it.
    pub(crate) fn forget(&self, key: &str) {
        self.lock().remove(key);
        self.bump();
    }

    fn set_state(&self, key: &str, state: State, error: Option<String>) {
        let now = now_ms();
        if let Some(e) = self.lock().get_mut(key) {
            e.state = state;
            e.changed_at = now;
            if matches!(state, State::Done | State::Error) {
                e.finished_at = Some(now);
                e.finished_instant = Some(Instant::now());
                e.error = error;
            }
        }
        self.bump();
    }
}

/// What a subscriber has already been told, for [`ProgressMonitor::changes`].
#[derive(Debug, Default, Clone)]
pub struct ProgressCursor {
    version: Option<u64>,
    moving: bool,
    seen: HashMap<String, (State, u64, u64, u64)>,
}

impl ProgressCursor {
    /// A cursor that has seen nothing.
    pub fn new() -> ProgressCursor {
        ProgressCursor::default()
    }
}

/// Counts the bytes of one chunk as they stream in; they stop counting when it is dropped
/// (stored chunks count through the ledger instead).
#[derive(Debug)]
pub(crate) struct ChunkProgress {
    counters: Option<(Arc<AtomicU64>, Arc<AtomicU64>)>,
    version: Arc<AtomicU64>,
    epoch: Instant,
    bytes: u64,
}

impl ChunkProgress {
    /// `n` more bytes arrived.
    pub(crate) fn add(&mut self, n: u64) {
        if let Some((streaming, touched)) = &self.counters {
            streaming.fetch_add(n, Ordering::Relaxed);
            let since = self.epoch.elapsed().as_millis() as u64;
            touched.store(since.max(1), Ordering::Relaxed);
            self.bytes += n;
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ChunkProgress {
    fn drop(&mut self) {
        if let Some((streaming, _)) = &self.counters {
            streaming.fetch_sub(self.bytes, Ordering::Relaxed);
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(scope: &str, id: &str, size: Option<u64>) -> UploadInfo {
        UploadInfo {
            scope: scope.into(),
            identifier: id.into(),
            key: format!("{scope}-{id}"),
            filename: format!("{id}.bin"),
            relative_path: String::new(),
            total_size: size,
            total_chunks: 4,
            chunk_size: size.map(|s| s / 4),
            metadata: Default::default(),
            concat: Default::default(),
        }
    }

    #[test]
    fn received_counts_stored_plus_streaming_and_duplicates_once() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        let up = info("s", "a", Some(400));
        m.observe("k", &up, 0);
        assert_eq!(m.report("s", "a").unwrap().state, State::Starting);
        {
            let mut c = m.chunk("k", false);
            c.add(60);
            let p = m.report("s", "a").unwrap();
            assert_eq!(p.received, 60, "streaming bytes count as they arrive");
            // a duplicate of a stored chunk streaming at the same time is not counted
            let mut d = m.chunk("k", true);
            d.add(100);
            assert_eq!(m.report("s", "a").unwrap().received, 60);
            c.add(40);
        }
        m.stored("k", 100);
        let p = m.report("s", "a").unwrap();
        assert_eq!((p.received, p.state), (100, State::Uploading));
        // a retry of a failed chunk: its partial bytes vanish with its guard
        {
            let mut c = m.chunk("k", false);
            c.add(70);
            assert_eq!(m.report("s", "a").unwrap().received, 170);
        }
        assert_eq!(m.report("s", "a").unwrap().received, 100);
        // never above the size
        let mut c = m.chunk("k", false);
        c.add(1000);
        assert_eq!(m.report("s", "a").unwrap().received, 400);
        drop(c);
        m.assembling("k");
        m.done("k", 400);
        let p = m.report("s", "a").unwrap();
        assert_eq!((p.state, p.received, p.eta), (State::Done, 400, Some(0.0)));
        assert!(p.finished_at.is_some());
    }

    #[test]
    fn resume_after_restart_starts_from_what_is_stored() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        m.observe("k", &info("s", "a", Some(400)), 300);
        let p = m.report("s", "a").unwrap();
        assert_eq!((p.received, p.state), (300, State::Uploading));
    }

    #[test]
    fn scopes_see_only_their_own_and_unknown_is_not_found() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        m.observe("k1", &info("alice", "a", Some(10)), 0);
        m.observe("k2", &info("bob", "a", Some(10)), 0);
        assert_eq!(m.report_scope("alice").len(), 1);
        assert!(m.report("mallory", "a").is_none());
        assert!(m.report("alice", "nope").is_none());
    }

    #[test]
    fn threshold_retention_and_bound() {
        let m = ProgressMonitor::new(ProgressConfig {
            threshold: 100,
            retention: Duration::ZERO,
            max_entries: 3,
            ..ProgressConfig::default()
        });
        m.observe("small", &info("s", "small", Some(99)), 0);
        assert!(m.report("s", "small").is_none(), "below the threshold");
        for i in 0..5 {
            m.observe(
                &format!("k{i}"),
                &info("s", &format!("f{i}"), Some(1000)),
                0,
            );
        }
        assert_eq!(m.len(), 3, "bounded");
        m.done("k4", 1000);
        std::thread::sleep(Duration::from_millis(2));
        assert!(m.report("s", "f4").is_none(), "finished entries expire");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn speed_and_eta() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        m.observe("k", &info("s", "a", Some(1_000_000)), 0);
        let mut c = m.chunk("k", false);
        c.add(1);
        m.report("s", "a");
        std::thread::sleep(Duration::from_millis(300));
        c.add(30_000);
        let p = m.report("s", "a").unwrap();
        assert!(p.speed > 10_000.0, "{p:?}");
        assert!(p.eta.is_some_and(|e| e > 0.0));
    }

    #[test]
    fn changes_report_each_update_once() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        let mut cursor = ProgressCursor::new();
        assert!(m.changes("s", &mut cursor).is_empty());
        m.observe("k", &info("s", "a", Some(100)), 0);
        m.observe("o", &info("other", "b", Some(100)), 0);
        let first = m.changes("s", &mut cursor);
        assert_eq!(first.len(), 1, "only the caller's scope");
        assert!(m.changes("s", &mut cursor).is_empty(), "nothing new");
        m.stored("k", 50);
        let next = m.changes("s", &mut cursor);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].received, 50);
        m.stored("o", 10);
        assert!(
            m.changes("s", &mut cursor).is_empty(),
            "other scopes' changes are not sent"
        );
    }

    #[test]
    fn a_paused_upload_is_reported_again_when_its_speed_falls_to_zero() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        let mut cursor = ProgressCursor::new();
        m.observe("k", &info("s", "a", Some(10_000_000)), 0);
        let mut c = m.chunk("k", false);
        c.add(1);
        m.changes("s", &mut cursor);
        std::thread::sleep(Duration::from_millis(300));
        c.add(500_000);
        let moving = m.changes("s", &mut cursor);
        assert!(moving[0].speed > 0.0, "{moving:?}");
        // Paused: no byte arrives, the version stays, yet the speed falls to 0 and is sent.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut last = moving[0].speed;
        while last > 0.0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            if let Some(p) = m.changes("s", &mut cursor).pop() {
                last = p.speed;
            }
        }
        assert_eq!(last, 0.0);
        assert!(m.changes("s", &mut cursor).is_empty(), "then quiet");
    }

    #[test]
    fn json_shape() {
        let m = ProgressMonitor::new(ProgressConfig::default());
        m.observe("k", &info("s", "a", None), 5);
        let v = serde_json::to_value(m.report("s", "a").unwrap()).unwrap();
        for key in [
            "identifier",
            "filename",
            "state",
            "received",
            "size",
            "speed",
            "eta",
            "started_at",
            "updated_at",
            "finished_at",
            "error",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["state"], "uploading");
        assert_eq!(v["size"], serde_json::Value::Null);
    }
}
