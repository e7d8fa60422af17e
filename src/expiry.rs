//! Expiry: removing uploads that stopped, and leftovers of crashed requests.
//!
//! An upload is judged by its last activity (a chunk stored, a body streaming in, its
//! assembly), never by the age of single chunk files as flow-php-server's `pruneChunks` does.
//! The sweep never waits for a lock: an upload whose lock is held (being assembled, say) is
//! skipped this time.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::merge;
use crate::save::Uploads;
use crate::store::local::INCOMING_DIR;

/// A chunk staging file that nobody holds locked and that has not changed for this long is a
/// crashed request's leftover (live ones are locked by their writer from creation to publication).
const ORPHAN_GRACE: Duration = Duration::from_secs(10);
/// The same for bodies adapters staged in the incoming folder, which stay unlocked for a moment
/// between the adapter and the core.
const INCOMING_GRACE: Duration = Duration::from_secs(120);

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Uploads removed because they were idle longer than the expiry age.
    pub uploads_expired: u64,
    /// Staging files of crashed requests removed (chunk bodies, assembly files).
    pub orphans_removed: u64,
    /// Uploads skipped because a request held their lock.
    pub busy_skipped: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

impl Uploads {
    /// Removes uploads idle for longer than [`Config::expire_after`](crate::Config::expire_after)
    /// (assembled or not: an assembled upload's directory only holds its marker by then), and
    /// the staging files of crashed requests. Safe to run at any time, from any process sharing
    /// the temp dir, alongside live requests.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the temp dir cannot be listed; problems with single
    /// entries are skipped so one bad entry cannot stop the sweep.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.sweep_idle(self.config().expire_after)
    }

    /// [`sweep`](Self::sweep) with an explicit idle age instead of the configured one.
    ///
    /// # Errors
    /// As [`sweep`](Self::sweep).
    pub fn sweep_idle(&self, idle: Duration) -> Result<SweepReport> {
        let root = self.temp_dir().to_path_buf();
        let now = SystemTime::now();
        self.progress().purge_expired();
        let mut report = SweepReport::default();
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(crate::Error::io("list temp dir", &root, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == INCOMING_DIR {
                remove_orphans(&entry.path(), now, INCOMING_GRACE, &mut report);
                continue;
            }
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // Errors on one upload must not stop the sweep of the others.
            let _ = self.sweep_upload(name, idle, now, &mut report);
        }
        Ok(report)
    }

    fn sweep_upload(
        &self,
        key: &str,
        idle: Duration,
        now: SystemTime,
        report: &mut SweepReport,
    ) -> Result<()> {
        let upload = self.store().upload(key);
        let Some(lock) = upload.try_lock()? else {
            report.busy_skipped += 1;
            return Ok(());
        };
        if let Some(record) = upload.assembly_record()? {
            // A crashed assembly: finish it if it was published, otherwise remove its file.
            let staging_len = fs::metadata(&record.staging).map_or(0, |m| m.len());
            if merge::recover(&upload, self.config())?.is_none() {
                report.orphans_removed += 1;
                report.bytes_freed += staging_len;
            }
        }
        remove_orphans(&upload.staging_dir(), now, ORPHAN_GRACE, report);
        let last_activity = last_activity(&upload.path)?;
        let age = now.duration_since(last_activity).unwrap_or_default();
        if age > idle {
            let bytes = dir_size(&upload.path);
            fs::remove_dir_all(&upload.path).ctx("remove expired upload", &upload.path)?;
            self.store().ledgers.forget(key);
            self.forget(key);
            report.uploads_expired += 1;
            report.bytes_freed += bytes;
        }
        drop(lock);
        Ok(())
    }
}

/// The newest modification among the directory itself (chunks published, files created), its
/// ledger and marker, and the staging folder and its files (bodies streaming in).
fn last_activity(dir: &Path) -> Result<SystemTime> {
    let mut newest = fs::metadata(dir)
        .and_then(|m| m.modified())
        .ctx("stat upload directory", dir)?;
    let mut consider = |path: &Path| {
        if let Ok(t) = fs::metadata(path).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    };
    consider(&dir.join("ledger"));
    consider(&dir.join("assembled.json"));
    let staging = dir.join("staging");
    consider(&staging);
    if let Ok(entries) = fs::read_dir(&staging) {
        for entry in entries.flatten() {
            consider(&entry.path());
        }
    }
    Ok(newest)
}

/// Removes staging files in `dir` that no live request holds and that are older than the grace
/// period.
fn remove_orphans(dir: &Path, now: SystemTime, grace: Duration, report: &mut SweepReport) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        if age < grace {
            continue;
        }
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // a live request is writing it
        }
        if fs::remove_file(&path).is_ok() {
            report.orphans_removed += 1;
            report.bytes_freed += meta.len();
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
