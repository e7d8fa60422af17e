//! hyper 1 (and anything built on the `http` crate's types): async functions from an
//! [`http::Request`] over any [`http_body::Body`] to an [`http::Response`], and a ready
//! [`hyper::service::Service`].
//!
//! [`handle`] is the upload route (`GET` tests a chunk; `POST`, `PUT` and `PATCH` upload one),
//! [`finalize`] the "done" route. [`service`] serves both: requests whose path ends in `/done`
//! finalize, every other request goes to [`handle`]. Multipart forms are parsed with `multer`
//! (behind a [`MultipartGuard`](crate::MultipartGuard)); the body is limited to the largest
//! chunk plus form overhead, and every request to the [`RequestLimits`] of the uploads'
//! configuration. [`serve`] serves connections with the connection limits (a deadline on the
//! request head, a bound on its size and on the number of connections).
//!
//! ```no_run
//! use chunked_upload::{Config, Uploads, adapter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! // No scope: every client shares one namespace (fine for a single-user tool).
//! let service = adapter::hyper::service(uploads, |_: &http::request::Parts| String::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = chunked_upload::RequestLimits::default();
//! adapter::hyper::serve(listener, service, &limits, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Serving connections yourself, give hyper a timer and a `header_read_timeout`: without
//! them a connection that never finishes its request head stays open for ever.
//!
//! ```no_run
//! # use chunked_upload::{Config, Uploads, adapter};
//! use hyper_util::rt::{TokioIo, TokioTimer};
//!
//! # async fn run(service: adapter::hyper::UploadService) -> Result<(), Box<dyn std::error::Error>> {
//! let limits = chunked_upload::RequestLimits::default();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = service.clone();
//!     tokio::spawn(async move {
//!         let _ = hyper::server::conn::http1::Builder::new()
//!             .timer(TokioTimer::new())
//!             .header_read_timeout(limits.head_timeout)
//!             .max_header_size(limits.max_head_bytes)
//!             .serve_connection(TokioIo::new(stream), service)
//!             .await;
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
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyDataStream, Full};

use super::body::{BodyKind, Collector, Purpose, log, unreadable};
use super::http_common::{head, response};
use crate::{Outcome, Reply, RequestLimits, Result, Uploads};

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

/// A ready service: `POST` requests whose path ends in `/done` go to [`finalize`], all others to
/// [`handle`]. Cheap to clone (one clone per connection).
pub fn service(
    uploads: Uploads,
    scope: impl Fn(&Parts) -> String + Send + Sync + 'static,
) -> UploadService {
    UploadService {
        uploads,
        scope: Arc::new(scope),
    }
}

/// The service [`service`] returns; implements [`hyper::service::Service`] for requests over any
/// [`Body`].
#[derive(Clone)]
pub struct UploadService {
    uploads: Uploads,
    scope: Arc<ScopeFn>,
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
    match kind {
        BodyKind::None => collector.finish().await,
        BodyKind::Raw => collector.raw(data(body)).await,
        BodyKind::Form => collector.form(data(body)).await?.finish().await,
        BodyKind::Multipart => collector.multipart(data(body)).await,
    }
}

/// The body's data frames (the collector limits them).
fn data<B>(body: B) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    BodyDataStream::new(body).map(|piece| match piece {
        Ok(mut data) => Ok(data.copy_to_bytes(data.remaining())),
        Err(e) => {
            let e: Box<dyn StdError + Send + Sync> = e.into();
            Err(unreadable(e))
        }
    })
}

/// Serves `service` (this module's [`service`], or one of your own that routes to
/// [`handle`] and [`finalize`]) on every connection `listener` accepts, over HTTP/1.1, with
/// the connection limits of `limits`: [`RequestLimits::head_timeout`] (a connection that sends
/// nothing, half a request head, or stays idle between requests is closed after it),
/// [`RequestLimits::max_head_bytes`] (431) and [`RequestLimits::max_connections`]. When
/// `shutdown` resolves it stops accepting and lets the requests in progress finish.
///
/// ```no_run
/// use chunked_upload::{Config, Uploads, adapter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
/// let limits = *uploads.config().request_limits();
/// let service = adapter::hyper::service(uploads, |_: &http::request::Parts| String::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// adapter::hyper::serve(listener, service, &limits, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// None so far: a connection's failure ends that connection only; the `Result` leaves room
/// for listener errors.
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    limits: &RequestLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    super::serve::serve(listener, service, limits, shutdown).await
}
