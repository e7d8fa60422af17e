//! What the HTTP reliability tests share: the example server as a process (start, `kill -9`,
//! restart on the same folder, optionally under a file-size rlimit), a small HTTP/1.1 client
//! that sends exactly the bytes it is given (hostile query strings, lying bodies, bodies cut off
//! by a crash), flow.js requests carrying the session cookie, and a resume the way flow.js
//! resumes (a test `GET` per chunk, a `POST` for each one answered 204).
//!
//! Every test file that uses it also has `mod common;` (the `FlowFile` model, data, listings).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chunked_upload::adapter::{SessionKey, SessionRequest, Sessions};

use crate::common::FlowFile;

/// The name of the example server's session cookie (its value is the upload scope).
pub const SESSION_COOKIE: &str = "cu_session";

/// The key the test servers sign sessions with (`--signing-key`), unless a test says otherwise.
pub const SIGNING_KEY: &str = "server-tests-signing-key-0123456789abcdef";

/// Generous, for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the long run was asked for (`CHUNKED_UPLOAD_LONG=1`).
pub fn long_run() -> bool {
    std::env::var_os("CHUNKED_UPLOAD_LONG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `normal` iterations, or `long` with `CHUNKED_UPLOAD_LONG=1`.
pub fn iterations(normal: u64, long: u64) -> u64 {
    if long_run() { long } else { normal }
}

/// The example binary cargo built next to this test (`target/<profile>/examples/server`), built
/// first if it is missing (a `cargo test --test NAME` run; such a run does not rebuild it when
/// it is stale: `cargo build --all-features --examples` first). `CHUNKED_UPLOAD_SERVER=PATH`
/// runs the suites against another build of it (an older commit's, say).
pub fn example_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHUNKED_UPLOAD_SERVER") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the profile dir");
    let binary = profile_dir.join("examples").join("server");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("the target dir");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", "server", "--features", "axum"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example server failed");
    }
    binary
}

/// A fresh folder under cargo's temp dir for the tests (removed when dropped).
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir")
}

/// How to start the example server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--dir`: where assembled files go (chunks in `DIR/.chunks`).
    pub dir: PathBuf,
    /// More flags (`--max-chunk-size`, `--sweep-interval`, ...).
    pub args: Vec<String>,
    /// A file-size rlimit in bytes (`ulimit -f`, with SIGXFSZ ignored so writes past it fail
    /// with `EFBIG`). A multiple of 512.
    pub file_size_limit: Option<u64>,
    /// `--signing-key` ([`SIGNING_KEY`] by default); `None`: the server generates one.
    pub signing_key: Option<String>,
    /// More environment variables for the server.
    pub env: Vec<(String, String)>,
}

impl Options {
    pub fn new(dir: &Path) -> Options {
        Options {
            dir: dir.to_path_buf(),
            args: Vec::new(),
            file_size_limit: None,
            signing_key: Some(SIGNING_KEY.to_owned()),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, name: &str, value: impl ToString) -> Options {
        self.env.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn signing_key(mut self, key: Option<&str>) -> Options {
        self.signing_key = key.map(str::to_owned);
        self
    }

    pub fn arg(mut self, flag: &str, value: impl ToString) -> Options {
        self.args.push(flag.to_owned());
        self.args.push(value.to_string());
        self
    }

    pub fn file_size_limit(mut self, bytes: u64) -> Options {
        assert_eq!(bytes % 512, 0, "ulimit -f counts 512-byte blocks");
        self.file_size_limit = Some(bytes);
        self
    }
}

/// The example server as a process on a free port of 127.0.0.1; killed (SIGKILL) when dropped,
/// so a failing test leaves nothing running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub url: String,
    pub options: Options,
    log: tempfile::NamedTempFile,
}

impl Server {
    pub fn start(options: &Options) -> Server {
        let log = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).expect("a log");
        let binary = example_binary();
        let mut command = match options.file_size_limit {
            None => Command::new(&binary),
            Some(bytes) => {
                // dash and bash (as sh) count `ulimit -f` in 512-byte blocks. An ignored signal
                // stays ignored across exec, so the server's writes past the limit fail with
                // EFBIG instead of killing it.
                let mut sh = Command::new("sh");
                sh.args([
                    "-c",
                    "trap '' XFSZ; ulimit -f \"$1\" || exit 97; shift; exec \"$@\"",
                    "sh",
                ])
                .arg((bytes / 512).to_string())
                .arg(&binary);
                sh
            }
        };
        command
            .args(["--addr", "127.0.0.1:0"])
            .arg("--dir")
            .arg(&options.dir)
            .args(&options.args)
            .args(
                options
                    .signing_key
                    .iter()
                    .flat_map(|key| ["--signing-key", key.as_str()]),
            )
            .env_remove("CHUNKED_UPLOAD_SIGNING_KEY")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file"));
        let mut child = command.spawn().expect("start the example server");
        // The server logs to stdout too, and its first sweep may log before it prints its
        // address: read up to the line with the address, keep the others in the log, and keep
        // draining stdout into the log afterwards.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut sink = log.reopen().expect("the log file");
        let mut url = None;
        let mut line = String::new();
        while url.is_none() {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned);
            if url.is_none() {
                let _ = sink.write_all(line.as_bytes());
            }
        }
        thread::spawn(move || std::io::copy(&mut stdout, &mut sink));
        let Some(url) = url else {
            let _ = child.kill();
            let status = child.wait();
            let log = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("the server did not start ({status:?}):\n{log}");
        };
        let url = url.trim_end_matches('/').to_owned();
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("a socket address");
        Server {
            child,
            addr,
            url,
            options: options.clone(),
            log,
        }
    }

    /// The process id (the server's own, also when started through `sh`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap the server");
    }

    /// What the server logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("poll the server").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sessions of the test servers ([`SIGNING_KEY`]).
pub fn sessions() -> Sessions {
    Sessions::new(SessionKey::new(SIGNING_KEY).expect("a key"))
}

/// A new session cookie value, as the example server signs them with [`SIGNING_KEY`] (what a
/// browser has after loading the page).
pub fn new_session() -> String {
    let scope = sessions().page_scope(&SessionRequest::default());
    let set_cookie = scope.set_cookie().expect("a new session's cookie");
    session_of_set_cookie(set_cookie).expect("a session cookie")
}

/// The value of the `cu_session` cookie a `Set-Cookie` header sets.
pub fn session_of_set_cookie(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?;
    pair.strip_prefix(&format!("{SESSION_COOKIE}="))
        .map(str::to_owned)
}

/// The `Cookie` header value for a session.
pub fn cookie(session: &str) -> String {
    format!("{SESSION_COOKIE}={session}")
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: one connection per request (`Connection: close`), the body written by a
// second thread so that an answer sent before the body is read (a refusal, a full disk) is
// received, whatever becomes of the rest of the body.

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// The `cu_session` value the answer's `Set-Cookie` sets, if it sets one.
    pub fn session(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, value)| session_of_set_cookie(value))
    }

    /// The JSON `error` member, or "" if there is none.
    pub fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// `status == "assembled"` with `fresh` as given.
    pub fn is_assembled(&self, fresh: Option<bool>) -> bool {
        if self.status != 200 {
            return false;
        }
        let json = self.json();
        json["status"] == "assembled" && fresh.is_none_or(|f| json["fresh"] == f)
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Answer {
        assert_eq!(self.status, status, "{self}");
        self
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.text())
    }
}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path and query, sent exactly as given (`/upload?flowChunkNumber=%00`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Shut the connection's write side after the body, so the server sees where a body
    /// shorter than its `Content-Length` ends. (hyper closes a half-closed connection as soon
    /// as it notices, answered or not: only for bodies that need it.)
    pub half_close: bool,
}

impl Request {
    pub fn new(method: &str, target: impl Into<String>) -> Request {
        Request {
            method: method.to_owned(),
            target: target.into(),
            ..Request::default()
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn half_close(mut self) -> Request {
        self.half_close = true;
        self
    }

    pub fn cookie(self, session: &str) -> Request {
        self.header("Cookie", cookie(session))
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Request {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    /// The request head; `Content-Length` is the body's length unless a header sets it (or
    /// sets `Transfer-Encoding`).
    pub fn head(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\n",
            self.method, self.target
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let has_length = self.headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        if !has_length && (!self.body.is_empty() || self.method != "GET") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }

    /// Sends the request and reads the answer.
    #[track_caller]
    pub fn send(&self, addr: SocketAddr) -> Answer {
        self.try_send(addr)
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.target))
    }

    /// Sends the request; `Err` when the connection fails before a whole answer arrives.
    pub fn try_send(&self, addr: SocketAddr) -> std::io::Result<Answer> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let mut bytes = self.head(addr);
        bytes.extend_from_slice(&self.body);
        let half_close = self.half_close;
        // The server may answer (and close) before reading the whole body: write on the side.
        let writing = thread::spawn(move || {
            let result = writer.write_all(&bytes);
            let _ = writer.flush();
            if half_close {
                let _ = writer.shutdown(Shutdown::Write);
            }
            result
        });
        let answer = read_answer(stream);
        let _ = writing.join();
        answer
    }
}

/// Reads a whole HTTP/1.1 response from a connection the server closes after it; `Err` when
/// the connection ends (closed or reset) before a whole answer arrives.
pub fn read_answer(mut stream: TcpStream) -> std::io::Result<Answer> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut parsed = None;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer (the server closed with part of the body unread).
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
        if parsed.is_none() {
            parsed = parse_head(&raw);
        }
        if let Some((head_len, _, _, Some(length))) = &parsed
            && raw.len() >= head_len + length
        {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let Some((head_len, status, headers, length)) = parse_head(&raw) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no complete answer: {:?}", String::from_utf8_lossy(&raw)),
        ));
    };
    let rest = &raw[head_len..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

type Head = (usize, u16, Vec<(String, String)>, Option<usize>);

fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .or(if status == 204 { Some(0) } else { None });
    Some((end, status, headers, length))
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}

/// A request whose body trickles out (`piece` bytes every `pause`) on a thread of its own, so
/// that a kill lands while the server streams it. It stops after `stop_after` bytes of the body
/// (a client whose connection stalls) and waits for an answer that cannot come, so a kill then
/// always lands mid-body. `sent` counts the body bytes written; the thread ends when the
/// connection ends (or with the answer, if the whole body was sent).
pub struct SlowSend {
    pub sent: Arc<AtomicU64>,
    pub total: u64,
    pub stop_after: u64,
    thread: thread::JoinHandle<std::io::Result<Answer>>,
}

impl SlowSend {
    pub fn start(
        addr: SocketAddr,
        request: Request,
        piece: usize,
        pause: Duration,
        stop_after: u64,
    ) -> SlowSend {
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        let total = request.body.len() as u64;
        let thread = thread::spawn(move || {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            stream.set_nodelay(true)?;
            stream.write_all(&request.head(addr))?;
            let body = &request.body[..(stop_after.min(total)) as usize];
            for bytes in body.chunks(piece.max(1)) {
                stream.write_all(bytes)?;
                counter.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                thread::sleep(pause);
            }
            read_answer(stream)
        });
        SlowSend {
            sent,
            total,
            stop_after: stop_after.min(total),
            thread,
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// The answer, or the error that ended the connection.
    pub fn join(self) -> std::io::Result<Answer> {
        self.thread.join().expect("the sending thread panicked")
    }
}

/// What became of bytes sent slowly: the answer (or how the connection ended without one) and
/// the time from connecting to that.
#[derive(Debug)]
pub struct Sent {
    pub answer: std::io::Result<Answer>,
    pub elapsed: Duration,
}

impl Sent {
    /// The status of the answer, or `None` when the server closed the connection without one.
    pub fn status(&self) -> Option<u16> {
        self.answer.as_ref().ok().map(|a| a.status)
    }
}

/// How [`send_slowly`] sends.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Bytes sent at once first.
    pub first: usize,
    /// Then pieces of this many bytes...
    pub piece: usize,
    /// ... with this pause after each ...
    pub pause: Duration,
    /// ... until this many bytes are sent in all; then the client falls silent.
    pub stop_after: usize,
}

/// Connects, writes `bytes` at `pace`, and reads whatever the server answers meanwhile: its
/// answer, or the end of the connection. Writing goes on on a thread of its own and stops
/// when the server closes the connection.
pub fn send_slowly(addr: SocketAddr, bytes: Vec<u8>, pace: Pace) -> Sent {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().expect("a second handle");
    let writing = thread::spawn(move || {
        let bytes = &bytes[..pace.stop_after.min(bytes.len())];
        let (first, rest) = bytes.split_at(pace.first.min(bytes.len()));
        if writer.write_all(first).is_err() {
            return;
        }
        for piece in rest.chunks(pace.piece.max(1)) {
            if writer.write_all(piece).is_err() {
                return;
            }
            thread::sleep(pace.pause);
        }
    });
    let answer = read_answer(stream);
    let elapsed = started.elapsed();
    drop(writing);
    Sent { answer, elapsed }
}

/// The `VmRSS` (resident now) or `VmHWM` (peak resident) of a process, in KiB.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// flow.js requests.

/// How a chunk travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `multipart/form-data`: the fields, then the part `file` (what flow.js sends).
    Multipart,
    /// `multipart/form-data` with the file part first (the server stages it in `.incoming`).
    FileFirst,
    /// flow.js `method: 'octet'`: the parameters in the query string, the raw chunk as body.
    Octet,
}

impl Body {
    pub const ALL: [Body; 3] = [Body::Multipart, Body::FileFirst, Body::Octet];
}

/// The flow.js parameters of chunk `n` (1-based) of `file`, as name/value pairs.
pub fn flow_pairs(file: &FlowFile, n: u64) -> Vec<(String, String)> {
    file.params(n)
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Percent-encodes pairs as a query string.
pub fn query(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Replaces (or adds) parameter `name`.
pub fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    pairs.retain(|(n, _)| n != name);
    pairs.push((name.to_owned(), value.to_owned()));
}

/// Removes parameter `name`.
pub fn without(mut pairs: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    pairs.retain(|(n, _)| n != name);
    pairs
}

const BOUNDARY: &str = "----chunked-upload-reliability-9f3c2a";

/// The multipart content type of [`multipart`] bodies.
pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A `multipart/form-data` body: text fields (raw bytes, so a test may send invalid UTF-8) and
/// an optional file part `(field name, filename, bytes)`, before or after the fields.
pub fn multipart(
    fields: &[(String, Vec<u8>)],
    file: Option<(&str, &str, &[u8])>,
    file_first: bool,
) -> Vec<u8> {
    let mut body = Vec::new();
    let file_part = |body: &mut Vec<u8>| {
        if let Some((name, filename, bytes)) = file {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                     filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
    };
    if file_first {
        file_part(&mut body);
    }
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    if !file_first {
        file_part(&mut body);
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A `multipart/form-data` body with text fields before the file part and more after it.
pub fn multipart_around(
    before: &[(String, Vec<u8>)],
    file: (&str, &str, &[u8]),
    after: &[(String, Vec<u8>)],
) -> Vec<u8> {
    let mut body = multipart(before, Some(file), false);
    // Drop the closing delimiter, add the late fields, close again.
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    let mut rest = multipart(after, None, false);
    body.append(&mut rest);
    body
}

/// Text fields from name/value pairs.
pub fn fields(pairs: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect()
}

/// A chunk upload with these parameters and bytes, as `body` says.
pub fn upload_request(pairs: &[(String, String)], chunk: &[u8], body: Body) -> Request {
    match body {
        Body::Octet => Request::new("POST", format!("/upload?{}", query(pairs)))
            .body("application/octet-stream", chunk.to_vec()),
        Body::Multipart | Body::FileFirst => Request::new("POST", "/upload").body(
            &multipart_type(),
            multipart(
                &fields(pairs),
                Some(("file", "blob", chunk)),
                body == Body::FileFirst,
            ),
        ),
    }
}

/// Chunk `n` of `file`, posted by `session`.
pub fn flow_post(addr: SocketAddr, session: &str, file: &FlowFile, n: u64, body: Body) -> Answer {
    upload_request(&flow_pairs(file, n), &file.data[file.range(n)], body)
        .cookie(session)
        .send(addr)
}

/// flow.js's test `GET` for chunk `n` of `file`.
pub fn flow_test(addr: SocketAddr, session: &str, file: &FlowFile, n: u64) -> Answer {
    Request::new("GET", format!("/upload?{}", query(&flow_pairs(file, n))))
        .cookie(session)
        .send(addr)
}

/// Resumes `file` the way flow.js does after a page reload: a test `GET` per chunk, a `POST` of
/// each chunk answered 204. Every answer must be 200 or 204; returns the answers that said
/// "assembled" (fresh or not) and the number of chunks posted.
#[track_caller]
pub fn resume(addr: SocketAddr, session: &str, file: &FlowFile, body: Body) -> (Vec<Answer>, u64) {
    let mut assembled = Vec::new();
    let mut posted = 0;
    for n in 1..=file.total_chunks() {
        let test = flow_test(addr, session, file, n);
        let answer = match test.status {
            200 => test,
            204 => {
                posted += 1;
                flow_post(addr, session, file, n, body)
            }
            _ => panic!("test GET of chunk {n}: {test}"),
        };
        assert_eq!(answer.status, 200, "chunk {n}: {answer}");
        if answer.is_assembled(None) {
            assembled.push(answer);
        }
    }
    (assembled, posted)
}

// ---------------------------------------------------------------------------------------------
// Folders.

/// Every entry below `dir` (hidden ones and directories too), relative, sorted.
pub fn tree(dir: &Path) -> BTreeSet<String> {
    crate::common::all_entries(dir).into_iter().collect()
}

/// Regular files in `dir` (not below it), hidden ones included.
pub fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Staging leftovers below the temp dir and the upload dir: chunk bodies being written
/// (`.stage-*`), bodies that arrived before their parameters (`.incoming/*`), assemblies in
/// progress (`*.part` beside the destination, `assembling.json`).
pub fn staging_leftovers(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|e| {
            let name = e.rsplit('/').next().unwrap_or(e);
            name.starts_with(".stage-")
                || name.ends_with(".part")
                || name.ends_with(".part.link")
                || name == "assembling.json"
        })
        .collect()
}

/// Sets the modification time of every staging file below `dir` to an hour ago, as if the
/// sweep's grace period had passed.
pub fn age_staging_files(dir: &Path) {
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in tree(dir) {
        let name = entry.rsplit('/').next().unwrap_or(&entry);
        let path = dir.join(&entry);
        if name.starts_with(".stage-") && path.is_file() {
            let file = std::fs::File::options().write(true).open(&path);
            if let Ok(file) = file {
                let _ = file.set_modified(old);
            }
        }
    }
}

/// Polls `pred` every few milliseconds until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// SHA-1-free byte comparison that prints sizes instead of megabytes of bytes.
#[track_caller]
pub fn assert_same_bytes(path: &Path, expected: &[u8], context: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{context}: {}: {e}", path.display()));
    assert!(
        got.len() == expected.len() && got == expected,
        "{context}: {} has {} bytes, expected {} (contents differ)",
        path.display(),
        got.len(),
        expected.len()
    );
}
