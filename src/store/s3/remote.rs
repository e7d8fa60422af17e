//! The bucket as the store sees it: a runtime of its own, object requests (counted), and the
//! conversion of object-store errors into the crate's error.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use serde::Serialize;
use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

/// How many requests of each kind a store sent to the bucket since it was made
/// ([`S3Store::requests`](super::S3Store::requests)): what uploads cost in requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequestCounts {
    /// `GET` of an object (state, record, staged segment).
    pub get: u64,
    /// `HEAD` of an object.
    pub head: u64,
    /// Unconditional `PUT` (staged segments, piece records).
    pub put: u64,
    /// Conditional `PUT` (`If-None-Match: *` or `If-Match: <etag>`): the state object, leases.
    pub conditional_put: u64,
    /// `DELETE` (each object of a batch counts).
    pub delete: u64,
    /// `LIST` pages.
    pub list: u64,
    /// `CreateMultipartUpload`.
    pub create_multipart: u64,
    /// `UploadPart`.
    pub upload_part: u64,
    /// `CompleteMultipartUpload`.
    pub complete_multipart: u64,
    /// `AbortMultipartUpload`.
    pub abort_multipart: u64,
    /// Server-side copies (publication).
    pub copy: u64,
}

impl RequestCounts {
    /// Every request, whatever its kind.
    pub fn total(&self) -> u64 {
        self.get
            + self.head
            + self.put
            + self.conditional_put
            + self.delete
            + self.list
            + self.create_multipart
            + self.upload_part
            + self.complete_multipart
            + self.abort_multipart
            + self.copy
    }

    /// `self - earlier`, kind by kind.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            put: self.put - earlier.put,
            conditional_put: self.conditional_put - earlier.conditional_put,
            delete: self.delete - earlier.delete,
            list: self.list - earlier.list,
            create_multipart: self.create_multipart - earlier.create_multipart,
            upload_part: self.upload_part - earlier.upload_part,
            complete_multipart: self.complete_multipart - earlier.complete_multipart,
            abort_multipart: self.abort_multipart - earlier.abort_multipart,
            copy: self.copy - earlier.copy,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    conditional_put: AtomicU64,
    delete: AtomicU64,
    list: AtomicU64,
    create_multipart: AtomicU64,
    upload_part: AtomicU64,
    complete_multipart: AtomicU64,
    abort_multipart: AtomicU64,
    copy: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> RequestCounts {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RequestCounts {
            get: l(&self.get),
            head: l(&self.head),
            put: l(&self.put),
            conditional_put: l(&self.conditional_put),
            delete: l(&self.delete),
            list: l(&self.list),
            create_multipart: l(&self.create_multipart),
            upload_part: l(&self.upload_part),
            complete_multipart: l(&self.complete_multipart),
            abort_multipart: l(&self.abort_multipart),
            copy: l(&self.copy),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a conditional put found.
pub(super) enum Conditional {
    /// Written; the new ETag.
    Written(String),
    /// The object exists (create) or changed (update): nothing written.
    Lost,
}

/// The object store, its multipart side, the runtime the requests run on, the counters.
pub(super) struct Remote {
    pub objects: Arc<dyn ObjectStore>,
    pub multipart: Arc<dyn MultipartStore>,
    pub counters: Counters,
    runtime: Option<Runtime>,
    handle: Handle,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropped from an async context (the last clone of a store inside a server task), a
        // blocking shutdown would panic: let the worker threads wind down on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The error of object-store request `op` on `key`.
pub(super) fn os_error(op: &'static str, key: &str, e: &object_store::Error) -> Error {
    let transient = matches!(
        e,
        object_store::Error::Generic { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::JoinError { .. }
    );
    Error::ObjectStore {
        op,
        key: key.to_owned(),
        reason: e.to_string(),
        transient,
    }
}

impl Remote {
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        worker_threads: usize,
    ) -> Result<Remote> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("chunked-upload-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::TaskFailed {
                reason: format!("start the object store's runtime: {e}"),
            })?;
        let handle = runtime.handle().clone();
        Ok(Remote {
            objects,
            multipart,
            counters: Counters::default(),
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `fut` on the store's own runtime and waits for it on this thread. Safe from any
    /// thread, including one of another runtime's blocking pool: nothing here enters that
    /// runtime's context.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(Error::TaskFailed {
                reason: "the object store's runtime stopped".to_owned(),
            })
        })
    }

    /// Runs `job` on the blocking threads of the store's runtime, without waiting.
    pub fn spawn_blocking(&self, job: impl FnOnce() + Send + 'static) {
        self.handle.spawn_blocking(job);
    }

    /// Runs `fut` on the store's runtime without waiting (best-effort cleanup).
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(fut);
    }

    pub async fn get(&self, path: &Path) -> Result<Option<(Bytes, ObjectMeta)>> {
        bump(&self.counters.get);
        match self.objects.get_opts(path, GetOptions::default()).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| os_error("read object", path.as_ref(), &e))?;
                Ok(Some((bytes, meta)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_error("read object", path.as_ref(), &e)),
        }
    }

    pub async fn get_range(&self, path: &Path, range: std::ops::Range<u64>) -> Result<Bytes> {
        bump(&self.counters.get);
        self.objects
            .get_range(path, range)
            .await
            .map_err(|e| os_error("read object range", path.as_ref(), &e))
    }

    pub async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        bump(&self.counters.head);
        match self.objects.head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_error("look up object", path.as_ref(), &e)),
        }
    }

    pub async fn put(&self, path: &Path, payload: PutPayload) -> Result<()> {
        bump(&self.counters.put);
        self.objects
            .put(path, payload)
            .await
            .map(|_| ())
            .map_err(|e| os_error("write object", path.as_ref(), &e))
    }

    /// `PUT` with `If-None-Match: *` (`etag` `None`) or `If-Match: etag`.
    pub async fn put_if(
        &self,
        path: &Path,
        payload: PutPayload,
        etag: Option<String>,
    ) -> Result<Conditional> {
        bump(&self.counters.conditional_put);
        let mode = match etag {
            None => PutMode::Create,
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.objects.put_opts(path, payload, opts).await {
            Ok(r) => r
                .e_tag
                .map(Conditional::Written)
                .ok_or_else(|| Error::ObjectStore {
                    op: "write object conditionally",
                    key: path.to_string(),
                    reason: "the store answered without an ETag".to_owned(),
                    transient: false,
                }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(Conditional::Lost),
            Err(e) => Err(os_error("write object conditionally", path.as_ref(), &e)),
        }
    }

    /// Deletes `paths` (missing ones are fine).
    pub async fn delete_all(&self, paths: Vec<Path>) -> Result<()> {
        use futures_util::StreamExt;
        if paths.is_empty() {
            return Ok(());
        }
        self.counters
            .delete
            .fetch_add(paths.len() as u64, Ordering::Relaxed);
        let first = paths[0].to_string();
        let stream = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.objects.delete_stream(stream);
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_error("delete objects", &first, &e)),
            }
        }
        Ok(())
    }

    /// Every object below `prefix`.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        use futures_util::TryStreamExt;
        bump(&self.counters.list);
        self.objects
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| os_error("list objects", prefix.as_ref(), &e))
    }

    /// The folders directly below `prefix`.
    pub async fn list_folders(&self, prefix: &Path) -> Result<Vec<Path>> {
        bump(&self.counters.list);
        self.objects
            .list_with_delimiter(Some(prefix))
            .await
            .map(|r| r.common_prefixes)
            .map_err(|e| os_error("list objects", prefix.as_ref(), &e))
    }

    pub async fn create_multipart(&self, path: &Path) -> Result<String> {
        bump(&self.counters.create_multipart);
        self.multipart
            .create_multipart(path)
            .await
            .map_err(|e| os_error("create multipart upload", path.as_ref(), &e))
    }

    pub async fn put_part(
        &self,
        path: &Path,
        id: &str,
        index: u32,
        payload: PutPayload,
    ) -> Result<String> {
        bump(&self.counters.upload_part);
        self.multipart
            .put_part(path, &id.to_owned(), index as usize, payload)
            .await
            .map(|p| p.content_id)
            .map_err(|e| os_error("upload part", path.as_ref(), &e))
    }

    pub async fn complete(&self, path: &Path, id: &str, etags: Vec<String>) -> Result<()> {
        bump(&self.counters.complete_multipart);
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        self.multipart
            .complete_multipart(path, &id.to_owned(), parts)
            .await
            .map(|_| ())
            .map_err(|e| os_error("complete multipart upload", path.as_ref(), &e))
    }

    pub async fn abort(&self, path: &Path, id: &str) -> Result<()> {
        bump(&self.counters.abort_multipart);
        match self.multipart.abort_multipart(path, &id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_error("abort multipart upload", path.as_ref(), &e)),
        }
    }

    /// Server-side copy; with `create`, only if `to` does not exist (`Ok(false)` if it does).
    pub async fn copy(&self, from: &Path, to: &Path, create: bool) -> Result<bool> {
        bump(&self.counters.copy);
        let result = if create {
            self.objects.copy_if_not_exists(from, to).await
        } else {
            self.objects.copy(from, to).await
        };
        match result {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) if create => Ok(false),
            Err(e) => Err(os_error("publish object", to.as_ref(), &e)),
        }
    }
}
