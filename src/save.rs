//! [`Uploads`]: the entry point. [`Uploads::save`] handles one request (test or upload) and,
//! when the upload is complete, assembles it exactly once; [`Uploads::finalize`] is the same
//! completion for widgets that send a separate "done" request.
//!
//! This module keeps the sequencing only: validate, lock, start the upload, open the piece,
//! stream its bytes, record it, complete? then assemble once, then hooks, progress and quotas.
//! How bytes and state are kept is the [`Store`]'s business.

use std::any::Any;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tempfile::NamedTempFile;

use crate::chunk::ChunkInfo;
use crate::config::{Config, StoreChoice};
use crate::error::{Error, Limit, Result};
use crate::merge;
use crate::progress::{ChunkProgress, ProgressMonitor};
use crate::quota::Quotas;
use crate::request::{ChunkBody, ChunkRequest};
use crate::store::{LocalStore, Piece, PieceWriter, Recorded, Store, Stored, Tally, UploadLock};
use crate::upload::{Assembled, UploadInfo};

/// Buffer a streamed body is read through.
const COPY_BUFFER: usize = 64 * 1024;

/// Room allowed above the max chunk size for a request body's multipart framing and
/// parameter fields (64 KiB).
pub const FORM_OVERHEAD: u64 = 64 * 1024;

/// What a successful request did. Every variant is answered `200 OK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Test request: the chunk is stored (the widget skips it).
    ChunkPresent {
        /// The chunk number as the widget counts.
        chunk: u64,
    },
    /// Upload: the chunk is stored (or was, with the same bytes); the file is not complete yet.
    ChunkStored {
        /// The chunk number as the widget counts.
        chunk: u64,
        /// Distinct chunks of the file now stored.
        chunks_present: u64,
        /// Chunks the file has.
        total_chunks: u64,
    },
    /// The file is assembled: by this request (`fresh`), or earlier.
    Assembled {
        /// The assembled file.
        file: Box<Assembled>,
        /// Whether this request did the assembly (`false`: it had been done before, and this
        /// request's bytes are the same as the file's).
        fresh: bool,
    },
}

/// What [`Uploads::begin`] found.
#[derive(Debug)]
pub enum Begun {
    /// The request is answered without a body (a test request).
    Done(Outcome),
    /// An upload whose chunk is to be written to this, then finished.
    Receiving(Box<IncomingChunk>),
}

/// A chunk being received: its bytes go straight to the store (counted by the progress monitor
/// as they arrive); [`finish`](Self::finish) records it. Dropped unfinished, it leaves nothing
/// that counts.
#[derive(Debug)]
pub struct IncomingChunk {
    uploads: Uploads,
    writer: Box<dyn PieceWriter>,
    info: ChunkInfo,
    scope: String,
    key: String,
    declared: Option<u64>,
    /// The size every chunk of an in-order upload without a declared chunk size must have
    /// (the first chunk's), the last one excepted, which may be shorter.
    uniform: Option<u64>,
    max: u64,
    file_cap: Option<u64>,
    progress: ChunkProgress,
}

impl IncomingChunk {
    /// The chunk as parsed from its request.
    pub fn info(&self) -> &ChunkInfo {
        &self.info
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.writer.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    /// Appends the next bytes of the body. Blocking, but brief: a write to storage.
    ///
    /// # Errors
    /// [`Error::BadRequest`] or [`Error::TooLarge`] once the body is longer than declared or
    /// allowed (stop sending it; the chunk is discarded when dropped), [`Error::Io`] when the
    /// bytes cannot be stored (507 when the disk is full).
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.writer.len().saturating_add(bytes.len() as u64);
        self.check_len(len)?;
        self.writer.write(bytes)?;
        self.progress.add(bytes.len() as u64);
        Ok(())
    }

    /// The body is complete: checks its length, records the chunk and, when it completes the
    /// upload, assembles the file. Blocking.
    ///
    /// # Errors
    /// As [`Uploads::save`].
    pub fn finish(self) -> Result<Outcome> {
        let uploads = self.uploads.clone();
        uploads.publish(self)
    }

    /// Finishes with a body already on disk instead of written bytes (a kernel copy).
    fn finish_with_file(mut self, mut body: NamedTempFile) -> Result<Outcome> {
        let len = body
            .as_file()
            .metadata()
            .map_err(|e| Error::io("stat chunk body", body.path(), e))?
            .len();
        self.check_len(len)?;
        let path = body.path().to_path_buf();
        let n = self.writer.write_file(body.as_file_mut(), &path)?;
        self.progress.add(n);
        drop(body);
        self.finish()
    }

    fn check_len(&self, len: u64) -> Result<()> {
        if len <= self.max {
            return Ok(());
        }
        let limits = &self.uploads.inner.config.limits;
        Err(match (self.declared, self.file_cap, self.uniform) {
            (None, _, Some(first)) => Error::bad(
                "body",
                format!(
                    "longer than chunk 0 ({first} bytes): every chunk but the last has the \
                     size of the first, and the last no more"
                ),
            ),
            (None, Some(limit), None) => Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: len,
                limit,
            },
            _ => body_too_long(self.declared, len, limits.max_chunk_size),
        })
    }
}

/// Handles upload requests against one [`Config`]. Cheap to clone; share one per application.
///
/// ```
/// use chunked_upload::{ChunkBody, Config, Outcome, Params, RawRequest, RequestKind, Uploads};
///
/// # fn main() -> chunked_upload::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let uploads = Uploads::new(
///     Config::builder(dir.path().join("chunks"), dir.path().join("files")).build(),
/// )?;
/// let data = b"hello, world";
/// // flow.js sends 1-based chunk numbers; here two chunks of 6 bytes, the second first.
/// for number in [2u64, 1] {
///     let start = (number as usize - 1) * 6;
///     let params: Params = [
///         ("flowChunkNumber", number.to_string()),
///         ("flowChunkSize", "6".to_string()),
///         ("flowCurrentChunkSize", "6".to_string()),
///         ("flowTotalSize", data.len().to_string()),
///         ("flowIdentifier", "12-hello".to_string()),
///         ("flowFilename", "hello.txt".to_string()),
///         ("flowTotalChunks", "2".to_string()),
///     ]
///     .into_iter()
///     .collect();
///     let mut request = RawRequest::new(RequestKind::Upload, params)
///         .with_scope("user-1")
///         .with_body(ChunkBody::bytes(data[start..start + 6].to_vec()));
///     match uploads.save(&mut request)? {
///         Outcome::ChunkStored { chunks_present, .. } => assert_eq!(chunks_present, 1),
///         Outcome::Assembled { file, .. } => {
///             assert_eq!(std::fs::read(file.path().unwrap()).unwrap(), data);
///             assert!(file.path().unwrap().ends_with("files/hello.txt"));
///         }
///         other => panic!("unexpected {other:?}"),
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Uploads {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    temp_dir: Option<PathBuf>,
    progress: ProgressMonitor,
    quotas: Quotas,
    /// State adapters keep per `Uploads` ([`Uploads::shared_state`]).
    shared: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Uploads {
    /// Makes the store (for the local store, creates the temp dir if needed) and returns the
    /// handler.
    ///
    /// # Errors
    /// [`Error::Io`] when the temp dir cannot be created.
    pub fn new(config: Config) -> Result<Uploads> {
        let (store, temp_dir): (Arc<dyn Store>, _) = match &config.store {
            StoreChoice::Local {
                temp_dir,
                destination_dir,
            } => (
                Arc::new(LocalStore::new(temp_dir.clone(), destination_dir.clone())?),
                Some(temp_dir.clone()),
            ),
            StoreChoice::Given(store) => (Arc::clone(store), None),
        };
        let progress = ProgressMonitor::new(config.progress);
        Ok(Uploads {
            inner: Arc::new(Inner {
                config,
                store,
                temp_dir,
                progress,
                quotas: Quotas::default(),
                shared: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The progress monitor: per-upload and per-scope reports.
    pub fn progress(&self) -> &ProgressMonitor {
        &self.inner.progress
    }

    /// The store uploads are kept in.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The temp dir, when the uploads are kept in a [`LocalStore`].
    pub fn temp_dir(&self) -> Option<&Path> {
        self.inner.temp_dir.as_deref()
    }

    /// A value of type `T` kept with these uploads and shared by every clone, made by `init`
    /// the first time it is asked for. Adapters keep their per-application state here (the
    /// bundled ones: the slots of request bodies read at once).
    pub fn shared_state<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut shared = self.inner.shared.lock().unwrap_or_else(|p| p.into_inner());
        for value in shared.iter() {
            if let Ok(found) = Arc::clone(value).downcast::<T>() {
                return found;
            }
        }
        let value = Arc::new(init());
        shared.push(Arc::clone(&value) as Arc<dyn Any + Send + Sync>);
        value
    }

    /// Refuses a request body of `len` bytes (its `Content-Length`) before reading it, when it
    /// is larger than a chunk may be plus [`FORM_OVERHEAD`] for multipart framing and fields.
    ///
    /// # Errors
    /// [`Error::TooLarge`] with [`Limit::RequestBody`].
    pub fn check_content_length(&self, len: u64) -> Result<()> {
        let limit = self.max_request_body();
        if len > limit {
            return Err(Error::TooLarge {
                limit_kind: Limit::RequestBody,
                value: len,
                limit,
            });
        }
        Ok(())
    }

    /// The largest request body accepted: the max chunk size plus [`FORM_OVERHEAD`]. Adapters
    /// set their framework's body limit to it.
    pub fn max_request_body(&self) -> u64 {
        self.inner
            .config
            .limits
            .max_chunk_size
            .saturating_add(FORM_OVERHEAD)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Handles one request.
    ///
    /// - A test request answers [`Outcome::ChunkPresent`] or [`Error::NoContent`]; when the chunk
    ///   it asks about completes a fully stored upload, it assembles it
    ///   ([`Outcome::Assembled`]). For an upload that was assembled already it answers
    ///   `NoContent`, so the widget sends the bytes: the same bytes are then answered
    ///   `Assembled` with `fresh: false` (no second file), a changed file is stored anew.
    /// - An upload validates the chunk, streams its body into the store and records it once
    ///   all its bytes are there; when every chunk is present and the sizes add up it assembles
    ///   the file exactly once. A chunk sent again with the same bytes changes nothing; with
    ///   other bytes it is refused ([`Error::ContentMismatch`]), unless the upload was
    ///   assembled, in which case the changed file starts a new upload under the same
    ///   identifier, published under the conflict policy.
    ///
    /// Blocking: it does file I/O and may wait for the upload's lock, so call it from a thread
    /// that may block (`spawn_blocking` in async servers).
    ///
    /// # Errors
    /// [`Error::NoContent`] (test: absent), [`Error::BadRequest`], [`Error::TooLarge`],
    /// [`Error::GeometryMismatch`], [`Error::ContentMismatch`], [`Error::Conflict`],
    /// [`Error::Busy`], [`Error::Io`]; see [`Error::status`] for the HTTP status of each.
    pub fn save(&self, request: &mut dyn ChunkRequest) -> Result<Outcome> {
        let mut chunk = match self.begin(request)? {
            Begun::Done(outcome) => return Ok(outcome),
            Begun::Receiving(chunk) => *chunk,
        };
        let body = request.take_body().ok_or_else(|| {
            Error::bad(
                "body",
                "missing: the request carries no chunk bytes (no file part and no raw body)",
            )
        })?;
        match body {
            ChunkBody::Stream(mut reader) => {
                let mut buf = vec![0u8; COPY_BUFFER];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::bad("body", format!("could not be read: {e}")));
                        }
                    };
                    chunk.write(&buf[..n])?;
                }
                chunk.finish()
            }
            ChunkBody::File(file) => chunk.finish_with_file(file),
        }
    }

    /// The first half of [`save`](Self::save), for servers that receive bodies asynchronously:
    /// parses and validates the request, answers a test request, and for an upload starts it
    /// (or checks the chunk against it) and returns an [`IncomingChunk`] to write the body to
    /// as it arrives, then [`finish`](IncomingChunk::finish). No thread need wait on the network
    /// in between: call `begin`, each `write` and `finish` from a thread that may block, for
    /// the short time they take.
    ///
    /// # Errors
    /// As [`save`](Self::save), for everything that can be decided before the body.
    pub fn begin(&self, request: &mut dyn ChunkRequest) -> Result<Begun> {
        let info = self.chunk_info(request)?;
        let key = self.key(request.scope(), &info.identifier)?;
        if info.is_test {
            return self.test(&key, &info).map(Begun::Done);
        }
        self.begin_upload(request.scope(), key, info)
            .map(|chunk| Begun::Receiving(Box::new(chunk)))
    }

    /// Parses and validates a request without touching storage: the checks [`save`](Self::save)
    /// makes before reading the body. Adapters call it to refuse a bad chunk before its body
    /// arrives.
    ///
    /// # Errors
    /// As [`ChunkInfo::validate`] and [`Dialect::parse`](crate::dialect::Dialect::parse).
    pub fn chunk_info(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        let info = self.inner.config.dialects.parse(request)?;
        info.validate(&self.inner.config.limits)?;
        Ok(info)
    }

    /// Assembles the upload `identifier` of `scope` if every chunk is stored; idempotent (an
    /// assembled upload answers `Assembled` with `fresh: false` again and again).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the scope has no such upload, [`Error::Incomplete`] when chunks
    /// are missing, and the I/O and conflict errors of assembly.
    pub fn finalize(&self, scope: &str, identifier: &str) -> Result<Outcome> {
        let key = self.key(scope, identifier)?;
        let store = self.store();
        let not_found = || Error::NotFound {
            identifier: identifier.to_owned(),
        };
        if store.load(&key)?.is_none() {
            return Err(not_found());
        }
        let lock = store.lock(&key, self.inner.config.lock_timeout)?;
        let stored = store.load(&key)?.ok_or_else(not_found)?;
        if let Some(done) = self.already_assembled(&stored) {
            return Ok(done);
        }
        let tally = store.tally(&key)?;
        if is_complete(tally, &stored.upload) {
            let file = self.assemble(&lock, &stored, tally)?;
            return Ok(Outcome::Assembled {
                file: Box::new(file),
                fresh: true,
            });
        }
        Err(Error::Incomplete {
            identifier: identifier.to_owned(),
            present: tally.present,
            total: stored.upload.total_chunks,
        })
    }

    /// [`finalize`](Self::finalize) for a "done" request: the dialect that recognises the
    /// request names the upload (`flowIdentifier`, ...), the request's scope owns it.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the request names no upload, then as
    /// [`finalize`](Self::finalize).
    pub fn finalize_request(&self, request: &dyn ChunkRequest) -> Result<Outcome> {
        let identifier = self.inner.config.dialects.finalize_identifier(request)?;
        self.finalize(request.scope(), identifier)
    }

    /// A new file for a body that arrives before the parameters naming its upload (a multipart
    /// form whose file part precedes its fields). It stays locked while held, so the sweep
    /// leaves it alone; hand it to [`save`](Self::save) as [`ChunkBody::File`], which copies it
    /// into place in the kernel.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn incoming_file(&self) -> Result<NamedTempFile> {
        self.store().incoming()
    }

    /// The storage key of `identifier` in `scope`, checked.
    pub(crate) fn key(&self, scope: &str, identifier: &str) -> Result<String> {
        let key = self.inner.config.storage_key(scope, identifier);
        if key.is_empty()
            || key.len() > 128
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidStorageKey { key });
        }
        Ok(key)
    }

    fn test(&self, key: &str, info: &ChunkInfo) -> Result<Outcome> {
        let store = self.store();
        let absent = || Error::NoContent {
            chunk: info.chunk_number(),
            identifier: info.identifier.clone(),
        };
        // An assembled upload is "absent" too: if the widget sends a changed file under the
        // same identifier, its bytes must come (the same bytes are then recognised).
        let present = |stored: &Stored| -> Result<bool> {
            if stored.assembled.is_some() {
                return Ok(false);
            }
            check_geometry(&stored.upload, info)?;
            let size = store.recorded(key, info.index)?;
            Ok(size.is_some_and(|len| info.body_size().is_none_or(|e| e == len)))
        };
        let Some(stored) = store.load(key)? else {
            return Err(absent());
        };
        if !present(&stored)? {
            return Err(absent());
        }
        let lock = store.lock(key, self.inner.config.lock_timeout)?;
        let Some(stored) = store.load(key)? else {
            return Err(absent());
        };
        if !present(&stored)? {
            return Err(absent());
        }
        let tally = store.tally(key)?;
        self.inner
            .progress
            .observe(key, &stored.upload, tally.bytes);
        if is_complete(tally, &stored.upload) {
            // A resumed upload whose last missing piece was already there: complete it now
            // (the Python flowjs never does, and the upload is lost).
            let file = self.assemble(&lock, &stored, tally)?;
            return Ok(Outcome::Assembled {
                file: Box::new(file),
                fresh: true,
            });
        }
        Ok(Outcome::ChunkPresent {
            chunk: info.chunk_number(),
        })
    }

    /// Everything an upload request needs before its body: the upload started (or the chunk
    /// checked against it), quotas, progress, the piece opened in the store.
    fn begin_upload(&self, scope: &str, key: String, info: ChunkInfo) -> Result<IncomingChunk> {
        let config = &self.inner.config;
        let limits = &config.limits;
        let (store, progress, quotas) = (self.store(), &self.inner.progress, &self.inner.quotas);
        let declared = info.body_size();

        let lock = store.lock(&key, config.lock_timeout)?;
        let mut stored = store.load(&key)?;
        if let Some(s) = &stored {
            // A first chunk that can only mean a new upload under the same key (Plupload keys
            // uploads by file name, and sends chunk 0 only to start one), or another file under
            // an identifier that was assembled.
            let restart = (info.in_order && info.index == 0 && info.total_chunks > 1)
                || (s.assembled.is_some() && check_geometry(&s.upload, &info).is_err());
            if restart {
                store.reset(&lock)?;
                self.forget(&key);
                stored = None;
            } else if s.assembled.is_none() {
                check_geometry(&s.upload, &info)?;
            }
        }
        quotas.check(store, limits, scope, &key, declared.unwrap_or(0))?;
        let stored = match stored {
            Some(stored) => stored,
            None => self.start(&lock, &info, scope, &key)?,
        };
        let tally = store.tally(&key)?;
        if progress.wants(&key, &stored.upload) {
            // First sight of this upload in this process (new, or resumed after a restart).
            progress.observe(&key, &stored.upload, tally.bytes);
        }
        let (offset, uniform) = self.placement(&key, &info)?;
        let duplicate = stored.assembled.is_some() || store.recorded(&key, info.index)?.is_some();
        let writer = store.open_piece(
            &lock,
            &stored,
            Piece {
                index: info.index,
                offset,
                len: declared,
            },
        )?;
        drop(lock);
        let chunk_progress = progress.chunk(&key, duplicate);
        // Without a declared size, a body may be as long as a chunk may be, and no longer than
        // a file may be when the chunk is the whole file.
        let file_cap = limits
            .max_file_size
            .filter(|&f| info.total_chunks == 1 && f < limits.max_chunk_size);
        let max = declared
            .or(uniform)
            .unwrap_or(file_cap.unwrap_or(limits.max_chunk_size));
        Ok(IncomingChunk {
            uploads: self.clone(),
            writer,
            info,
            scope: scope.to_owned(),
            key,
            declared,
            uniform,
            max,
            file_cap,
            progress: chunk_progress,
        })
    }

    /// Where the chunk's bytes go, and for an in-order upload without a declared chunk size,
    /// the size of its first chunk (every other chunk has it, the last one at most).
    fn placement(&self, key: &str, info: &ChunkInfo) -> Result<(u64, Option<u64>)> {
        if let Some(offset) = info.offset() {
            return Ok((offset, None));
        }
        if info.total_chunks == 1 || info.index == 0 {
            return Ok((0, None));
        }
        if !info.in_order {
            return Err(Error::bad(
                &info.names.chunk_size,
                "missing: an upload of several chunks must declare its chunk size",
            ));
        }
        let Some(first) = self.store().recorded(key, 0)? else {
            return Err(Error::bad(
                &info.names.chunk_number,
                format!(
                    "chunk {} came before chunk 0: this widget sends chunks in order",
                    info.chunk_number()
                ),
            ));
        };
        let offset = info.index.checked_mul(first).ok_or_else(|| {
            Error::bad(
                &info.names.chunk_number,
                "the chunk's offset is past u64::MAX",
            )
        })?;
        Ok((offset, Some(first)))
    }

    /// Checks a received chunk against what was declared, records it and, if that completes
    /// the upload, assembles the file.
    fn publish(&self, chunk: IncomingChunk) -> Result<Outcome> {
        let config = &self.inner.config;
        let limits = &config.limits;
        let (store, progress, quotas) = (self.store(), &self.inner.progress, &self.inner.quotas);
        let IncomingChunk {
            writer,
            info,
            scope,
            key,
            declared,
            uniform,
            progress: chunk_progress,
            ..
        } = chunk;
        let len = writer.len();
        match declared {
            Some(expected) if len != expected => {
                return Err(if len > expected {
                    body_too_long(declared, len, limits.max_chunk_size)
                } else {
                    Error::bad("body", format!("{len} bytes received, {expected} declared"))
                });
            }
            None if len > limits.max_chunk_size => {
                return Err(body_too_long(None, len, limits.max_chunk_size));
            }
            _ => {}
        }
        if let Some(first) = uniform
            && info.index + 1 < info.total_chunks
            && len != first
        {
            return Err(Error::bad(
                "body",
                format!(
                    "chunk {} has {len} bytes but chunk 0 has {first}: every chunk but the \
                     last must have the same size",
                    info.chunk_number()
                ),
            ));
        }

        let mut lock = store.lock(&key, config.lock_timeout)?;
        let restarted = || Error::Restarted {
            identifier: info.identifier.clone(),
        };
        let mut current = store.load(&key)?.ok_or_else(restarted)?;
        if current.upload.total_size.is_none()
            && current.assembled.is_none()
            && let Some(max) = limits.max_file_size
        {
            let tally = store.tally(&key)?;
            let replaced = store.recorded(&key, info.index)?.unwrap_or(0);
            let total = tally.bytes - replaced + len;
            if total > max {
                return Err(Error::TooLarge {
                    limit_kind: Limit::FileSize,
                    value: total,
                    limit: max,
                });
            }
        }
        let mut writer = writer;
        let waiting_since = Instant::now();
        let mut pause = Duration::from_millis(1);
        let tally = loop {
            match writer.commit(&lock, &current, config.sync_chunks)? {
                Recorded::Stored(tally) => break tally,
                Recorded::Same(tally) => {
                    if current.assembled.is_some() {
                        return Ok(self
                            .already_assembled(&current)
                            .expect("the upload is assembled"));
                    }
                    break tally;
                }
                Recorded::Differs(back) if current.assembled.is_some() => {
                    // A changed file under an identifier that was assembled: a new upload.
                    store.reset(&lock)?;
                    self.forget(&key);
                    quotas.check(store, limits, &scope, &key, len)?;
                    current = self.start(&lock, &info, &scope, &key)?;
                    progress.observe(&key, &current.upload, 0);
                    writer = back;
                }
                Recorded::Differs(_) => {
                    return Err(Error::ContentMismatch {
                        identifier: info.identifier.clone(),
                        chunk: info.chunk_number(),
                    });
                }
                Recorded::Contended(back) => {
                    // A duplicate finished before the copy being written in place: wait for
                    // that one (without the lock, which it needs), then compare.
                    drop(lock);
                    if waiting_since.elapsed() >= config.lock_timeout {
                        return Err(Error::Busy { retry_after: 1 });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                    lock = store.lock(&key, config.lock_timeout)?;
                    current = store.load(&key)?.ok_or_else(restarted)?;
                    writer = back;
                }
                Recorded::Stale => return Err(restarted()),
            }
        };
        progress.stored(&key, tally.bytes);
        drop(chunk_progress);
        quotas.set(store, limits, &scope, &key, tally.bytes);
        if is_complete(tally, &current.upload) {
            let file = self.assemble(&lock, &current, tally)?;
            return Ok(Outcome::Assembled {
                file: Box::new(file),
                fresh: true,
            });
        }
        if info.in_order && info.index + 1 == current.upload.total_chunks {
            // The widget is done sending: a gap (a chunk it skipped) is an error it must report.
            return Err(Error::Incomplete {
                identifier: info.identifier.clone(),
                present: tally.present,
                total: current.upload.total_chunks,
            });
        }
        Ok(Outcome::ChunkStored {
            chunk: info.chunk_number(),
            chunks_present: tally.present,
            total_chunks: current.upload.total_chunks,
        })
    }

    /// Starts the upload (lock held): the `on_create` hook first, which may refuse it.
    fn start(&self, lock: &UploadLock, info: &ChunkInfo, scope: &str, key: &str) -> Result<Stored> {
        let upload = UploadInfo {
            scope: scope.to_owned(),
            identifier: info.identifier.clone(),
            key: key.to_owned(),
            filename: info.filename.clone(),
            relative_path: info.relative_path.clone(),
            total_size: info.total_size,
            total_chunks: info.total_chunks,
            chunk_size: info.chunk_size,
            metadata: Default::default(),
            concat: Default::default(),
        };
        self.start_upload(lock, &upload)
    }

    /// Starts `upload` (lock held) after the `on_create` hook accepted it.
    pub(crate) fn start_upload(&self, lock: &UploadLock, upload: &UploadInfo) -> Result<Stored> {
        if let Some(hook) = &self.inner.config.on_create {
            hook(upload).map_err(|refusal| Error::Rejected {
                status: refusal.status,
                reason: refusal.reason,
            })?;
        }
        self.store().start(lock, upload)
    }

    fn already_assembled(&self, stored: &Stored) -> Option<Outcome> {
        let marker = stored.assembled.clone()?;
        Some(Outcome::Assembled {
            file: Box::new(merge::assembled(stored, marker)),
            fresh: false,
        })
    }

    /// Assembles (lock held), keeping progress and quotas up to date, then runs the
    /// `on_assembled` hook.
    pub(crate) fn assemble(
        &self,
        lock: &UploadLock,
        stored: &Stored,
        tally: Tally,
    ) -> Result<Assembled> {
        let config = &self.inner.config;
        let progress = &self.inner.progress;
        let key = lock.key();
        progress.assembling(key);
        let file = match merge::assemble(self.store(), config, lock, stored, tally) {
            Ok(file) => file,
            Err(e) => {
                progress.failed(key, e.client_message());
                return Err(e);
            }
        };
        progress.done(key, file.size);
        self.inner.quotas.remove(key);
        if let Some(hook) = &config.on_assembled {
            hook(&file);
        }
        Ok(file)
    }

    /// The per-scope quotas (for the tus handler).
    pub(crate) fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    pub(crate) fn forget(&self, key: &str) {
        self.inner.progress.forget(key);
        self.inner.quotas.remove(key);
    }
}

/// Every chunk present and, when the size is declared, the bytes add up.
pub(crate) fn is_complete(tally: Tally, upload: &UploadInfo) -> bool {
    tally.present == upload.total_chunks && upload.total_size.is_none_or(|t| tally.bytes == t)
}

/// The chunk must describe the same file as the upload's first chunk did.
fn check_geometry(stored: &UploadInfo, info: &ChunkInfo) -> Result<()> {
    let mismatch = |field: &'static str, stored: String, got: String| Error::GeometryMismatch {
        identifier: info.identifier.clone(),
        field,
        stored,
        got,
    };
    let show = |v: Option<u64>| v.map_or_else(|| "undeclared".to_owned(), |v| v.to_string());
    if stored.total_chunks != info.total_chunks {
        return Err(mismatch(
            "total chunks",
            stored.total_chunks.to_string(),
            info.total_chunks.to_string(),
        ));
    }
    if stored.total_size != info.total_size {
        return Err(mismatch(
            "total size",
            show(stored.total_size),
            show(info.total_size),
        ));
    }
    if stored.chunk_size != info.chunk_size {
        return Err(mismatch(
            "chunk size",
            show(stored.chunk_size),
            show(info.chunk_size),
        ));
    }
    Ok(())
}

fn body_too_long(declared: Option<u64>, got: u64, max_chunk: u64) -> Error {
    match declared {
        Some(expected) if expected <= max_chunk => Error::bad(
            "body",
            format!("longer than the {expected} bytes declared (at least {got} bytes)"),
        ),
        _ => Error::TooLarge {
            limit_kind: Limit::ChunkSize,
            value: got,
            limit: max_chunk,
        },
    }
}
