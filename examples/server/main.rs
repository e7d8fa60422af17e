//! The chunked-upload example server: an upload page and the routes it talks to.
//!
//! ```text
//! cargo run --example server --features axum -- --addr 127.0.0.1:8080 --dir ./uploads
//! ```
//!
//! Then open the printed URL. Files are assembled directly in `--dir` under their sanitized
//! name (a name already taken gets ` (1)`, ` (2)`, ...); chunks live in `--dir/.chunks` unless
//! `--temp` says otherwise.
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `GET /app.js`, `GET /style.css` | the upload page |
//! | `GET /upload` | flow.js / resumable.js test request: 200 stored, 204 absent |
//! | `POST /upload` | a chunk (multipart, or raw with the parameters in the query string) |
//! | `POST /upload/done` | finalize an upload (idempotent) |
//! | `GET /files` | the assembled files: `[{"name", "size", "modified"}]`, newest first |
//! | `GET /progress` | this browser's uploads as JSON (state, received, size, speed, ETA, ...) |
//! | `GET /progress/events` | the same as server-sent events, pushed as uploads change |
//! | `GET /progress/{identifier}` | one upload (404 if this browser has no such upload) |
//! | `/tus/` (`OPTIONS`, `POST`), `/tus/{id}` (`HEAD`, `PATCH`, `DELETE`) | tus 1.0 and the IETF resumable-upload draft (tus-js-client, Uppy), on the same storage; `Location`s under `/tus/` |
//!
//! **Sessions.** Each browser's uploads live in its session, a `cu_session` cookie signed with
//! the key of `--signing-key` (or `CHUNKED_UPLOAD_SIGNING_KEY`; prefer the variable, since
//! flags show in `ps`): two browsers never see or complete each other's uploads, a browser
//! resumes its uploads after a restart, and every server given the same key accepts the same
//! cookies. Without a key the server generates one at start and says so in its log: sessions,
//! and the unfinished uploads in them, then end with the process. A cookie the server did not
//! sign (forged, altered, upper-cased, cut short, or signed with another key) is not a session.
//!
//! The page gets a random session when it loads. A request to the upload, finalize and progress
//! routes that has no valid cookie gets the session derived from its client (address,
//! `User-Agent`, `Accept-Language`; see `chunked_upload::adapter::session`): a widget on a page
//! this server did not serve sends its first chunks and test requests in parallel, before any
//! cookie is set, and they all land in one session. What that cannot tell apart: two browsers
//! without a cookie behind one address with the same `User-Agent` and `Accept-Language` share a
//! session. Behind a reverse proxy, name it with `--trusted-proxy ADDR` so that the client's
//! address is read from the `X-Forwarded-For` header it appends to; otherwise every browser has
//! the proxy's address.
//!
//! **A bucket.** With `--s3-bucket NAME` (feature `s3`; `--s3-endpoint URL`, `--s3-prefix
//! PREFIX`, `--s3-region`, credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`)
//! uploads and assembled files live in the bucket instead of `--dir`: run several servers with
//! the same bucket and the same `--signing-key` behind a load balancer, and any chunk may go to
//! any of them. `GET /files` then lists the bucket's assembled objects.
//!
//! **Files.** `--dir` is a shared drop folder: `GET /files` lists every assembled file, and a
//! name already taken (by anyone) gets ` (1)`. Keep users apart there with a folder each
//! (`ConfigBuilder::destination`, as the README's first example does).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chunked_upload::adapter::axum::SessionScope;
use chunked_upload::adapter::{SessionKey, SessionRequest, Sessions};
use chunked_upload::tus::Tus;
use chunked_upload::{Config, ConflictPolicy, RequestLimits, Uploads, adapter};
use clap::Parser;
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(about = "Accept chunked, resumable uploads (flow.js, resumable.js) from a browser.")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where assembled files go.
    #[arg(long, default_value = "./uploads")]
    dir: PathBuf,
    /// Where chunks of unfinished uploads live (default: DIR/.chunks; keep it on the same
    /// filesystem as DIR).
    #[arg(long)]
    temp: Option<PathBuf>,
    /// Largest file accepted, in bytes (default: unlimited).
    #[arg(long, value_name = "BYTES")]
    max_file_size: Option<u64>,
    /// Largest chunk accepted, in bytes (default: 128 MiB).
    #[arg(long, value_name = "BYTES")]
    max_chunk_size: Option<u64>,
    /// Remove uploads idle for this long, in seconds (default: 2 days).
    #[arg(long, value_name = "SECS")]
    expire_after: Option<u64>,
    /// Request bodies streamed at once past their first 64 KiB (default: 8).
    #[arg(long, value_name = "N")]
    max_concurrent_bodies: Option<usize>,
    /// How often to sweep expired uploads, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    sweep_interval: u64,
    /// The secret that signs session cookies, at least 32 bytes (e.g. `openssl rand -hex 32`).
    /// Servers given the same key accept each other's sessions; without one, a key is
    /// generated at start and sessions end with the process.
    #[arg(
        long,
        env = "CHUNKED_UPLOAD_SIGNING_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    signing_key: Option<String>,
    /// The address of a reverse proxy in front of the server (repeat the flag for several).
    /// Requests from it have their client's address read from `X-Forwarded-For`, so cookieless
    /// browsers behind the proxy get sessions of their own; the header is ignored from any
    /// other peer.
    #[arg(long = "trusted-proxy", value_name = "ADDR")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Largest request head (request line and headers), in bytes; longer ones get 431
    /// (default: 64 KiB).
    #[arg(long, value_name = "BYTES")]
    max_head_bytes: Option<usize>,
    /// Seconds a connection has to send a complete request head, from its start or from its
    /// previous answer; then it is closed (default: 30).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    head_timeout: Option<Duration>,
    /// Largest header block of one multipart part, and largest preamble, in bytes (default:
    /// 16 KiB).
    #[arg(long, value_name = "BYTES")]
    max_part_header_bytes: Option<usize>,
    /// Most fields in one form (default: 256).
    #[arg(long, value_name = "N")]
    max_fields: Option<usize>,
    /// Most bytes of text fields in one form, and largest urlencoded body (default: 64 KiB).
    #[arg(long, value_name = "BYTES")]
    max_form_bytes: Option<u64>,
    /// Longest silence of a client while its request is read, in seconds (default: 30).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    idle_timeout: Option<Duration>,
    /// Seconds a form's fields may take to arrive, in all (default: 30).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    fields_timeout: Option<Duration>,
    /// Fewest bytes a chunk body must send per --body-window (default: 16 KiB).
    #[arg(long, value_name = "BYTES")]
    min_body_bytes: Option<u64>,
    /// The window of --min-body-bytes, in seconds (default: 30).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    body_window: Option<Duration>,
    /// Seconds a chunk body may take to arrive, in all (default: 3600).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    body_timeout: Option<Duration>,
    /// Most connections served at once (default: 1024).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    #[cfg(feature = "s3")]
    #[command(flatten)]
    s3: s3::S3Args,
}

impl Args {
    /// The request limits: the defaults, with the flags given.
    fn request_limits(&self) -> RequestLimits {
        fn set<T>(slot: &mut T, flag: Option<T>) {
            if let Some(value) = flag {
                *slot = value;
            }
        }
        let mut limits = RequestLimits::default();
        set(&mut limits.max_head_bytes, self.max_head_bytes);
        set(&mut limits.head_timeout, self.head_timeout);
        set(
            &mut limits.max_part_header_bytes,
            self.max_part_header_bytes,
        );
        set(&mut limits.max_fields, self.max_fields);
        set(&mut limits.max_form_bytes, self.max_form_bytes);
        set(&mut limits.idle_timeout, self.idle_timeout);
        set(&mut limits.fields_timeout, self.fields_timeout);
        set(&mut limits.min_body_bytes, self.min_body_bytes);
        set(&mut limits.body_window, self.body_window);
        set(&mut limits.body_timeout, self.body_timeout);
        set(&mut limits.max_connections, self.max_connections);
        limits
    }
}

/// A duration flag: seconds, fractions allowed (`0.5`).
fn seconds(value: &str) -> Result<Duration, String> {
    let secs: f64 = value.parse().map_err(|e| format!("{value:?}: {e}"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{value:?} is not a positive number of seconds"))
}

#[cfg(feature = "s3")]
mod s3;

/// The local store under `temp` and `--dir`, or the bucket of `--s3-bucket`.
fn choose_store(
    args: &Args,
    temp: PathBuf,
) -> Result<(chunked_upload::ConfigBuilder, Listing), Box<dyn std::error::Error>> {
    #[cfg(feature = "s3")]
    if let Some(store) = s3::store(&args.s3)? {
        return Ok((
            Config::builder_with_store(store.clone()),
            Listing::Bucket(store),
        ));
    }
    Ok((
        Config::builder(temp, &args.dir),
        Listing::Dir(args.dir.clone()),
    ))
}

/// Where `GET /files` looks.
#[derive(Debug, Clone)]
enum Listing {
    Dir(PathBuf),
    #[cfg(feature = "s3")]
    Bucket(chunked_upload::S3Store),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr; stdout carries only the listening URL (scripts read it).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    std::fs::create_dir_all(&args.dir)?;
    let temp = args
        .temp
        .clone()
        .unwrap_or_else(|| args.dir.join(".chunks"));
    let (config, listing) = choose_store(&args, temp)?;
    let mut config = config.on_conflict(ConflictPolicy::Rename);
    if let Some(bytes) = args.max_file_size {
        config = config.max_file_size(bytes);
    }
    if let Some(bytes) = args.max_chunk_size {
        config = config.max_chunk_size(bytes);
    }
    if let Some(n) = args.max_concurrent_bodies {
        config = config.max_concurrent_bodies(n);
    }
    if let Some(secs) = args.expire_after {
        config = config.expire_after(Duration::from_secs(secs));
    }
    let limits = args.request_limits();
    config = config.request_limits(limits);
    let uploads = Uploads::new(config.build())?;
    adapter::axum::spawn_sweep(uploads.clone(), Duration::from_secs(args.sweep_interval));
    let sessions = match &args.signing_key {
        Some(secret) => {
            tracing::info!(
                "sessions are signed with the configured key: they survive a restart and are \
                 accepted by every server given the same key"
            );
            Sessions::new(SessionKey::new(secret)?)
        }
        None => {
            tracing::warn!(
                "no --signing-key (or CHUNKED_UPLOAD_SIGNING_KEY): sessions are signed with a key \
                 generated at start, so they do not survive a restart (unfinished uploads then \
                 start again from zero), and other servers do not accept them"
            );
            Sessions::new(SessionKey::generate())
        }
    }
    .trusted_proxies(args.trusted_proxies.iter().copied());

    let app = Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        // GET|POST /upload (test, chunk) and POST /upload/done (finalize), in the session.
        .nest(
            "/upload",
            adapter::axum::router::<SessionScope, _>(uploads.clone()),
        )
        // tus 1.0 and the IETF draft: endpoint /tus/, uploads at /tus/{id}.
        .merge(adapter::axum::tus_router::<SessionScope, _>(
            Tus::new(uploads.clone()),
            "/tus",
        ))
        .route("/files", get(move || list_files(listing.clone())))
        // GET /progress (JSON), /progress/events (server-sent events), /progress/{identifier}.
        .nest(
            "/progress",
            adapter::axum::progress_router::<SessionScope, _>(uploads),
        )
        .with_state(sessions);

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    println!("chunked-upload example server listening on http://{addr}/");
    tracing::info!(dir = %args.dir.display(), "assembled files go to the upload dir");
    // Not `axum::serve`: it has no deadline on a request head (a connection that sends
    // nothing would stay open for ever).
    adapter::axum::serve(listener, app, &limits, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The page.

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page, with a random session when the browser has none yet (its scripts run
/// after the cookie is set, so no request of the page can race it).
async fn index(State(sessions): State<Sessions>, headers: HeaderMap) -> Response {
    let request = SessionRequest {
        cookies: headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect(),
        ..SessionRequest::default()
    };
    let scope = sessions.page_scope(&request);
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    if let Some(cookie) = scope
        .set_cookie()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Finished files and housekeeping.

#[derive(Debug, Serialize)]
struct FileEntry {
    name: String,
    size: u64,
    /// Last modification, in milliseconds since the Unix epoch.
    modified: u64,
}

/// `GET /files`: the assembled files in the upload dir, newest first (hidden files, such as the
/// chunk folder and files being assembled, and directories are left out).
async fn list_files(listing: Listing) -> Response {
    let read = move || match listing {
        Listing::Dir(dir) => read_files(&dir),
        #[cfg(feature = "s3")]
        Listing::Bucket(store) => read_objects(&store),
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(files)) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            serde_json::to_string(&files).unwrap_or_else(|_| "[]".to_owned()),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot list the upload dir");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "listing the upload dir failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The assembled objects of the bucket (below the prefix, hidden keys left out), newest first.
#[cfg(feature = "s3")]
fn read_objects(store: &chunked_upload::S3Store) -> std::io::Result<Vec<FileEntry>> {
    let mut files: Vec<FileEntry> = store
        .assembled_objects()
        .map_err(std::io::Error::other)?
        .into_iter()
        .map(|(name, size, modified)| FileEntry {
            name,
            size,
            modified,
        })
        .collect();
    files.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(files)
}

fn read_files(dir: &Path) -> std::io::Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if name.starts_with('.') || !meta.is_file() {
            continue;
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        files.push(FileEntry {
            name,
            size: meta.len(),
            modified,
        });
    }
    files.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(files)
}
