//! The upload routes on hyper 1: `GET|POST /upload`, `POST /upload/done` and
//! `GET /progress`, each browser in its signed session.
//!
//! ```text
//! CHUNKED_UPLOAD_SIGNING_KEY=$(openssl rand -hex 32) \
//!     cargo run --example hyper_server --features hyper -- --addr 127.0.0.1:8080
//! ```
//!
//! Chunks go to `DIR/.chunks`, assembled files to `DIR` (default `./uploads`). Sessions are
//! cookies signed with `--signing-key` / `CHUNKED_UPLOAD_SIGNING_KEY` (generated at start when
//! absent: then sessions end with the process); a request without a valid cookie gets the
//! session derived from its client (the connection's peer address and its headers), so a
//! widget's parallel first chunks share one (see `chunked_upload::adapter::session`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chunked_upload::adapter::{ClientAddr, SessionKey, Sessions};
use chunked_upload::{Config, Uploads, adapter};
use clap::Parser;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;

/// Command-line flags.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where assembled files go (chunks in DIR/.chunks).
    #[arg(long, default_value = "./uploads")]
    dir: PathBuf,
    /// The secret that signs session cookies, at least 32 bytes.
    #[arg(
        long,
        env = "CHUNKED_UPLOAD_SIGNING_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    signing_key: Option<String>,
}

/// One request from `peer`: its session, then the route.
async fn route(
    uploads: Uploads,
    sessions: Sessions,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    if !(path == "/upload" || path.starts_with("/upload/") || path.starts_with("/progress")) {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let scope = match adapter::hyper::session_scope(&sessions, request.headers(), Some(peer.ip())) {
        Ok(scope) => scope,
        Err(e) => return Ok(adapter::hyper::error_response(&e)),
    };
    Ok(match (request.method(), path.as_str()) {
        (_, "/upload") => adapter::hyper::handle(&uploads, scope, request).await,
        (&Method::POST, "/upload/done") => adapter::hyper::finalize(&uploads, scope, request).await,
        (&Method::GET, "/progress") => adapter::hyper::progress(&uploads, &scope, None),
        (&Method::GET, p) => {
            let identifier = p.strip_prefix("/progress/").unwrap_or_default();
            adapter::hyper::progress(&uploads, &scope, Some(identifier))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config::builder(args.dir.join(".chunks"), &args.dir).build();
    let uploads = Uploads::new(config)?;
    let key = match &args.signing_key {
        Some(secret) => SessionKey::new(secret)?,
        None => {
            tracing::warn!(
                "no --signing-key (or CHUNKED_UPLOAD_SIGNING_KEY): sessions are signed with a key \
                 generated at start and do not survive a restart"
            );
            SessionKey::generate()
        }
    };
    let sessions = Sessions::new(key);
    adapter::hyper::spawn_sweep(uploads.clone(), Duration::from_secs(600));
    let limits = *uploads.config().request_limits();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}/upload", listener.local_addr()?);
    let service = service_fn(move |request: Request<Incoming>| {
        // The serving loop tells each request its client's address.
        let peer = request
            .extensions()
            .get::<ClientAddr>()
            .map(|client| client.0)
            .expect("adapter::hyper::serve sets the client's address");
        route(uploads.clone(), sessions.clone(), peer, request)
    });
    // With the connection limits (a deadline on request heads, their size, the number of
    // connections): a bare accept loop would keep a silent connection open for ever.
    adapter::hyper::serve(listener, service, &limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
