//! actix-web 4: the [`upload`] and [`done`] handlers, [`UploadState::configure`] to register
//! both, and [`UploadError`], the core's [`Error`] as an actix [`ResponseError`].
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
//! ```no_run
//! use actix_web::{App, HttpRequest, HttpServer, web};
//! use chunked_upload::adapter::actix::UploadState;
//! use chunked_upload::{Config, Uploads};
//!
//! # async fn run() -> std::io::Result<()> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())
//!     .map_err(std::io::Error::other)?;
//! // The caller's scope: a user id or a session cookie; here a header.
//! let state = UploadState::new(uploads, |req: &HttpRequest| {
//!     let user = req.headers().get("x-user-id").and_then(|v| v.to_str().ok());
//!     user.unwrap_or_default().to_owned()
//! });
//! HttpServer::new(move || {
//!     let state = state.clone();
//!     // GET|POST /upload, POST /upload/done
//!     App::new().service(web::scope("/upload").configure(|cfg| state.configure(cfg)))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! In a handler of your own, return `Result<_, UploadError>` and use `?` on the core's results:
//! the error answers with the core's status and JSON.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::body::{BodyKind, Collector, Head, Purpose, log, unreadable};
use crate::{Error, Outcome, Reply, Result, Uploads};

// The state is cloned into every worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadState>();
    send_sync::<UploadError>();
};

/// A function of the request that returns the caller's scope.
pub type ScopeFn = dyn Fn(&HttpRequest) -> String + Send + Sync;

/// What the handlers need: the [`Uploads`] and the scope function, registered as app data
/// (`web::Data<UploadState>`). Cheap to clone: one clone per worker.
#[derive(Clone)]
pub struct UploadState {
    uploads: Uploads,
    scope: Arc<ScopeFn>,
}

impl UploadState {
    /// Pairs the uploads with the function that derives a request's scope.
    pub fn new(
        uploads: Uploads,
        scope: impl Fn(&HttpRequest) -> String + Send + Sync + 'static,
    ) -> Self {
        UploadState {
            uploads,
            scope: Arc::new(scope),
        }
    }

    /// The uploads.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// Registers this state as app data, the upload route at the scope's own path (`GET`,
    /// `POST`, `PUT`, `PATCH`) and the finalize route at `/done` (`POST`). Use it inside a
    /// [`web::scope`]: `web::scope("/upload").configure(|cfg| state.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .service(
                web::resource("")
                    .route(web::get().to(upload))
                    .route(web::post().to(upload))
                    .route(web::put().to(upload))
                    .route(web::patch().to(upload)),
            )
            .service(web::resource("/done").route(web::post().to(done)));
    }

    /// Registers this state as app data and the progress routes of the caller's scope: the
    /// scope's own path lists every upload (JSON array), `/{identifier}` reports one (404 when
    /// the scope has none of that identifier). Use it inside a [`web::scope`]:
    /// `web::scope("/progress").configure(|cfg| state.configure_progress(cfg))`.
    pub fn configure_progress(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .service(web::resource("").route(web::get().to(progress)))
            .service(web::resource("/{identifier}").route(web::get().to(progress_one)));
    }
}

/// The caller's uploads as JSON ([`Reply::progress`]). Needs `web::Data<UploadState>`.
pub async fn progress(req: HttpRequest, state: web::Data<UploadState>) -> HttpResponse {
    let scope = (state.scope)(&req);
    http_response(Reply::progress(&state.uploads, &scope, None))
}

/// One upload of the caller's scope as JSON, 404 when the scope has none of that identifier.
/// Needs `web::Data<UploadState>` and an `{identifier}` path segment.
pub async fn progress_one(
    req: HttpRequest,
    state: web::Data<UploadState>,
    identifier: web::Path<String>,
) -> HttpResponse {
    let scope = (state.scope)(&req);
    http_response(Reply::progress(&state.uploads, &scope, Some(&identifier)))
}

impl fmt::Debug for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadState")
            .field("uploads", &self.uploads)
            .finish_non_exhaustive()
    }
}

/// The upload route's handler: a test request or a chunk upload. Needs
/// `web::Data<UploadState>` as app data.
///
/// # Errors
/// The core's [`Error`] as an [`UploadError`] (its response: 204 for an absent chunk, 4xx for a
/// refused request, 5xx for a server-side failure).
pub async fn upload(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<UploadState>,
) -> Result<HttpResponse, UploadError> {
    handled(&state, Purpose::Save, &req, payload).await
}

/// The finalize ("done") route's handler: finalizes the upload the parameters name
/// ([`Uploads::finalize_request`]); idempotent. Needs `web::Data<UploadState>` as app data.
///
/// # Errors
/// As [`upload`].
pub async fn done(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<UploadState>,
) -> Result<HttpResponse, UploadError> {
    handled(&state, Purpose::Finalize, &req, payload).await
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
        http_response(Reply::error(&self.0))
    }
}

/// The response for a reply: status, JSON body with `Content-Type` if any, `Retry-After`.
fn http_response(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
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
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, UploadError> {
    let started = Instant::now();
    let result = receive(state, purpose, req, payload).await;
    log(&result, started);
    Ok(http_response(Reply::outcome(&result?)))
}

async fn receive(
    state: &UploadState,
    purpose: Purpose,
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
    let scope = (state.scope)(req);
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
