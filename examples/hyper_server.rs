//! The upload route on hyper 1: `GET|POST /upload` and `POST /upload/done`.
//!
//! ```text
//! cargo run --example hyper_server --features hyper
//! ```
//!
//! Chunks go to `./uploads/.chunks`, assembled files to `./uploads`. There is no scope here
//! (every client shares one namespace); see the `server` example for a session cookie.

use std::convert::Infallible;

use bytes::Bytes;
use chunked_upload::{Config, Uploads, adapter};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;

async fn route(
    uploads: Uploads,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let scope = |_: &Parts| String::new();
    Ok(match (request.method(), request.uri().path()) {
        (_, "/upload") => adapter::hyper::handle(&uploads, scope, request).await,
        (&Method::POST, "/upload/done") => adapter::hyper::finalize(&uploads, scope, request).await,
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let config = Config::builder("./uploads/.chunks", "./uploads").build();
    let uploads = Uploads::new(config)?;
    let limits = *uploads.config().request_limits();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://{}/upload", listener.local_addr()?);
    let service = service_fn(move |request| route(uploads.clone(), request));
    // With the connection limits (a deadline on request heads, their size, the number of
    // connections): a bare accept loop would keep a silent connection open for ever.
    adapter::hyper::serve(listener, service, &limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
