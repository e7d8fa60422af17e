//! axum 0.8: a ready [`router`], and the extractors it is made of for routes of your own.
//!
//! [`router`] serves the upload route at `/` (`GET` tests a chunk; `POST`, `PUT` and `PATCH`
//! upload one) and the finalize route at `/done` (`POST`); mount it where you like with
//! [`Router::nest`]. The scope, which keeps one user's uploads apart from another's, is a
//! function of the request head (a session cookie, an authenticated user id).
//!
//! ```no_run
//! use axum::Router;
//! use axum::http::request::Parts;
//! use chunked_upload::{Config, Uploads, adapter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! let scope = |parts: &Parts| {
//!     let user = parts.headers.get("x-user-id").and_then(|v| v.to_str().ok());
//!     user.unwrap_or_default().to_owned()
//! };
//! // POST /upload, GET /upload (test), POST /upload/done (finalize).
//! let app = Router::new().nest("/upload", adapter::axum::router(uploads, scope));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = chunked_upload::RequestLimits::default();
//! adapter::axum::serve(listener, app, &limits, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! In a handler of your own, [`UploadChunk`] handles the request and yields the
//! [`Outcome`]; its rejection, [`UploadRejection`], answers with the core's status (204 for a
//! test request whose chunk is absent). Both need an [`UploadState`] reachable from the router's
//! state through [`FromRef`]:
//!
//! ```no_run
//! use axum::Router;
//! use axum::routing::get;
//! use chunked_upload::adapter::axum::{UploadChunk, UploadState};
//! use chunked_upload::{Config, Outcome, Uploads};
//!
//! async fn upload(UploadChunk(outcome): UploadChunk) -> UploadChunk {
//!     if let Outcome::Assembled { file, fresh: true } = &outcome {
//!         println!("{} is complete ({} bytes)", file.path.display(), file.size);
//!     }
//!     UploadChunk(outcome)
//! }
//!
//! # fn app() -> chunked_upload::Result<Router> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! let state = UploadState::new(uploads, |_: &axum::http::request::Parts| String::new());
//! let app: Router = Router::new()
//!     .route("/upload", get(upload).post(upload))
//!     .with_state(state);
//! # Ok(app)
//! # }
//! ```
//!
//! Bodies are streamed (see [the adapter overview](super)); the extractors apply their own
//! body limit (the largest chunk plus form overhead), so no `DefaultBodyLimit` is needed, and
//! the [`RequestLimits`] of the uploads' configuration (fields, part headers, deadlines).
//! Serve the router with [`serve`] rather than `axum::serve`, which has no deadline on a
//! request head: with it, a client that opens connections and sends nothing holds them for
//! ever.
//!
//! [`progress_router`] reports the caller's uploads ([`crate::ProgressMonitor`]): `GET /` all
//! of them as JSON, `GET /{identifier}` one (404 when the caller's scope has no such upload),
//! and `GET /events` a stream of server-sent events, one `progress` event per upload whenever
//! it changes, at most four times a second:
//!
//! ```no_run
//! # use axum::Router;
//! # use chunked_upload::{Config, Uploads, adapter};
//! # fn app(uploads: Uploads) -> Router {
//! let scope = |_: &axum::http::request::Parts| String::from("user-1");
//! Router::new()
//!     .nest("/upload", adapter::axum::router(uploads.clone(), scope))
//!     .nest("/progress", adapter::axum::progress_router(uploads, scope))
//! # }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Path, Request, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::body::{BodyKind, Collector, Purpose, log, unreadable};
use super::http_common::{head, response};
use crate::{Error, Outcome, ProgressCursor, Reply, RequestLimits, Result, Uploads};

// Handlers run on any worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadState>();
    send_sync::<UploadChunk>();
    send_sync::<UploadRejection>();
};

/// A function of the request head that returns the caller's scope.
pub type ScopeFn = dyn Fn(&Parts) -> String + Send + Sync;

/// What the extractors need: the [`Uploads`] and the scope function. Cheap to clone; use it as
/// router state, or make it reachable from yours with [`FromRef`].
#[derive(Clone)]
pub struct UploadState {
    uploads: Uploads,
    scope: Arc<ScopeFn>,
}

impl UploadState {
    /// Pairs the uploads with the function that derives a request's scope.
    pub fn new(uploads: Uploads, scope: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        UploadState {
            uploads,
            scope: Arc::new(scope),
        }
    }

    /// The uploads.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }
}

impl fmt::Debug for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadState")
            .field("uploads", &self.uploads)
            .finish_non_exhaustive()
    }
}

/// A router with the upload route at `/` (`GET`, `POST`, `PUT`, `PATCH`) and the finalize route
/// at `/done` (`POST`). Nest it under the path of your choice.
pub fn router<S>(
    uploads: Uploads,
    scope: impl Fn(&Parts) -> String + Send + Sync + 'static,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    async fn upload(chunk: UploadChunk) -> UploadChunk {
        chunk
    }
    async fn done(done: FinalizeUpload) -> FinalizeUpload {
        done
    }
    Router::new()
        .route("/", get(upload).post(upload).put(upload).patch(upload))
        .route("/done", post(done))
        .with_state(UploadState::new(uploads, scope))
}

/// Progress routes for the caller's scope: `GET /` (every upload, a JSON array), `GET /events`
/// (server-sent events: a `progress` event with one upload's JSON whenever it changes, polled
/// four times a second, and a keep-alive comment every 15 s), `GET /{identifier}` (one upload;
/// 404 when the scope has none of that identifier). Nest it under the path of your choice.
pub fn progress_router<S>(
    uploads: Uploads,
    scope: impl Fn(&Parts) -> String + Send + Sync + 'static,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    async fn list(State(state): State<UploadState>, parts: Parts) -> Response {
        let scope = (state.scope)(&parts);
        response(Reply::progress(&state.uploads, &scope, None))
    }
    async fn one(
        State(state): State<UploadState>,
        Path(id): Path<String>,
        parts: Parts,
    ) -> Response {
        let scope = (state.scope)(&parts);
        response(Reply::progress(&state.uploads, &scope, Some(&id)))
    }
    async fn events(State(state): State<UploadState>, parts: Parts) -> Response {
        let scope = (state.scope)(&parts);
        let mut response = Sse::new(progress_events(state.uploads.clone(), scope)).into_response();
        // Proxies must not buffer the stream.
        response.headers_mut().insert(
            "x-accel-buffering",
            axum::http::HeaderValue::from_static("no"),
        );
        response
    }
    Router::new()
        .route("/", get(list))
        .route("/events", get(events))
        .route("/{identifier}", get(one))
        .with_state(UploadState::new(uploads, scope))
}

/// How often the event stream looks for changes.
const PROGRESS_POLL: Duration = Duration::from_millis(250);
/// Polls without an event before a keep-alive comment is sent.
const KEEP_ALIVE_POLLS: u32 = 60;

/// The server-sent events of `scope`'s uploads: every upload once at the start, then each one
/// again whenever it changes.
fn progress_events(
    uploads: Uploads,
    scope: String,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> + Send {
    let mut ticker = tokio::time::interval(PROGRESS_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let state = (uploads, scope, ProgressCursor::new(), ticker, 0u32);
    stream::unfold(
        state,
        |(uploads, scope, mut cursor, mut ticker, idle)| async move {
            ticker.tick().await;
            let changes = uploads.progress().changes(&scope, &mut cursor);
            let (events, idle): (Vec<Event>, u32) = if !changes.is_empty() {
                let events = changes
                    .iter()
                    .map(|p| {
                        Event::default()
                            .event("progress")
                            .data(Reply::progress_event(p))
                    })
                    .collect();
                (events, 0)
            } else if idle + 1 >= KEEP_ALIVE_POLLS {
                (vec![Event::default().comment("keep-alive")], 0)
            } else {
                (Vec::new(), idle + 1)
            };
            let batch = stream::iter(events.into_iter().map(Ok));
            Some((batch, (uploads, scope, cursor, ticker, idle)))
        },
    )
    .flatten()
}

/// Extractor for the upload route: handles the request (test or chunk upload, assembling the
/// file when it completes) and yields what happened. Answers `200` with the core's JSON when
/// returned as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChunk(pub Outcome);

/// Extractor for the finalize ("done") route: finalizes the upload the parameters name
/// ([`Uploads::finalize_request`]); idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizeUpload(pub Outcome);

/// The rejection of [`UploadChunk`] and [`FinalizeUpload`]: the core's [`Error`], answered with
/// [`Reply::error`] (204 with an empty body for a test request whose chunk is absent).
#[derive(Debug)]
pub struct UploadRejection(pub Error);

impl<S> FromRequest<S> for UploadChunk
where
    S: Send + Sync,
    UploadState: FromRef<S>,
{
    type Rejection = UploadRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        handled(&UploadState::from_ref(state), Purpose::Save, req)
            .await
            .map(UploadChunk)
            .map_err(UploadRejection)
    }
}

impl<S> FromRequest<S> for FinalizeUpload
where
    S: Send + Sync,
    UploadState: FromRef<S>,
{
    type Rejection = UploadRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        handled(&UploadState::from_ref(state), Purpose::Finalize, req)
            .await
            .map(FinalizeUpload)
            .map_err(UploadRejection)
    }
}

impl IntoResponse for UploadChunk {
    fn into_response(self) -> Response {
        response(Reply::outcome(&self.0))
    }
}

impl IntoResponse for FinalizeUpload {
    fn into_response(self) -> Response {
        response(Reply::outcome(&self.0))
    }
}

impl IntoResponse for UploadRejection {
    fn into_response(self) -> Response {
        response(Reply::error(&self.0))
    }
}

impl From<Error> for UploadRejection {
    fn from(error: Error) -> Self {
        UploadRejection(error)
    }
}

impl fmt::Display for UploadRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for UploadRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

async fn handled(state: &UploadState, purpose: Purpose, req: Request) -> Result<Outcome> {
    let started = Instant::now();
    let result = receive(state, purpose, req).await;
    log(&result, started);
    result
}

async fn receive(state: &UploadState, purpose: Purpose, req: Request) -> Result<Outcome> {
    let (parts, body) = req.into_parts();
    let scope = (state.scope)(&parts);
    let (collector, kind) = Collector::begin(&state.uploads, purpose, &head(&parts), scope)?;
    match kind {
        BodyKind::None => collector.finish().await,
        BodyKind::Raw => collector.raw(data(body)).await,
        BodyKind::Form => collector.form(data(body)).await?.finish().await,
        BodyKind::Multipart => collector.multipart(data(body)).await,
    }
}

/// Serves `router` like [`axum::serve`](https://docs.rs/axum/0.8/axum/fn.serve.html), with the connection limits of `limits` that
/// `axum::serve` lacks: [`RequestLimits::head_timeout`] (a connection that sends nothing, half
/// a request head, or stays idle between requests is closed after it),
/// [`RequestLimits::max_head_bytes`] (431) and [`RequestLimits::max_connections`]. It serves
/// HTTP/1.1 until `shutdown` resolves, then lets the requests in progress finish.
///
/// ```no_run
/// use chunked_upload::{Config, Uploads, adapter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
/// let limits = *uploads.config().request_limits();
/// let app = axum::Router::new()
///     .nest("/upload", adapter::axum::router(uploads, |_: &axum::http::request::Parts| String::new()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// adapter::axum::serve(listener, app, &limits, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// None so far: a connection's failure ends that connection only; the `Result` leaves room
/// for listener errors.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &RequestLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    super::serve::serve(listener, service, limits, shutdown).await
}

fn data(body: Body) -> impl Stream<Item = Result<Bytes>> + Send {
    body.into_data_stream()
        .map(|piece| piece.map_err(unreadable))
}
