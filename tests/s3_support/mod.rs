//! An S3 protocol server for the tests: `s3s-fs` (crate `s3s-fs` 0.14.1, `cargo install s3s-fs
//! --version 0.14.1 --features binary --locked`; `.ci/run` installs it) started on a free
//! loopback port over a fresh folder, with one bucket. When the binary is missing the tests
//! that need it print a note and pass without running.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chunked_upload::object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
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

/// A running `s3s-fs`; killed when dropped.
pub struct S3Server {
    child: Child,
    pub addr: SocketAddr,
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
                    return Some(S3Server {
                        child,
                        addr,
                        endpoint: format!("http://{addr}"),
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
    use futures_util::TryStreamExt;
    use chunked_upload::object_store::ObjectStore;
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

pub fn block_on<T: Send + 'static>(fut: impl std::future::Future<Output = T> + Send + 'static) -> T {
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
