//! actix-web 4: the [`upload`] and [`done`] handlers, [`UploadState::configure`] to register
//! both, and [`UploadError`], the core's [`Error`] as an actix [`ResponseError`].
//!
//! Mount the routes under a [`web::scope`]: its path is the upload route (`GET` tests a chunk;
//! `POST`, `PUT` and `PATCH` upload one) and `{path}/done` finalizes. Multipart forms are parsed
//! with `actix-multipart`; the body is limited to the largest chunk plus form overhead.
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

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;

use super::body::{BodyKind, Collector, Head, Purpose, log, too_large, unreadable};
use crate::tus::{Tus, TusReply, TusRequest};
use crate::{Error, Outcome, Reply, Result, Uploads};

// The state is cloned into every worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadState>();
    send_sync::<UploadError>();
    send_sync::<TusState>();
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

/// What the tus handler needs: a [`Tus`] and the scope function, registered as app data
/// (`web::Data<TusState>`) by [`configure`](Self::configure). Cheap to clone.
///
/// ```no_run
/// use actix_web::{App, HttpRequest, HttpServer, web};
/// use chunked_upload::adapter::actix::TusState;
/// use chunked_upload::tus::Tus;
/// use chunked_upload::{Config, Uploads};
///
/// # async fn run() -> std::io::Result<()> {
/// let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())
///     .map_err(std::io::Error::other)?;
/// let tus = TusState::new(Tus::new(uploads), |req: &HttpRequest| {
///     let user = req.headers().get("x-user-id").and_then(|v| v.to_str().ok());
///     user.unwrap_or_default().to_owned()
/// });
/// HttpServer::new(move || {
///     let tus = tus.clone();
///     // tus-js-client and Uppy: endpoint "/tus/".
///     App::new().service(web::scope("/tus").configure(|cfg| tus.configure(cfg)))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await
/// # }
/// ```
#[derive(Clone)]
pub struct TusState {
    tus: Tus,
    scope: Arc<ScopeFn>,
}

impl TusState {
    /// Pairs tus with the function that derives a request's scope.
    pub fn new(tus: Tus, scope: impl Fn(&HttpRequest) -> String + Send + Sync + 'static) -> Self {
        TusState {
            tus,
            scope: Arc::new(scope),
        }
    }

    /// Registers this state as app data, the creation endpoint at the scope's own path (with
    /// and without a trailing `/`) and the uploads at `/{id}`, any method ([`tus`]). Use it
    /// inside a [`web::scope`]: `web::scope("/tus").configure(|cfg| state.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .service(web::resource("").route(web::route().to(tus)))
            .service(web::resource("/").route(web::route().to(tus)))
            .service(web::resource("/{id}").route(web::route().to(tus)));
    }
}

impl fmt::Debug for TusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TusState")
            .field("tus", &self.tus)
            .finish_non_exhaustive()
    }
}

/// The tus handler ([`crate::tus`]): every method of the creation endpoint and of the uploads.
/// Needs `web::Data<TusState>` as app data and, for an upload, an `{id}` path segment.
pub async fn tus(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<TusState>,
) -> HttpResponse {
    let id = req.match_info().get("id").unwrap_or("").to_owned();
    let path = req.path().to_owned();
    let mount = path.strip_suffix(id.as_str()).unwrap_or(&path);
    let mut request =
        TusRequest::new(req.method().as_str(), mount, Some(&id)).with_scope((state.scope)(&req));
    for (name, value) in req.headers() {
        request.header(name.as_str(), value.as_bytes());
    }
    let body = payload.map(|piece| piece.map_err(unreadable));
    tus_response(super::tus::serve(&state.tus, request, body).await)
}

/// The response for a tus reply: its status, every header, its body.
fn tus_response(reply: TusReply) -> HttpResponse {
    let (status, headers, body) = reply.into_parts();
    let mut response = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in headers {
        response.append_header((name, value));
    }
    if body.is_empty() {
        response.finish()
    } else {
        response.body(body)
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
    let limit = state.uploads.max_request_body();
    let data = |payload: web::Payload| payload.map(|piece| piece.map_err(unreadable));
    match kind {
        BodyKind::None => collector.finish().await,
        BodyKind::Raw => collector.raw(data(payload)).await,
        BodyKind::Form => collector.form(data(payload)).await?.finish().await,
        BodyKind::Multipart => {
            let mut seen = 0u64;
            let limited = payload.map(move |piece| {
                let piece = piece?;
                seen = seen.saturating_add(piece.len() as u64);
                if seen > limit {
                    return Err(PayloadError::Overflow);
                }
                Ok(piece)
            });
            let malformed = |e: MultipartError| match e {
                MultipartError::Payload(PayloadError::Overflow) => {
                    too_large(limit.saturating_add(1), limit)
                }
                MultipartError::Payload(e) => unreadable(e),
                e => Error::bad("body", format!("malformed multipart form: {e}")),
            };
            let mut multipart = Multipart::new(req.headers(), limited);
            let mut collector = collector;
            while let Some(field) = multipart.next().await {
                let field = field.map_err(malformed)?;
                let name = field.name().unwrap_or_default().to_owned();
                let filename = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .map(str::to_owned);
                let part = field.map(|piece| piece.map_err(malformed));
                collector.field(&name, filename.as_deref(), part).await?;
            }
            collector.finish().await
        }
    }
}
