//! The object-storage store ([`S3Store`]): its layout, leases and costs are documented on the
//! type.

mod lease;
mod remote;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path as FsPath};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::lease::{Current, Held, LocalGuard, LocalLocks, Taken};
use self::state::{Assembling, Conflict, Generation, PartRecord, Segment, State};
use super::publish::numbered;
use super::{
    Activity, Assembly, Capabilities, ConflictPolicy, Marker, Piece, PieceWriter, Recorded, Store,
    Stored, Tally, UploadLock,
};
use crate::clock::now_ms;
use crate::error::{Error, Limit, Result};
use crate::upload::{Location, UploadInfo};

pub use remote::RequestCounts;

/// The name of the hidden folder below the prefix.
const HIDDEN: &str = ".chunked-upload";
/// S3's most parts per multipart upload.
const MAX_PARTS: u64 = 10_000;
/// S3's least size of a part that is not the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// A writer opened this long ago without committing is taken for dead by the sweep.
const WRITER_TTL: Duration = Duration::from_secs(3600);
/// A staged segment no writer or state refers to, this old, is a crashed request's leftover.
const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// Uploads kept in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2; GCS and Azure through
/// the same `object_store` crate), shared by any number of stateless servers.
///
/// # Bucket layout
///
/// ```text
/// PREFIX/<name>                          assembled files, named as in an upload directory
/// PREFIX/.chunked-upload/<key>/state     the upload's state and lease (JSON, conditional puts)
/// PREFIX/.chunked-upload/<key>/s/<w>-<offset>
///                                        a staged segment: bytes of one piece inside one part,
///                                        written by writer <w>, waiting to be coalesced
/// PREFIX/.chunked-upload/<key>/g<nonce>/r/<index>
///                                        the record of a piece: its length and SHA-256
/// PREFIX/.chunked-upload/<key>/g<nonce>/object
///                                        the multipart upload the parts go to; the whole file
///                                        once completed, before it is published
/// ```
///
/// The file is cut into parts at fixed byte offsets (every [`S3StoreBuilder::part_size`],
/// 8 MiB by default, more for files that would need over 10 000 parts), whatever the widget's
/// chunk size. A request streams its chunk into segments that each lie within one part; a
/// segment is `PUT` as soon as it is full, so a request holds at most one part in memory
/// (never a whole 128 MiB chunk) and no server needs a disk for an upload's bytes. Once the
/// segments recorded for a part cover it, the server that recorded the last of them reads them
/// back and uploads them as that part of the upload's multipart upload, in the background and
/// outside the upload's lock; its next request holding the lock records the part and deletes
/// the segments. A part never recorded (its server killed meanwhile) is uploaded again from its
/// segments by the assembly.
/// Every part but the last is a full part, so S3's 5 MiB minimum holds for any chunk size.
///
/// # State, and what a chunk costs
///
/// Which pieces are recorded, the multipart upload's id, its uploaded parts (number, ETag,
/// size), the segments waiting for their part and the marker of an assembled upload live in one
/// state object per upload, written with a conditional put (`If-Match` its ETag) at every
/// change. Completion is read from it: no listing per request. A chunk of an upload costs:
///
/// | step | requests |
/// |---|---|
/// | lock, then unlock (twice: before the body, and to record it) | 2 conditional `PUT` each, 1 `GET` more when another server wrote last |
/// | the body | 1 `PUT` per segment (one per chunk when chunks are smaller than a part) |
/// | recording it | 1 `PUT` (its record), 1 conditional `PUT` (the state) |
/// | a part it completes (in the background) | 1 `GET` per segment of the part, 1 `UploadPart`, 1 `DELETE` per segment |
///
/// and the assembly: the last part's coalescing, `CompleteMultipartUpload`, one server-side
/// copy to the destination, and the deletion of the completed hidden object. The state object
/// grows with the number of parts (about 80 bytes each), not with the number of chunks.
///
/// # Locks are leases
///
/// An upload's lock is a lease in its state object, taken with a conditional put, renewed
/// every third of the lease time (30 s by default) while held, and released by a conditional
/// put. A lease its holder failed to renew or release (a server killed) is taken over once it
/// has been expired for 2 s: a dead server never holds an upload for longer than the lease time
/// plus 2 s. Servers' clocks must agree within 2 s (NTP).
///
/// # Exactly-once assembly
///
/// Under the lease: the last part is uploaded, the state records that an assembly started,
/// `CompleteMultipartUpload` makes the whole file appear atomically at the hidden `object` key,
/// and a server-side copy publishes it: `copy_if_not_exists` (a conditional create) for
/// [`ConflictPolicy::Refuse`](crate::ConflictPolicy::Refuse) and
/// [`Rename`](crate::ConflictPolicy::Rename), a plain copy for
/// [`Overwrite`](crate::ConflictPolicy::Overwrite). Then the marker is written. A server
/// killed at any moment leaves either no published file (the next server to take the lease
/// finishes the assembly) or a published file whose marker the next server writes: it
/// recognises the file as its own by its size and a modification time after the assembly
/// started. A copy is atomic, so no partial object is ever visible at a destination.
///
/// A single copy is limited by S3 to 5 GiB: files above that cannot be published.
///
/// # Expiry and the lifecycle backstop
///
/// [`Uploads::sweep`](crate::Uploads::sweep) aborts the multipart upload of an idle upload and
/// deletes its objects. A multipart upload created by a server killed before it could record it
/// cannot be found again (`object_store` cannot list multipart uploads); add a lifecycle rule
/// to the bucket as a backstop:
///
/// ```xml
/// <LifecycleConfiguration>
///   <Rule>
///     <ID>chunked-upload</ID>
///     <Filter><Prefix>PREFIX/.chunked-upload/</Prefix></Filter>
///     <Status>Enabled</Status>
///     <AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload>
///     <Expiration><Days>7</Days></Expiration>
///   </Rule>
/// </LifecycleConfiguration>
/// ```
///
/// (pick days longer than [`Config::expire_after`](crate::Config::expire_after)).
///
/// # Example
///
/// ```no_run
/// # fn main() -> chunked_upload::Result<()> {
/// use chunked_upload::object_store::aws::AmazonS3Builder;
/// use chunked_upload::{Config, S3Store, Uploads};
///
/// let s3 = AmazonS3Builder::from_env() // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...
///     .with_bucket_name("uploads")
///     .build()
///     .expect("an S3 configuration");
/// let store = S3Store::builder_s3(s3).prefix("incoming").build()?;
/// let uploads = Uploads::new(Config::builder_with_store(store).build())?;
/// # let _ = uploads;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("store", &self.inner.remote.objects.to_string())
            .field("prefix", &self.inner.prefix.as_ref())
            .field("part_size", &self.inner.part_size)
            .field("lease_time", &self.inner.lease_time)
            .finish_non_exhaustive()
    }
}

/// Builds an [`S3Store`].
pub struct S3StoreBuilder {
    objects: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    prefix: String,
    part_size: u64,
    lease_time: Duration,
    worker_threads: usize,
}

impl fmt::Debug for S3StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StoreBuilder")
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("lease_time", &self.lease_time)
            .finish_non_exhaustive()
    }
}

impl S3StoreBuilder {
    /// The key prefix: assembled files go directly below it, uploads in progress below its
    /// hidden `.chunked-upload/` folder. Default: the bucket's root.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The size of every part but the last (default 8 MiB). S3 needs at least
    /// [`MIN_PART_SIZE`] (5 MiB); smaller sizes suit only stores without that rule (tests
    /// over `object_store`'s in-memory store). A request holds up to one part in memory.
    pub fn part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    /// How long a lease lasts without renewal (default 30 s): the longest a killed server
    /// keeps an upload locked (plus 2 s of clock skew).
    pub fn lease_time(mut self, lease_time: Duration) -> Self {
        self.lease_time = lease_time.max(Duration::from_millis(300));
        self
    }

    /// Threads of the store's own runtime, which runs its requests (default 2).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }

    /// Makes the store and its runtime.
    ///
    /// # Errors
    /// [`Error::TaskFailed`] when the runtime cannot start.
    pub fn build(self) -> Result<S3Store> {
        let prefix = Path::from(self.prefix.as_str());
        let hidden = prefix.clone().join(HIDDEN);
        Ok(S3Store {
            inner: Arc::new(Inner {
                remote: Arc::new(remote::Remote::new(
                    self.objects,
                    self.multipart,
                    self.worker_threads,
                )?),
                prefix,
                hidden,
                part_size: self.part_size,
                lease_time: self.lease_time,
                local: Arc::new(LocalLocks::default()),
                held: Mutex::new(HashMap::new()),
                released: Mutex::new(HashMap::new()),
                finished: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl S3Store {
    /// A builder over any store with conditional puts and multipart uploads (S3, GCS, Azure,
    /// `object_store`'s in-memory store for tests).
    pub fn builder(
        objects: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
    ) -> S3StoreBuilder {
        S3StoreBuilder {
            objects,
            multipart,
            prefix: String::new(),
            part_size: 8 * 1024 * 1024,
            lease_time: Duration::from_secs(30),
            worker_threads: 2,
        }
    }

    /// A builder over an S3 bucket. Configure conditional puts (`with_conditional_put`,
    /// `ETagMatch` is the default) and, for `Refuse` and `Rename`, how copies avoid
    /// overwriting (`with_copy_if_not_exists`: `Multipart` for AWS S3, MinIO and s3s, a
    /// header for R2).
    pub fn builder_s3(s3: object_store::aws::AmazonS3) -> S3StoreBuilder {
        let s3 = Arc::new(s3);
        S3Store::builder(Arc::clone(&s3) as Arc<dyn ObjectStore>, s3)
    }

    /// Requests sent to the bucket so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        self.inner.remote.counters.snapshot()
    }

    /// The assembled files below the prefix (hidden keys left out): key, size, last
    /// modification in Unix milliseconds. One listing of the prefix.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when the bucket cannot be listed.
    pub fn assembled_objects(&self) -> Result<Vec<(String, u64, u64)>> {
        let inner = Arc::clone(&self.inner);
        let prefix = inner.prefix.clone();
        let all = inner.remote.run({
            let inner = Arc::clone(&inner);
            async move { inner.remote.list(&prefix).await }
        })?;
        let skip = inner.prefix.parts_count();
        Ok(all
            .into_iter()
            .filter(|m| {
                m.location
                    .parts()
                    .skip(skip)
                    .all(|p| !p.as_ref().starts_with('.'))
            })
            .map(|m| {
                let name = m
                    .location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let ms = u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0);
                (name, m.size, ms)
            })
            .collect())
    }
}

struct Inner {
    remote: Arc<remote::Remote>,
    prefix: Path,
    hidden: Path,
    part_size: u64,
    lease_time: Duration,
    local: Arc<LocalLocks>,
    /// The leases this process holds, by key (their state as last written).
    held: Mutex<HashMap<String, Arc<Held>>>,
    /// The state as this process released it, by key: the next lock tries that version first.
    released: Mutex<HashMap<String, Current>>,
    /// Parts uploaded in the background, by key, until a request holding the lock records them.
    finished: Mutex<HashMap<String, Vec<Finished>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

/// A part uploaded in the background, waiting to be recorded.
#[derive(Debug)]
struct Finished {
    nonce: u64,
    id: String,
    part: u32,
    record: PartRecord,
    segments: Vec<Segment>,
}

/// A piece's record: `g<nonce>/r/<index>`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PieceRecord {
    len: u64,
    sha256: String,
}

impl Inner {
    fn state_path(&self, key: &str) -> Path {
        lease::state_path(&self.hidden, key)
    }

    fn upload_dir(&self, key: &str) -> Path {
        self.hidden.clone().join(key)
    }

    fn generation_dir(&self, key: &str, nonce: u64) -> Path {
        self.upload_dir(key).join(format!("g{nonce:016x}").as_str())
    }

    fn record_path(&self, key: &str, nonce: u64, index: u64) -> Path {
        self.generation_dir(key, nonce)
            .join("r")
            .join(index.to_string().as_str())
    }

    fn object_path(&self, key: &str, nonce: u64) -> Path {
        self.generation_dir(key, nonce).join("object")
    }

    fn hooked_path(&self, key: &str, nonce: u64) -> Path {
        self.generation_dir(key, nonce).join("hooked")
    }

    fn segment_path(&self, key: &str, name: &str) -> Path {
        self.upload_dir(key).join("s").join(name)
    }

    fn take_released(&self, key: &str) -> Option<Current> {
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    fn held(&self, key: &str) -> Result<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| Error::ObjectStore {
                op: "use upload lock",
                key: key.to_owned(),
                reason: "this store does not hold the upload's lease".to_owned(),
                transient: false,
            })
    }

    fn held_if_any(&self, key: &str) -> Option<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }
}

/// The store's methods, on the shared inner part.
trait Ops {
    fn snapshot(&self, held: &Arc<Held>) -> Result<State>;
    fn write(&self, key: &str, held: &Arc<Held>, next: State) -> Result<()>;
    fn set_local(&self, held: &Arc<Held>, next: State) -> Result<()>;
    fn view(&self, key: &str) -> Result<Option<Generation>>;
    fn delete_later(&self, paths: Vec<Path>);
}

impl Ops for Arc<Inner> {
    fn snapshot(&self, held: &Arc<Held>) -> Result<State> {
        let held = Arc::clone(held);
        self.remote
            .run(async move { Ok(held.current.lock().await.state.clone()) })
    }

    fn write(&self, key: &str, held: &Arc<Held>, next: State) -> Result<()> {
        let (inner, held, key) = (Arc::clone(self), Arc::clone(held), key.to_owned());
        self.remote.run(async move {
            let mut current = held.current.lock().await;
            let path = inner.state_path(&key);
            lease::write_locked(
                &inner.remote,
                &path,
                inner.lease_time,
                &held,
                &mut current,
                next,
            )
            .await
        })
    }

    fn set_local(&self, held: &Arc<Held>, next: State) -> Result<()> {
        let held = Arc::clone(held);
        self.remote.run(async move {
            held.current.lock().await.state = next;
            Ok(())
        })
    }

    /// The upload's generation: as held by this process, or as the bucket has it.
    fn view(&self, key: &str) -> Result<Option<Generation>> {
        if let Some(held) = self.held_if_any(key) {
            return Ok(self.snapshot(&held)?.generation);
        }
        let inner = Arc::clone(self);
        let path = self.state_path(key);
        let key = key.to_owned();
        self.remote.run(async move {
            let Some((bytes, _)) = inner.remote.get(&path).await? else {
                return Ok(None);
            };
            match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if state.layout == state::LAYOUT => Ok(state.generation),
                Ok(_) => Ok(None),
                Err(e) => Err(Error::Corrupt {
                    what: "upload state",
                    key,
                    reason: e.to_string(),
                }),
            }
        })
    }

    fn delete_later(&self, paths: Vec<Path>) {
        if paths.is_empty() {
            return;
        }
        let inner = Arc::clone(self);
        self.remote.spawn(async move {
            let _ = inner.remote.delete_all(paths).await;
        });
    }
}

/// The held lease inside an [`UploadLock`]: released when dropped.
struct LeaseGuard {
    inner: Arc<Inner>,
    key: String,
    held: Arc<Held>,
    _local: LocalGuard,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        self.held.released.store(true, Ordering::SeqCst);
        self.held.wake.notify_one();
        let (task_inner, held, key) = (Arc::clone(inner), Arc::clone(&self.held), self.key.clone());
        let released = inner.remote.run(async move {
            let current = held.current.lock().await;
            if held.lost.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let mut next = current.state.clone();
            next.lease = None;
            let body = serde_json::to_vec(&next).expect("state serializes");
            let path = task_inner.state_path(&key);
            match task_inner
                .remote
                .put_if(&path, body.into(), Some(current.etag.clone()))
                .await?
            {
                remote::Conditional::Written(etag) => Ok(Some(Current { etag, state: next })),
                remote::Conditional::Lost => Ok(None),
            }
        });
        // A release that fails leaves the lease to expire; the next holder finds the state as
        // last written, which every write kept complete.
        if let Ok(Some(current)) = released {
            let mut cache = inner.released.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= 4096 {
                cache.clear();
            }
            cache.insert(self.key.clone(), current);
        }
    }
}

impl S3Store {
    fn take(&self, key: &str, timeout: Duration, create: bool) -> Result<Option<UploadLock>> {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        let local = match lease::local_lock(&inner.local, key, deadline) {
            Ok(local) => local,
            Err(_) if !create => return Ok(None),
            Err(e) => return Err(e),
        };
        let taken = inner.remote.run(lease::acquire(
            Arc::clone(&inner.remote),
            inner.state_path(key),
            inner.lease_time,
            inner.take_released(key),
            deadline,
            create,
        ))?;
        let held = match taken {
            Taken::Held(held) => held,
            Taken::Absent => return Ok(None),
            Taken::Busy if create => return Err(Error::Busy { retry_after: 1 }),
            Taken::Busy => return Ok(None),
        };
        inner
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), Arc::clone(&held));
        inner.remote.spawn(lease::renew(
            Arc::clone(&inner.remote),
            inner.state_path(key),
            inner.lease_time,
            Arc::clone(&held),
        ));
        Ok(Some(UploadLock::new(
            key,
            LeaseGuard {
                inner: Arc::clone(inner),
                key: key.to_owned(),
                held,
                _local: local,
            },
        )))
    }

    /// The part size for an upload of `total` bytes: the configured one, or more when the file
    /// would need over 10 000 parts.
    fn part_size_for(&self, total: Option<u64>) -> u64 {
        let base = self.inner.part_size;
        total.map_or(base, |t| base.max(t.div_ceil(MAX_PARTS)))
    }

    /// The key a relative destination is published at.
    fn destination_key(&self, destination: &FsPath) -> Result<Path> {
        let mut path = self.inner.prefix.clone();
        let mut any = false;
        for component in destination.components() {
            match component {
                Component::Normal(part) => {
                    path = path.join(part.to_string_lossy().as_ref());
                    any = true;
                }
                Component::CurDir => {}
                _ => {
                    return Err(Error::ObjectStore {
                        op: "resolve destination",
                        key: destination.display().to_string(),
                        reason: "an object destination must be a relative name without `..`"
                            .to_owned(),
                        transient: false,
                    });
                }
            }
        }
        if !any {
            return Err(Error::ObjectStore {
                op: "resolve destination",
                key: destination.display().to_string(),
                reason: "empty destination".to_owned(),
                transient: false,
            });
        }
        Ok(path)
    }

    /// The multipart upload of `generation`, created if it has none yet (lock held).
    fn multipart_of(&self, key: &str, generation: &mut Generation) -> Result<String> {
        if let Some(id) = &generation.multipart {
            return Ok(id.clone());
        }
        let (task, path) = (
            Arc::clone(&self.inner),
            self.inner.object_path(key, generation.nonce),
        );
        let id = self
            .inner
            .remote
            .run(async move { task.remote.create_multipart(&path).await })?;
        generation.multipart = Some(id.clone());
        Ok(id)
    }

    /// Reads the staged `segments` of part `part` (sorted, covering it) and uploads them as
    /// that part of multipart upload `id`. No lock needed: segments never change, and a part
    /// uploaded twice from them is the same part.
    fn upload_part(
        &self,
        key: &str,
        nonce: u64,
        id: &str,
        part: u32,
        segments: &[Segment],
    ) -> Result<PartRecord> {
        let inner = &self.inner;
        let object = inner.object_path(key, nonce);
        let reads: Vec<Path> = segments
            .iter()
            .map(|s| inner.segment_path(key, &s.name))
            .collect();
        let lens: Vec<u64> = segments.iter().map(|s| s.len).collect();
        let size = lens.iter().sum();
        let (task, key_owned, id) = (Arc::clone(inner), key.to_owned(), id.to_owned());
        let etag = inner.remote.run(async move {
            let fetched =
                futures_util::future::try_join_all(reads.iter().map(|p| task.remote.get(p)))
                    .await?;
            let mut bytes = Vec::with_capacity(fetched.len());
            for ((found, len), path) in fetched.into_iter().zip(lens).zip(&reads) {
                match found {
                    Some((b, _)) if b.len() as u64 == len => bytes.push(b),
                    _ => {
                        return Err(Error::Corrupt {
                            what: "staged segment",
                            key: key_owned,
                            reason: format!("{path} is missing or has another size"),
                        });
                    }
                }
            }
            let payload: object_store::PutPayload = bytes.into_iter().collect();
            task.remote.put_part(&object, &id, part, payload).await
        })?;
        Ok(PartRecord { etag, size })
    }

    /// The segments of `part`, sorted, checked to cover it without gaps.
    fn part_segments(key: &str, generation: &Generation, part: u32) -> Result<Vec<Segment>> {
        let mut segments = generation.pending.get(&part).cloned().unwrap_or_default();
        segments.sort_by_key(|s| s.offset);
        let mut at = u64::from(part) * generation.part_size;
        for s in &segments {
            if s.offset != at {
                return Err(Error::Corrupt {
                    what: "staged segments",
                    key: key.to_owned(),
                    reason: format!("part {part} has a gap or an overlap at byte {at}"),
                });
            }
            at += s.len;
        }
        Ok(segments)
    }

    /// Uploads part `part` of `generation` from its staged segments (lock held); returns the
    /// segments' paths, to delete once the state records the part.
    fn coalesce(&self, key: &str, generation: &mut Generation, part: u32) -> Result<Vec<Path>> {
        let segments = Self::part_segments(key, generation, part)?;
        let id = self.multipart_of(key, generation)?;
        let record = self.upload_part(key, generation.nonce, &id, part, &segments)?;
        generation.pending.remove(&part);
        generation.parts.insert(part, record);
        Ok(segments
            .iter()
            .map(|s| self.inner.segment_path(key, &s.name))
            .collect())
    }

    /// Uploads part `part` in the background, so that a request does not hold the upload's
    /// lock while a part's bytes travel; the next request of this process that holds the lock
    /// records it ([`S3Store::drain`]). Should it fail or never be recorded (a crash, or no
    /// further request here), assembly uploads the part from its segments, which stay until
    /// the part is recorded.
    fn coalesce_later(&self, key: &str, nonce: u64, id: String, part: u32, segments: Vec<Segment>) {
        let (store, key) = (self.clone(), key.to_owned());
        self.inner.remote.spawn_blocking(move || {
            if let Ok(record) = store.upload_part(&key, nonce, &id, part, &segments) {
                let mut finished = store
                    .inner
                    .finished
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                finished.entry(key).or_default().push(Finished {
                    nonce,
                    id,
                    part,
                    record,
                    segments,
                });
            }
        });
    }

    /// Records the parts this process uploaded in the background for `generation` (lock
    /// held); returns the segments to delete once the state is written.
    fn drain(&self, key: &str, generation: &mut Generation) -> Vec<Path> {
        let done = {
            let mut finished = self
                .inner
                .finished
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            finished.remove(key).unwrap_or_default()
        };
        let mut paths = Vec::new();
        for f in done {
            let current = generation.nonce == f.nonce
                && generation.assembling.is_none()
                && generation.multipart.as_deref() == Some(f.id.as_str())
                && !generation.parts.contains_key(&f.part)
                && generation.pending.get(&f.part).is_some_and(|p| {
                    let mut p = p.clone();
                    p.sort_by_key(|s| s.offset);
                    p == f.segments
                });
            if current {
                generation.pending.remove(&f.part);
                generation.parts.insert(f.part, f.record);
                paths.extend(
                    f.segments
                        .iter()
                        .map(|s| self.inner.segment_path(key, &s.name)),
                );
            }
        }
        paths
    }

    fn read_record(&self, key: &str, nonce: u64, index: u64) -> Result<Option<PieceRecord>> {
        let inner = Arc::clone(&self.inner);
        let path = self.inner.record_path(key, nonce, index);
        self.inner.remote.run(async move {
            Ok(inner
                .remote
                .get(&path)
                .await?
                .and_then(|(b, _)| serde_json::from_slice(&b).ok()))
        })
    }

    /// Runs the pre-process hook over the completed object, piece by piece, into a new
    /// multipart upload at `hooked`; returns the output's size.
    fn run_hook(
        &self,
        key: &str,
        generation: &Generation,
        source: &Path,
        hook: &super::PreprocessFn,
    ) -> Result<u64> {
        let inner = &self.inner;
        let target = inner.hooked_path(key, generation.nonce);
        let (task, path) = (Arc::clone(inner), target.clone());
        let id = inner
            .remote
            .run(async move { task.remote.create_multipart(&path).await })?;
        let mut out = PartSink {
            inner: Arc::clone(inner),
            path: target.clone(),
            id: id.clone(),
            part_size: generation.part_size.max(MIN_PART_SIZE),
            buf: Vec::new(),
            etags: Vec::new(),
            written: 0,
        };
        let mut offset = 0;
        let count = generation.upload.total_chunks.min(generation.tally.present);
        for index in 0..count {
            let size = generation.size_of(index).unwrap_or(0);
            let mut piece = RangeReader {
                inner: Arc::clone(inner),
                path: source.clone(),
                at: offset,
                end: offset + size,
                buf: Bytes::new(),
            };
            let result = hook(index, &mut piece, &mut out);
            if let Err(e) = result {
                let (task, path, id) = (Arc::clone(inner), target.clone(), id.clone());
                let _ = inner
                    .remote
                    .run(async move { task.remote.abort(&path, &id).await });
                return Err(if e.kind() == std::io::ErrorKind::InvalidData {
                    Error::Refused {
                        reason: e.to_string(),
                    }
                } else {
                    Error::ObjectStore {
                        op: "pre-process piece",
                        key: key.to_owned(),
                        reason: e.to_string(),
                        transient: false,
                    }
                });
            }
            offset += size;
        }
        out.finish()
    }

    /// Publishes the assembly `a` records (lock held) and writes the marker.
    fn publish(
        &self,
        key: &str,
        held: &Arc<Held>,
        mut state: State,
        plan: Option<&Assembly<'_>>,
        recovering: bool,
    ) -> Result<Marker> {
        let inner = &self.inner;
        let generation = state.generation.as_mut().expect("an upload");
        let mut a = generation.assembling.clone().expect("an assembly");
        let nonce = generation.nonce;
        let object = inner.object_path(key, nonce);
        if !a.source_complete {
            let id = generation.multipart.clone();
            let etags: Vec<String> = generation.parts.values().map(|p| p.etag.clone()).collect();
            let (task, path, size) = (Arc::clone(inner), object.clone(), a.size);
            inner.remote.run(async move {
                let completed = match &id {
                    Some(id) => task.remote.complete(&path, id, etags).await,
                    None => Err(Error::ObjectStore {
                        op: "complete multipart upload",
                        key: path.to_string(),
                        reason: "no multipart upload recorded".to_owned(),
                        transient: false,
                    }),
                };
                match completed {
                    Ok(()) => Ok(()),
                    // Completed before (the answer was lost, or a killed server did it).
                    Err(e) => match task.remote.head(&path).await? {
                        Some(meta) if meta.size == size => Ok(()),
                        _ => Err(e),
                    },
                }
            })?;
            a.source_complete = true;
            generation.multipart = None;
            generation.parts.clear();
            generation.assembling = Some(a.clone());
            self.inner.write(key, held, state.clone())?;
        }
        let generation = state.generation.as_mut().expect("an upload");
        if a.hook_pending {
            // Only a request that assembles has the hook: the sweep leaves this to it.
            let Some(hook) = plan.and_then(|p| p.preprocess) else {
                return Err(Error::ObjectStore {
                    op: "publish assembled file",
                    key: key.to_owned(),
                    reason: "the pre-process hook has not run yet".to_owned(),
                    transient: true,
                });
            };
            let size = self.run_hook(key, generation, &object, hook)?;
            a.source = inner.hooked_path(key, nonce).to_string();
            a.size = size;
            a.hook_pending = false;
            generation.assembling = Some(a.clone());
            self.inner.write(key, held, state.clone())?;
            self.inner.delete_later(vec![object.clone()]);
        }
        let source = Path::from(a.source.as_str());
        let base = Path::from(a.destination.as_str());
        let mut published = None;
        for n in 0u32.. {
            let candidate = match a.conflict {
                Conflict::Rename => renamed(&base, n),
                _ => base.clone(),
            };
            if recovering {
                let (task, path) = (Arc::clone(inner), candidate.clone());
                let found = inner
                    .remote
                    .run(async move { task.remote.head(&path).await })?;
                if let Some(meta) = found {
                    let modified =
                        u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
                    let skew = u64::try_from(lease::CLOCK_SKEW.as_millis()).unwrap_or(0);
                    if meta.size == a.size && modified + skew >= a.started_ms {
                        published = Some(candidate);
                        break;
                    }
                    match a.conflict {
                        Conflict::Rename => continue,
                        Conflict::Refuse => {
                            return Err(Error::Conflict {
                                location: Location::Object(candidate.to_string()),
                            });
                        }
                        Conflict::Overwrite => {}
                    }
                }
            }
            if !held.is_valid() {
                return Err(lease::lost(key));
            }
            let create = a.conflict != Conflict::Overwrite;
            let (task, from, to) = (Arc::clone(inner), source.clone(), candidate.clone());
            let done = inner
                .remote
                .run(async move { task.remote.copy(&from, &to, create).await })?;
            if done {
                published = Some(candidate);
                break;
            }
            if a.conflict == Conflict::Refuse {
                return Err(Error::Conflict {
                    location: Location::Object(candidate.to_string()),
                });
            }
            if n > 10_000 {
                break;
            }
        }
        let Some(published) = published else {
            return Err(Error::Conflict {
                location: Location::Object(base.to_string()),
            });
        };
        let marker = Marker {
            location: Location::Object(published.to_string()),
            size: a.size,
            assembled_ms: now_ms(),
        };
        let generation = state.generation.as_mut().expect("an upload");
        generation.assembled = Some(marker.clone());
        generation.assembling = None;
        generation.active_ms = now_ms();
        let leftovers: Vec<Path> = generation
            .pending
            .values()
            .flatten()
            .map(|s| inner.segment_path(key, &s.name))
            .collect();
        generation.pending.clear();
        self.inner.write(key, held, state)?;
        let keep = plan.is_some_and(|p| p.keep_pieces);
        let mut remove = leftovers;
        if !keep {
            remove.push(source);
        }
        self.inner.delete_later(remove);
        Ok(marker)
    }

    fn no_upload(key: &str) -> Error {
        Error::Restarted {
            identifier: key.to_owned(),
        }
    }
}

/// `name.ext`, `name (1).ext`, ... as an object key.
fn renamed(base: &Path, n: u32) -> Path {
    if n == 0 {
        return base.clone();
    }
    let name = base.filename().unwrap_or_default();
    let numbered = numbered(FsPath::new(name), n);
    let numbered = numbered.to_string_lossy();
    match base.parent() {
        Some(parent) => parent.join(numbered.as_ref()),
        None => Path::from(numbered.as_ref()),
    }
}

fn since_epoch(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Store for S3Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shared_between_processes: true,
            shared_between_hosts: true,
            zero_copy_assembly: false,
            declare_size: true,
            concatenate: false,
            lock_takeover: false,
        }
    }

    fn lock(&self, key: &str, timeout: Duration) -> Result<UploadLock> {
        self.take(key, timeout, true)
            .map(|l| l.expect("created on demand"))
    }

    fn try_lock(&self, key: &str) -> Result<Option<UploadLock>> {
        self.take(key, Duration::ZERO, false)
    }

    fn load(&self, key: &str) -> Result<Option<Stored>> {
        Ok(self.inner.view(key)?.map(|g| g.stored()))
    }

    fn start(&self, lock: &UploadLock, upload: &UploadInfo) -> Result<Stored> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let mut state = self.inner.snapshot(&held)?;
        if let Some(generation) = &state.generation {
            return Ok(generation.stored());
        }
        let part_size = self.part_size_for(upload.total_size);
        if let Some(total) = upload.total_size
            && total.div_ceil(part_size) > MAX_PARTS
        {
            return Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: total,
                limit: part_size * MAX_PARTS,
            });
        }
        let mut nonce = [0u8; 8];
        lease::fill_random(&mut nonce);
        let generation = Generation::new(
            upload.clone(),
            u64::from_le_bytes(nonce),
            now_ms(),
            part_size,
        );
        let stored = generation.stored();
        state.generation = Some(generation);
        self.inner.write(key, &held, state)?;
        Ok(stored)
    }

    fn tally(&self, key: &str) -> Result<Tally> {
        Ok(self.inner.view(key)?.map(|g| g.tally).unwrap_or_default())
    }

    fn recorded(&self, key: &str, index: u64) -> Result<Option<u64>> {
        Ok(self.inner.view(key)?.and_then(|g| g.size_of(index)))
    }

    fn recorded_sizes(&self, key: &str, count: u64) -> Result<Vec<Option<u64>>> {
        let Some(generation) = self.inner.view(key)? else {
            return Ok(Vec::new());
        };
        let count = count.min(generation.upload.total_chunks);
        Ok((0..count).map(|i| generation.size_of(i)).collect())
    }

    fn open_piece(
        &self,
        lock: &UploadLock,
        upload: &Stored,
        piece: Piece,
    ) -> Result<Box<dyn PieceWriter>> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let mut state = self.inner.snapshot(&held)?;
        let Some(generation) = state.generation.as_mut() else {
            return Err(Error::Restarted {
                identifier: upload.upload.identifier.clone(),
            });
        };
        let mut id = [0u8; 8];
        lease::fill_random(&mut id);
        let id = hex::encode(id);
        generation.writers.insert(id.clone(), now_ms());
        let writer = StagingWriter {
            store: self.clone(),
            key: key.to_owned(),
            id,
            piece,
            part_size: generation.part_size,
            geometry: geometry(&generation.upload),
            buf: Vec::new(),
            buf_offset: piece.offset,
            segments: Vec::new(),
            len: 0,
            hasher: Sha256::new(),
            kept: false,
        };
        // A hint for the sweep (a live writer); written with the lock's release.
        self.inner.set_local(&held, state)?;
        Ok(Box::new(writer))
    }

    fn assemble(&self, lock: &UploadLock, upload: &Stored, plan: &Assembly<'_>) -> Result<Marker> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let mut state = self.inner.snapshot(&held)?;
        let generation = state
            .generation
            .as_mut()
            .ok_or_else(|| Self::no_upload(&upload.upload.identifier))?;
        if let Some(marker) = &generation.assembled {
            return Ok(marker.clone());
        }
        if generation.assembling.is_some() {
            return self.publish(key, &held, state, Some(plan), true);
        }
        let expected = generation.upload.total_size.unwrap_or(plan.tally.bytes);
        if generation.tally.bytes != expected || generation.end.is_some_and(|e| e != expected) {
            return Err(Error::SizeMismatch {
                key: key.to_owned(),
                expected,
                actual: generation.tally.bytes,
            });
        }
        generation.end = Some(expected);
        let parts = generation.part_count().unwrap_or(0);
        let mut done = self.drain(key, generation);
        for part in 0..parts {
            if generation.parts.contains_key(&part) {
                continue;
            }
            if !generation.covered(part) {
                return Err(Error::SizeMismatch {
                    key: key.to_owned(),
                    expected,
                    actual: generation.tally.bytes,
                });
            }
            done.extend(self.coalesce(key, generation, part)?);
        }
        if generation.multipart.is_none() {
            // An empty file: a multipart upload with no part (completed with an empty one).
            let (task, path) = (
                Arc::clone(&self.inner),
                self.inner.object_path(key, generation.nonce),
            );
            let id = self
                .inner
                .remote
                .run(async move { task.remote.create_multipart(&path).await })?;
            generation.multipart = Some(id);
        }
        let destination = self.destination_key(plan.destination)?;
        generation.assembling = Some(Assembling {
            started_ms: now_ms(),
            source: self.inner.object_path(key, generation.nonce).to_string(),
            size: expected,
            destination: destination.to_string(),
            conflict: match plan.conflict {
                ConflictPolicy::Refuse => Conflict::Refuse,
                ConflictPolicy::Overwrite => Conflict::Overwrite,
                _ => Conflict::Rename,
            },
            source_complete: false,
            hook_pending: plan.preprocess.is_some(),
        });
        self.inner.write(key, &held, state.clone())?;
        self.inner.delete_later(done);
        self.publish(key, &held, state, Some(plan), false)
    }

    fn reset(&self, lock: &UploadLock) -> Result<()> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let mut state = self.inner.snapshot(&held)?;
        let Some(generation) = state.generation.take() else {
            return Ok(());
        };
        self.discard(key, &generation)?;
        self.inner.write(key, &held, state)
    }

    fn remove(&self, lock: &UploadLock) -> Result<u64> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let state = self.inner.snapshot(&held)?;
        if let Some(generation) = &state.generation {
            self.discard(key, generation)?;
        }
        let inner = Arc::clone(&self.inner);
        let dir = self.inner.upload_dir(key);
        let state_path = self.inner.state_path(key);
        self.inner.remote.run(async move {
            let all = inner.remote.list(&dir).await?;
            let bytes = all.iter().map(|m| m.size).sum();
            let (rest, state): (Vec<Path>, Vec<Path>) = all
                .into_iter()
                .map(|m| m.location)
                .partition(|p| *p != state_path);
            inner.remote.delete_all(rest).await?;
            // The state (and the lease in it) last: a crash before leaves it for the next sweep.
            inner.remote.delete_all(state).await?;
            Ok(bytes)
        })
    }

    fn keys(&self) -> Result<Vec<String>> {
        let inner = Arc::clone(&self.inner);
        let hidden = self.inner.hidden.clone();
        let folders = self
            .inner
            .remote
            .run(async move { inner.remote.list_folders(&hidden).await })?;
        Ok(folders
            .into_iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .filter(|name| !name.starts_with('.'))
            .collect())
    }

    fn declare_size(&self, lock: &UploadLock, size: u64) -> Result<Stored> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let mut state = self.inner.snapshot(&held)?;
        let generation = state
            .generation
            .as_mut()
            .ok_or_else(|| Self::no_upload(key))?;
        if generation.upload.total_size.is_none() {
            if size < generation.tally.bytes || size.div_ceil(generation.part_size) > MAX_PARTS {
                return Err(Error::TooLarge {
                    limit_kind: Limit::FileSize,
                    value: size,
                    limit: generation.part_size * MAX_PARTS,
                });
            }
            generation.upload.total_size = Some(size);
            generation.end = Some(size);
        }
        let stored = generation.stored();
        self.inner.write(key, &held, state)?;
        Ok(stored)
    }

    fn inspect(&self, lock: &UploadLock) -> Result<Activity> {
        let key = lock.key();
        let held = self.inner.held(key)?;
        let state = self.inner.snapshot(&held)?;
        let mut activity = Activity {
            last_activity: UNIX_EPOCH,
            live: false,
            orphans_removed: 0,
            bytes_freed: 0,
        };
        let now = now_ms();
        let ttl = u64::try_from(WRITER_TTL.as_millis()).unwrap_or(u64::MAX);
        let mut referenced = std::collections::HashSet::new();
        let mut writers = std::collections::HashSet::new();
        if let Some(generation) = &state.generation {
            activity.last_activity = since_epoch(generation.active_ms);
            for (id, &opened) in &generation.writers {
                if now.saturating_sub(opened) < ttl {
                    activity.live = true;
                    writers.insert(id.clone());
                }
            }
            for s in generation.pending.values().flatten() {
                referenced.insert(s.name.clone());
            }
            // An interrupted assembly is finished (the hook's output cannot be made without
            // the hook: that one is left for the next request that assembles).
            if generation
                .assembling
                .as_ref()
                .is_some_and(|a| !a.hook_pending)
                && self.publish(key, &held, state.clone(), None, true).is_ok()
            {
                activity.orphans_removed += 1;
            }
        }
        // Staged segments nobody refers to: crashed requests' leftovers.
        let inner = Arc::clone(&self.inner);
        let dir = self.inner.upload_dir(key).join("s");
        let staged = self
            .inner
            .remote
            .run(async move { inner.remote.list(&dir).await })?;
        let grace = u64::try_from(ORPHAN_GRACE.as_millis()).unwrap_or(0);
        let mut orphans = Vec::new();
        for meta in staged {
            let Some(name) = meta.location.filename().map(str::to_owned) else {
                continue;
            };
            let modified = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
            let writer = name.split('-').next().unwrap_or_default();
            activity.last_activity = activity.last_activity.max(since_epoch(modified));
            if !referenced.contains(&name)
                && !writers.contains(writer)
                && now.saturating_sub(modified) >= grace
            {
                activity.orphans_removed += 1;
                activity.bytes_freed += meta.size;
                orphans.push(meta.location);
            }
        }
        if !orphans.is_empty() {
            let inner = Arc::clone(&self.inner);
            self.inner
                .remote
                .run(async move { inner.remote.delete_all(orphans).await })?;
        }
        Ok(activity)
    }
}

impl S3Store {
    /// Aborts the multipart upload of `generation` and deletes its objects.
    fn discard(&self, key: &str, generation: &Generation) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let object = self.inner.object_path(key, generation.nonce);
        let dir = self.inner.generation_dir(key, generation.nonce);
        let multipart = generation.multipart.clone();
        let segments: Vec<Path> = generation
            .pending
            .values()
            .flatten()
            .map(|s| self.inner.segment_path(key, &s.name))
            .collect();
        self.inner.remote.run(async move {
            if let Some(id) = multipart {
                inner.remote.abort(&object, &id).await?;
            }
            let mut paths: Vec<Path> = inner
                .remote
                .list(&dir)
                .await?
                .into_iter()
                .map(|m| m.location)
                .collect();
            paths.extend(segments);
            inner.remote.delete_all(paths).await
        })
    }
}

/// What a writer checks at commit: the upload it was opened for.
fn geometry(upload: &UploadInfo) -> (Option<u64>, Option<u64>, u64) {
    (upload.total_size, upload.chunk_size, upload.total_chunks)
}

/// Writes one piece: its bytes as staged segments, each within one part, `PUT` as soon as
/// full; the rest at commit.
struct StagingWriter {
    store: S3Store,
    key: String,
    id: String,
    piece: Piece,
    part_size: u64,
    geometry: (Option<u64>, Option<u64>, u64),
    /// Bytes of the segment being filled, which starts at `buf_offset`.
    buf: Vec<u8>,
    buf_offset: u64,
    segments: Vec<Segment>,
    len: u64,
    hasher: Sha256,
    /// The segments belong to the upload now (or are gone): do not delete them when dropped.
    kept: bool,
}

impl fmt::Debug for StagingWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagingWriter")
            .field("key", &self.key)
            .field("piece", &self.piece)
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl Drop for StagingWriter {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let paths = self.segment_paths();
        self.store.inner.delete_later(paths);
        // No longer a live writer. When this process holds the upload (the request that
        // dropped it, say), the holder's next write carries the change; else take the lock
        // briefly to write it.
        let inner = &self.store.inner;
        let forget = |state: &mut State| {
            state
                .generation
                .as_mut()
                .is_some_and(|g| g.writers.remove(&self.id).is_some())
        };
        if let Some(held) = inner.held_if_any(&self.key) {
            if let Ok(mut state) = inner.snapshot(&held)
                && forget(&mut state)
            {
                let _ = inner.set_local(&held, state);
            }
            return;
        }
        if let Ok(Some(lock)) = self.store.take(&self.key, Duration::from_secs(2), false)
            && let Ok(held) = inner.held(&self.key)
            && let Ok(mut state) = inner.snapshot(&held)
            && forget(&mut state)
        {
            let _ = inner.write(&self.key, &held, state);
            drop(lock);
        }
    }
}

impl StagingWriter {
    fn segment_paths(&self) -> Vec<Path> {
        self.segments
            .iter()
            .map(|s| self.store.inner.segment_path(&self.key, &s.name))
            .collect()
    }

    /// `PUT`s the bytes buffered as one segment.
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let name = format!("{}-{}", self.id, self.buf_offset);
        let path = self.store.inner.segment_path(&self.key, &name);
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let len = bytes.len() as u64;
        let inner = Arc::clone(&self.store.inner);
        inner.remote.run({
            let inner = Arc::clone(&inner);
            async move { inner.remote.put(&path, bytes.into()).await }
        })?;
        self.segments.push(Segment {
            offset: self.buf_offset,
            len,
            name,
        });
        self.buf_offset += len;
        Ok(())
    }

    /// Compares these bytes with the recorded piece: `Same` (and the staged copy deleted) or
    /// `Differs` (handed back).
    fn compare(
        mut self: Box<Self>,
        nonce: u64,
        tally: Tally,
        recorded_len: Option<u64>,
    ) -> Result<Recorded> {
        let record = self.store.read_record(&self.key, nonce, self.piece.index)?;
        let digest = hex::encode(self.hasher.clone().finalize());
        let same = record.is_some_and(|r| r.len == self.len && r.sha256 == digest)
            && recorded_len.is_none_or(|l| l == self.len);
        if same {
            let paths = self.segment_paths();
            self.store.inner.delete_later(paths);
            self.segments.clear();
            self.kept = true;
            Ok(Recorded::Same(tally))
        } else {
            Ok(Recorded::Differs(self))
        }
    }
}

impl PieceWriter for StagingWriter {
    fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let at = self.buf_offset + self.buf.len() as u64;
            let boundary = (at / self.part_size + 1) * self.part_size;
            let room = usize::try_from(boundary - at).unwrap_or(usize::MAX);
            let take = room.min(bytes.len());
            if self.buf.capacity() == 0 {
                let want = self
                    .piece
                    .len
                    .map_or(64 * 1024, |l| l.saturating_sub(self.len));
                self.buf
                    .reserve(usize::try_from(want.min(self.part_size)).unwrap_or(64 * 1024));
            }
            self.buf.extend_from_slice(&bytes[..take]);
            self.len += take as u64;
            bytes = &bytes[take..];
            if take == room {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(
        mut self: Box<Self>,
        lock: &UploadLock,
        current: &Stored,
        sync: bool,
    ) -> Result<Recorded> {
        let _ = (current, sync); // every write to the bucket is durable when answered
        let key = lock.key().to_owned();
        let inner = Arc::clone(&self.store.inner);
        let held = inner.held(&key)?;
        let mut state = inner.snapshot(&held)?;
        let Some(generation) = state.generation.as_mut() else {
            return Ok(Recorded::Stale);
        };
        let (total, chunk_size, chunks) = geometry(&generation.upload);
        let same_geometry = chunk_size == self.geometry.1
            && chunks == self.geometry.2
            // A size declared since the piece was opened (tus) is the same upload.
            && (self.geometry.0.is_none() || total == self.geometry.0);
        if generation.part_size != self.part_size || !same_geometry {
            return Ok(Recorded::Stale);
        }
        self.flush()?;
        generation.writers.remove(&self.id);
        let index = self.piece.index;
        if let Some(marker) = &generation.assembled {
            let tally = Tally {
                present: generation.upload.total_chunks,
                bytes: marker.size,
            };
            let (nonce, recorded) = (generation.nonce, generation.size_of(index));
            inner.set_local(&held, state)?;
            return self.compare(nonce, tally, recorded);
        }
        if let Some(size) = generation.size_of(index) {
            let (nonce, tally) = (generation.nonce, generation.tally);
            inner.set_local(&held, state)?;
            return self.compare(nonce, tally, Some(size));
        }
        let end = self.piece.offset + self.len;
        if end.div_ceil(generation.part_size) > MAX_PARTS {
            return Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: end,
                limit: generation.part_size * MAX_PARTS,
            });
        }
        let record = PieceRecord {
            len: self.len,
            sha256: hex::encode(self.hasher.clone().finalize()),
        };
        let path = inner.record_path(&key, generation.nonce, index);
        let body = serde_json::to_vec(&record).expect("record serializes");
        inner.remote.run({
            let inner = Arc::clone(&inner);
            async move { inner.remote.put(&path, body.into()).await }
        })?;
        generation.record(index, self.len);
        if generation.upload.total_size.is_none() && index + 1 == generation.upload.total_chunks {
            generation.end = Some(end);
        }
        let mut touched: Vec<u32> = Vec::new();
        for s in &self.segments {
            let part = u32::try_from(s.offset / generation.part_size).unwrap_or(u32::MAX);
            generation.pending.entry(part).or_default().push(s.clone());
            if !touched.contains(&part) {
                touched.push(part);
            }
        }
        if let Some(count) = generation.part_count()
            && count > 0
            && !touched.contains(&(count - 1))
        {
            touched.push(count - 1); // the file's end is known: its last part may be whole now
        }
        generation.active_ms = now_ms();
        let recorded = self.store.drain(&key, generation);
        let mut jobs = Vec::new();
        for part in touched {
            if !generation.parts.contains_key(&part) && generation.covered(part) {
                let segments = S3Store::part_segments(&key, generation, part)?;
                let id = self.store.multipart_of(&key, generation)?;
                jobs.push((id, part, segments));
            }
        }
        let (tally, nonce) = (generation.tally, generation.nonce);
        inner.write(&key, &held, state)?;
        self.kept = true;
        inner.delete_later(recorded);
        for (id, part, segments) in jobs {
            self.store.coalesce_later(&key, nonce, id, part, segments);
        }
        Ok(Recorded::Stored(tally))
    }
}

/// Reads `[at, end)` of an object in ranged `GET`s of up to 1 MiB.
struct RangeReader {
    inner: Arc<Inner>,
    path: Path,
    at: u64,
    end: u64,
    buf: Bytes,
}

impl std::io::Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.at >= self.end {
                return Ok(0);
            }
            let to = (self.at + 1024 * 1024).min(self.end);
            let (inner, path, range) = (Arc::clone(&self.inner), self.path.clone(), self.at..to);
            self.buf = self
                .inner
                .remote
                .run(async move { inner.remote.get_range(&path, range).await })
                .map_err(std::io::Error::other)?;
            self.at = to;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// Collects written bytes into parts of a multipart upload.
struct PartSink {
    inner: Arc<Inner>,
    path: Path,
    id: String,
    part_size: u64,
    buf: Vec<u8>,
    etags: Vec<String>,
    written: u64,
}

impl PartSink {
    fn send(&mut self) -> Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let index = u32::try_from(self.etags.len()).unwrap_or(u32::MAX);
        let (inner, path, id) = (Arc::clone(&self.inner), self.path.clone(), self.id.clone());
        let etag = self
            .inner
            .remote
            .run(async move { inner.remote.put_part(&path, &id, index, bytes.into()).await })?;
        self.etags.push(etag);
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        let (inner, path, id, etags) = (
            Arc::clone(&self.inner),
            self.path.clone(),
            self.id.clone(),
            std::mem::take(&mut self.etags),
        );
        self.inner
            .remote
            .run(async move { inner.remote.complete(&path, &id, etags).await })?;
        Ok(self.written)
    }
}

impl std::io::Write for PartSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.part_size).unwrap_or(usize::MAX) - self.buf.len();
        let n = room.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..n]);
        self.written += n as u64;
        if self.buf.len() as u64 == self.part_size {
            self.send().map_err(std::io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
