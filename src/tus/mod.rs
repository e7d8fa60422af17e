//! tus 1.0 and the IETF resumable-upload draft, on the same core as the widgets.
//!
//! tus-js-client and Uppy upload by offset: `POST` creates an upload and answers its URL, `HEAD`
//! says how many bytes it has, `PATCH` appends at that offset, `DELETE` ends it. Here an append
//! is a piece written at its offset, the way the in-place store writes every widget's chunks,
//! so a tus upload is stored, locked, expired, reported and published like any other: the same
//! [`Uploads`](crate::Uploads), the same `on_create` and `on_assembled` hooks, destination and
//! conflict policy, quotas, progress monitor and sweep.
//!
//! | extension | what it does here |
//! |---|---|
//! | core | `OPTIONS` (`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`), `HEAD` (`Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Cache-Control: no-store`), `PATCH` (`application/offset+octet-stream`; a wrong `Upload-Offset` is 409, a wrong type 415, a missing or other `Tus-Resumable` 412, bytes past `Upload-Length` 413); `X-HTTP-Method-Override` |
//! | `creation` | `POST` with `Upload-Length` and `Upload-Metadata` (parsed and checked; the file name is `filename` or `name`): the `on_create` hook decides, then `201` with a `Location` under the mount |
//! | `creation-with-upload` | the `POST`'s body is the first append |
//! | `creation-defer-length` | `Upload-Defer-Length: 1`, the length sent with a later `PATCH` |
//! | `termination` | `DELETE`: `204`, then `404` |
//! | `checksum` | `Upload-Checksum` with `sha1`, `md5` or `sha256`: a mismatch is `460` and the append's bytes are dropped (the offset stays); another algorithm is `400` |
//! | `expiration` | `Upload-Expires` on every answer about an unfinished upload (its last activity plus [`expire_after`](crate::ConfigBuilder::expire_after)); an expired upload answers `410` once, then `404`, and the sweep removes it like any other |
//! | `concatenation` | `Upload-Concat: partial` uploads, then `final;<urls>`: made at once of the finished parts (a kernel copy into the final upload, shared extents on XFS and btrfs) and published; the same final request again names the same file (tus-js-client's `parallelUploads`) |
//!
//! The IETF draft (`Upload-Draft-Interop-Version` 5 and 6, tus-js-client's `ietf-draft-03` and
//! `ietf-draft-05`): `Upload-Complete`, `Upload-Offset`, `Upload-Limit`, `204` to `HEAD`, the
//! `409` problem document with `expected-offset` and `provided-offset`, `completed-upload` and
//! `inconsistent-upload-length` problems, `application/partial-upload` appends (version 6). The
//! draft's `104 (Upload Resumption Supported)` interim response is not sent: none of axum,
//! actix-web and hyper can send an informational response from a handler.
//!
//! **Ownership.** Upload URLs carry 128 random bits, never a client string, and an upload
//! belongs to the scope that created it: its storage key is a hash of (scope, id), so another
//! scope's `HEAD`, `PATCH` and `DELETE` find nothing (`404`), and so does a guessed id.
//!
//! **One request at a time.** Every request on an upload holds its lock (across processes),
//! an append from its first byte to its last. A request that finds the lock held asks the
//! holder to give it up ([`Store::lock_taking_over`](crate::Store::lock_taking_over)): the
//! holder, maybe waiting on a connection that is gone, notices within
//! [`RELEASE_POLL`], keeps the bytes it received and answers `400` ([`Error::TakenOver`]:
//! two live clients do not take turns), and the new request goes on. A body that breaks off
//! keeps the bytes that arrived (unless it declared a checksum).
//!
//! **Limits.** An append may be as long as the upload has room for: tus clients send a whole
//! file in one `PATCH` by default, so the widgets' `max_chunk_size` does not apply;
//! `max_file_size`, the quotas and `max_chunks` (appends per upload) do. Bodies stream through
//! the adapters' body pump (bounded memory, the slow-body rule).
//!
//! ```
//! use chunked_upload::tus::{Tus, TusRequest};
//! use chunked_upload::{Config, Uploads};
//!
//! # fn main() -> chunked_upload::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let uploads = Uploads::new(Config::builder(dir.path().join("t"), dir.path().join("files")).build())?;
//! let tus = Tus::new(uploads);
//!
//! // Create: 5 bytes, named in the metadata.
//! let create = TusRequest::new("POST", "/tus/", None)
//!     .with_scope("user-1")
//!     .with_header("Tus-Resumable", b"1.0.0")
//!     .with_header("Upload-Length", b"5")
//!     .with_header("Upload-Metadata", b"filename aGVsbG8udHh0");
//! let created = tus.handle(&create, &mut std::io::empty());
//! assert_eq!(created.status(), 201);
//! let location = created.header("Location").unwrap().to_owned();
//! let id = location.strip_prefix("/tus/").unwrap();
//!
//! // Append the bytes.
//! let patch = TusRequest::new("PATCH", "/tus/", Some(id))
//!     .with_scope("user-1")
//!     .with_header("Tus-Resumable", b"1.0.0")
//!     .with_header("Upload-Offset", b"0")
//!     .with_header("Content-Type", b"application/offset+octet-stream");
//! let done = tus.handle(&patch, &mut &b"hello"[..]);
//! assert_eq!((done.status(), done.header("Upload-Offset")), (204, Some("5")));
//! let file = done.assembled().unwrap();
//! assert_eq!(std::fs::read(file.path().unwrap()).unwrap(), b"hello");
//!
//! // Another scope does not see it.
//! let head = TusRequest::new("HEAD", "/tus/", Some(id))
//!     .with_scope("user-2")
//!     .with_header("Tus-Resumable", b"1.0.0");
//! assert_eq!(tus.handle(&head, &mut std::io::empty()).status(), 404);
//! # Ok(())
//! # }
//! ```
//!
//! The adapters serve it: `adapter::axum::tus_router`, `adapter::actix::TusState`,
//! `adapter::hyper::tus` (and `UploadService::with_tus`).
//!
//! [`Error::TakenOver`]: crate::Error::TakenOver

use std::time::Duration;

mod append;
mod checksum;
mod handler;
pub mod headers;
mod reply;
mod request;
mod state;

pub use append::{ReleaseWatch, TusAppend};
pub use handler::{Tus, TusBegun};
pub use reply::TusReply;
pub use request::{INTEROP_VERSIONS, Protocol, TUS_VERSION, TusRequest};

/// How often an append waiting for its body looks whether another request asked for its upload
/// ([`ReleaseWatch::asked`]); the longest a resuming client waits for a dead connection's lock.
pub const RELEASE_POLL: Duration = Duration::from_millis(250);
