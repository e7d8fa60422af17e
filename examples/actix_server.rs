//! The upload routes on actix-web: `GET|POST /upload`, `POST /upload/done` and
//! `GET /progress`, each browser in its signed session.
//!
//! ```text
//! CHUNKED_UPLOAD_SIGNING_KEY=$(openssl rand -hex 32) \
//!     cargo run --example actix_server --features actix-web -- --addr 127.0.0.1:8080
//! ```
//!
//! Chunks go to `DIR/.chunks`, assembled files to `DIR` (default `./uploads`). Sessions are
//! cookies signed with `--signing-key` / `CHUNKED_UPLOAD_SIGNING_KEY` (generated at start when
//! absent: then sessions end with the process); a request without a valid cookie gets the
//! session derived from its client, so a widget's parallel first chunks share one (see the
//! `server` example and `chunked_upload::adapter::session`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use chunked_upload::adapter::actix::{SessionScope, UploadState};
use chunked_upload::adapter::{SessionKey, Sessions};
use chunked_upload::{Config, Uploads, adapter};
use clap::Parser;

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

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config::builder(args.dir.join(".chunks"), &args.dir).build();
    let uploads = Uploads::new(config).map_err(std::io::Error::other)?;
    let key = match &args.signing_key {
        Some(secret) => SessionKey::new(secret).map_err(std::io::Error::other)?,
        None => {
            tracing::warn!(
                "no --signing-key (or CHUNKED_UPLOAD_SIGNING_KEY): sessions are signed with a key \
                 generated at start and do not survive a restart"
            );
            SessionKey::generate()
        }
    };
    let sessions = web::Data::new(Sessions::new(key));
    adapter::actix::spawn_sweep(uploads.clone(), Duration::from_secs(600));
    let limits = *uploads.config().request_limits();
    let state = UploadState::new(uploads);
    let server = HttpServer::new(move || {
        let (state, progress) = (state.clone(), state.clone());
        App::new()
            .app_data(sessions.clone())
            .service(web::scope("/upload").configure(|cfg| state.configure::<SessionScope>(cfg)))
            .service(
                web::scope("/progress")
                    .configure(|cfg| progress.configure_progress::<SessionScope>(cfg)),
            )
    })
    // The connection limits are the server's: a deadline on the request head (from the
    // connection's start), on idle keep-alive connections, and their number. The adapter
    // applies the rest of the request limits to every request.
    .client_request_timeout(limits.head_timeout)
    .keep_alive(limits.head_timeout)
    .max_connections(limits.max_connections)
    .bind(args.addr)?;
    for addr in server.addrs() {
        println!("listening on http://{addr}/upload");
    }
    server.run().await
}
