//! Progress and limits over HTTP, against the axum adapter on 127.0.0.1: a slow upload polled
//! from another connection, scopes kept apart, server-sent events, an oversized
//! `Content-Length` refused before its body is sent, quotas refused with their reason.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use std::convert::Infallible;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chunked_upload::adapter::Scope;
use chunked_upload::{Config, Uploads, adapter};
use serde_json::Value;

const MAX_CHUNK: u64 = 256 * 1024;

/// The scope of the `x-scope` header.
struct HeaderScope(Scope);

impl<S: Send + Sync> FromRequestParts<S> for HeaderScope {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let scope = parts.headers.get("x-scope").and_then(|v| v.to_str().ok());
        Ok(HeaderScope(Scope::new(scope.unwrap_or_default())))
    }
}

impl From<HeaderScope> for Scope {
    fn from(scope: HeaderScope) -> Scope {
        scope.0
    }
}

/// Serves `uploads` at `/upload` and `/progress` with the scope taken from `x-scope`.
fn serve(uploads: Uploads) -> SocketAddr {
    let app = Router::new()
        .nest(
            "/upload",
            adapter::axum::router::<HeaderScope, _>(uploads.clone()),
        )
        .nest(
            "/progress",
            adapter::axum::progress_router::<HeaderScope, _>(uploads),
        );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn uploads(
    dir: &std::path::Path,
    configure: impl FnOnce(chunked_upload::ConfigBuilder) -> chunked_upload::ConfigBuilder,
) -> Uploads {
    let builder = Config::builder(dir.join("chunks"), dir.join("files")).max_chunk_size(MAX_CHUNK);
    Uploads::new(configure(builder).build()).unwrap()
}

/// The query string of flow.js chunk `number` of a file of `size` bytes in `chunk`-byte chunks.
fn flow_query(id: &str, number: u64, chunk: u64, size: u64) -> String {
    let total = (size / chunk).max(1);
    let current = if number == total {
        size - (total - 1) * chunk
    } else {
        chunk
    };
    format!(
        "flowChunkNumber={number}&flowChunkSize={chunk}&flowCurrentChunkSize={current}\
         &flowTotalSize={size}&flowIdentifier={id}&flowFilename={id}.bin&flowTotalChunks={total}"
    )
}

fn get_json(client: &reqwest::blocking::Client, url: &str, scope: &str) -> (u16, Value) {
    let r = client.get(url).header("x-scope", scope).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends the head of a raw-body (octet) upload, then the body in `steps` pieces, calling
/// `between` after each piece; returns the response's status line.
fn slow_octet_upload(
    addr: SocketAddr,
    scope: &str,
    query: &str,
    body: &[u8],
    steps: usize,
    mut between: impl FnMut(usize),
) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /upload?{query} HTTP/1.1\r\nHost: {addr}\r\nx-scope: {scope}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let piece = body.len().div_ceil(steps);
    for (i, part) in body.chunks(piece).enumerate() {
        stream.write_all(part).unwrap();
        stream.flush().unwrap();
        between(i);
    }
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    status
}

#[test]
fn a_slow_upload_polled_from_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(uploads(dir.path(), |b| b));
    let client = reqwest::blocking::Client::new();
    let size = 2 * 200_000u64;
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let id = "slow-upload";
    let one = format!("http://{addr}/progress/{id}");

    // Unknown before it starts: 404, never "starting".
    assert_eq!(get_json(&client, &one, "alice").0, 404);

    let mut seen = Vec::new();
    for number in 1..=2u64 {
        let range = ((number - 1) * 200_000) as usize..(number * 200_000) as usize;
        let status = slow_octet_upload(
            addr,
            "alice",
            &flow_query(id, number, 200_000, size),
            &data[range],
            8,
            |_| {
                // The server counts bytes as they are written: wait until it has seen this piece.
                thread::sleep(Duration::from_millis(40));
                let (code, body) = get_json(&client, &one, "alice");
                assert_eq!(code, 200, "{body}");
                seen.push(body["received"].as_u64().unwrap());
            },
        );
        assert!(status.contains(" 200 "), "{status}");
    }
    let (code, done) = get_json(&client, &one, "alice");
    assert_eq!(code, 200);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["received"], size);
    assert_eq!(done["size"], size);
    assert!(done["finished_at"].as_u64().is_some());
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "never goes back: {seen:?}"
    );
    assert!(
        seen.iter().any(|&r| r > 0 && r < 200_000),
        "counted mid-chunk: {seen:?}"
    );
    assert!(
        seen.iter().any(|&r| r > 200_000 && r < size),
        "counted mid-chunk: {seen:?}"
    );
    assert!(seen.iter().all(|&r| r <= size));

    // Another scope sees nothing, even with the identifier.
    assert_eq!(get_json(&client, &one, "mallory").0, 404);
    let (code, list) = get_json(&client, &format!("http://{addr}/progress"), "mallory");
    assert_eq!((code, list), (200, Value::Array(Vec::new())));
    let (_, list) = get_json(&client, &format!("http://{addr}/progress"), "alice");
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn server_sent_events_push_progress() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(uploads(dir.path(), |b| b));
    let mut events = TcpStream::connect(addr).unwrap();
    write!(events, "GET /progress/events HTTP/1.1\r\nHost: {addr}\r\nx-scope: sse\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(events);

    // Upload a 3-chunk file, one chunk at a time, while the stream is open.
    let client = reqwest::blocking::Client::new();
    let size = 3 * 10_000u64;
    let data = vec![9u8; size as usize];
    let uploader = thread::spawn(move || {
        for number in 1..=3u64 {
            thread::sleep(Duration::from_millis(300));
            let range = ((number - 1) * 10_000) as usize..(number * 10_000) as usize;
            let r = client
                .post(format!(
                    "http://{addr}/upload?{}",
                    flow_query("sse-file", number, 10_000, size)
                ))
                .header("x-scope", "sse")
                .header("content-type", "application/octet-stream")
                .body(data[range].to_vec())
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut head_done = false;
    let mut updates = Vec::new();
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if !head_done {
            if line.to_ascii_lowercase().starts_with("content-type:") {
                assert!(line.contains("text/event-stream"), "{line}");
            }
            head_done = line == "\r\n";
            continue;
        }
        if let Some(json) = line.trim_end().strip_prefix("data: ") {
            let v: Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["identifier"], "sse-file");
            let state = v["state"].as_str().unwrap().to_owned();
            updates.push((state.clone(), v["received"].as_u64().unwrap()));
            if state == "done" {
                break;
            }
        }
    }
    uploader.join().unwrap();
    assert!(updates.len() >= 3, "several events: {updates:?}");
    assert_eq!(
        updates.last().unwrap(),
        &("done".to_owned(), size),
        "{updates:?}"
    );
    assert!(updates.windows(2).all(|w| w[0].1 <= w[1].1), "{updates:?}");
}

#[test]
fn an_oversized_content_length_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(uploads(dir.path(), |b| b));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    // Head only: a 1 GiB body is announced and never sent.
    write!(
        stream,
        "POST /upload?{} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        flow_query("huge", 1, 1 << 30, 1 << 30),
        1u64 << 30
    )
    .unwrap();
    let mut response = vec![0u8; 2048];
    let n = stream.read(&mut response).unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("over the limit"), "{text}");
    assert!(elapsed < Duration::from_secs(1), "answered in {elapsed:?}");

    // The same with a multipart body announced too large.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        MAX_CHUNK * 4
    )
    .unwrap();
    let n = stream.read(&mut response).unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 413"));
}

#[test]
fn quotas_refuse_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let addr = serve(uploads(dir.path(), |b| {
        b.max_uploads_per_scope(1)
            .max_pending_bytes_per_scope(15_000)
            .max_file_size(50_000)
    }));
    let client = reqwest::blocking::Client::new();
    let post = |scope: &str, id: &str, number: u64, size: u64| {
        let r = client
            .post(format!(
                "http://{addr}/upload?{}",
                flow_query(id, number, 10_000, size)
            ))
            .header("x-scope", scope)
            .header("content-type", "application/octet-stream")
            .body(vec![1u8; 10_000])
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, r.text().unwrap(), retry_after)
    };
    // A declared total over the max file size: refused at the first chunk...
    let (status, body, _) = post("q", "too-big", 1, 60_000);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("file size 60000 is over the limit of 50000"),
        "{body}"
    );
    // ... and at the test GET.
    let r = client
        .get(format!(
            "http://{addr}/upload?{}",
            flow_query("too-big", 1, 10_000, 60_000)
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    assert_eq!(post("q", "first", 1, 30_000).0, 200);
    // A second live upload in the same scope: 429 with the reason and a Retry-After.
    let (status, body, retry_after) = post("q", "second", 1, 30_000);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("unfinished uploads"), "{body}");
    assert!(retry_after.is_some());
    // More pending bytes than allowed: 413 with the reason.
    let (status, body, _) = post("q", "first", 2, 30_000);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("not yet assembled"), "{body}");
    // Another scope is not affected.
    assert_eq!(post("other", "second", 1, 30_000).0, 200);
}
