//! What the adapter tests share: the configuration the conformance suite expects, a listener on
//! a free port, and the scope checks every adapter must pass, over HTTP, whatever the
//! framework: a scope extractor that refuses (401) is the answer and nothing is stored; the
//! signed-session scope puts a widget's parallel cookieless first chunks in one session and
//! never accepts a cookie it did not issue; conflicts tell nothing about another scope's files.
//!
//! Each adapter test serves, on one listener:
//!
//! | routes | scope | uploads |
//! |---|---|---|
//! | `/upload`, `/upload/done` | the `x-scope` header (the conformance suite sends none) | [`Setup::uploads`] |
//! | `/authed/upload`, `/authed/upload/done`, `/authed/progress` | `authorization: Bearer <user>`, else 401 [`REFUSAL`] | [`Setup::uploads`] |
//! | `/session/upload`, `/session/upload/done`, `/session/progress` | the adapter's signed-session scope, [`Setup::sessions`] | [`Setup::uploads`] |
//! | `/shared/upload` | `x-scope` | [`Setup::shared`]: one folder, `ConflictPolicy::Refuse` |
//! | `/private/upload` | `x-scope` | [`Setup::private`]: a folder per scope, `ConflictPolicy::Refuse` |
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chunked_upload::adapter::{SessionKey, Sessions};
use chunked_upload::conformance::Target;
use chunked_upload::conformance::tus::TusTarget;
use chunked_upload::{Config, ConflictPolicy, Uploads, sanitize_filename};
use reqwest::blocking::{Client, Response, multipart};
use serde_json::Value;

/// The largest chunk the test servers accept (the suite needs at least 64 KiB).
pub const MAX_CHUNK_SIZE: u64 = 128 * 1024;

/// The key the test servers sign sessions with.
pub const SIGNING_KEY: &str = "adapter-tests-signing-key-of-at-least-32-bytes";

/// What the refusing scope extractor answers (with 401) to a request without credentials.
pub const REFUSAL: &str = "sign in first";

/// A server's pieces: its uploads, its listener on 127.0.0.1, and the target describing them.
pub struct Setup {
    /// The conformance suite's uploads (files in `root/files`), also behind the `/authed` and
    /// `/session` routes.
    pub uploads: Uploads,
    /// One destination folder for every scope (`root/shared`), refusing taken names.
    pub shared: Uploads,
    /// A destination folder per scope (`root/private/<scope folder>`), refusing taken names.
    pub private: Uploads,
    pub sessions: Sessions,
    pub listener: TcpListener,
    pub target: Target,
    /// The tus endpoint at `/tus/` (the `x-scope` header), over [`Setup::uploads`].
    pub tus: TusTarget,
    /// What the scope checks need.
    pub checks: Checks,
}

/// Where the scope checks find the server.
#[derive(Debug, Clone)]
pub struct Checks {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub root: PathBuf,
    pub sessions: Sessions,
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

/// The folder of a scope below `root/private`: its bytes in hex, so that no two scopes share
/// one and no scope string reaches a path.
pub fn scope_folder(scope: &str) -> String {
    let hex: String = scope.bytes().map(|b| format!("{b:02x}")).collect();
    format!("scope-{hex}")
}

/// Uploads in a fresh folder under cargo's temp dir (chunks in `chunks/`, files in `files/`),
/// with the configuration the suite expects, the uploads of the conflict checks, and a listener
/// on a free port.
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
    let shared = Config::builder(root.join("shared-chunks"), root.join("shared"))
        .max_chunk_size(MAX_CHUNK_SIZE)
        .on_conflict(ConflictPolicy::Refuse)
        .build();
    let private_root = root.join("private");
    let private = Config::builder(root.join("private-chunks"), &private_root)
        .max_chunk_size(MAX_CHUNK_SIZE)
        .on_conflict(ConflictPolicy::Refuse)
        .destination(move |info| {
            private_root
                .join(scope_folder(&info.scope))
                .join(sanitize_filename(&info.filename))
        })
        .build();
    let sessions = Sessions::new(SessionKey::new(SIGNING_KEY).expect("a key"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().expect("the listener's address");
    let target = Target::new(format!("http://{addr}/upload"), &files, MAX_CHUNK_SIZE);
    let tus = TusTarget::new(format!("http://{addr}/tus/"), &files, "x-scope");
    Setup {
        uploads,
        shared: Uploads::new(shared).expect("uploads"),
        private: Uploads::new(private).expect("uploads"),
        sessions: sessions.clone(),
        listener,
        target,
        tus,
        checks: Checks {
            origin: format!("http://{addr}"),
            root,
            sessions,
        },
    }
}

/// The scope the test servers use: the `x-scope` header, or none (the suite sends none).
pub fn scope_of(header: Option<&[u8]>) -> String {
    header
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The user of an `authorization: Bearer <user>` header; `None` refuses the request.
pub fn user_of(authorization: Option<&[u8]>) -> Option<String> {
    let value = std::str::from_utf8(authorization?).ok()?;
    let user = value.strip_prefix("Bearer ")?;
    (!user.is_empty()).then(|| format!("user:{user}"))
}

// ---------------------------------------------------------------------------------------------
// A flow.js client.

const CHUNK: usize = 16 * 1024;

/// A flow.js file: `size` bytes of a pattern that differs per `seed`, in 16 KiB chunks (the last
/// one takes the remainder, flow.js's default geometry).
#[derive(Debug, Clone)]
struct FlowFile {
    identifier: String,
    name: String,
    data: Vec<u8>,
}

impl FlowFile {
    fn new(identifier: &str, name: &str, size: usize, seed: u8) -> FlowFile {
        let data = (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        FlowFile {
            identifier: identifier.to_owned(),
            name: name.to_owned(),
            data,
        }
    }

    fn total(&self) -> usize {
        (self.data.len() / CHUNK).max(1)
    }

    fn chunk(&self, n: usize) -> &[u8] {
        let start = (n - 1) * CHUNK;
        let end = if n == self.total() {
            self.data.len()
        } else {
            start + CHUNK
        };
        &self.data[start..end]
    }

    fn params(&self, n: usize) -> Vec<(&'static str, String)> {
        vec![
            ("flowChunkNumber", n.to_string()),
            ("flowChunkSize", CHUNK.to_string()),
            ("flowCurrentChunkSize", self.chunk(n).len().to_string()),
            ("flowTotalSize", self.data.len().to_string()),
            ("flowIdentifier", self.identifier.clone()),
            ("flowFilename", self.name.clone()),
            ("flowRelativePath", self.name.clone()),
            ("flowTotalChunks", self.total().to_string()),
        ]
    }
}

/// An answer, read whole.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn read(response: Response) -> Answer {
        let status = response.status().as_u16();
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let body = response.text().expect("an answer body");
        Answer {
            status,
            set_cookies,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The `cu_session=...` pair of the one session cookie the answer sets, if any.
    fn session_cookie(&self) -> Option<String> {
        assert!(self.set_cookies.len() <= 1, "{self:?}");
        let set = self.set_cookies.first()?;
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        set.split(';').next().map(str::to_owned)
    }

    fn is_assembled(&self, fresh: bool) -> bool {
        self.status == 200 && {
            let json = self.json();
            json["status"] == "assembled" && json["fresh"] == fresh
        }
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("a client")
}

/// Headers of one request: name, value.
type Headers<'a> = &'a [(&'a str, &'a str)];

fn post_chunk(url: &str, headers: Headers<'_>, file: &FlowFile, n: usize) -> Answer {
    let mut form = multipart::Form::new();
    for (k, v) in file.params(n) {
        form = form.text(k, v);
    }
    let part = multipart::Part::bytes(file.chunk(n).to_vec()).file_name("blob");
    let mut request = client().post(url).multipart(form.part("file", part));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().expect("POST a chunk"))
}

fn test_chunk(url: &str, headers: Headers<'_>, file: &FlowFile, n: usize) -> Answer {
    let mut request = client().get(url).query(&file.params(n));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().expect("GET a test request"))
}

fn get(url: &str, headers: Headers<'_>) -> Answer {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().expect("GET"))
}

fn finalize(url: &str, headers: Headers<'_>, file: &FlowFile) -> Answer {
    let mut request = client().post(url).form(&file.params(file.total()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().expect("POST a finalize request"))
}

/// Every chunk of `file` posted at once, one thread each, released together by a barrier.
fn post_all_at_once(url: &str, headers: Headers<'_>, file: &FlowFile) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(file.total()));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let threads: Vec<_> = (1..=file.total())
        .map(|n| {
            let (barrier, file, url, headers) = (
                barrier.clone(),
                file.clone(),
                url.to_owned(),
                headers.clone(),
            );
            thread::spawn(move || {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                barrier.wait();
                post_chunk(&url, &headers, &file, n)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a chunk thread"))
        .collect()
}

/// Files below `dir` (recursively), relative.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Files in `dir` whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> BTreeSet<String> {
    files_below(dir)
        .into_iter()
        .filter(|name| name.starts_with(prefix))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// A scope extractor that refuses a request is the answer: its own status and body, for chunks,
/// test requests, finalize and progress; nothing is stored. With credentials the same routes
/// work, and each user sees only their own uploads.
pub fn scope_extractor_refuses(x: &Checks) {
    let upload = format!("{}/authed/upload", x.origin);
    let file = FlowFile::new("32768-authed", "authed.bin", 2 * CHUNK, 1);
    // Small bodies for the refused uploads: a server that answers before reading the body may
    // close the connection on the rest of it, and a large body then loses the client its
    // answer (hyper does so).
    let tiny = FlowFile::new("5-authed-tiny", "authed-tiny.bin", 5, 1);
    let refused = [
        post_chunk(&upload, &[], &tiny, 1),
        post_chunk(&upload, &[("authorization", "Basic x")], &tiny, 1),
        test_chunk(&upload, &[], &file, 1),
        finalize(&format!("{upload}/done"), &[], &file),
        get(&format!("{}/authed/progress", x.origin), &[]),
        get(
            &format!("{}/authed/progress/{}", x.origin, file.identifier),
            &[],
        ),
    ];
    for answer in &refused {
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (401, REFUSAL),
            "{answer:?}"
        );
        assert!(answer.set_cookies.is_empty(), "{answer:?}");
    }
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    let nothing_stored = test_chunk(&upload, &alice, &tiny, 1);
    assert_eq!(nothing_stored.status, 204, "{nothing_stored:?}");
    let first = post_chunk(&upload, &alice, &file, 1);
    assert_eq!(first.json()["status"], "chunk_stored", "{first:?}");
    // Bob's finalize and progress know nothing of alice's upload.
    let theirs = finalize(&format!("{upload}/done"), &bob, &file);
    assert_eq!(theirs.status, 404, "{theirs:?}");
    let bobs = get(&format!("{}/authed/progress", x.origin), &bob);
    assert_eq!(bobs.status, 200);
    assert!(!bobs.body.contains(&file.identifier), "{bobs:?}");
    let alices = get(&format!("{}/authed/progress", x.origin), &alice);
    assert!(alices.body.contains(&file.identifier), "{alices:?}");
    let done = post_chunk(&upload, &alice, &file, 2);
    assert!(done.is_assembled(true), "{done:?}");
    assert_eq!(
        std::fs::read(x.root.join("files").join(&file.name)).unwrap(),
        file.data
    );
}

/// The cookie value of a `cu_session=...` pair.
fn cookie_value(pair: &str) -> &str {
    pair.strip_prefix("cu_session=")
        .unwrap_or_else(|| panic!("not a session cookie: {pair}"))
}

/// A widget on a page the server did not serve: every chunk of a new upload posted at once
/// without a cookie. They all get the same signed session (the cookie of every answer is the
/// same), the file is assembled exactly once, byte-identical, and later requests with the cookie
/// are in that session (no new cookie). Ten files, a different browser each.
pub fn cookieless_parallel_chunks_share_a_session(x: &Checks) {
    let upload = format!("{}/session/upload", x.origin);
    let mut sessions = BTreeSet::new();
    for round in 0..10u8 {
        let agent = format!("adapter-test-browser/{round}");
        let headers = [("user-agent", agent.as_str())];
        let name = format!("session-parallel-{round}.bin");
        let file = FlowFile::new(&format!("{}-{name}", 6 * CHUNK), &name, 6 * CHUNK, round);
        let answers = post_all_at_once(&upload, &headers, &file);
        let cookies: BTreeSet<String> = answers
            .iter()
            .map(|a| {
                assert_eq!(a.status, 200, "{a:?}");
                a.session_cookie()
                    .expect("each cookieless answer sets the session")
            })
            .collect();
        assert_eq!(cookies.len(), 1, "round {round}: {cookies:?}");
        let cookie = cookies.into_iter().next().unwrap();
        let session = x
            .sessions
            .verify(cookie_value(&cookie))
            .expect("a cookie the server signed");
        assert!(sessions.insert(session), "a new browser, a new session");
        let fresh = answers.iter().filter(|a| a.is_assembled(true)).count();
        assert_eq!(fresh, 1, "round {round}: {answers:?}");
        assert_eq!(
            named(&x.root.join("files"), &name.replace(".bin", "")),
            BTreeSet::from([name.clone()]),
            "assembled once"
        );
        assert_eq!(
            std::fs::read(x.root.join("files").join(&name)).unwrap(),
            file.data
        );
        // With the cookie: the same session, nothing to set.
        let with_cookie = [("user-agent", agent.as_str()), ("cookie", cookie.as_str())];
        // (A test of an assembled upload asks for the bytes again: 204.)
        let test = test_chunk(&upload, &with_cookie, &file, 1);
        assert_eq!(test.status, 204, "{test:?}");
        assert!(test.set_cookies.is_empty(), "{test:?}");
        let done = finalize(&format!("{upload}/done"), &with_cookie, &file);
        assert!(done.is_assembled(false), "{done:?}");
    }
}

/// Test requests and finalize without a cookie land in the session the chunks did (the same
/// browser), and a progress query too.
pub fn cookieless_tests_and_finalize_share_the_session(x: &Checks) {
    let upload = format!("{}/session/upload", x.origin);
    let headers = [
        ("user-agent", "adapter-test-tests-and-finalize"),
        ("accept-language", "fr"),
    ];
    let file = FlowFile::new("32768-session-tests.bin", "session-tests.bin", 2 * CHUNK, 9);
    let before = test_chunk(&upload, &headers, &file, 1);
    assert_eq!(before.status, 204, "{before:?}");
    let cookie = before
        .session_cookie()
        .expect("a test request gets the session too");
    let stored = post_chunk(&upload, &headers, &file, 1);
    assert_eq!(stored.session_cookie().as_ref(), Some(&cookie));
    let present = test_chunk(&upload, &headers, &file, 1);
    assert_eq!(present.status, 200, "{present:?}");
    let incomplete = finalize(&format!("{upload}/done"), &headers, &file);
    assert_eq!(incomplete.status, 400, "{incomplete:?}");
    assert!(incomplete.body.contains("1 of 2"), "{incomplete:?}");
    let progress = get(&format!("{}/session/progress", x.origin), &headers);
    assert!(progress.body.contains(&file.identifier), "{progress:?}");
    assert_eq!(progress.session_cookie().as_ref(), Some(&cookie));
    assert_eq!(post_chunk(&upload, &headers, &file, 2).status, 200);
    let done = finalize(&format!("{upload}/done"), &headers, &file);
    assert!(done.is_assembled(false), "{done:?}");
}

/// A `cu_session` cookie the server did not issue is not a session: forged, unsigned,
/// upper-cased, cut short, or another session's tag. Each gets a fresh signed session instead,
/// and none sees the real session's upload.
pub fn unsigned_cookies_are_not_sessions(x: &Checks) {
    let upload = format!("{}/session/upload", x.origin);
    let agent = [("user-agent", "adapter-test-forgery-victim")];
    let file = FlowFile::new("32768-victim.bin", "session-victim.bin", 2 * CHUNK, 3);
    let first = post_chunk(&upload, &agent, &file, 1);
    assert_eq!(first.json()["status"], "chunk_stored", "{first:?}");
    let real = first.session_cookie().expect("a session");
    let value = cookie_value(&real).to_owned();
    let (session, tag) = value.split_once('.').expect("session.tag");
    let forged = [
        format!("cu_session={session}"),
        format!("cu_session={}", "ab".repeat(16)),
        format!("cu_session={}", value.to_ascii_uppercase()),
        format!("cu_session={}.{tag}", session.to_ascii_uppercase()),
        format!("cu_session={}", &value[..value.len() - 2]),
        format!("cu_session={}.{tag}", "0".repeat(32)),
        format!("cu_session={session}.{}", "f".repeat(64)),
    ];
    for cookie in &forged {
        // A forged cookie, even from the victim's address and browser.
        let headers = [
            ("user-agent", "adapter-test-forgery-victim"),
            ("cookie", cookie.as_str()),
        ];
        let test = test_chunk(&upload, &headers, &file, 1);
        assert_eq!(
            test.status, 204,
            "{cookie}: the victim's chunk is not visible"
        );
        let fresh = test.session_cookie().expect("a fresh session");
        let fresh_session = x
            .sessions
            .verify(cookie_value(&fresh))
            .expect("signed by the server");
        assert_ne!(fresh_session, session, "{cookie}");
        let progress = get(&format!("{}/session/progress", x.origin), &headers);
        assert!(
            !progress.body.contains(&file.identifier),
            "{cookie}: {progress:?}"
        );
        let done = finalize(&format!("{upload}/done"), &headers, &file);
        assert_eq!(done.status, 404, "{cookie}: {done:?}");
    }
    // The real cookie still works, with no new cookie.
    let headers = [("cookie", real.as_str())];
    let present = test_chunk(&upload, &headers, &file, 1);
    assert_eq!(present.status, 200, "{present:?}");
    assert!(present.set_cookies.is_empty());
    assert!(post_chunk(&upload, &headers, &file, 2).is_assembled(true));
}

/// Two scopes, the same file name, one destination folder: the second upload is refused with
/// 409, and the answer holds no path and no file name. With a folder per scope, both succeed.
pub fn conflicts_tell_nothing_about_other_scopes(x: &Checks) {
    let name = "conflict-same-name.bin";
    let a = FlowFile::new("16384-conflict", name, CHUNK, 4);
    let b = FlowFile::new("16384-conflict", name, CHUNK, 5);
    let shared = format!("{}/shared/upload", x.origin);
    let first = post_chunk(&shared, &[("x-scope", "alice")], &a, 1);
    assert!(first.is_assembled(true), "{first:?}");
    let second = post_chunk(&shared, &[("x-scope", "bob")], &b, 1);
    assert_eq!(second.status, 409, "{second:?}");
    let root = x.root.to_string_lossy();
    for leak in [root.as_ref(), env!("CARGO_TARGET_TMPDIR"), name, "/"] {
        assert!(!second.body.contains(leak), "{leak:?} in {second:?}");
    }
    assert_eq!(second.json()["preventRetry"], true);

    let private = format!("{}/private/upload", x.origin);
    for (scope, file) in [("alice", &a), ("bob", &b)] {
        let answer = post_chunk(&private, &[("x-scope", scope)], file, 1);
        assert!(answer.is_assembled(true), "{answer:?}");
        assert_eq!(answer.json()["file"]["name"], name);
        let path = x.root.join("private").join(scope_folder(scope)).join(name);
        assert_eq!(std::fs::read(&path).unwrap(), file.data, "{scope}");
    }
}

/// A router of the adapter's scope checks: one `#[test]` each.
#[macro_export]
macro_rules! scope_checks {
    ($checks:expr) => {
        #[test]
        fn scope_extractor_refuses() {
            adapter_support::scope_extractor_refuses($checks);
        }

        #[test]
        fn cookieless_parallel_chunks_share_a_session() {
            adapter_support::cookieless_parallel_chunks_share_a_session($checks);
        }

        #[test]
        fn cookieless_tests_and_finalize_share_the_session() {
            adapter_support::cookieless_tests_and_finalize_share_the_session($checks);
        }

        #[test]
        fn unsigned_cookies_are_not_sessions() {
            adapter_support::unsigned_cookies_are_not_sessions($checks);
        }

        #[test]
        fn conflicts_tell_nothing_about_other_scopes() {
            adapter_support::conflicts_tell_nothing_about_other_scopes($checks);
        }
    };
}
