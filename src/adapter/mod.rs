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
//! | `axum` | `axum` | `router(uploads, scope)`, the `UploadChunk` / `FinalizeUpload` extractors |
//! | `actix-web` | `actix` | `UploadState::configure`, the `upload` / `done` handlers, `UploadError` |
//! | `hyper` | `hyper` | `handle`, `finalize`, and a ready `service` over any `http_body::Body` |
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
//! - Bodies are streamed with bounded memory: once the parameters before the file part are
//!   complete, the request is validated ([`Uploads::chunk_info`](crate::Uploads::chunk_info)), and
//!   a bad chunk is refused before its body is read; otherwise the part's bytes flow through a
//!   small bounded channel into [`Uploads::save`](crate::Uploads::save), which runs on a blocking
//!   thread. A file part that may come before its parameters (it is the form's first part, or
//!   the request lacks a parameter) is streamed into
//!   [`Uploads::incoming_file`](crate::Uploads::incoming_file) and saved once the form is read.
//! - A request body may be the largest chunk plus [`FORM_OVERHEAD`](crate::FORM_OVERHEAD); a larger one is
//!   refused with `413` ([`Error::TooLarge`](crate::Error::TooLarge) with
//!   [`Limit::RequestBody`](crate::Limit::RequestBody)), from `Content-Length` before anything is
//!   read when the header is there.
//! - Rejected requests are logged with [`tracing`](https://docs.rs/tracing) at `warn` (`error`
//!   for server-side failures), each assembled file at `info` with its size.

#[cfg(any(feature = "axum", feature = "actix-web", feature = "hyper"))]
mod body;
#[cfg(any(feature = "axum", feature = "hyper"))]
mod http_common;
#[cfg(any(feature = "axum", feature = "hyper"))]
mod serve;

#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
