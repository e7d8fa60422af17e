//! hyper 1 (and anything built on the `http` crate's types): async functions from an
//! [`http::Request`] over any [`http_body::Body`] to an [`http::Response`], and a ready
//! [`hyper::service::Service`].
//!
//! [`handle`] is the upload route (`GET` tests a chunk; `POST`, `PUT` and `PATCH` upload one),
//! [`finalize`] the "done" route, [`progress`] the caller's progress. Multipart forms are parsed
//! with `multer` (behind a [`MultipartGuard`](crate::MultipartGuard)); the body is limited to the
//! largest chunk plus form overhead, and every request to the [`RequestLimits`] of the uploads'
//! configuration. [`serve`] serves connections with the connection limits (a deadline on the
//! request head, a bound on its size and on the number of connections).
//!
//! **The scope** (which keeps one user's uploads apart from another's) is decided the way hyper
//! decides anything: by your code, before the call. Each function takes the [`Scope`] your
//! (async) function of the request decided; refuse a request by answering it yourself (a `401`,
//! say) instead of calling them. For apps without accounts, [`session_scope`] gives each
//! browser a session cookie signed with a [`Sessions`] key; hyper does not tell a request
//! its peer's address: [`serve`] puts it in each request's extensions as
//! [`ClientAddr`](super::ClientAddr):
//!
//! ```no_run
//! use std::convert::Infallible;
//! use chunked_upload::adapter::{self, ClientAddr, SessionKey, Sessions};
//! use chunked_upload::{Config, Uploads};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! let sessions = Sessions::new(SessionKey::new(std::env::var("CHUNKED_UPLOAD_SIGNING_KEY")?)?);
//! // Nothing sweeps unless asked: expired uploads and crash leftovers, every 10 minutes.
//! adapter::hyper::spawn_sweep(uploads.clone(), std::time::Duration::from_secs(600));
//! let limits = *uploads.config().request_limits();
//! let route = move |req: http::Request<hyper::body::Incoming>| {
//!     let (uploads, sessions) = (uploads.clone(), sessions.clone());
//!     async move {
//!         let client = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
//!         let scope = match adapter::hyper::session_scope(&sessions, req.headers(), client) {
//!             Ok(scope) => scope,
//!             Err(e) => return Ok::<_, Infallible>(adapter::hyper::error_response(&e)),
//!         };
//!         Ok(match req.uri().path() {
//!             "/upload/done" => adapter::hyper::finalize(&uploads, scope, req).await,
//!             _ => adapter::hyper::handle(&uploads, scope, req).await,
//!         })
//!     }
//! };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let service = hyper::service::service_fn(route);
//! adapter::hyper::serve(listener, service, &limits, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Serving connections yourself, give hyper a timer and a `header_read_timeout`: without
//! them a connection that never finishes its request head stays open for ever.
//!
//! ```no_run
//! use chunked_upload::{RequestLimits, adapter};
//! use hyper_util::rt::{TokioIo, TokioTimer};
//!
//! # async fn run(service: adapter::hyper::UploadService) -> Result<(), Box<dyn std::error::Error>> {
//! let limits = RequestLimits::default();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! loop {
//!     let (stream, _peer) = listener.accept().await?;
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
//! [`service`] is a ready service over an async scope function of the request head: requests
//! whose path ends in `/done` finalize, every other request goes to [`handle`].
//!
//! What these functions do not do by themselves: sweep (call [`spawn_sweep`]); react to an
//! assembled file (set [`ConfigBuilder::on_assembled`](crate::ConfigBuilder::on_assembled), which
//! runs once per file, on the request's blocking thread, after the file is published and before the
//! answer); print their logs (rejections and assembled files are [`tracing`] events: install a
//! subscriber, e.g. `tracing_subscriber::fmt().init()`, to see them).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use http_body_util::{BodyDataStream, Full};

use super::body::{BodyKind, Collector, Purpose, log, unreadable};
use super::http_common::{head, response, set_cookie, tus_request, tus_response};
pub use super::sweep::spawn_sweep;
use super::{Scope, Sessions};
use crate::tus::Tus;
use crate::{Error, Outcome, Reply, RequestLimits, Result, Uploads};

// One service clone per connection, on any worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadService>();
};

/// The answers of this adapter.
pub type HyperResponse = Response<Full<Bytes>>;

/// The future of a [`service`]'s scope function: the request's scope, or the answer that
/// refuses it.
pub type ScopeFuture =
    Pin<Box<dyn Future<Output = std::result::Result<Scope, HyperResponse>> + Send>>;

/// A [`service`]'s scope function, boxed.
type ScopeFn = dyn Fn(&Parts) -> ScopeFuture + Send + Sync;

/// The upload route in `scope`: a test request (`GET`) or a chunk (`POST`, `PUT`, `PATCH`;
/// multipart, or the raw chunk with its parameters in the query string). Never fails: errors
/// are answered with the core's [`Reply`], and every answer carries the scope's session
/// cookie, if new.
pub async fn handle<B>(uploads: &Uploads, scope: Scope, request: Request<B>) -> HyperResponse
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    answer(uploads, Purpose::Save, scope, request).await
}

/// The finalize ("done") route in `scope`: finalizes the upload the parameters (query string,
/// urlencoded or multipart form) name, with [`Uploads::finalize_request`]; idempotent.
pub async fn finalize<B>(uploads: &Uploads, scope: Scope, request: Request<B>) -> HyperResponse
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    answer(uploads, Purpose::Finalize, scope, request).await
}

/// A progress query of `scope`: every upload as a JSON array when `identifier` is `None`,
/// else that one upload (404 when the scope has none of that identifier). Route
/// `GET /progress` and `GET /progress/{identifier}` to it.
pub fn progress(uploads: &Uploads, scope: &Scope, identifier: Option<&str>) -> HyperResponse {
    set_cookie(
        response(Reply::progress(uploads, scope.value(), identifier)),
        Some(scope),
    )
}

/// The scope of a browser's signed session ([`Sessions::scope`]): the session of its
/// `cu_session` cookie when the server issued it, else the session derived from `client` (the
/// connection's peer address) and the headers, whose cookie the answer sets.
///
/// # Errors
/// [`Error::NoSession`] for a request without a valid cookie when `client` is `None`; answer it
/// with [`error_response`].
pub fn session_scope(
    sessions: &Sessions,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Scope> {
    super::http_common::session_scope(sessions, headers, client)
}

/// The answer to a request the core (or [`session_scope`]) refused: [`Reply::error`].
pub fn error_response(error: &Error) -> HyperResponse {
    response(Reply::error(error))
}

/// A ready service: `POST` requests whose path ends in `/done` go to [`finalize`], all others
/// to [`handle`], each in the scope `decide` returns for the request head (an async function:
/// check a token, ask a session store); when it returns `Err(response)`, that response is the
/// answer and nothing is stored (the body is not read: hyper then closes the connection).
/// Cheap to clone (one clone per connection).
///
/// ```no_run
/// use bytes::Bytes;
/// use chunked_upload::adapter::{self, Scope};
/// use http_body_util::Full;
///
/// # fn app(uploads: chunked_upload::Uploads) {
/// let service = adapter::hyper::service(uploads, |parts: &http::request::Parts| {
///     let token = parts.headers.get("authorization").cloned();
///     async move {
///         match token.as_ref().and_then(|t| t.to_str().ok()) {
///             Some(user) => Ok(Scope::new(user)), // look the token up, really
///             None => Err(http::Response::builder()
///                 .status(401)
///                 .body(Full::new(Bytes::from_static(b"sign in first")))
///                 .unwrap()),
///         }
///     }
/// });
/// # let _ = service;
/// # }
/// ```
pub fn service<F, Fut>(uploads: Uploads, decide: F) -> UploadService
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Scope, HyperResponse>> + Send + 'static,
{
    UploadService {
        uploads,
        decide: Arc::new(move |parts: &Parts| Box::pin(decide(parts)) as ScopeFuture),
        tus: None,
    }
}

/// The service [`service`] returns; implements [`hyper::service::Service`] for requests over any
/// [`Body`].
#[derive(Clone)]
pub struct UploadService {
    uploads: Uploads,
    decide: Arc<ScopeFn>,
    /// tus at this mount (no trailing `/`), when served.
    tus: Option<(String, Tus)>,
}

impl UploadService {
    /// Also serves tus ([`tus`]) at `mount` (e.g. `/tus`): requests to `mount`, `mount/` and
    /// below go there, in the scope the service's function decides.
    #[must_use]
    pub fn with_tus(mut self, mount: &str, tus: Tus) -> UploadService {
        self.tus = Some((mount.trim_end_matches('/').to_owned(), tus));
        self
    }
}

/// A tus request ([`crate::tus`]) in `scope` to the endpoint mounted at `mount` (e.g. `/tus`):
/// the creation endpoint is `mount` (with or without a trailing `/`), the uploads are
/// `mount/{id}`. Never fails: errors are answered with the core's
/// [`TusReply`](crate::tus::TusReply), with the scope's session cookie, if new. The body is not
/// limited here: an append may be as long as its upload has room for.
pub async fn tus<B>(tus: &Tus, mount: &str, scope: Scope, request: Request<B>) -> HyperResponse
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let full = parts.uri.path().to_owned();
    let mount = mount.trim_end_matches('/');
    let inner = full.strip_prefix(mount).unwrap_or("");
    let request = tus_request(&parts, &full, inner, &scope);
    let reply = super::tus::serve(tus, request, data(body)).await;
    tus_response(reply, Some(&scope))
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
    type Response = HyperResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let scope = match (this.decide)(&parts).await {
                Ok(scope) => scope,
                Err(refusal) => return Ok(refusal),
            };
            let request = Request::from_parts(parts, body);
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
    scope: Scope,
    request: Request<B>,
) -> HyperResponse
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let started = Instant::now();
    let result = receive(uploads, purpose, scope.value().to_owned(), request).await;
    log(&result, started);
    set_cookie(response(Reply::from_result(&result)), Some(&scope))
}

async fn receive<B>(
    uploads: &Uploads,
    purpose: Purpose,
    scope: String,
    request: Request<B>,
) -> Result<Outcome>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
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
/// // One namespace for every client (a single-user tool).
/// let service = adapter::hyper::service(uploads, |_: &http::request::Parts| async {
///     Ok(adapter::Scope::shared())
/// });
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
    let make = |client: std::net::SocketAddr| {
        let service = service.clone();
        hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(super::ClientAddr(client));
            service.call(request)
        })
    };
    super::serve::serve(listener, make, limits, shutdown).await
}
