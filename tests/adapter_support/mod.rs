//! What the adapter tests share: the configuration the conformance suite expects, and a
//! listener on a free port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::{Config, ConflictPolicy, Uploads};

/// The largest chunk the test servers accept (the suite needs at least 64 KiB).
pub const MAX_CHUNK_SIZE: u64 = 128 * 1024;

/// A server's pieces: its uploads, its listener on 127.0.0.1, and the targets describing them
/// (the widgets' route at `/upload`, tus at `/tus/`).
pub struct Setup {
    pub uploads: Uploads,
    pub listener: TcpListener,
    pub target: Target,
    pub tus: TusTarget,
}

/// The server of a test process lives as long as the process, so its folder is kept; folders of
/// earlier runs are removed once they are an hour old.
fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Uploads in a fresh folder under cargo's temp dir (chunks in `chunks/`, files in `files/`),
/// with the configuration the suite expects, and a listener on a free port.
pub fn setup(name: &str) -> Setup {
    let prefix = format!("conformance-{name}-");
    remove_stale(&prefix);
    let root: PathBuf = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir")
        .keep();
    let files = root.join("files");
    let config = Config::builder(root.join("chunks"), &files)
        .max_chunk_size(MAX_CHUNK_SIZE)
        .on_conflict(ConflictPolicy::Rename)
        .build();
    let uploads = Uploads::new(config).expect("uploads");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().expect("the listener's address");
    let target = Target::new(format!("http://{addr}/upload"), &files, MAX_CHUNK_SIZE);
    let tus = TusTarget::new(format!("http://{addr}/tus/"), files, "x-scope");
    Setup {
        uploads,
        listener,
        target,
        tus,
    }
}

/// The scope the test servers use: the `x-scope` header, or none (the suite sends none).
pub fn scope_of(header: Option<&[u8]>) -> String {
    header
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}
