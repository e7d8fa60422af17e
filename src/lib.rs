//! # chunked-upload
//!
//! Accept chunked, resumable uploads from the browser upload widgets people already use
//! (flow.js, resumable.js, Dropzone, Fine Uploader, Plupload) and from tus clients
//! (tus-js-client, Uppy; tus 1.0 and the IETF resumable-upload draft), store the chunks safely,
//! and assemble each file exactly once.
//!
//! The core is framework-agnostic and synchronous: an adapter (or your own code) turns an HTTP
//! request into something implementing [`ChunkRequest`] (parameters by name, the caller's
//! scope, the body) and calls [`Uploads::save`]. The result is an [`Outcome`] (chunk present,
//! chunk stored, file assembled) or an [`Error`] whose [`Error::status`] is the HTTP status to
//! answer; [`Reply`] builds the whole answer.
//!
//! ```
//! use chunked_upload::{ChunkBody, Config, Outcome, Params, RawRequest, RequestKind, Uploads};
//!
//! # fn main() -> chunked_upload::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let (temp_dir, files_dir) = (dir.path().join("chunks"), dir.path().join("files"));
//! let uploads = Uploads::new(Config::builder(temp_dir, files_dir).max_file_size(1 << 30).build())?;
//!
//! // A flow.js upload of a 3-byte file in one chunk, as an adapter would see it.
//! let params = Params::from_urlencoded(
//!     b"flowChunkNumber=1&flowChunkSize=1048576&flowCurrentChunkSize=3&flowTotalSize=3\
//!       &flowIdentifier=3-abc&flowFilename=abc.txt&flowRelativePath=abc.txt&flowTotalChunks=1",
//! )?;
//! let mut request = RawRequest::new(RequestKind::Upload, params)
//!     .with_scope("session-1")
//!     .with_body(ChunkBody::bytes(b"abc".to_vec()));
//! let Outcome::Assembled { file, .. } = uploads.save(&mut request)? else { panic!() };
//! assert_eq!(std::fs::read(file.path().unwrap()).unwrap(), b"abc");
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! The default feature set is empty: the core needs no web framework and no async runtime.
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `adapter::axum`: a ready `Router` over a scope extractor, the `UploadChunk` extractor, `SessionScope`, `tus_router` (axum 0.8) |
//! | `actix-web` | `adapter::actix`: handlers over a scope extractor, a `ServiceConfig` helper, `SessionScope`, a `ResponseError`, `TusState` (actix-web 4) |
//! | `hyper` | `adapter::hyper`: async handlers over any `http_body::Body` in the scope you decide, `session_scope`, `tus`, `UploadService::with_tus` (hyper 1) |
//! | `conformance` | `conformance`: the HTTP test suite every adapter passes (its tus cases in `conformance::tus`), and the store suite (`conformance::store`), for your own adapter or store |
//! | `s3` | [`S3Store`]: uploads in an S3-compatible bucket shared by many servers (`object_store`) |
//!
//! Every adapter feature also brings `adapter::Sessions` (signed session cookies for apps
//! without accounts; see `adapter::session` for what they can and cannot tell apart) and
//! `spawn_sweep` (the sweep in the background).
//!
//! tus is always part of the core ([`tus`]): its extra dependencies are small and have no
//! dependencies of their own worth a feature (`base64`, `md-5` and `sha2` beside the `sha1`
//! the core already uses, `httpdate`, `getrandom` for upload ids).
//!
//! ## Guarantees
//!
//! - A chunk counts as present only once all its bytes are stored: the [`LocalStore`] writes it
//!   at its offset in the upload's data file and records it in a ledger afterwards. A chunk
//!   sent again is compared with the stored bytes: the same bytes change nothing, others are
//!   refused ([`Error::ContentMismatch`]), never mixed in.
//! - Completion is "every chunk present and the sizes add up", checked in O(1) amortized per
//!   chunk through the ledger, not by listing the chunks on every request.
//! - Assembly happens once, under a per-upload lock (`std::fs::File::lock`, which holds across
//!   processes sharing the temp dir). The data file is synced and published by a no-clobber
//!   hard link (or, with [`ConflictPolicy::Overwrite`], an atomic rename over the destination):
//!   no byte is copied, it is never visible half-written, and a crash at any point loses
//!   nothing but the chunks in flight.
//! - Storage paths are hashes of (scope, identifier): no client string reaches a path, two
//!   scopes never share an upload, and no symlink in the temp dir is ever followed.
//!
//! - What a request can make the server hold is bounded in every part of it (head, part
//!   headers, fields, body), and every phase has a deadline ([`RequestLimits`]); a form is
//!   decided once all its fields are read.
//!
//! ## Choosing a store
//!
//! | store | when |
//! |---|---|
//! | [`LocalStore`] ([`Config::builder`]) | one server, or several processes sharing one local filesystem with the destination (the default; fastest: nothing is copied) |
//! | `S3Store` (feature `s3`, [`Config::builder_with_store`]) | several stateless servers behind a load balancer, sharing one bucket of S3-compatible object storage (AWS S3, MinIO, Ceph RGW, R2): state and leases live in the bucket, files appear atomically; slower per chunk than the local store (several requests per chunk) |
//! | your own [`Store`] ([`Config::builder_with_store`]) | anything else; prove it with the `conformance` feature's `conformance::store` suite |
//!
//! ## Protocols
//!
//! | concern | flow.js | resumable.js | Dropzone | Fine Uploader | Plupload |
//! |---|---|---|---|---|---|
//! | dialect | [`Flow`] | [`Resumable`] | [`Dropzone`] | [`FineUploader`] | [`Plupload`] |
//! | upload key | `flowIdentifier` | `resumableIdentifier` | `dzuuid` | `qquuid` | `name` (+ scope) |
//! | chunk index | `flowChunkNumber`, 1-based | `resumableChunkNumber`, 1-based | `dzchunkindex`, 0-based | `qqpartindex`, 0-based | `chunk`, 0-based |
//! | total chunks / size | `flowTotalChunks` / `flowTotalSize` | `resumableTotalChunks` / `resumableTotalSize` | `dztotalchunkcount` / `dztotalfilesize` | `qqtotalparts` / `qqtotalfilesize` | `chunks` / not sent |
//! | chunk size / this chunk's | `flowChunkSize` / `flowCurrentChunkSize` | `resumableChunkSize` / `resumableCurrentChunkSize` | `dzchunksize` / body length | derived / `qqchunksize` | not sent / body length |
//! | test request | `GET`: 200 present, 204 absent | same | none | none | none |
//! | finalize request | none | none | optional | optional | none |
//!
//! [`Dialects::default`] recognises all five on one route, and plain one-request uploads (an HTML
//! form, small files of Dropzone, Fine Uploader and Plupload); the [`dialect`] module has the
//! details.
//!
//! tus is offset-based, on a route of its own ([`tus::Tus`]; the adapters' `tus_router`,
//! `TusState`, `with_tus`):
//!
//! | concern | tus 1.0 (tus-js-client, Uppy) | IETF draft (tus-js-client `ietf-draft-03`/`-05`) |
//! |---|---|---|
//! | version | `Tus-Resumable: 1.0.0` (else 412) | `Upload-Draft-Interop-Version: 5` or `6` |
//! | create | `POST` with `Upload-Length` or `Upload-Defer-Length: 1`, `Upload-Metadata` (name: `filename` or `name`): 201 + `Location` | `POST` with `Upload-Complete`, `Upload-Length` |
//! | offset | `HEAD`: 200, `Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Upload-Expires`, `Cache-Control: no-store` | `HEAD`: 204, `Upload-Offset`, `Upload-Complete`, `Upload-Limit` |
//! | append | `PATCH` `application/offset+octet-stream` at `Upload-Offset` (409 if not the upload's; `X-HTTP-Method-Override`) | `PATCH` (`application/partial-upload` in version 6), `Upload-Complete: ?1` on the last; 409 problem document with `expected-offset` |
//! | extensions | creation, creation-with-upload, creation-defer-length, termination, checksum (sha1, md5, sha256; 460), expiration, concatenation | the same store, locks, hooks, expiry |
//! | end | `DELETE`: 204 | `DELETE`: 204 |
//!
//! ## Status codes
//!
//! | meaning | status |
//! |---|---|
//! | chunk stored, file assembled, test: chunk present | 200 |
//! | test: chunk absent ([`Error::NoContent`]) | 204 |
//! | invalid request ([`Error::BadRequest`]), finalize of an incomplete upload, a field after the file part that changes the chunk ([`Error::FieldAfterFile`]) | 400 |
//! | no valid session cookie and no client address to derive one ([`Error::NoSession`]) | 400 |
//! | refused by the adapter's scope extractor (not signed in, say) | the extractor's, e.g. 401 |
//! | unknown upload ([`Error::NotFound`]) | 404 |
//! | body stalled or trickling ([`Error::BodyTooSlow`]), a deadline missed ([`Error::TimedOut`]) | 408 |
//! | destination exists and the policy refuses, geometry changed | 409 |
//! | too large ([`Error::TooLarge`]) | 413 |
//! | refused for good ([`Error::Refused`]) | 415 |
//! | too many unfinished uploads in the scope ([`Error::TooManyUploads`]) | 429 |
//! | busy, retry later ([`Error::Busy`]) | 503 |
//! | storage full | 507 |
//! | tus: no version spoken ([`Error::UnsupportedVersion`]) | 412 |
//! | tus: expired ([`Error::Expired`]) | 410 |
//! | tus: checksum mismatch ([`Error::ChecksumMismatch`]) | 460 |
//!
//! [`Error::status`] is the one mapping; the table in its docs is complete. Error bodies are
//! `{"success": false, "error": message, "preventRetry": bool}` ([`Reply::error`]): the message
//! is [`Error::client_message`], which names no server path and nothing of another scope's
//! files; `preventRetry` (read by Fine Uploader) is `!`[`Error::is_retryable`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
mod chunk;
mod clock;
mod config;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod dialect;
mod error;
mod expiry;
mod limits;
mod merge;
mod multipart_guard;
mod progress;
mod quota;
mod request;
mod request_limits;
mod response;
mod sanitize;
mod save;
mod store;
pub mod tus;
mod upload;

pub use chunk::{
    ChunkInfo, FieldNames, MAX_FILENAME_LEN, MAX_IDENTIFIER_LEN, MAX_RELATIVE_PATH_LEN, parse_u64,
};
pub use config::{
    AssembledFn, Config, ConfigBuilder, CreateFn, DestinationFn, HashNameFn, Refusal,
    default_hash_name,
};
pub use dialect::{Dialect, Dialects, Dropzone, FineUploader, Flow, Plupload, Resumable};
pub use error::{Deadline, Error, Limit, Problem, Result};
pub use expiry::SweepReport;
pub use limits::Limits;
pub use multipart_guard::{MAX_BOUNDARY_LEN, MultipartGuard};
pub use progress::{Progress, ProgressConfig, ProgressCursor, ProgressMonitor, State};
pub use request::{ChunkBody, ChunkRequest, MAX_PARAM_LEN, Params, RawRequest, RequestKind};
pub use request_limits::RequestLimits;
pub use response::Reply;
pub use sanitize::{sanitize_filename, sanitize_relative_path};
pub use save::{Begun, FORM_OVERHEAD, IncomingChunk, Outcome, Uploads};
pub use store::{
    Activity, Assembly, Capabilities, ConflictPolicy, LocalStore, Marker, Piece, PieceWriter,
    PreprocessFn, Recorded, Store, Stored, Tally, UploadLock,
};
pub use tus::Tus;
pub use upload::{Assembled, Concat, Location, UploadInfo};

/// The `object_store` crate the [`S3Store`] is built on (its `aws` feature), re-exported so
/// that the S3 configuration types match.
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use object_store;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use store::{MIN_PART_SIZE, RequestCounts, S3Store, S3StoreBuilder};

/// The README's examples, compiled as doctests (they use every adapter).
#[cfg(all(doctest, feature = "axum", feature = "actix-web", feature = "hyper"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
