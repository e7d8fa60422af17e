//! Upload locks as leases in the bucket.
//!
//! The lease is a field of the upload's state object (`H/<key>/state`): `{holder, until_ms}`.
//! It is taken by a conditional put of the whole object with `If-Match` its ETag (or
//! `If-None-Match: *` when the object does not exist yet), so of two servers taking it from the
//! same version exactly one succeeds. While held, every change to the state is written the same
//! way, which also pushes `until_ms` forward; a task renews it every third of the lease time
//! while nothing else writes (a long assembly). It is released by writing `lease: null`. A
//! lease whose `until_ms` passed more than [`CLOCK_SKEW`] ago is taken over: its holder died
//! (or lost the network) without releasing it. Servers' clocks must agree within that skew.
//!
//! Within one process the threads of a key queue on a local lock first, so only one of them
//! polls the bucket.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use object_store::path::Path;

use super::remote::{Conditional, Remote};
use super::state::{Lease, State};
use crate::clock::now_ms;
use crate::error::{Error, Result};

/// How far two servers' clocks may disagree: a lease is taken over only this long after it
/// expired by the taker's clock.
pub(super) const CLOCK_SKEW: Duration = Duration::from_secs(2);

/// The lease currently held by this process on one upload, and the state as last written.
#[derive(Debug)]
pub(super) struct Held {
    pub holder: String,
    pub current: tokio::sync::Mutex<Current>,
    /// Set when the lease is released (stops the renewal task).
    pub released: AtomicBool,
    /// Set when a write found the lease taken by someone else.
    pub lost: AtomicBool,
    pub wake: tokio::sync::Notify,
    /// Until when this process may act under the lease (its own monotonic clock).
    pub valid_until: Mutex<Instant>,
}

#[derive(Debug, Clone)]
pub(super) struct Current {
    pub etag: String,
    pub state: State,
}

impl Held {
    pub fn is_valid(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && Instant::now() < *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a write that pushed the lease to now + `lease_time`: others take it over only
    /// [`CLOCK_SKEW`] after that by their clocks, so acting is safe for the lease time, less a
    /// quarter of it for the action itself.
    fn extend(&self, lease_time: Duration) {
        let until = Instant::now() + lease_time - lease_time / 4;
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }
}

/// Threads of this process waiting for, or holding, a key.
#[derive(Debug, Default)]
pub(super) struct LocalLocks {
    held: Mutex<HashSet<String>>,
    changed: Condvar,
}

/// A key held by one thread of this process.
#[derive(Debug)]
pub(super) struct LocalGuard {
    locks: Arc<LocalLocks>,
    key: String,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let locks = &self.locks;
        let mut held = locks.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
        drop(held);
        locks.changed.notify_all();
    }
}

/// Takes the local lock of `key`, waiting until `deadline`.
pub(super) fn local_lock(
    locks: &Arc<LocalLocks>,
    key: &str,
    deadline: Instant,
) -> Result<LocalGuard> {
    let mut held = locks.held.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if !held.contains(key) {
            held.insert(key.to_owned());
            return Ok(LocalGuard {
                locks: Arc::clone(locks),
                key: key.to_owned(),
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Busy { retry_after: 1 });
        }
        let (guard, _) = locks
            .changed
            .wait_timeout(held, deadline - now)
            .unwrap_or_else(|p| p.into_inner());
        held = guard;
    }
}

fn lease_for(holder: &str, lease_time: Duration) -> Lease {
    Lease {
        holder: holder.to_owned(),
        until_ms: now_ms() + u64::try_from(lease_time.as_millis()).unwrap_or(u64::MAX),
    }
}

fn token() -> String {
    let mut bytes = [0u8; 12];
    fill_random(&mut bytes);
    hex::encode(bytes)
}

/// Random bytes from the standard library's hasher seeds (good enough for tokens that only
/// need to differ).
pub(super) fn fill_random(out: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u64(now_ms());
        h.write_u32(std::process::id());
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// What taking a lease found.
pub(super) enum Taken {
    /// Held now.
    Held(Arc<Held>),
    /// The upload does not exist (and was not to be created).
    Absent,
    /// Someone else holds it.
    Busy,
}

/// Takes the lease in the state object at `path` (the local lock held), waiting until
/// `deadline`, trying the version this process released last (`cached`) first; creates the
/// state object when `create`.
pub(super) async fn acquire(
    remote: Arc<Remote>,
    path: Path,
    lease_time: Duration,
    mut cached: Option<Current>,
    deadline: Instant,
    create: bool,
) -> Result<Taken> {
    let holder = token();
    let mut pause = Duration::from_millis(1);
    loop {
        let (etag, state) = match cached.take() {
            Some(c) => (Some(c.etag), Some(c.state)),
            None => match remote.get(&path).await? {
                Some((bytes, meta)) => {
                    let state = serde_json::from_slice::<State>(&bytes)
                        .ok()
                        .filter(|s| s.layout == super::state::LAYOUT)
                        .unwrap_or_else(State::empty);
                    (meta.e_tag, Some(state))
                }
                None => (None, None),
            },
        };
        let free = match &state {
            None => true,
            Some(s) => s.lease.as_ref().is_none_or(|l| {
                now_ms() > l.until_ms + u64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(0)
            }),
        };
        if state.is_none() && !create {
            return Ok(Taken::Absent);
        }
        if free {
            let mut next = state.clone().unwrap_or_else(State::empty);
            next.lease = Some(lease_for(&holder, lease_time));
            let body = serde_json::to_vec(&next).expect("state serializes");
            let condition = if state.is_none() { None } else { etag };
            match remote.put_if(&path, body.into(), condition.clone()).await? {
                Conditional::Written(etag) => {
                    let held = Arc::new(Held {
                        holder: holder.clone(),
                        current: tokio::sync::Mutex::new(Current { etag, state: next }),
                        released: AtomicBool::new(false),
                        lost: AtomicBool::new(false),
                        wake: tokio::sync::Notify::new(),
                        valid_until: Mutex::new(Instant::now()),
                    });
                    held.extend(lease_time);
                    return Ok(Taken::Held(held));
                }
                Conditional::Lost => continue, // someone was faster: look again at once
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Taken::Busy);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Keeps `held` (the lease in the state object at `path`) alive until it is released: renews
/// every third of the lease time.
pub(super) async fn renew(remote: Arc<Remote>, path: Path, lease_time: Duration, held: Arc<Held>) {
    let every = lease_time / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = held.wake.notified() => {}
        }
        if held.released.load(Ordering::SeqCst) {
            return;
        }
        let mut current = held.current.lock().await;
        if held.released.load(Ordering::SeqCst) {
            return;
        }
        let mut next = current.state.clone();
        next.lease = Some(lease_for(&held.holder, lease_time));
        if write_locked(&remote, &path, lease_time, &held, &mut current, next)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Writes `next` as the state at `path` (lease pushed forward), `current` locked.
pub(super) async fn write_locked(
    remote: &Remote,
    path: &Path,
    lease_time: Duration,
    held: &Held,
    current: &mut Current,
    mut next: State,
) -> Result<()> {
    if held.lost.load(Ordering::SeqCst) {
        return Err(lost(path.as_ref()));
    }
    if next.lease.is_some() {
        next.lease = Some(lease_for(&held.holder, lease_time));
    }
    let body = serde_json::to_vec(&next).expect("state serializes");
    match remote
        .put_if(path, body.into(), Some(current.etag.clone()))
        .await?
    {
        Conditional::Written(etag) => {
            *current = Current { etag, state: next };
            held.extend(lease_time);
            Ok(())
        }
        Conditional::Lost => {
            held.lost.store(true, Ordering::SeqCst);
            Err(lost(path.as_ref()))
        }
    }
}

/// The error of a write under a lease that another server took over (`key`: the upload's, or
/// its state object's).
pub(super) fn lost(key: &str) -> Error {
    Error::ObjectStore {
        op: "update upload state",
        key: key.to_owned(),
        reason: "the upload's lease expired and was taken over".to_owned(),
        transient: true,
    }
}

/// The path of a key's state object.
pub(super) fn state_path(hidden: &Path, key: &str) -> Path {
    hidden.clone().join(key).join("state")
}
