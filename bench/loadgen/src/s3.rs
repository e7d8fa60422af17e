//! The `s3` scenario's bucket: an `s3s-fs` process (the S3 protocol server the crate's tests
//! use) over a folder of the scratch area, behind a front that forwards every request unchanged
//! and runs those with `If-Match` / `If-None-Match` one at a time (s3s-fs checks a conditional
//! put's precondition and then writes, in two steps; S3 does both at once, and the store's
//! leases rely on it). Objects are files below `ROOT/BUCKET/`, so the assembled file is checked
//! where s3s-fs keeps it.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "AKLOADGENBENCH";
pub const SECRET_KEY: &str = "SKLOADGENBENCH";
pub const BUCKET: &str = "uploads";

/// `s3s-fs` on PATH or in `~/.cargo/bin`.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// A running s3s-fs and its front; stopped when dropped.
pub struct Bucket {
    child: Child,
    pub endpoint: String,
    pub root: PathBuf,
    _front: tokio::task::JoinHandle<()>,
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self._front.abort();
    }
}

impl Bucket {
    pub fn start(runtime: &tokio::runtime::Runtime, root: &Path) -> io::Result<Bucket> {
        let binary = binary().ok_or_else(|| {
            io::Error::other(
                "s3s-fs is not installed (cargo install s3s-fs --version 0.14.1 --features binary --locked)",
            )
        })?;
        std::fs::create_dir_all(root.join(BUCKET))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let backend: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(["--domain", &format!("127.0.0.1:{port}")])
            .arg(root)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(backend).is_err() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                return Err(io::Error::other("s3s-fs did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let front = listener.local_addr()?;
        let task = runtime.spawn(serve(listener, backend));
        Ok(Bucket {
            child,
            endpoint: format!("http://{front}"),
            root: root.to_owned(),
            _front: task,
        })
    }

    /// Where s3s-fs keeps object `key`.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }
}

async fn serve(listener: TcpListener, backend: SocketAddr) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client");
    let serial = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
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
        if n != "connection" && n != "transfer-encoding" && n != "keep-alive" {
            outgoing = outgoing.header(n, value.as_bytes());
        }
    }
    let outgoing = outgoing.body(body);
    let _turn = if conditional {
        Some(serial.lock().await)
    } else {
        None
    };
    let Ok(answer) = outgoing.send().await else {
        return Ok(hyper::Response::builder()
            .status(502)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("a response"));
    };
    let mut response = hyper::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        let n = name.as_str();
        if !matches!(
            n,
            "connection" | "transfer-encoding" | "keep-alive" | "content-length"
        ) {
            response = response.header(n, value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(response
        .body(http_body_util::Full::new(bytes))
        .expect("a response"))
}
