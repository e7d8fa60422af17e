//! The baseline: a plain single-request upload server (`loadgen plain-server`), run as its own
//! process so it is measured like the servers it is compared with.
//!
//! `POST /upload-plain?name=NAME` writes the body, as it streams in, straight to `DIR/NAME`
//! (each body frame with one `write`; the page cache absorbs them), then fsyncs the file (our
//! assembly fsyncs the file it publishes, so the baseline does too) and answers
//! `{"success":true,"status":"stored","size":N}`. Nothing else: no parsing, no staging, no
//! rename. That is the floor a chunked upload is held against.

use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Runs the baseline server until killed. Prints `... listening on http://ADDR/` once bound.
pub fn serve(addr: SocketAddr, dir: PathBuf) -> io::Result<()> {
    // The same runtime as `#[tokio::main]` in the example server: one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&dir)?;
        let listener = TcpListener::bind(addr).await?;
        println!(
            "plain upload server listening on http://{}/",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            let dir = dir.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, dir.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn handle(req: Request<Incoming>, dir: PathBuf) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/upload-plain" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            r#"{"success":false,"error":"not found"}"#.into(),
        ));
    }
    let name = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .filter(|n| {
            !n.is_empty()
                && !n.starts_with('.')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or("upload.bin")
        .to_owned();
    let path = dir.join(name);
    match store(req.into_body(), path).await {
        Ok((size, write_s, fsync_s)) => Ok(reply(
            StatusCode::OK,
            format!(
                r#"{{"success":true,"status":"stored","size":{size},"write_s":{write_s},"fsync_s":{fsync_s}}}"#
            ),
        )),
        Err(e) => Ok(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"success": false, "error": e.to_string()}).to_string(),
        )),
    }
}

/// Size, seconds receiving and writing, seconds in fsync.
async fn store(mut body: Incoming, path: PathBuf) -> io::Result<(u64, f64, f64)> {
    let started = std::time::Instant::now();
    let mut file = File::create(&path)?;
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data)?;
            size += data.len() as u64;
        }
    }
    let written = started.elapsed().as_secs_f64();
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(io::Error::other)??;
    Ok((size, written, started.elapsed().as_secs_f64() - written))
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
