//! actix-web 4: the [`upload`] and [`done`] handlers, [`UploadState::configure`] to register
//! both, [`SessionScope`], the signed-session scope, and [`UploadError`], the core's [`Error`]
//! as an actix [`ResponseError`].
//!
//! Mount the routes under a [`web::scope`]: its path is the upload route (`GET` tests a chunk;
//! `POST`, `PUT` and `PATCH` upload one) and `{path}/done` finalizes. Multipart forms are parsed
//! with `multer` behind a [`MultipartGuard`](crate::MultipartGuard), like the other adapters'
//! (actix-multipart keeps a part's headers in memory until they end, however long they are);
//! the body is limited to the largest chunk plus form overhead, and every request to the
//! [`RequestLimits`](crate::RequestLimits) of the uploads' configuration.
//!
//! The connection limits are the server's own settings: set them from the same
//! [`RequestLimits`](crate::RequestLimits) (actix-web bounds a request head to 128 KiB itself):
//!
//! ```no_run
//! # use actix_web::{App, HttpServer};
//! # async fn run() -> std::io::Result<()> {
//! let limits = chunked_upload::RequestLimits::default();
//! HttpServer::new(App::new)
//!     // The request head, from the connection's start (actix answers 408 past it).
//!     .client_request_timeout(limits.head_timeout)
//!     // An idle keep-alive connection.
//!     .keep_alive(limits.head_timeout)
//!     .max_connections(limits.max_connections)
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! **The scope** (which keeps one user's uploads apart from another's) is decided the way
//! actix-web decides such things: by an extractor, the `X` of `configure::<X>`. Any
//! [`FromRequest`] type that converts [`Into<Scope>`](Scope) and reads only the request head
//! will do: your app's authentication extractor, or [`SessionScope`], a signed session cookie
//! for apps without accounts (it needs `web::Data<Sessions>` as app data). When the extractor
//! fails, its error is the answer (a `401` of your auth extractor, say) and nothing is stored:
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use chunked_upload::adapter::actix::{SessionScope, UploadState};
//! use chunked_upload::adapter::{SessionKey, Sessions};
//! use chunked_upload::{Config, Uploads};
//!
//! # async fn run() -> std::io::Result<()> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())
//!     .map_err(std::io::Error::other)?;
//! let sessions = web::Data::new(Sessions::new(SessionKey::generate()));
//! let state = UploadState::new(uploads.clone());
//! // Nothing sweeps unless asked: expired uploads and crash leftovers, every 10 minutes.
//! chunked_upload::adapter::actix::spawn_sweep(uploads, std::time::Duration::from_secs(600));
//! HttpServer::new(move || {
//!     let (state, progress) = (state.clone(), state.clone());
//!     App::new()
//!         .app_data(sessions.clone())
//!         // GET|POST /upload, POST /upload/done
//!         .service(web::scope("/upload").configure(|cfg| state.configure::<SessionScope>(cfg)))
//!         // GET /progress, /progress/{identifier}
//!         .service(
//!             web::scope("/progress")
//!                 .configure(|cfg| progress.configure_progress::<SessionScope>(cfg)),
//!         )
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! [`SessionScope`] derives the session of a request without a valid cookie from the peer's
//! address and headers, so that a widget's parallel first chunks share one (see
//! [`session`](super::session) for how, and for what it cannot tell apart).
//!
//! In a handler of your own, return `Result<_, UploadError>` and use `?` on the core's results:
//! the error answers with the core's status and JSON.
//!
//! What the handlers do not do by themselves: sweep (call [`spawn_sweep`]); react to an assembled
//! file (set [`ConfigBuilder::on_assembled`](crate::ConfigBuilder::on_assembled), which runs once
//! per file, on the request's blocking thread, after the file is published and before the answer);
//! print their logs (rejections and assembled files are [`tracing`] events: install a subscriber,
//! e.g. `tracing_subscriber::fmt().init()`, to see them).

use std::fmt;
use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::body::{BodyKind, Collector, Head, Purpose, log, unreadable};
pub use super::sweep::spawn_sweep;
use super::{Scope, SessionRequest, Sessions};
use crate::tus::{Tus, TusReply, TusRequest};
use crate::{Error, Outcome, Reply, Result, Uploads};

// The state is cloned into every worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadState>();
    send_sync::<SessionScope>();
    send_sync::<UploadError>();
    send_sync::<TusState>();
};

/// What the handlers need: the [`Uploads`], registered as app data
/// (`web::Data<UploadState>`). Cheap to clone: one clone per worker.
#[derive(Debug, Clone)]
pub struct UploadState {
    uploads: Uploads,
}

impl UploadState {
    /// The state of the upload handlers.
    pub fn new(uploads: Uploads) -> Self {
        UploadState { uploads }
    }

    /// The uploads.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Registers this state as app data, the upload route at the scope's own path (`GET`,
    /// `POST`, `PUT`, `PATCH`) and the finalize route at `/done` (`POST`), each request in the
    /// scope the extractor `X` decides. Use it inside a [`web::scope`]:
    /// `web::scope("/upload").configure(|cfg| state.configure::<SessionScope>(cfg))`.
    pub fn configure<X>(&self, cfg: &mut web::ServiceConfig)
    where
        X: FromRequest + Into<Scope> + 'static,
    {
        cfg.app_data(web::Data::new(self.clone()))
            .service(
                web::resource("")
                    .route(web::get().to(upload::<X>))
                    .route(web::post().to(upload::<X>))
                    .route(web::put().to(upload::<X>))
                    .route(web::patch().to(upload::<X>)),
            )
            .service(web::resource("/done").route(web::post().to(done::<X>)));
    }

    /// Registers this state as app data and the progress routes of the caller's scope, as the
    /// extractor `X` decides it: the scope's own path lists every upload (JSON array),
    /// `/{identifier}` reports one (404 when the scope has none of that identifier). Use it
    /// inside a [`web::scope`]:
    /// `web::scope("/progress").configure(|cfg| state.configure_progress::<SessionScope>(cfg))`.
    pub fn configure_progress<X>(&self, cfg: &mut web::ServiceConfig)
    where
        X: FromRequest + Into<Scope> + 'static,
    {
        cfg.app_data(web::Data::new(self.clone()))
            .service(web::resource("").route(web::get().to(progress::<X>)))
            .service(web::resource("/{identifier}").route(web::get().to(progress_one::<X>)));
    }
}

/// The scope of a browser's signed session ([`Sessions::scope`]): the session of its
/// `cu_session` cookie when the server issued it, else the session derived from the peer's
/// address and headers, whose cookie the answer sets. Needs `web::Data<Sessions>` as app data.
///
/// # Errors
/// `500` when there is no `web::Data<Sessions>`; `400` ([`Error::NoSession`]) for a request
/// without a valid cookie whose peer address is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScope(pub Scope);

impl FromRequest for SessionScope {
    type Error = actix_web::Error;
    type Future = Ready<Result<SessionScope, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(sessions) = req.app_data::<web::Data<Sessions>>() else {
            tracing::error!("SessionScope needs web::Data<Sessions> as app data");
            return ready(Err(actix_web::error::ErrorInternalServerError(
                "the server's sessions are not configured",
            )));
        };
        let text = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let request = SessionRequest {
            cookies: req
                .headers()
                .get_all(header::COOKIE)
                .filter_map(|v| v.to_str().ok())
                .collect(),
            address: req.peer_addr().map(|peer| peer.ip()),
            user_agent: text(header::USER_AGENT),
            accept_language: text(header::ACCEPT_LANGUAGE),
            forwarded_for: req
                .headers()
                .get_all(header::X_FORWARDED_FOR)
                .filter_map(|v| v.to_str().ok())
                .collect(),
        };
        ready(
            sessions
                .scope(&request)
                .map(SessionScope)
                .map_err(|e| UploadError(e).into()),
        )
    }
}

impl From<SessionScope> for Scope {
    fn from(session: SessionScope) -> Scope {
        session.0
    }
}

/// What the [`tus`] handler needs: a [`Tus`], registered as app data (`web::Data<TusState>`) by
/// [`configure`](Self::configure). Cheap to clone.
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
/// use chunked_upload::adapter::actix::{SessionScope, TusState};
/// use chunked_upload::adapter::{SessionKey, Sessions};
/// use chunked_upload::tus::Tus;
/// use chunked_upload::{Config, Uploads};
///
/// # async fn run() -> std::io::Result<()> {
/// let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())
///     .map_err(std::io::Error::other)?;
/// let tus = TusState::new(Tus::new(uploads));
/// let sessions = Sessions::new(SessionKey::generate());
/// HttpServer::new(move || {
///     let tus = tus.clone();
///     // tus-js-client and Uppy: endpoint "/tus/".
///     App::new()
///         .app_data(web::Data::new(sessions.clone()))
///         .service(web::scope("/tus").configure(|cfg| tus.configure::<SessionScope>(cfg)))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TusState {
    tus: Tus,
}

impl TusState {
    /// The state of the tus handler.
    pub fn new(tus: Tus) -> Self {
        TusState { tus }
    }

    /// Registers this state as app data, the creation endpoint at the scope's own path (with
    /// and without a trailing `/`) and the uploads at `/{id}`, any method ([`tus`]), each
    /// request in the scope the extractor `X` decides. Use it inside a [`web::scope`]:
    /// `web::scope("/tus").configure(|cfg| state.configure::<SessionScope>(cfg))`.
    pub fn configure<X>(&self, cfg: &mut web::ServiceConfig)
    where
        X: FromRequest + Into<Scope> + 'static,
    {
        cfg.app_data(web::Data::new(self.clone()))
            .service(web::resource("").route(web::route().to(tus::<X>)))
            .service(web::resource("/").route(web::route().to(tus::<X>)))
            .service(web::resource("/{id}").route(web::route().to(tus::<X>)));
    }
}

/// The tus handler ([`crate::tus`]): every method of the creation endpoint and of the uploads,
/// in the scope `X` decides (when `X` fails, its error is the answer). Needs
/// `web::Data<TusState>` as app data and, for an upload, an `{id}` path segment.
pub async fn tus<X: Into<Scope>>(
    scope: X,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<TusState>,
) -> HttpResponse {
    let scope = scope.into();
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    let path = req.path().to_owned();
    let mount = path.strip_suffix(id.as_str()).unwrap_or(&path);
    let mut request =
        TusRequest::new(req.method().as_str(), mount, Some(&id)).with_scope(scope.value());
    for (name, value) in req.headers() {
        request.header(name.as_str(), value.as_bytes());
    }
    let body = payload.map(|piece| piece.map_err(unreadable));
    tus_response(super::tus::serve(&state.tus, request, body).await, &scope)
}

/// The response for a tus reply: its status, every header, its body, the scope's session
/// cookie, if new.
fn tus_response(reply: TusReply, scope: &Scope) -> HttpResponse {
    let (status, headers, body) = reply.into_parts();
    let mut response = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(cookie) = scope.set_cookie() {
        response.append_header((header::SET_COOKIE, cookie));
    }
    for (name, value) in headers {
        response.append_header((name, value));
    }
    if body.is_empty() {
        response.finish()
    } else {
        response.body(body)
    }
}

/// The caller's uploads as JSON ([`Reply::progress`]), in the scope `X` decides. Needs
/// `web::Data<UploadState>`.
pub async fn progress<X: Into<Scope>>(scope: X, state: web::Data<UploadState>) -> HttpResponse {
    let scope = scope.into();
    let reply = Reply::progress(&state.uploads, scope.value(), None);
    http_response(reply, Some(&scope))
}

/// One upload of the caller's scope as JSON, 404 when the scope has none of that identifier.
/// Needs `web::Data<UploadState>` and an `{identifier}` path segment.
pub async fn progress_one<X: Into<Scope>>(
    scope: X,
    state: web::Data<UploadState>,
    identifier: web::Path<String>,
) -> HttpResponse {
    let scope = scope.into();
    let reply = Reply::progress(&state.uploads, scope.value(), Some(&identifier));
    http_response(reply, Some(&scope))
}

/// The upload route's handler: a test request or a chunk upload, in the scope `X` decides
/// (when `X` fails, its error is the answer). Needs `web::Data<UploadState>` as app data.
/// Answers with the core's [`Reply`] (204 for an absent chunk, 4xx for a refused request, 5xx
/// for a server-side failure), with the scope's session cookie, if new.
pub async fn upload<X: Into<Scope>>(
    scope: X,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<UploadState>,
) -> HttpResponse {
    handled(&state, Purpose::Save, scope.into(), &req, payload).await
}

/// The finalize ("done") route's handler: finalizes the upload the parameters name
/// ([`Uploads::finalize_request`]) in the scope `X` decides; idempotent. Needs
/// `web::Data<UploadState>` as app data. Answers as [`upload`].
pub async fn done<X: Into<Scope>>(
    scope: X,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<UploadState>,
) -> HttpResponse {
    handled(&state, Purpose::Finalize, scope.into(), &req, payload).await
}

/// The core's [`Error`] as an actix-web error: its response is [`Reply::error`].
#[derive(Debug)]
pub struct UploadError(pub Error);

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<Error> for UploadError {
    fn from(error: Error) -> Self {
        UploadError(error)
    }
}

impl ResponseError for UploadError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        http_response(Reply::error(&self.0), None)
    }
}

/// The response for a reply: status, JSON body with `Content-Type` if any, `Retry-After`, and
/// the scope's `Set-Cookie`, if it has one.
fn http_response(reply: Reply, scope: Option<&Scope>) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(cookie) = scope.and_then(Scope::set_cookie) {
        response.append_header((header::SET_COOKIE, cookie));
    }
    if let Some(content_type) = reply.content_type() {
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
    }
    if let Some(seconds) = reply.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds));
    }
    if reply.body.is_empty() {
        response.finish()
    } else {
        response.body(reply.body)
    }
}

async fn handled(
    state: &UploadState,
    purpose: Purpose,
    scope: Scope,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let started = Instant::now();
    let result = receive(state, purpose, scope.value().to_owned(), req, payload).await;
    log(&result, started);
    http_response(Reply::from_result(&result), Some(&scope))
}

async fn receive(
    state: &UploadState,
    purpose: Purpose,
    scope: String,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Outcome> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let head = Head {
        method: req.method().as_str(),
        query: req.query_string(),
        content_type: header(header::CONTENT_TYPE),
        content_length: header(header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
    };
    let (collector, kind) = Collector::begin(&state.uploads, purpose, &head, scope)?;
    let data = |payload: web::Payload| payload.map(|piece| piece.map_err(unreadable));
    match kind {
        BodyKind::None => collector.finish().await,
        BodyKind::Raw => collector.raw(data(payload)).await,
        BodyKind::Form => collector.form(data(payload)).await?.finish().await,
        BodyKind::Multipart => collector.multipart(sendable(payload)).await,
    }
}

/// The payload as a stream that may cross threads, which the multipart parser needs (actix
/// payloads live on their worker thread): a task on this worker reads the payload only as
/// fast as the stream is read, one piece ahead at most, and stops when the stream is dropped.
fn sendable(payload: web::Payload) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(1);
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        loop {
            let piece = tokio::select! {
                piece = payload.next() => piece,
                () = tx.closed() => return,
            };
            let Some(piece) = piece else { return };
            if tx.send(piece.map_err(unreadable)).await.is_err() {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((piece, rx))
    })
}
