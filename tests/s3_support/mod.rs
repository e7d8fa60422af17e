//! An S3 protocol server for the tests: `s3s-fs` (crate `s3s-fs` 0.14.1, `cargo install s3s-fs
//! --version 0.14.1 --features binary --locked`; `.ci/run` installs it) started on a free
//! loopback port over a fresh folder, with one bucket. When the binary is missing the tests
//! that need it print a note and pass without running.
//!
//! s3s-fs checks a conditional put's precondition and then writes, as two steps: two puts with
//! `If-Match` the same ETag (or `If-None-Match: *` on an absent key) that arrive together may
//! both succeed, which S3, MinIO, R2, GCS and Azure never allow (their conditional writes are
//! atomic, and the store's leases rely on that). So the tests talk to it through a small
//! front ([`AtomicFront`]) that forwards every request unchanged and runs requests carrying
//! `If-Match` or `If-None-Match` one at a time: what the real services guarantee.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chunked_upload::object_store::aws::{
    AmazonS3, AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists,
};
use chunked_upload::object_store::{ObjectStoreExt, path::Path};

pub const ACCESS_KEY: &str = "AKCHUNKEDUPLOADTEST";
pub const SECRET_KEY: &str = "SKCHUNKEDUPLOADTEST";
pub const BUCKET: &str = "uploads";

/// The `s3s-fs` binary: `$S3S_FS`, then `PATH`, then `~/.cargo/bin`.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("S3S_FS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// A running `s3s-fs` behind its [`AtomicFront`]; killed when dropped.
pub struct S3Server {
    child: Child,
    _front: AtomicFront,
    /// The front's address (what clients use).
    pub addr: SocketAddr,
    /// s3s-fs's own address.
    pub backend: SocketAddr,
    pub endpoint: String,
    pub root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts one, or `None` (with a note on stderr) when the binary is not installed.
    pub fn start(test: &str) -> Option<S3Server> {
        let Some(binary) = binary() else {
            // CI installs it: there a missing binary is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false"),
                "{test}: s3s-fs is not installed, and CI must run the object-store tests"
            );
            eprintln!(
                "{test}: SKIPPED: s3s-fs is not installed \
                 (cargo install s3s-fs --version 0.14.1 --features binary --locked)"
            );
            return None;
        };
        let root = tempfile::Builder::new()
            .prefix("s3s-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temp dir");
        // A bucket is a folder of the root.
        std::fs::create_dir(root.path().join(BUCKET)).expect("the bucket folder");
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new(&binary)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .args(["--domain", &format!("127.0.0.1:{port}")])
                .arg(root.path())
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start s3s-fs");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(addr).is_ok() {
                    let front = AtomicFront::start(addr);
                    return Some(S3Server {
                        child,
                        addr: front.addr,
                        backend: addr,
                        endpoint: format!("http://{}", front.addr),
                        _front: front,
                        root,
                    });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start");
    }

    /// A client of the bucket, configured as the store needs: path-style requests over plain
    /// http, conditional puts with `If-Match`/`If-None-Match`, copies that do not overwrite
    /// through a multipart copy completed with `If-None-Match: *`.
    pub fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .build()
            .expect("an S3 client")
    }

    /// The environment the example server reads its credentials from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }
}

/// Reads an object whole (blocking, on a runtime of its own).
pub fn read_object(client: &Arc<AmazonS3>, key: &str) -> Vec<u8> {
    let client = Arc::clone(client);
    let key = Path::from(key);
    block_on(async move {
        client
            .get(&key)
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
            .bytes()
            .await
            .expect("the object's bytes")
            .to_vec()
    })
}

/// Every object key below `prefix`, sorted.
pub fn list_keys(client: &Arc<AmazonS3>, prefix: &str) -> Vec<String> {
    use chunked_upload::object_store::ObjectStore;
    use futures_util::TryStreamExt;
    let client = Arc::clone(client);
    let prefix = Path::from(prefix);
    let mut keys: Vec<String> = block_on(async move {
        client
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list")
    });
    keys.sort();
    keys
}

pub fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(fut)
    })
    .join()
    .expect("the runtime thread")
}

/// Forwards HTTP requests to `backend` unchanged (signatures stay valid: the `Host` header is
/// passed on as sent), running those with `If-Match` or `If-None-Match` one at a time.
pub struct AtomicFront {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AtomicFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl AtomicFront {
    pub fn start(backend: SocketAddr) -> AtomicFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the front");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("its address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the front's runtime");
            runtime.block_on(serve(listener, backend, stopped));
        });
        AtomicFront {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

async fn serve(
    listener: TcpListener,
    backend: SocketAddr,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client");
    let serial = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => {
                    let _ = s.0.set_nodelay(true);
                    s
                }
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let (client, serial) = (client.clone(), Arc::clone(&serial));
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (client, serial) = (client.clone(), Arc::clone(&serial));
                async move { forward(request, backend, client, serial).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    request: hyper::Request<hyper::body::Incoming>,
    backend: SocketAddr,
    client: reqwest::Client,
    serial: Arc<tokio::sync::Mutex<()>>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let conditional =
        parts.headers.contains_key("if-match") || parts.headers.contains_key("if-none-match");
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut outgoing = client.request(method, format!("http://{backend}{target}"));
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if n == "connection" || n == "transfer-encoding" || n == "keep-alive" {
            continue;
        }
        outgoing = outgoing.header(n, value.as_bytes());
    }
    let outgoing = outgoing.body(body);
    let _turn = if conditional {
        Some(serial.lock().await)
    } else {
        None
    };
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(_) => {
            return Ok(hyper::Response::builder()
                .status(502)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("a response"));
        }
    };
    let mut response = hyper::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        let n = name.as_str();
        if n == "connection"
            || n == "transfer-encoding"
            || n == "keep-alive"
            || n == "content-length"
        {
            continue;
        }
        response = response.header(n, value.as_bytes());
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(response
        .body(http_body_util::Full::new(bytes))
        .expect("a response"))
}
