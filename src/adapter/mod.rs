//! Framework adapters: an adapter only translates.
//!
//! Each adapter turns its framework's request into a [`RawRequest`](crate::RawRequest) (query
//! string and form fields as [`Params`](crate::Params), the caller's scope, the chunk body),
//! hands it to [`Uploads`](crate::Uploads), and turns the answer into its framework's response
//! through [`Reply`](crate::Reply), the one place that decides status, body and `Retry-After`.
//! Nothing about uploads is decided here.
//!
//! | feature | module | entry points |
//! |---|---|---|
//! | `axum` | `axum` | `router::<X, _>(uploads)`, `progress_router`, the `UploadChunk<X>` / `FinalizeUpload<X>` extractors, `SessionScope`, `spawn_sweep` |
//! | `actix-web` | `actix` | `UploadState::configure::<X>`, the `upload::<X>` / `done::<X>` handlers, `SessionScope`, `UploadError`, `spawn_sweep` |
//! | `hyper` | `hyper` | `handle`, `finalize`, `progress` in a [`Scope`] you decide, a ready `service` over an async scope function, `session_scope`, `spawn_sweep` |
//!
//! Each also serves tus ([`crate::tus`]): axum `tus_router::<X, _>(tus, mount)`, actix-web
//! `TusState::configure::<X>` and the `tus::<X>` handler, hyper `tus` and
//! `UploadService::with_tus`. The adapter builds a [`TusRequest`](crate::tus::TusRequest)
//! (method, mount, id, headers, scope), the core answers a [`TusReply`](crate::tus::TusReply)
//! (status, headers, body) that the adapter copies out; an append's body streams through the
//! same body pump, with the same body slots and deadlines, polled every
//! [`RELEASE_POLL`](crate::tus::RELEASE_POLL) for another request taking the upload over.
//!
//! **Scopes.** `X` is the framework's own extractor of the caller's scope (`FromRequestParts`
//! in axum, `FromRequest` in actix-web; an async function in hyper): your app's authentication,
//! which may be async, use your app's state and refuse the request with its own status (its
//! rejection is the answer, and nothing is stored), or the adapter's `SessionScope`, a browser
//! session signed by [`Sessions`] ([`session`] tells how a widget's parallel cookieless first
//! requests share one session, and what that cannot tell apart). Either converts into
//! [`Scope`]; a scope that issues a session cookie has it set on the answer, whatever the answer.
//!
//! **The sweep.** No adapter removes expired uploads by itself; [`Uploads::sweep`](crate::Uploads::sweep) is blocking
//! file I/O. Each adapter re-exports `spawn_sweep(uploads, interval)`, which runs it on a
//! blocking thread every `interval` and logs what it removed.
//!
//! **Assembled files.** [`ConfigBuilder::on_assembled`](crate::ConfigBuilder::on_assembled) is
//! called once per file, after it is published and before the answer.
//!
//! All three behave the same way, and prove it by passing the same HTTP test suite
//! (the `conformance` feature):
//!
//! - `GET` is a test request, `POST`, `PUT` and `PATCH` are uploads; a separate "done" route
//!   finalizes an upload by its identifier.
//! - Parameters come from the query string and from the form (`multipart/form-data` or
//!   `application/x-www-form-urlencoded`); the file part is the field a dialect names
//!   ([`Dialects::is_file_field`](crate::Dialects::is_file_field)). Any other body is the raw chunk
//!   (flow.js and resumable.js `method: 'octet'`).
//! - Bodies are streamed with bounded memory: once the parameters before the file part
//!   describe a chunk of a chunked upload, the request is validated
//!   ([`Uploads::chunk_info`](crate::Uploads::chunk_info)) and a bad chunk is refused before its
//!   body is read; otherwise the part's bytes are written in 64 KiB batches on blocking threads
//!   straight into the chunk ([`Uploads::begin`](crate::Uploads::begin)), which is published
//!   only once the form has ended and the fields after the file part, if any, change nothing
//!   in what the fields before it said (else `400`,
//!   [`Error::FieldAfterFile`](crate::Error::FieldAfterFile), and nothing is stored). A file
//!   part whose fields may still follow (it is the form's first part, the request lacks a
//!   parameter, or it reads as a whole file in one request, which a later field could make a
//!   chunk) is staged on disk with [`Uploads::incoming_file`](crate::Uploads::incoming_file)
//!   and saved once the form is read, with every field: a form is decided once all its fields
//!   are read.
//! - Multipart forms are parsed by one parser for all three adapters, multer, behind a
//!   [`MultipartGuard`](crate::MultipartGuard): actix-multipart, axum's `Multipart` and multer
//!   alone keep a part's headers in memory until they end, however long they are.
//! - Every byte a request makes the server hold is bounded, and every phase has a deadline:
//!   [`RequestLimits`](crate::RequestLimits), from the [`Config`](crate::Config), applied to
//!   every request (fields, part headers, form bytes, idle, fields and body deadlines); the
//!   connection limits (request head size and deadline, connections) by the serving loops
//!   `adapter::axum::serve` and `adapter::hyper::serve`, and by actix-web's own settings.
//! - A request body may be the largest chunk plus [`FORM_OVERHEAD`](crate::FORM_OVERHEAD); a larger one is
//!   refused with `413` ([`Error::TooLarge`](crate::Error::TooLarge) with
//!   [`Limit::RequestBody`](crate::Limit::RequestBody)), from `Content-Length` before anything is
//!   read when the header is there.
//! - Rejected requests are logged with [`tracing`](https://docs.rs/tracing) at `warn` (`error`
//!   for server-side failures), each assembled file at `info` with its size, each sweep that
//!   removed something at `info`. Nothing is printed unless the application installs a
//!   subscriber (`tracing_subscriber::fmt().init()`, say).

/// Items every adapter shares: compiled when any adapter is (one list of features, here).
macro_rules! with_any_adapter {
    ($($item:item)*) => {
        $(
            #[cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))]
            #[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))))]
            $item
        )*
    };
}

with_any_adapter! {
    mod body;
    mod scope;
    pub mod session;
    mod sweep;
    mod tus;
    pub use scope::Scope;
    pub use session::{SESSION_COOKIE, SessionKey, SessionRequest, Sessions};
}

#[cfg(any(feature = "axum", feature = "hyper"))]
mod http_common;
#[cfg(any(feature = "axum", feature = "hyper"))]
mod serve;
#[cfg(any(feature = "axum", feature = "hyper"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "hyper"))))]
pub use serve::ClientAddr;

#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
