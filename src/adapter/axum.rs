//! axum 0.8: a ready [`router`] and [`progress_router`], the extractors they are made of for
//! routes of your own, and [`SessionScope`], the signed-session scope.
//!
//! [`router`] serves the upload route at `/` (`GET` tests a chunk; `POST`, `PUT` and `PATCH`
//! upload one) and the finalize route at `/done` (`POST`); mount it where you like with
//! [`Router::nest`].
//!
//! **The scope** (which keeps one user's uploads apart from another's) is decided the way axum
//! decides such things: by an extractor, the `X` of `router::<X, _>`. Any
//! [`FromRequestParts`] type that converts [`Into<Scope>`](Scope) will do: your app's
//! authentication extractor (async, with your app's state, your session store), or
//! [`SessionScope`], a signed session cookie for apps without accounts. When the extractor
//! rejects a request, its rejection is the answer (a `401` of your auth extractor, say) and
//! nothing is stored:
//!
//! ```no_run
//! use axum::extract::FromRequestParts;
//! use axum::http::{StatusCode, request::Parts};
//! use axum::Router;
//! use chunked_upload::adapter::{self, Scope};
//! use chunked_upload::{Config, Uploads};
//!
//! /// A signed-in user; requests without a valid token are refused with 401.
//! struct User(String);
//!
//! impl<S: Send + Sync> FromRequestParts<S> for User {
//!     type Rejection = (StatusCode, &'static str);
//!
//!     async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
//!         let token = parts.headers.get("authorization").and_then(|v| v.to_str().ok());
//!         match token.and_then(|t| t.strip_prefix("Bearer ")) {
//!             Some(user) if !user.is_empty() => Ok(User(user.to_owned())), // check it, really
//!             _ => Err((StatusCode::UNAUTHORIZED, "sign in first")),
//!         }
//!     }
//! }
//!
//! impl From<User> for Scope {
//!     fn from(user: User) -> Scope {
//!         Scope::new(user.0)
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! // POST /upload, GET /upload (test), POST /upload/done (finalize).
//! let app: Router = Router::new()
//!     .nest("/upload", adapter::axum::router::<User, _>(uploads.clone()))
//!     // GET /progress, /progress/{identifier}, /progress/events (server-sent events)
//!     .nest("/progress", adapter::axum::progress_router::<User, _>(uploads.clone()));
//! // Nothing sweeps unless asked: expired uploads and crash leftovers, every 10 minutes.
//! adapter::axum::spawn_sweep(uploads, std::time::Duration::from_secs(600));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = chunked_upload::RequestLimits::default();
//! adapter::axum::serve(listener, app, &limits, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Without accounts, [`SessionScope`] gives each browser a session cookie signed with a
//! [`Sessions`] key (found through [`FromRef`] on the router's state). A widget on a page the
//! server did not serve sends its first chunks in parallel, before any cookie is set: they all
//! get the same session, derived from the client's address and headers (see
//! [`session`](super::session) for how, and for what it cannot tell apart). The client's
//! address comes from [`ConnectInfo`]: serve the app with
//! `into_make_service_with_connect_info::<SocketAddr>()`, or cookieless requests are refused
//! with `400` ([`Error::NoSession`]).
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::Router;
//! use chunked_upload::adapter::{self, axum::SessionScope, SessionKey, Sessions};
//! use chunked_upload::{Config, Uploads};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! let key = std::env::var("CHUNKED_UPLOAD_SIGNING_KEY")?; // at least 32 bytes
//! let app = Router::new()
//!     .nest("/upload", adapter::axum::router::<SessionScope, _>(uploads.clone()))
//!     .nest("/progress", adapter::axum::progress_router::<SessionScope, _>(uploads))
//!     .with_state(Sessions::new(SessionKey::new(key)?));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! In a handler of your own, [`UploadChunk`] handles the request and yields the
//! [`Outcome`]; its rejection, [`UploadRejection`], answers with the scope extractor's
//! rejection or the core's status (204 for a test request whose chunk is absent). It needs an
//! [`UploadState`] reachable from the router's state through [`FromRef`]:
//!
//! ```no_run
//! use axum::Router;
//! use axum::extract::FromRef;
//! use axum::routing::get;
//! use chunked_upload::adapter::axum::{SessionScope, UploadChunk, UploadState};
//! use chunked_upload::adapter::{SessionKey, Sessions};
//! use chunked_upload::{Config, Outcome, Uploads};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     uploads: UploadState,
//!     sessions: Sessions,
//! }
//!
//! impl FromRef<AppState> for UploadState {
//!     fn from_ref(state: &AppState) -> UploadState {
//!         state.uploads.clone()
//!     }
//! }
//!
//! impl FromRef<AppState> for Sessions {
//!     fn from_ref(state: &AppState) -> Sessions {
//!         state.sessions.clone()
//!     }
//! }
//!
//! async fn upload(chunk: UploadChunk<SessionScope>) -> UploadChunk<SessionScope> {
//!     if let Outcome::Assembled { file, fresh: true } = &chunk.outcome {
//!         println!("{} is complete ({} bytes)", file.location, file.size);
//!     }
//!     chunk
//! }
//!
//! # fn app() -> chunked_upload::Result<Router> {
//! let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
//! let state = AppState {
//!     uploads: UploadState::new(uploads),
//!     sessions: Sessions::new(SessionKey::generate()),
//! };
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
//! it changes, at most four times a second.
//!
//! What the router does not do by itself: sweep (call [`spawn_sweep`]); react to an assembled file
//! (set [`ConfigBuilder::on_assembled`](crate::ConfigBuilder::on_assembled), which runs once per
//! file, on the request's blocking thread, after the file is published and before the answer);
//! print its logs (rejections and assembled files are [`tracing`] events: install a subscriber,
//! e.g. `tracing_subscriber::fmt().init()`, to see them).

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::body::{BodyKind, Collector, Purpose, log, unreadable};
use super::http_common::{head, response, session_scope, set_cookie, tus_request, tus_response};
pub use super::sweep::spawn_sweep;
use super::{Scope, Sessions};
use crate::tus::Tus;
use crate::{Error, Outcome, ProgressCursor, Reply, RequestLimits, Result, Uploads};

// Handlers run on any worker thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UploadState>();
    send_sync::<SessionScope>();
    send_sync::<UploadChunk<SessionScope>>();
    send_sync::<UploadRejection>();
};

/// What [`UploadChunk`] and [`FinalizeUpload`] need: the [`Uploads`]. Cheap to clone; use it
/// as router state, or make it reachable from yours with [`FromRef`].
#[derive(Debug, Clone)]
pub struct UploadState {
    uploads: Uploads,
}

impl UploadState {
    /// The state of the upload extractors.
    pub fn new(uploads: Uploads) -> Self {
        UploadState { uploads }
    }

    /// The uploads.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }
}

/// The scope of a browser's signed session ([`Sessions::scope`]): the session of its
/// `cu_session` cookie when the server issued it, else the session derived from the client's
/// address ([`ConnectInfo`]) and headers, whose cookie the answer sets. Needs [`Sessions`]
/// reachable from the router's state through [`FromRef`].
///
/// # Errors
/// Rejects with `400` ([`Error::NoSession`]) a request without a valid cookie when the app is
/// not served with the client's address (`into_make_service_with_connect_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionScope(pub Scope);

impl<S> FromRequestParts<S> for SessionScope
where
    S: Send + Sync,
    Sessions: FromRef<S>,
{
    type Rejection = UploadRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        session_scope(&Sessions::from_ref(state), &parts.headers, address)
            .map(SessionScope)
            .map_err(UploadRejection::from)
    }
}

impl From<SessionScope> for Scope {
    fn from(session: SessionScope) -> Scope {
        session.0
    }
}

/// A router with the upload route at `/` (`GET`, `POST`, `PUT`, `PATCH`) and the finalize route
/// at `/done` (`POST`), each request in the scope the extractor `X` decides (its rejection is
/// the answer). Nest it under the path of your choice; `S` is your router's state, which `X`
/// may use.
pub fn router<X, S>(uploads: Uploads) -> Router<S>
where
    X: FromRequestParts<S> + Into<Scope> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let for_done = uploads.clone();
    let upload = move |scope: X, req: Request| {
        let uploads = uploads.clone();
        async move { answer(&uploads, Purpose::Save, scope.into(), req).await }
    };
    let done = move |scope: X, req: Request| {
        let uploads = for_done.clone();
        async move { answer(&uploads, Purpose::Finalize, scope.into(), req).await }
    };
    Router::new()
        .route(
            "/",
            get(upload.clone())
                .post(upload.clone())
                .put(upload.clone())
                .patch(upload),
        )
        .route("/done", post(done))
}

/// Progress routes for the caller's scope, as the extractor `X` decides it: `GET /` (every
/// upload, a JSON array), `GET /events` (server-sent events: a `progress` event with one
/// upload's JSON whenever it changes, polled four times a second, and a keep-alive comment
/// every 15 s), `GET /{identifier}` (one upload; 404 when the scope has none of that
/// identifier). Nest it under the path of your choice.
pub fn progress_router<X, S>(uploads: Uploads) -> Router<S>
where
    X: FromRequestParts<S> + Into<Scope> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let (for_one, for_events) = (uploads.clone(), uploads.clone());
    let list = move |scope: X| {
        let scope: Scope = scope.into();
        let reply = Reply::progress(&uploads, scope.value(), None);
        async move { set_cookie::<Body>(response(reply), Some(&scope)) }
    };
    let one = move |scope: X, Path(id): Path<String>| {
        let scope: Scope = scope.into();
        let reply = Reply::progress(&for_one, scope.value(), Some(&id));
        async move { set_cookie::<Body>(response(reply), Some(&scope)) }
    };
    let events = move |scope: X| {
        let scope: Scope = scope.into();
        let events = progress_events(for_events.clone(), scope.value().to_owned());
        let mut response = Sse::new(events).into_response();
        // Proxies must not buffer the stream.
        response.headers_mut().insert(
            "x-accel-buffering",
            axum::http::HeaderValue::from_static("no"),
        );
        async move { set_cookie(response, Some(&scope)) }
    };
    Router::new()
        .route("/", get(list))
        .route("/events", get(events))
        .route("/{identifier}", get(one))
}

/// A router serving tus 1.0 and the IETF resumable-upload draft ([`crate::tus`]) at `mount`
/// (e.g. `/tus`), each request in the scope the extractor `X` decides (its rejection is the
/// answer): the creation endpoint at `mount` and `mount/`, the uploads at `mount/{id}`, any
/// method. [`Router::merge`] it into your router (axum's `nest` would not route the endpoint
/// with its trailing slash, which tus clients use). Upload `Location`s are written under the
/// request's full path, so the router may itself be nested.
///
/// ```no_run
/// # use axum::Router;
/// # use chunked_upload::{Uploads, adapter, tus::Tus};
/// use chunked_upload::adapter::axum::SessionScope;
/// # fn app(uploads: Uploads) -> Router<chunked_upload::adapter::Sessions> {
/// Router::new()
///     .nest("/upload", adapter::axum::router::<SessionScope, _>(uploads.clone()))
///     // tus-js-client and Uppy: endpoint "/tus/".
///     .merge(adapter::axum::tus_router::<SessionScope, _>(Tus::new(uploads), "/tus"))
/// # }
/// ```
///
/// # Panics
/// When `mount` is not a path (it must start with `/`, and not be `/` alone).
pub fn tus_router<X, S>(tus: Tus, mount: &str) -> Router<S>
where
    X: FromRequestParts<S> + Into<Scope> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    let mount = mount.trim_end_matches('/').to_owned();
    assert!(
        mount.starts_with('/'),
        "the tus mount must be a path like /tus, not {mount:?}"
    );
    let within = mount.clone();
    let handle = move |scope: X, req: Request| {
        let (tus, mount) = (tus.clone(), within.clone());
        async move {
            let scope: Scope = scope.into();
            let (parts, body) = req.into_parts();
            // The path as the client sent it (the router may be nested), and the part of it
            // after the mount.
            let full = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| parts.uri.path().to_owned(), |uri| uri.path().to_owned());
            let inner = parts
                .uri
                .path()
                .strip_prefix(mount.as_str())
                .unwrap_or("")
                .to_owned();
            let request = tus_request(&parts, &full, &inner, &scope);
            let reply = super::tus::serve(&tus, request, data(body)).await;
            tus_response::<Body>(reply, Some(&scope))
        }
    };
    Router::new()
        .route(&mount, axum::routing::any(handle.clone()))
        .route(&format!("{mount}/"), axum::routing::any(handle.clone()))
        .route(&format!("{mount}/{{id}}"), axum::routing::any(handle))
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

/// Extractor for the upload route: decides the scope with `X`, handles the request (test or
/// chunk upload, assembling the file when it completes) and yields what happened. Answers
/// `200` with the core's JSON (and the scope's session cookie, if new) when returned as a
/// response. Needs [`UploadState`] reachable from the router's state through [`FromRef`].
pub struct UploadChunk<X> {
    /// What happened.
    pub outcome: Outcome,
    /// The scope the request was handled in.
    pub scope: Scope,
    scope_from: PhantomData<fn() -> X>,
}

/// Extractor for the finalize ("done") route: decides the scope with `X` and finalizes the
/// upload the parameters name ([`Uploads::finalize_request`]); idempotent. Answers like
/// [`UploadChunk`].
pub struct FinalizeUpload<X> {
    /// What happened.
    pub outcome: Outcome,
    /// The scope the request was handled in.
    pub scope: Scope,
    scope_from: PhantomData<fn() -> X>,
}

/// The rejection of [`UploadChunk`], [`FinalizeUpload`] and [`SessionScope`]: the scope
/// extractor's own rejection, answered as it is, or the core's [`Error`], answered with
/// [`Reply::error`] (204 with an empty body for a test request whose chunk is absent) and the
/// scope's session cookie, if new.
#[derive(Debug)]
pub enum UploadRejection<R = Infallible> {
    /// The scope extractor refused the request.
    Scope(R),
    /// The core refused the request.
    Upload {
        /// Why.
        error: Error,
        /// The scope it was refused in, if one was decided.
        scope: Option<Scope>,
    },
}

impl<S, X> FromRequest<S> for UploadChunk<X>
where
    S: Send + Sync,
    UploadState: FromRef<S>,
    X: FromRequestParts<S> + Into<Scope>,
{
    type Rejection = UploadRejection<X::Rejection>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (scope, outcome) = extract::<S, X>(Purpose::Save, req, state).await?;
        Ok(UploadChunk {
            outcome,
            scope,
            scope_from: PhantomData,
        })
    }
}

impl<S, X> FromRequest<S> for FinalizeUpload<X>
where
    S: Send + Sync,
    UploadState: FromRef<S>,
    X: FromRequestParts<S> + Into<Scope>,
{
    type Rejection = UploadRejection<X::Rejection>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (scope, outcome) = extract::<S, X>(Purpose::Finalize, req, state).await?;
        Ok(FinalizeUpload {
            outcome,
            scope,
            scope_from: PhantomData,
        })
    }
}

/// The scope `X` decides, and the outcome of the request in it.
async fn extract<S, X>(
    purpose: Purpose,
    req: Request,
    state: &S,
) -> Result<(Scope, Outcome), UploadRejection<X::Rejection>>
where
    S: Send + Sync,
    UploadState: FromRef<S>,
    X: FromRequestParts<S> + Into<Scope>,
{
    let (mut parts, body) = req.into_parts();
    let scope: Scope = X::from_request_parts(&mut parts, state)
        .await
        .map_err(UploadRejection::Scope)?
        .into();
    let uploads = UploadState::from_ref(state).uploads;
    let req = Request::from_parts(parts, body);
    match handled(&uploads, purpose, scope.value().to_owned(), req).await {
        Ok(outcome) => Ok((scope, outcome)),
        Err(error) => Err(UploadRejection::Upload {
            error,
            scope: Some(scope),
        }),
    }
}

impl<X> IntoResponse for UploadChunk<X> {
    fn into_response(self) -> Response {
        set_cookie(response(Reply::outcome(&self.outcome)), Some(&self.scope))
    }
}

impl<X> IntoResponse for FinalizeUpload<X> {
    fn into_response(self) -> Response {
        set_cookie(response(Reply::outcome(&self.outcome)), Some(&self.scope))
    }
}

impl<X> fmt::Debug for UploadChunk<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadChunk")
            .field("outcome", &self.outcome)
            .field("scope", &self.scope)
            .finish()
    }
}

impl<X> fmt::Debug for FinalizeUpload<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinalizeUpload")
            .field("outcome", &self.outcome)
            .field("scope", &self.scope)
            .finish()
    }
}

impl<R: IntoResponse> IntoResponse for UploadRejection<R> {
    fn into_response(self) -> Response {
        match self {
            UploadRejection::Scope(rejection) => rejection.into_response(),
            UploadRejection::Upload { error, scope } => {
                set_cookie(response(Reply::error(&error)), scope.as_ref())
            }
        }
    }
}

impl<R> From<Error> for UploadRejection<R> {
    fn from(error: Error) -> Self {
        UploadRejection::Upload { error, scope: None }
    }
}

impl<R: fmt::Display> fmt::Display for UploadRejection<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadRejection::Scope(rejection) => write!(f, "scope refused: {rejection}"),
            UploadRejection::Upload { error, .. } => error.fmt(f),
        }
    }
}

impl<R: fmt::Debug + fmt::Display> std::error::Error for UploadRejection<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadRejection::Scope(_) => None,
            UploadRejection::Upload { error, .. } => Some(error),
        }
    }
}

/// The answer to an upload-route request in `scope`: the core's reply, with the scope's
/// session cookie, if new.
async fn answer(uploads: &Uploads, purpose: Purpose, scope: Scope, req: Request) -> Response {
    let result = handled(uploads, purpose, scope.value().to_owned(), req).await;
    set_cookie(response(Reply::from_result(&result)), Some(&scope))
}

async fn handled(
    uploads: &Uploads,
    purpose: Purpose,
    scope: String,
    req: Request,
) -> Result<Outcome> {
    let started = Instant::now();
    let result = receive(uploads, purpose, scope, req).await;
    log(&result, started);
    result
}

async fn receive(
    uploads: &Uploads,
    purpose: Purpose,
    scope: String,
    req: Request,
) -> Result<Outcome> {
    let (parts, body) = req.into_parts();
    let (collector, kind) = Collector::begin(uploads, purpose, &head(&parts), scope)?;
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
/// HTTP/1.1 until `shutdown` resolves, then lets the requests in progress finish. Each request
/// carries its client's address as [`ConnectInfo<SocketAddr>`](ConnectInfo) (as with
/// `into_make_service_with_connect_info`), which [`SessionScope`] derives sessions from.
///
/// ```no_run
/// use chunked_upload::{Config, Uploads, adapter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let uploads = Uploads::new(Config::builder("./uploads/.chunks", "./uploads").build())?;
/// let limits = *uploads.config().request_limits();
/// let app: axum::Router = axum::Router::new()
///     .nest("/upload", adapter::axum::router::<adapter::axum::SessionScope, _>(uploads))
///     .with_state(adapter::Sessions::new(adapter::SessionKey::generate()));
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
    use hyper::service::Service as _;
    let make = |client: std::net::SocketAddr| {
        let inner = hyper_util::service::TowerToHyperService::new(router.clone());
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            // What `into_make_service_with_connect_info` gives `axum::serve`.
            request.extensions_mut().insert(ConnectInfo(client));
            request.extensions_mut().insert(super::ClientAddr(client));
            inner.call(request)
        })
    };
    super::serve::serve(listener, make, limits, shutdown).await
}

fn data(body: Body) -> impl Stream<Item = Result<Bytes>> + Send {
    body.into_data_stream()
        .map(|piece| piece.map_err(unreadable))
}
