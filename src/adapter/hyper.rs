//! hyper 1 (and anything built on the `http` crate's types): async functions from an
//! [`http::Request`] over any [`http_body::Body`] to an [`http::Response`], and a ready
//! [`hyper::service::Service`].
//!
//! [`handle`] is the upload route (`GET` tests a chunk; `POST`, `PUT` and `PATCH` upload one),
//! [`finalize`] the "done" route. [`service`] serves both: requests whose path ends in `/done`
//! finalize, every other request goes to [`handle`]. Multipart forms are parsed with `multer`;
//! the body is limited to the largest chunk plus form overhead.
//!
//! ```no_run
//! use chunked_upload::{Config, Uploads, adapter};
//! use hyper_util::rt::TokioIo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! // No scope: every client shares one namespace (fine for a single-user tool).
//! let service = adapter::hyper::service(uploads, |_: &http::request::Parts| String::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = service.clone();
//!     tokio::spawn(async move {
//!         let io = TokioIo::new(stream);
//!         let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
//!     });
//! }
//! # }
//! ```
//!
//! With a router of your own, call the functions from its handlers:
//!
//! ```no_run
//! use chunked_upload::{Uploads, adapter};
//! use http_body_util::Full;
//!
//! async fn route(
//!     uploads: &Uploads,
//!     req: http::Request<hyper::body::Incoming>,
//! ) -> http::Response<Full<bytes::Bytes>> {
//!     let scope = |parts: &http::request::Parts| {
//!         parts.headers.get("x-user-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
//!     };
//!     match req.uri().path() {
//!         "/upload/done" => adapter::hyper::finalize(uploads, scope, req).await,
//!         _ => adapter::hyper::handle(uploads, scope, req).await,
//!     }
//! }
//! ```

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyDataStream, Full, LengthLimitError, Limited};

use super::body::{BodyKind, Collector, Purpose, log, too_large, unreadable};
use super::http_common::{head, response, tus_request, tus_response};
use crate::tus::Tus;
use crate::{Error, Outcome, Reply, Result, Uploads};

// One service clone per connection, on any worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadService>();
};

/// A function of the request head that returns the caller's scope.
pub type ScopeFn = dyn Fn(&Parts) -> String + Send + Sync;

/// The upload route: a test request (`GET`) or a chunk (`POST`, `PUT`, `PATCH`; multipart, or
/// the raw chunk with its parameters in the query string). Never fails: errors are answered
/// with the core's [`Reply`].
pub async fn handle<B>(
    uploads: &Uploads,
    scope: impl FnOnce(&Parts) -> String,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    answer(uploads, Purpose::Save, scope, request).await
}

/// The finalize ("done") route: finalizes the upload the parameters (query string, urlencoded
/// or multipart form) name, with [`Uploads::finalize_request`]; idempotent.
pub async fn finalize<B>(
    uploads: &Uploads,
    scope: impl FnOnce(&Parts) -> String,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    answer(uploads, Purpose::Finalize, scope, request).await
}

/// A progress query of the caller's scope: every upload as a JSON array when `identifier` is
/// `None`, else that one upload (404 when the scope has none of that identifier). Route
/// `GET /progress` and `GET /progress/{identifier}` to it.
pub fn progress(
    uploads: &Uploads,
    scope: impl FnOnce(&Parts) -> String,
    parts: &Parts,
    identifier: Option<&str>,
) -> Response<Full<Bytes>> {
    response(Reply::progress(uploads, &scope(parts), identifier))
}

/// A tus request ([`crate::tus`]) to the endpoint mounted at `mount` (e.g. `/tus`): the
/// creation endpoint is `mount` (with or without a trailing `/`), the uploads are `mount/{id}`.
/// Never fails: errors are answered with the core's [`TusReply`](crate::tus::TusReply). The
/// body is not limited here: an append may be as long as its upload has room for.
pub async fn tus<B>(
    tus: &Tus,
    mount: &str,
    scope: impl FnOnce(&Parts) -> String,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let scope = scope(&parts);
    let full = parts.uri.path().to_owned();
    let mount = mount.trim_end_matches('/');
    let inner = full.strip_prefix(mount).unwrap_or("");
    let request = tus_request(&parts, &full, inner, scope);
    let body = BodyDataStream::new(body).map(|piece| match piece {
        Ok(mut data) => Ok(data.copy_to_bytes(data.remaining())),
        Err(e) => Err(unreadable(e.into())),
    });
    tus_response(super::tus::serve(tus, request, body).await)
}

/// A ready service: `POST` requests whose path ends in `/done` go to [`finalize`], all others to
/// [`handle`]. Cheap to clone (one clone per connection).
pub fn service(
    uploads: Uploads,
    scope: impl Fn(&Parts) -> String + Send + Sync + 'static,
) -> UploadService {
    UploadService {
        uploads,
        scope: Arc::new(scope),
        tus: None,
    }
}

/// The service [`service`] returns; implements [`hyper::service::Service`] for requests over any
/// [`Body`].
#[derive(Clone)]
pub struct UploadService {
    uploads: Uploads,
    scope: Arc<ScopeFn>,
    /// tus at this mount (no trailing `/`), when served.
    tus: Option<(String, Tus)>,
}

impl UploadService {
    /// Also serves tus ([`tus`]) at `mount` (e.g. `/tus`): requests to `mount`, `mount/` and
    /// below go there.
    #[must_use]
    pub fn with_tus(mut self, mount: &str, tus: Tus) -> UploadService {
        self.tus = Some((mount.trim_end_matches('/').to_owned(), tus));
        self
    }
}

impl fmt::Debug for UploadService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadService")
            .field("uploads", &self.uploads)
            .finish_non_exhaustive()
    }
}

impl<B> hyper::service::Service<Request<B>> for UploadService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let scope = |parts: &Parts| (this.scope)(parts);
            if let Some((mount, handler)) = &this.tus {
                let path = request.uri().path();
                let under = path
                    .strip_prefix(mount.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
                if under {
                    return Ok(tus(handler, mount, scope, request).await);
                }
            }
            let purpose =
                if request.method() == Method::POST && request.uri().path().ends_with("/done") {
                    Purpose::Finalize
                } else {
                    Purpose::Save
                };
            Ok(answer(&this.uploads, purpose, scope, request).await)
        })
    }
}

async fn answer<B>(
    uploads: &Uploads,
    purpose: Purpose,
    scope: impl FnOnce(&Parts) -> String,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let started = Instant::now();
    let result = receive(uploads, purpose, scope, request).await;
    log(&result, started);
    response(Reply::from_result(&result))
}

async fn receive<B>(
    uploads: &Uploads,
    purpose: Purpose,
    scope: impl FnOnce(&Parts) -> String,
    request: Request<B>,
) -> Result<Outcome>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let scope = scope(&parts);
    let (collector, kind) = Collector::begin(uploads, purpose, &head(&parts), scope)?;
    let limit = uploads.max_request_body();
    let data = data(body, limit);
    match kind {
        BodyKind::None => collector.finish().await,
        BodyKind::Raw => collector.raw(data).await,
        BodyKind::Form => collector.form(data).await?.finish().await,
        BodyKind::Multipart => {
            let boundary = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|ct| multer::parse_boundary(ct).ok())
                .ok_or_else(|| {
                    Error::bad("Content-Type", "multipart/form-data without a boundary")
                })?;
            let mut multipart = multer::Multipart::new(data, boundary);
            let mut collector = collector;
            while let Some(field) = multipart.next_field().await.map_err(malformed)? {
                let name = field.name().unwrap_or_default().to_owned();
                let filename = field.file_name().map(str::to_owned);
                let part = field.map(|piece| piece.map_err(malformed));
                collector.field(&name, filename.as_deref(), part).await?;
            }
            collector.finish().await
        }
    }
}

/// The body's data frames, at most `limit` bytes of them.
fn data<B>(body: B, limit: u64) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    BodyDataStream::new(limited).map(move |piece| match piece {
        Ok(mut data) => Ok(data.copy_to_bytes(data.remaining())),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large(limit.saturating_add(1), limit)),
        Err(e) => Err(unreadable(e)),
    })
}

/// A multer error; errors of the body stream itself (this crate's) come back unwrapped.
fn malformed(error: multer::Error) -> Error {
    if let multer::Error::StreamReadFailed(source) = error {
        return match source.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => unreadable(source),
        };
    }
    Error::bad("body", format!("malformed multipart form: {error}"))
}
