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
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://{}/upload", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let uploads = uploads.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(uploads.clone(), request));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
