//! [`Config`] and its builder: where chunks and files go, hooks, limits, policies.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::dialect::Dialects;
use crate::limits::Limits;
use crate::progress::ProgressConfig;
use crate::request_limits::RequestLimits;
use crate::sanitize::sanitize_filename;
use crate::store::{ConflictPolicy, PreprocessFn, Store};
use crate::upload::{Assembled, UploadInfo};

/// How the application refuses an upload from the [`on_create`](ConfigBuilder::on_create) hook:
/// the status to answer (400-499; anything else becomes 400) and the reason shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// Why, in words the client may see.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this status and reason.
    pub fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// Chooses the destination of an assembled file: a relative name, which the store resolves
/// against its destination (a directory, a key prefix), or an absolute path (local store).
pub type DestinationFn = dyn Fn(&UploadInfo) -> PathBuf + Send + Sync;
/// Maps `(scope, identifier)` to a storage key.
pub type HashNameFn = dyn Fn(&str, &str) -> String + Send + Sync;
/// Called once per assembled file, after it is published.
pub type AssembledFn = dyn Fn(&Assembled) + Send + Sync;
/// Called before an upload's first byte is stored; an `Err` refuses the upload.
pub type CreateFn = dyn Fn(&UploadInfo) -> Result<(), Refusal> + Send + Sync;

/// Where uploads are kept.
#[derive(Clone)]
pub(crate) enum StoreChoice {
    /// A [`LocalStore`](crate::LocalStore) made when the [`Uploads`](crate::Uploads) are.
    Local {
        temp_dir: PathBuf,
        destination_dir: PathBuf,
    },
    /// A store the application made.
    Given(Arc<dyn Store>),
}

/// The configuration of an [`Uploads`](crate::Uploads) instance. Build it with
/// [`Config::builder`].
#[derive(Clone)]
pub struct Config {
    pub(crate) store: StoreChoice,
    pub(crate) destination: Arc<DestinationFn>,
    pub(crate) hash_name: Arc<HashNameFn>,
    pub(crate) preprocess: Option<Arc<PreprocessFn>>,
    pub(crate) on_assembled: Option<Arc<AssembledFn>>,
    pub(crate) on_create: Option<Arc<CreateFn>>,
    pub(crate) delete_chunks_on_save: bool,
    pub(crate) limits: Limits,
    pub(crate) conflict: ConflictPolicy,
    pub(crate) expire_after: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) sync_chunks: bool,
    pub(crate) dialects: Dialects,
    pub(crate) progress: ProgressConfig,
    pub(crate) max_concurrent_bodies: usize,
    pub(crate) request_limits: RequestLimits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store: &dyn fmt::Debug = match &self.store {
            StoreChoice::Local { temp_dir, .. } => temp_dir,
            StoreChoice::Given(store) => store,
        };
        f.debug_struct("Config")
            .field("store", store)
            .field("preprocess", &self.preprocess.is_some())
            .field("on_assembled", &self.on_assembled.is_some())
            .field("on_create", &self.on_create.is_some())
            .field("delete_chunks_on_save", &self.delete_chunks_on_save)
            .field("limits", &self.limits)
            .field("conflict", &self.conflict)
            .field("expire_after", &self.expire_after)
            .field("lock_timeout", &self.lock_timeout)
            .field("sync_chunks", &self.sync_chunks)
            .field("dialects", &self.dialects)
            .field("progress", &self.progress)
            .field("max_concurrent_bodies", &self.max_concurrent_bodies)
            .field("request_limits", &self.request_limits)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Starts a configuration with the [`LocalStore`](crate::LocalStore): uploads are kept
    /// under `temp_dir` (one directory per upload), and assembled files go to
    /// `destination_dir` under their [sanitized](crate::sanitize_filename) file name (see
    /// [`ConfigBuilder::destination`] for any other choice).
    ///
    /// Keep `temp_dir` on the same filesystem as the destination: assembled files are then
    /// published by a hard link of the stored bytes, without a copy.
    pub fn builder(
        temp_dir: impl Into<PathBuf>,
        destination_dir: impl Into<PathBuf>,
    ) -> ConfigBuilder {
        Config::with(StoreChoice::Local {
            temp_dir: temp_dir.into(),
            destination_dir: destination_dir.into(),
        })
    }

    /// Starts a configuration over a store of your choice (an object store, your own): the
    /// destination names assembled files relative to what the store publishes into.
    pub fn builder_with_store(store: impl Store) -> ConfigBuilder {
        Config::with(StoreChoice::Given(Arc::new(store)))
    }

    fn with(store: StoreChoice) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                store,
                destination: Arc::new(|info: &UploadInfo| {
                    PathBuf::from(sanitize_filename(&info.filename))
                }),
                hash_name: Arc::new(default_hash_name),
                preprocess: None,
                on_assembled: None,
                on_create: None,
                delete_chunks_on_save: true,
                limits: Limits::default(),
                conflict: ConflictPolicy::default(),
                expire_after: Duration::from_secs(2 * 24 * 3600),
                lock_timeout: Duration::from_secs(60),
                sync_chunks: false,
                dialects: Dialects::default(),
                progress: ProgressConfig::default(),
                max_concurrent_bodies: 8,
                request_limits: RequestLimits::default(),
            },
        }
    }

    /// The temp dir of the local store, when the configuration uses one.
    pub fn temp_dir(&self) -> Option<&Path> {
        match &self.store {
            StoreChoice::Local { temp_dir, .. } => Some(temp_dir),
            StoreChoice::Given(_) => None,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether chunks are deleted once their file is assembled.
    pub fn delete_chunks_on_save(&self) -> bool {
        self.delete_chunks_on_save
    }

    /// The conflict policy for existing destinations.
    pub fn conflict_policy(&self) -> ConflictPolicy {
        self.conflict
    }

    /// How long an upload may stay idle before [`Uploads::sweep`](crate::Uploads::sweep)
    /// removes it.
    pub fn expire_after(&self) -> Duration {
        self.expire_after
    }

    /// How many request bodies the bundled adapters read at once.
    pub fn max_concurrent_bodies(&self) -> usize {
        self.max_concurrent_bodies
    }

    /// What one request may make the server hold, and how long each of its phases may take.
    pub fn request_limits(&self) -> &RequestLimits {
        &self.request_limits
    }

    /// The pre-process hook, if one is set.
    pub fn preprocess(&self) -> Option<&PreprocessFn> {
        self.preprocess.as_deref()
    }

    /// The `on_assembled` hook, if one is set.
    pub fn on_assembled(&self) -> Option<&AssembledFn> {
        self.on_assembled.as_deref()
    }

    /// The `on_create` hook, if one is set.
    pub fn on_create(&self) -> Option<&CreateFn> {
        self.on_create.as_deref()
    }

    /// How long a request waits for an upload's lock before [`Error::Busy`](crate::Error::Busy).
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// The dialects requests are parsed with.
    pub fn dialects(&self) -> &Dialects {
        &self.dialects
    }

    /// The storage key of `identifier` in `scope`, as the hash-name callback computes it.
    pub fn storage_key(&self, scope: &str, identifier: &str) -> String {
        (self.hash_name)(scope, identifier)
    }

    /// Where the file of `upload` is assembled (relative names are resolved by the store).
    pub fn destination(&self, upload: &UploadInfo) -> PathBuf {
        (self.destination)(upload)
    }
}

/// The default hash-name callback: SHA-1 hex of the identifier when the scope is empty (the
/// naming of flowjs and flow-php-server), otherwise of the scope's length as 8 little-endian
/// bytes, the scope, and the identifier, so that no two (scope, identifier) pairs share a key.
pub fn default_hash_name(scope: &str, identifier: &str) -> String {
    let mut hasher = Sha1::new();
    if !scope.is_empty() {
        hasher.update((scope.len() as u64).to_le_bytes());
        hasher.update(scope.as_bytes());
    }
    hasher.update(identifier.as_bytes());
    hex::encode(hasher.finalize())
}

/// Builds a [`Config`]; see [`Config::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Chooses each assembled file's destination with a function of the upload. A relative path
    /// is resolved by the store (the local store joins it to its destination directory; an
    /// object store to its prefix); the local store also takes absolute paths. The function
    /// should not put client strings in paths unsanitized;
    /// [`sanitize_filename`](crate::sanitize_filename) helps. A folder per scope keeps users'
    /// files apart:
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use chunked_upload::{Config, sanitize_filename};
    ///
    /// let config = Config::builder("./uploads/.chunks", "./uploads")
    ///     .destination(|upload| {
    ///         // The scope is the application's (a user id); hash it if it may hold any byte.
    ///         PathBuf::from(sanitize_filename(&upload.scope)).join(sanitize_filename(&upload.filename))
    ///     })
    ///     .build();
    /// # let _ = config;
    /// ```
    pub fn destination(
        mut self,
        f: impl Fn(&UploadInfo) -> PathBuf + Send + Sync + 'static,
    ) -> Self {
        self.config.destination = Arc::new(f);
        self
    }

    /// Replaces the hash-name callback, which maps `(scope, identifier)` to the name of the
    /// upload's storage directory. Its result must be 1-128 characters of `[A-Za-z0-9_-]`,
    /// otherwise requests fail with [`Error::InvalidStorageKey`](crate::Error::InvalidStorageKey).
    pub fn hash_name(mut self, f: impl Fn(&str, &str) -> String + Send + Sync + 'static) -> Self {
        self.config.hash_name = Arc::new(f);
        self
    }

    /// Sets a pre-process hook, run on each chunk as the file is assembled: it reads the chunk
    /// and writes what goes into the file (decrypt, scan, transform). Without a hook the stored
    /// bytes are published as they are, without a copy; with one, every byte makes one
    /// streaming pass through it into a new file.
    ///
    /// To refuse the file for good (a virus scanner's verdict, a forbidden type), return an
    /// error of kind [`io::ErrorKind::InvalidData`]: the request fails with
    /// [`Error::Refused`](crate::Error::Refused) (415, which stops flow.js and resumable.js) and
    /// the error's text as the reason. Any other error is a server failure (500).
    pub fn preprocess(
        mut self,
        f: impl Fn(u64, &mut dyn Read, &mut dyn Write) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.config.preprocess = Some(Arc::new(f));
        self
    }

    /// Sets a callback run once per assembled file, after it is published: to move it, index
    /// it, tell someone. It runs on the request's thread (a blocking thread in the bundled
    /// adapters), with the upload's lock held, before the answer is sent: keep it short, or
    /// hand the work off.
    pub fn on_assembled(mut self, f: impl Fn(&Assembled) + Send + Sync + 'static) -> Self {
        self.config.on_assembled = Some(Arc::new(f));
        self
    }

    /// Sets a hook that sees every new upload's description (name, size, scope, metadata)
    /// before its first byte is stored, and may refuse it with a status and a reason (answered
    /// as [`Error::Rejected`](crate::Error::Rejected)): every widget's first chunk, a tus
    /// creation. A widget's client-side checks (Dropzone's `acceptedFiles`) are only advice; this
    /// is where a server decides.
    ///
    /// ```
    /// use chunked_upload::{Config, Refusal};
    ///
    /// let config = Config::builder("./uploads/.chunks", "./uploads")
    ///     .on_create(|upload| {
    ///         if upload.filename.ends_with(".exe") {
    ///             return Err(Refusal::new(415, "executables are not accepted"));
    ///         }
    ///         Ok(())
    ///     })
    ///     .build();
    /// # let _ = config;
    /// ```
    pub fn on_create(
        mut self,
        f: impl Fn(&UploadInfo) -> Result<(), Refusal> + Send + Sync + 'static,
    ) -> Self {
        self.config.on_create = Some(Arc::new(f));
        self
    }

    /// Whether chunks are deleted once the file is assembled (default `true`). With `false` the
    /// stored pieces stay until the upload expires (in the local store, the data file stays as
    /// a second name of the published file).
    pub fn delete_chunks_on_save(mut self, delete: bool) -> Self {
        self.config.delete_chunks_on_save = delete;
        self
    }

    /// Largest file accepted, in bytes.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.config.limits.max_file_size = Some(bytes);
        self
    }

    /// Largest chunk body accepted, in bytes.
    pub fn max_chunk_size(mut self, bytes: u64) -> Self {
        self.config.limits.max_chunk_size = bytes;
        self
    }

    /// Most chunks in one file.
    pub fn max_chunks(mut self, chunks: u64) -> Self {
        self.config.limits.max_chunks = chunks;
        self
    }

    /// Most unfinished uploads one scope may have at once.
    pub fn max_uploads_per_scope(mut self, uploads: u64) -> Self {
        self.config.limits.max_uploads_per_scope = Some(uploads);
        self
    }

    /// Most bytes one scope may have stored but not yet assembled.
    pub fn max_pending_bytes_per_scope(mut self, bytes: u64) -> Self {
        self.config.limits.max_pending_bytes_per_scope = Some(bytes);
        self
    }

    /// Replaces all limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// What to do when a destination exists (default [`ConflictPolicy::Refuse`]).
    pub fn on_conflict(mut self, policy: ConflictPolicy) -> Self {
        self.config.conflict = policy;
        self
    }

    /// How long an upload may stay idle (no chunk stored or streaming) before the sweep removes
    /// it (default 2 days).
    pub fn expire_after(mut self, age: Duration) -> Self {
        self.config.expire_after = age;
        self
    }

    /// How long a request waits for another request holding the same upload's lock (an
    /// assembly in progress, say) before failing with [`Error::Busy`](crate::Error::Busy)
    /// (default 60 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.config.lock_timeout = timeout;
        self
    }

    /// Whether each chunk is flushed to stable storage (`fsync`) before it counts as present
    /// (default `false`: a chunk survives a crash of the process, and the assembled file is
    /// always synced, but a power loss may lose chunks stored in the last seconds, which the
    /// widget then uploads again).
    pub fn sync_chunks(mut self, sync: bool) -> Self {
        self.config.sync_chunks = sync;
        self
    }

    /// The dialects requests are parsed with, in detection order.
    pub fn dialects(mut self, dialects: Dialects) -> Self {
        self.config.dialects = dialects;
        self
    }

    /// How many request bodies the bundled adapters stream at once past their first 64 KiB
    /// (default 8). Further uploads wait with that first batch, their other bytes held by the
    /// kernel's socket buffers rather than the server's memory: memory stays bounded however
    /// many clients upload at once (a streaming body costs up to about 2 MiB of buffers, a
    /// waiting one a few hundred KiB). Bodies that stall or trickle (by default under 16 KiB
    /// per 30 s, see [`RequestLimits::min_body_bytes`]) are dropped and never hold a slot.
    pub fn max_concurrent_bodies(mut self, bodies: usize) -> Self {
        self.config.max_concurrent_bodies = bodies.max(1);
        self
    }

    /// Bounds on what one request may make the server hold (head, part headers, fields) and
    /// deadlines for each of its phases, which the bundled adapters apply (default
    /// [`RequestLimits::default`]).
    pub fn request_limits(mut self, limits: RequestLimits) -> Self {
        self.config.request_limits = limits;
        self
    }

    /// Settings of the progress monitor (threshold, retention, bound).
    pub fn progress(mut self, progress: ProgressConfig) -> Self {
        self.config.progress = progress;
        self
    }

    /// Finishes the configuration.
    pub fn build(self) -> Config {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hash_is_flowjs_sha1_without_scope() {
        // flow-php-server ConfigTest::testConfig_hashNameCallback: sha1('13632-prettifyjs')
        assert_eq!(
            default_hash_name("", "13632-prettifyjs"),
            "08a8fbbe316bb15c8fc98d5e1ae001ace70ec285"
        );
    }

    #[test]
    fn scopes_never_share_keys() {
        let a = default_hash_name("ab", "c");
        let b = default_hash_name("a", "bc");
        assert_ne!(a, b, "length prefix separates scope from identifier");
        assert_ne!(
            default_hash_name("user-1", "x"),
            default_hash_name("user-2", "x")
        );
        assert_ne!(default_hash_name("", "x"), default_hash_name("u", "x"));
    }
}
