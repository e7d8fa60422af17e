//! Per-scope quotas: how many unfinished uploads a scope may have, and how many bytes it may
//! have stored but not yet assembled.
//!
//! Usage is counted in memory and seeded, on first use, from what the store holds (so a
//! restart does not reset it). Each process counts the uploads it sees; with several servers
//! sharing a temp dir, each enforces the quota on its own view, which the seeding keeps close.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Limit, Result};
use crate::limits::Limits;
use crate::store::Store;

#[derive(Debug, Default)]
pub(crate) struct Quotas {
    /// scope -> (upload key -> bytes stored), `None` until seeded.
    usage: Mutex<Option<HashMap<String, HashMap<String, u64>>>>,
}

impl Quotas {
    fn lock(
        &self,
        store: &dyn Store,
    ) -> MutexGuard<'_, Option<HashMap<String, HashMap<String, u64>>>> {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if usage.is_none() {
            *usage = Some(seed(store));
        }
        usage
    }

    /// Refuses a new upload `key` of `scope` over the live-uploads quota, and `incoming` more
    /// bytes over the pending-bytes quota. A no-op without quotas.
    pub(crate) fn check(
        &self,
        store: &dyn Store,
        limits: &Limits,
        scope: &str,
        key: &str,
        incoming: u64,
    ) -> Result<()> {
        if limits.max_uploads_per_scope.is_none() && limits.max_pending_bytes_per_scope.is_none() {
            return Ok(());
        }
        let usage = self.lock(store);
        let empty = HashMap::new();
        let uploads = usage.as_ref().and_then(|u| u.get(scope)).unwrap_or(&empty);
        if let Some(max) = limits.max_uploads_per_scope
            && !uploads.contains_key(key)
            && uploads.len() as u64 >= max
        {
            return Err(Error::TooManyUploads {
                value: uploads.len() as u64 + 1,
                limit: max,
            });
        }
        if let Some(max) = limits.max_pending_bytes_per_scope {
            let pending: u64 = uploads.values().sum();
            let total = pending.saturating_add(incoming);
            if total > max {
                return Err(Error::TooLarge {
                    limit_kind: Limit::PendingBytesPerScope,
                    value: total,
                    limit: max,
                });
            }
        }
        Ok(())
    }

    /// Records that upload `key` of `scope` holds `bytes`.
    pub(crate) fn set(
        &self,
        store: &dyn Store,
        limits: &Limits,
        scope: &str,
        key: &str,
        bytes: u64,
    ) {
        if limits.max_uploads_per_scope.is_none() && limits.max_pending_bytes_per_scope.is_none() {
            return;
        }
        let mut usage = self.lock(store);
        if let Some(usage) = usage.as_mut() {
            usage
                .entry(scope.to_owned())
                .or_default()
                .insert(key.to_owned(), bytes);
        }
    }

    /// Forgets upload `key` (assembled or expired).
    pub(crate) fn remove(&self, key: &str) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(usage) = usage.as_mut() {
            for uploads in usage.values_mut() {
                uploads.remove(key);
            }
            usage.retain(|_, uploads| !uploads.is_empty());
        }
    }
}

/// Usage from the store: every unassembled upload, with the bytes of its pieces.
fn seed(store: &dyn Store) -> HashMap<String, HashMap<String, u64>> {
    let mut usage: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for key in store.keys().unwrap_or_default() {
        let Ok(Some(stored)) = store.load(&key) else {
            continue;
        };
        if stored.assembled.is_some() {
            continue;
        }
        let bytes = store.tally(&key).map_or(0, |t| t.bytes);
        usage
            .entry(stored.upload.scope)
            .or_default()
            .insert(key, bytes);
    }
    usage
}
