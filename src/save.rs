//! [`Uploads`]: the entry point. [`Uploads::save`] handles one request (test or upload) and,
//! when the upload is complete, assembles it exactly once; [`Uploads::finalize`] is the same
//! completion for widgets that send a separate "done" request.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tempfile::{NamedTempFile, TempPath};

use crate::chunk::ChunkInfo;
use crate::config::{Config, UploadInfo};
use crate::error::{Error, IoContext, Limit, Result};
use crate::merge::{self, Assembled};
use crate::progress::{ChunkProgress, ProgressMonitor};
use crate::quota::Quotas;
use crate::request::{ChunkBody, ChunkRequest};
use crate::store::ledger::Tally;
use crate::store::local::now_ms;
use crate::store::{LocalStore, Meta, StagedChunk, UploadDir};

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
    /// Upload: the chunk is stored; the file is not complete yet.
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
        file: Assembled,
        /// Whether this request did the assembly (`false`: it had been done before).
        fresh: bool,
    },
}

/// What [`Uploads::begin`] found.
#[derive(Debug)]
pub enum Begun {
    /// The request is answered without a body: a test request, or a chunk of an upload
    /// assembled already.
    Done(Outcome),
    /// An upload whose chunk is to be written to this, then finished.
    Receiving(IncomingChunk),
}

/// A chunk being received: its bytes go straight into a staging file of its upload (counted
/// by the progress monitor as they arrive); [`finish`](Self::finish) publishes it. Dropped
/// unfinished, it leaves nothing behind.
#[derive(Debug)]
pub struct IncomingChunk {
    uploads: Uploads,
    upload: UploadDir,
    info: ChunkInfo,
    scope: String,
    declared: Option<u64>,
    max: u64,
    file_cap: Option<u64>,
    staging: Option<NamedTempFile>,
    len: u64,
    progress: ChunkProgress,
}

impl IncomingChunk {
    /// The chunk as parsed from its request.
    pub fn info(&self) -> &ChunkInfo {
        &self.info
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the next bytes of the body. Blocking, but brief: a write to the staging file.
    ///
    /// # Errors
    /// [`Error::BadRequest`] or [`Error::TooLarge`] once the body is longer than declared or
    /// allowed (stop sending it; the chunk is discarded when dropped), [`Error::Io`] when the
    /// staging file cannot be written (507 when the disk is full).
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = self.len.saturating_add(bytes.len() as u64);
        if len > self.max {
            let limits = &self.uploads.inner.config.limits;
            return Err(match (self.declared, self.file_cap) {
                (None, Some(limit)) => Error::TooLarge {
                    limit_kind: Limit::FileSize,
                    value: len,
                    limit,
                },
                _ => body_too_long(self.declared, len, limits.max_chunk_size),
            });
        }
        let file = match &mut self.staging {
            Some(file) => file,
            None => self.staging.insert(self.upload.staging_file()?),
        };
        file.write_all(bytes)
            .ctx("write chunk staging file", file.path())?;
        self.len = len;
        self.progress.add(bytes.len() as u64);
        Ok(())
    }

    /// The body is complete: checks its length, publishes the chunk and, when it completes the
    /// upload, assembles the file. Blocking (an assembly copies the whole file).
    ///
    /// # Errors
    /// As [`Uploads::save`].
    pub fn finish(mut self) -> Result<Outcome> {
        let file = match self.staging.take() {
            Some(file) => file,
            None => self.upload.staging_file()?,
        };
        let sync = self.uploads.inner.config.sync_chunks;
        let staged = StagedChunk::new(file, self.len, sync)?;
        let uploads = self.uploads.clone();
        uploads.publish(self, staged)
    }

    /// Finishes with a body already on disk instead of written bytes (a rename when it is on
    /// the temp dir's filesystem).
    fn finish_with_file(self, body: TempPath) -> Result<Outcome> {
        let sync = self.uploads.inner.config.sync_chunks;
        let staged = self.upload.stage_file(body, sync)?;
        let uploads = self.uploads.clone();
        uploads.publish(self, staged)
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
///             assert_eq!(std::fs::read(&file.path).unwrap(), data);
///             assert!(file.path.ends_with("files/hello.txt"));
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

#[derive(Debug)]
struct Inner {
    config: Config,
    store: LocalStore,
    progress: ProgressMonitor,
    quotas: Quotas,
    /// Request bodies the adapters may read at once.
    #[cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))]
    body_slots: tokio::sync::Semaphore,
}

impl Uploads {
    /// Creates the temp dir if needed and returns the handler.
    ///
    /// # Errors
    /// [`Error::Io`] when the temp dir cannot be created.
    pub fn new(config: Config) -> Result<Uploads> {
        std::fs::create_dir_all(&config.temp_dir).ctx("create temp dir", &config.temp_dir)?;
        let store = LocalStore::new(config.temp_dir.clone());
        let progress = ProgressMonitor::new(config.progress);
        Ok(Uploads {
            inner: Arc::new(Inner {
                #[cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))]
                body_slots: tokio::sync::Semaphore::new(config.max_concurrent_bodies),
                config,
                store,
                progress,
                quotas: Quotas::default(),
            }),
        })
    }

    /// The slots of request bodies the adapters read at once.
    #[cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))]
    pub(crate) fn body_slots(&self) -> &tokio::sync::Semaphore {
        &self.inner.body_slots
    }

    /// The progress monitor: per-upload and per-scope reports.
    pub fn progress(&self) -> &ProgressMonitor {
        &self.inner.progress
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

    pub(crate) fn store(&self) -> &LocalStore {
        &self.inner.store
    }

    /// Handles one request.
    ///
    /// - A test request answers [`Outcome::ChunkPresent`] or [`Error::NoContent`]; when the chunk
    ///   it asks about completes a fully stored upload, it assembles it
    ///   ([`Outcome::Assembled`]).
    /// - An upload validates the chunk, streams its body to a staging file, publishes it
    ///   atomically and, when every chunk is present and the sizes add up, assembles the file
    ///   exactly once (other requests for the same upload answer `Assembled` with
    ///   `fresh: false`).
    ///
    /// Blocking: it does file I/O and may wait for the upload's lock, so call it from a thread
    /// that may block (`spawn_blocking` in async servers).
    ///
    /// # Errors
    /// [`Error::NoContent`] (test: absent), [`Error::BadRequest`], [`Error::TooLarge`],
    /// [`Error::GeometryMismatch`], [`Error::Conflict`], [`Error::Busy`], [`Error::Io`]; see
    /// [`Error::status`] for the HTTP status of each.
    pub fn save(&self, request: &mut dyn ChunkRequest) -> Result<Outcome> {
        let mut chunk = match self.begin(request)? {
            Begun::Done(outcome) => return Ok(outcome),
            Begun::Receiving(chunk) => chunk,
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
            ChunkBody::File(path) => chunk.finish_with_file(path),
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
        let upload = self.upload_dir(request.scope(), &info.identifier)?;
        if info.is_test {
            return self.test(&upload, &info).map(Begun::Done);
        }
        self.begin_upload(request.scope(), upload, info)
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
        let upload = self.upload_dir(scope, identifier)?;
        let not_found = || Error::NotFound {
            identifier: identifier.to_owned(),
        };
        let Some(_lock) = upload.lock_existing(self.inner.config.lock_timeout)? else {
            return Err(not_found());
        };
        let meta = upload.meta()?.ok_or_else(not_found)?;
        if let Some(done) = self.already_assembled(&upload, &meta)? {
            return Ok(done);
        }
        let tally = upload.tally(&self.inner.store.ledgers, meta.upload.total_chunks)?;
        if is_complete(tally, &meta.upload)
            && let Some(file) = self.assemble(&upload, &meta)?
        {
            return Ok(Outcome::Assembled { file, fresh: true });
        }
        let tally = upload.tally(&self.inner.store.ledgers, meta.upload.total_chunks)?;
        Err(Error::Incomplete {
            identifier: identifier.to_owned(),
            present: tally.present,
            total: meta.upload.total_chunks,
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

    /// A new staging file inside the temp dir for a body that arrives before the parameters
    /// naming its upload (a multipart form whose file part precedes its fields). Hand it to
    /// [`save`](Self::save) as [`ChunkBody::File`]; storing it is then a rename.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn incoming_file(&self) -> Result<NamedTempFile> {
        self.inner.store.incoming_file()
    }

    /// The temp dir.
    pub fn temp_dir(&self) -> &Path {
        self.inner.store.root()
    }

    fn upload_dir(&self, scope: &str, identifier: &str) -> Result<UploadDir> {
        let key = self.inner.config.storage_key(scope, identifier);
        if key.is_empty()
            || key.len() > 128
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidStorageKey { key });
        }
        Ok(self.inner.store.upload(&key))
    }

    fn test(&self, upload: &UploadDir, info: &ChunkInfo) -> Result<Outcome> {
        let absent = || Error::NoContent {
            chunk: info.chunk_number(),
            identifier: info.identifier.clone(),
        };
        let expected = info.body_size();
        let len = match upload.chunk_len(info.index)? {
            Some(len) if expected.is_none_or(|e| e == len) => len,
            _ => {
                // Not stored, or stored with other sizes. It may still have been assembled and
                // its chunks deleted.
                return match upload.meta()? {
                    Some(meta) => {
                        check_geometry(&meta.upload, info)?;
                        self.already_assembled(upload, &meta)?.ok_or_else(absent)
                    }
                    None => Err(absent()),
                };
            }
        };
        let Some(_lock) = upload.lock_existing(self.inner.config.lock_timeout)? else {
            return Err(absent());
        };
        let Some(meta) = upload.meta()? else {
            return Err(absent());
        };
        check_geometry(&meta.upload, info)?;
        if let Some(done) = self.already_assembled(upload, &meta)? {
            return Ok(done);
        }
        let ledgers = &self.inner.store.ledgers;
        let total = meta.upload.total_chunks;
        let mut tally = upload.tally(ledgers, total)?;
        self.inner
            .progress
            .observe(&upload.key, &meta.upload, tally.bytes);
        if !ledgers.has(&upload.key, info.index) {
            // Present on disk but unknown to the ledger (a ledger lost by hand, say): repair.
            let ledger = upload.ledger_path();
            tally = ledgers
                .record(&upload.key, &ledger, total, info.index, len)
                .ctx("append to ledger", &ledger)?;
        }
        if is_complete(tally, &meta.upload)
            && let Some(file) = self.assemble(upload, &meta)?
        {
            // A resumed upload whose last missing piece was already there: complete it now
            // (the Python flowjs never does, and the upload is lost).
            return Ok(Outcome::Assembled { file, fresh: true });
        }
        Ok(Outcome::ChunkPresent {
            chunk: info.chunk_number(),
        })
    }

    /// Everything an upload request needs before its body: the upload started (or the chunk
    /// checked against it), quotas, progress.
    fn begin_upload(&self, scope: &str, upload: UploadDir, info: ChunkInfo) -> Result<Begun> {
        let config = &self.inner.config;
        let limits = &config.limits;
        let (store, progress, quotas) =
            (&self.inner.store, &self.inner.progress, &self.inner.quotas);
        let declared = info.body_size();

        if info.in_order && info.index == 0 {
            // A first chunk that can only mean a new upload under the same key (Plupload keys
            // uploads by file name): forget what is stored, assembled or not.
            let _lock = upload.lock(config.lock_timeout)?;
            if upload.meta()?.is_some() {
                merge::recover(&upload, config)?;
                upload.reset(&store.ledgers)?;
                self.forget(&upload.key);
            }
        }
        quotas.check(store, limits, scope, &upload.key, declared.unwrap_or(0))?;
        let meta = match upload.meta()? {
            Some(meta) => meta,
            None => {
                let _lock = upload.lock(config.lock_timeout)?;
                self.start(&upload, &info, scope)?
            }
        };
        check_geometry(&meta.upload, &info)?;
        if let Some(done) = self.already_assembled(&upload, &meta)? {
            return Ok(Begun::Done(done));
        }
        let ledgers = &store.ledgers;
        if progress.wants(&upload.key, &meta.upload) {
            // First sight of this upload in this process (new, or resumed after a restart).
            let stored = upload.tally(ledgers, meta.upload.total_chunks)?.bytes;
            progress.observe(&upload.key, &meta.upload, stored);
        }
        let chunk_progress = progress.chunk(&upload.key, ledgers.has(&upload.key, info.index));
        // Without a declared size, a body may be as long as a chunk may be, and no longer than
        // a file may be when the chunk is the whole file.
        let file_cap = limits
            .max_file_size
            .filter(|&f| meta.upload.total_chunks == 1 && f < limits.max_chunk_size);
        let max = declared.unwrap_or(file_cap.unwrap_or(limits.max_chunk_size));
        Ok(Begun::Receiving(IncomingChunk {
            uploads: self.clone(),
            upload,
            info,
            scope: scope.to_owned(),
            declared,
            max,
            file_cap,
            staging: None,
            len: 0,
            progress: chunk_progress,
        }))
    }

    /// Publishes a staged chunk (checked against what was declared), and assembles the file if
    /// that completes it.
    fn publish(&self, chunk: IncomingChunk, staged: StagedChunk) -> Result<Outcome> {
        let config = &self.inner.config;
        let limits = &config.limits;
        let (store, progress, quotas) =
            (&self.inner.store, &self.inner.progress, &self.inner.quotas);
        let IncomingChunk {
            upload,
            info,
            scope,
            declared,
            progress: chunk_progress,
            ..
        } = chunk;
        match declared {
            Some(expected) if staged.len != expected => {
                return Err(if staged.len > expected {
                    body_too_long(declared, staged.len, limits.max_chunk_size)
                } else {
                    Error::bad(
                        "body",
                        format!("{} bytes received, {expected} declared", staged.len),
                    )
                });
            }
            None if staged.len > limits.max_chunk_size => {
                return Err(body_too_long(None, staged.len, limits.max_chunk_size));
            }
            _ => {}
        }

        let _lock = upload.lock(config.lock_timeout)?;
        let meta = match upload.meta()? {
            Some(meta) => meta,
            // Swept while the body streamed in (it was idle past the expiry): start again.
            None => self.start(&upload, &info, &scope)?,
        };
        check_geometry(&meta.upload, &info)?;
        if let Some(done) = self.already_assembled(&upload, &meta)? {
            return Ok(done);
        }
        let ledgers = &store.ledgers;
        if meta.upload.total_size.is_none()
            && let Some(max) = limits.max_file_size
        {
            let tally = upload.tally(ledgers, meta.upload.total_chunks)?;
            let replaced = ledgers.size_of(&upload.key, info.index).unwrap_or(0);
            let total = tally.bytes - replaced + staged.len;
            if total > max {
                return Err(Error::TooLarge {
                    limit_kind: Limit::FileSize,
                    value: total,
                    limit: max,
                });
            }
        }
        let tally = upload.publish_chunk(ledgers, meta.upload.total_chunks, info.index, staged)?;
        progress.stored(&upload.key, tally.bytes);
        drop(chunk_progress);
        quotas.set(store, limits, &scope, &upload.key, tally.bytes);
        let mut tally = tally;
        if is_complete(tally, &meta.upload) {
            if let Some(file) = self.assemble(&upload, &meta)? {
                return Ok(Outcome::Assembled { file, fresh: true });
            }
            // The chunks disagreed with the ledger, which was rebuilt: report what it says now.
            tally = upload.tally(ledgers, meta.upload.total_chunks)?;
        }
        if info.in_order && info.index + 1 == meta.upload.total_chunks {
            // The widget is done sending: a gap (a chunk it skipped) is an error it must report.
            return Err(Error::Incomplete {
                identifier: info.identifier.clone(),
                present: tally.present,
                total: meta.upload.total_chunks,
            });
        }
        Ok(Outcome::ChunkStored {
            chunk: info.chunk_number(),
            chunks_present: tally.present,
            total_chunks: meta.upload.total_chunks,
        })
    }

    /// Writes the upload's metadata if it is not there yet (lock held) and returns it.
    fn start(&self, upload: &UploadDir, info: &ChunkInfo, scope: &str) -> Result<Meta> {
        if let Some(meta) = upload.meta()? {
            return Ok(meta);
        }
        let meta = Meta {
            upload: UploadInfo {
                scope: scope.to_owned(),
                identifier: info.identifier.clone(),
                key: upload.key.clone(),
                filename: info.filename.clone(),
                relative_path: info.relative_path.clone(),
                total_size: info.total_size,
                total_chunks: info.total_chunks,
                chunk_size: info.chunk_size,
            },
            created_ms: now_ms(),
        };
        upload.write_meta(&meta)?;
        Ok(meta)
    }

    fn already_assembled(&self, upload: &UploadDir, meta: &Meta) -> Result<Option<Outcome>> {
        Ok(upload.marker()?.map(|marker| Outcome::Assembled {
            file: merge::assembled(marker, meta),
            fresh: false,
        }))
    }

    /// Assembles (lock held), keeping progress and quotas up to date, then runs the
    /// `on_assembled` hook.
    fn assemble(&self, upload: &UploadDir, meta: &Meta) -> Result<Option<Assembled>> {
        let config = &self.inner.config;
        let progress = &self.inner.progress;
        progress.assembling(&upload.key);
        let file = match merge::assemble(&self.inner.store, upload, meta, config) {
            Ok(file) => file,
            Err(e) => {
                progress.failed(&upload.key, e.to_string());
                return Err(e);
            }
        };
        match &file {
            Some(file) => {
                progress.done(&upload.key, file.size);
                self.inner.quotas.remove(&upload.key);
                if let Some(hook) = &config.on_assembled {
                    hook(file);
                }
            }
            // The chunks disagreed with the ledger: still uploading.
            None => progress.stored(&upload.key, 0),
        }
        Ok(file)
    }

    pub(crate) fn forget(&self, key: &str) {
        self.inner.progress.forget(key);
        self.inner.quotas.remove(key);
    }
}

/// Every chunk present and, when the size is declared, the bytes add up.
fn is_complete(tally: Tally, upload: &UploadInfo) -> bool {
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
