//! Expiry: removing uploads that stopped, and leftovers of crashed requests.
//!
//! An upload is judged by its last activity (a piece written or recorded, its assembly), never
//! by the age of single files as flow-php-server's `pruneChunks` does. The sweep never waits
//! for a lock: an upload whose lock is held (being assembled, say) is skipped this time, and so
//! is an upload a live request is writing to, however slowly, and a body an adapter holds
//! before knowing its upload.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Result;
use crate::save::Uploads;

/// Bodies adapters staged before knowing their upload are locked while a request holds them;
/// an unlocked one this old is a crashed request's leftover.
const INCOMING_GRACE: Duration = Duration::from_secs(120);

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Uploads removed because they were idle longer than the expiry age.
    pub uploads_expired: u64,
    /// Leftovers of crashed requests removed (staged bodies, interrupted assemblies).
    pub orphans_removed: u64,
    /// Uploads skipped because a request held their lock or was writing to them.
    pub busy_skipped: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

impl Uploads {
    /// Removes uploads idle for longer than [`Config::expire_after`](crate::Config::expire_after)
    /// (assembled or not), and the leftovers of crashed requests. Safe to run at any time, from
    /// any process sharing the store, alongside live requests. Blocking (file or network I/O
    /// per upload): run it on a thread that may block; each adapter has a helper that runs it
    /// periodically in the background.
    ///
    /// # Errors
    /// Storage failures listing the uploads; problems with single uploads are skipped so one
    /// bad entry cannot stop the sweep.
    pub fn sweep(&self) -> Result<SweepReport> {
        self.sweep_idle(self.config().expire_after)
    }

    /// [`sweep`](Self::sweep) with an explicit idle age instead of the configured one.
    ///
    /// # Errors
    /// As [`sweep`](Self::sweep).
    pub fn sweep_idle(&self, idle: Duration) -> Result<SweepReport> {
        self.progress().purge_expired();
        let store = self.store();
        let mut report = SweepReport::default();
        let (files, bytes) = store.clean_incoming(INCOMING_GRACE)?;
        report.orphans_removed += files;
        report.bytes_freed += bytes;
        let now = SystemTime::now();
        for key in store.keys()? {
            // Errors on one upload must not stop the sweep of the others.
            let _ = self.sweep_upload(&key, idle, now, &mut report);
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
        let store = self.store();
        let Some(lock) = store.try_lock(key)? else {
            report.busy_skipped += 1;
            return Ok(());
        };
        let activity = store.inspect(&lock)?;
        report.orphans_removed += activity.orphans_removed;
        report.bytes_freed += activity.bytes_freed;
        if activity.live {
            report.busy_skipped += 1;
            return Ok(());
        }
        let age = now
            .duration_since(activity.last_activity)
            .unwrap_or_default();
        if age > idle {
            report.bytes_freed += store.remove(&lock)?;
            self.forget(key);
            report.uploads_expired += 1;
        }
        Ok(())
    }
}
