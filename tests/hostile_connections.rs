//! Hostile connections against the example server (a real process), as an attacker on
//! loopback would make them (issue 11):
//!
//! - memory: 100 connections at once of each kind (a multipart part header that never ends, 250
//!   text fields of 8 KiB, text fields up to the form limit then silence, half a request head,
//!   nothing at all, an urlencoded body trickling a byte a second) must add less than 64 MiB
//!   to the server's resident memory, peak included (`VmHWM`, `/proc/PID/status`), with an
//!   honest upload completing beside them; the figure per connection is printed;
//! - deadlines: with small limits given as flags, every phase of a request ends on time: a
//!   silent connection, a half-sent or trickled request head and an idle keep-alive connection
//!   are closed after `--head-timeout`; a form whose fields stall or trickle gets 408 after
//!   `--idle-timeout` or `--fields-timeout`; a chunk body that stalls, trickles or drags on
//!   gets 408 after `--idle-timeout`, `--body-window` or `--body-timeout`.
//!
//! ```text
//! cargo test --all-features --test hostile_connections -- --nocapture
//! ```

mod common;
mod server_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{FlowFile, bytes};
use server_support::{
    Body, Options, Pace, Sent, Server, assert_same_bytes, fields, flow_post, multipart,
    multipart_type, new_session, query, scratch, send_slowly, upload_request, vm_kib, wait_until,
};

/// Hostile connections opened at once.
const CONNECTIONS: usize = 100;
/// What they may add to the server's memory together, in KiB.
const BUDGET_KIB: u64 = 64 * 1024;

/// What a hostile connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A multipart `POST` whose first part header never ends (`X-Pad:` and 8.3 MB, no blank
    /// line), then silence.
    EndlessPartHeader,
    /// 250 text fields of 8 KiB (2 MB), then silence.
    ManyFields,
    /// Seven text fields of 8 KiB (just under the 64 KiB form limit), then silence: the server
    /// holds them until the fields deadline.
    FieldsThenStall,
    /// 60 KiB of a request head that never ends (under the 64 KiB head limit).
    HalfHead,
    /// Connects and sends nothing.
    Silent,
    /// An urlencoded `POST` of 1000 bytes, sent one byte a second.
    TrickleForm,
}

impl Kind {
    /// The bytes sent at once, and whether more trickle after them.
    fn bytes(self, addr: SocketAddr) -> (Vec<u8>, bool) {
        let head = |content_type: &str, length: usize| {
            format!(
                "POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {length}\r\n\r\n"
            )
            .into_bytes()
        };
        let form = |fields: usize, size: usize| {
            let fields: Vec<(String, Vec<u8>)> = (0..fields)
                .map(|i| (format!("field{i}"), vec![b'v'; size]))
                .collect();
            let body = multipart(&fields, None, false);
            // Leave out the closing delimiter: the form is never finished.
            let body = &body[..body.len() - 50];
            // Declare more than is sent, so the server waits for the rest.
            [head(&multipart_type(), body.len() + 1000), body.to_vec()].concat()
        };
        match self {
            Kind::EndlessPartHeader => {
                let mut body = format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"flowIdentifier\"\r\nX-Pad: ",
                    &multipart_type()["multipart/form-data; boundary=".len()..]
                )
                .into_bytes();
                body.extend(std::iter::repeat_n(b'a', 8_300_000));
                (
                    [head(&multipart_type(), body.len() + 1000), body].concat(),
                    false,
                )
            }
            Kind::ManyFields => (form(250, 8 * 1024), false),
            Kind::FieldsThenStall => (form(7, 8 * 1024), false),
            Kind::HalfHead => {
                let mut head =
                    format!("POST /upload HTTP/1.1\r\nHost: {addr}\r\nX-Pad: ").into_bytes();
                head.extend(std::iter::repeat_n(b'a', 60 * 1024));
                (head, false)
            }
            Kind::Silent => (Vec::new(), false),
            Kind::TrickleForm => (head("application/x-www-form-urlencoded", 1000), true),
        }
    }
}

/// A hostile client on a thread of its own: it sends its bytes (and trickles, if it does), then
/// keeps the connection open until stopped or until the server closes it.
struct Client {
    stop: Arc<AtomicBool>,
    /// Set once the initial bytes are written (or the server refused them).
    sent: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl Client {
    fn start(addr: SocketAddr, kind: Kind) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicBool::new(false));
        let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = thread::spawn(move || {
            let Ok(mut stream) = TcpStream::connect(addr) else {
                sent2.store(true, Ordering::SeqCst);
                return;
            };
            let (bytes, trickles) = kind.bytes(addr);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
            let _ = stream.write_all(&bytes);
            sent2.store(true, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut last = Instant::now();
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                match stream.read(&mut buf) {
                    Ok(0) => return, // closed by the server
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
                if trickles && last.elapsed() >= Duration::from_secs(1) {
                    if stream.write_all(b"a").is_err() {
                        return;
                    }
                    last = Instant::now();
                }
            }
            let _ = stream.shutdown(Shutdown::Both);
        });
        Client { stop, sent, thread }
    }
}

/// An honest flow.js upload of three 64 KiB chunks (multipart), checked byte for byte.
fn honest_upload(server: &Server, name: &str) {
    let session = new_session();
    let file = FlowFile::new(name, bytes(3 * 64 * 1024, 5), 64 * 1024);
    for n in 1..=3 {
        let answer = flow_post(server.addr, &session, &file, n, Body::Multipart);
        assert_eq!(answer.status, 200, "{name}: chunk {n}: {answer}");
        if n == 3 {
            assert!(answer.is_assembled(Some(true)), "{name}: {answer}");
        }
    }
    assert_same_bytes(&server.options.dir.join(name), &file.data, name);
}

/// Opens [`CONNECTIONS`] hostile connections of `kind` at once against a server with default
/// limits, measures what they add to its memory while they are open, uploads a file beside
/// them, and asserts the total stays under [`BUDGET_KIB`].
fn siege(kind: Kind) {
    let root = scratch("hostile-siege-");
    let server = Server::start(&Options::new(&root.path().join("files")));
    let pid = server.pid();
    // Warm up (runtime threads, allocator arenas, a first assembly) before the baseline.
    honest_upload(&server, "warm-up.bin");
    let before = vm_kib(pid, "VmRSS");
    let clients: Vec<Client> = (0..CONNECTIONS)
        .map(|_| Client::start(server.addr, kind))
        .collect();
    assert!(
        wait_until(Duration::from_secs(60), || clients
            .iter()
            .all(|c| c.sent.load(Ordering::SeqCst))),
        "{kind:?}: the clients could not send their bytes"
    );
    // Let the server take in what it will.
    thread::sleep(Duration::from_secs(2));
    let held = vm_kib(pid, "VmRSS");
    honest_upload(&server, "beside.bin");
    let peak = vm_kib(pid, "VmHWM");
    let added = peak.saturating_sub(before);
    let held_added = held.saturating_sub(before);
    eprintln!(
        "{kind:?}: {CONNECTIONS} connections: RSS {before} KiB before, {held} KiB with them open \
         (+{held_added} KiB, {:.1} KiB per connection), peak {peak} KiB (+{added} KiB, {:.1} \
         KiB per connection); an honest upload completed beside them",
        held_added as f64 / CONNECTIONS as f64,
        added as f64 / CONNECTIONS as f64,
    );
    assert!(
        added < BUDGET_KIB,
        "{kind:?}: {CONNECTIONS} hostile connections added {added} KiB (peak) to the server"
    );
    for client in &clients {
        client.stop.store(true, Ordering::SeqCst);
    }
    for client in clients {
        let _ = client.thread.join();
    }
}

#[test]
fn endless_part_headers_cost_bounded_memory() {
    siege(Kind::EndlessPartHeader);
}

#[test]
fn many_text_fields_cost_bounded_memory() {
    siege(Kind::ManyFields);
}

#[test]
fn fields_then_a_stall_cost_bounded_memory() {
    siege(Kind::FieldsThenStall);
}

#[test]
fn half_sent_heads_cost_bounded_memory() {
    siege(Kind::HalfHead);
}

#[test]
fn silent_connections_cost_bounded_memory() {
    siege(Kind::Silent);
}

#[test]
fn trickling_forms_cost_bounded_memory() {
    siege(Kind::TrickleForm);
}

// ---------------------------------------------------------------------------------------------
// Deadlines.

const HEAD: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(1);
const FIELDS: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_secs(3);
/// Lateness allowed on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(4);

/// What a case must end with.
#[derive(Debug, Clone, Copy)]
enum Ends {
    /// The connection closed without an answer.
    Closed,
    /// 408 with an error that says this.
    Timeout(&'static str),
}

/// Checks that `sent` ended as `ends`, no sooner than `limit` and not much later.
fn check(name: &str, sent: &Sent, ends: Ends, limit: Duration) -> Option<String> {
    let on_time = sent.elapsed >= limit.mul_f64(0.9) && sent.elapsed <= limit + SLACK;
    let complaint = |why: &str| {
        Some(format!(
            "{name}: {why} (after {:?}): {:?}",
            sent.elapsed, sent.answer
        ))
    };
    match ends {
        Ends::Closed if sent.answer.is_ok() => return complaint("answered, not closed"),
        Ends::Timeout(words) => {
            let Ok(answer) = &sent.answer else {
                return complaint("closed without an answer");
            };
            if answer.status != 408 || !answer.error().contains(words) {
                return complaint(&format!("expected 408 saying {words:?}"));
            }
        }
        Ends::Closed => {}
    }
    if !on_time {
        return complaint(&format!("not ended on time (limit {limit:?})"));
    }
    None
}

/// One deadline case: bytes sent at a pace, and how and when the server must end it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    pace: Pace,
    ends: Ends,
    limit: Duration,
}

impl Case {
    fn new(name: &'static str, bytes: Vec<u8>, pace: Pace, ends: Ends, limit: Duration) -> Case {
        Case {
            name,
            bytes,
            pace,
            ends,
            limit,
        }
    }
}

/// The head of an upload request with this content type and declared length.
fn post_head(addr: SocketAddr, target: &str, content_type: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn every_phase_of_a_request_has_a_deadline() {
    let root = scratch("hostile-deadlines-");
    let secs = |d: Duration| d.as_secs_f64().to_string();
    let server = Server::start(
        &Options::new(&root.path().join("files"))
            .arg("--head-timeout", secs(HEAD))
            .arg("--idle-timeout", secs(IDLE))
            .arg("--fields-timeout", secs(FIELDS))
            .arg("--body-window", secs(WINDOW))
            .arg("--min-body-bytes", 8192)
            .arg("--body-timeout", secs(BODY)),
    );
    let addr = server.addr;
    let ms = Duration::from_millis;

    // Octet uploads: one chunk of `len` bytes, the parameters in the query string.
    let octet = |name: &str, len: usize| {
        let file = FlowFile::new(name, bytes(len, 9), len as u64);
        let pairs = server_support::flow_pairs(&file, 1);
        let head = post_head(
            addr,
            &format!("/upload?{}", query(&pairs)),
            "application/octet-stream",
            len,
        );
        [head, file.data].concat()
    };
    let form_fields: Vec<(String, Vec<u8>)> = fields(&server_support::flow_pairs(
        &FlowFile::new("form.bin", bytes(1000, 3), 1000),
        1,
    ));
    let multipart_body = multipart(&form_fields, Some(("file", "blob", &bytes(1000, 3))), false);
    let multipart_request = [
        post_head(addr, "/upload", &multipart_type(), multipart_body.len()),
        multipart_body.clone(),
    ]
    .concat();
    // Where the file part's bytes begin.
    let file_start = multipart_request.len() - 1000 - 2 - 50;

    let head_only = format!("POST /upload HTTP/1.1\r\nHost: {addr}\r\nX-Pad: aaaa").into_bytes();
    let full_head = format!(
        "GET /files HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200)
    )
    .into_bytes();
    let form_body = [
        post_head(addr, "/upload", "application/x-www-form-urlencoded", 1000),
        vec![b'a'; 1000],
    ]
    .concat();
    let form_head = form_body.len() - 1000;
    let multipart_head = multipart_request.len() - multipart_body.len();
    let all = usize::MAX;
    let pace = |first, piece, pause, stop_after| Pace {
        first,
        piece,
        pause,
        stop_after,
    };
    let octet_head = |len: usize| octet("x", len).len() - len;
    let cases: Vec<Case> = vec![
        Case::new(
            "silent connection",
            Vec::new(),
            pace(0, 1, ms(0), 0),
            Ends::Closed,
            HEAD,
        ),
        Case::new(
            "half-sent request head",
            head_only,
            pace(all, 1, ms(0), all),
            Ends::Closed,
            HEAD,
        ),
        Case::new(
            "request head trickled (a byte per 100 ms)",
            full_head,
            pace(0, 1, ms(100), all),
            Ends::Closed,
            HEAD,
        ),
        Case::new(
            "urlencoded body trickled (a byte per 300 ms)",
            form_body.clone(),
            pace(form_head, 1, ms(300), all),
            Ends::Timeout("form's fields"),
            FIELDS,
        ),
        Case::new(
            "urlencoded body stalled",
            form_body,
            pace(form_head + 10, 1, ms(0), form_head + 10),
            Ends::Timeout("without a byte"),
            IDLE,
        ),
        Case::new(
            "multipart fields stalled",
            multipart_request.clone(),
            pace(multipart_head + 300, 1, ms(0), multipart_head + 300),
            Ends::Timeout("without a byte"),
            IDLE,
        ),
        Case::new(
            "multipart fields trickled (a byte per 300 ms)",
            multipart_request.clone(),
            pace(multipart_head, 1, ms(300), all),
            Ends::Timeout("form's fields"),
            FIELDS,
        ),
        Case::new(
            "multipart file part stalled",
            multipart_request.clone(),
            pace(file_start + 100, 1, ms(0), file_start + 100),
            Ends::Timeout("without a byte"),
            IDLE,
        ),
        Case::new(
            "chunk body stalled",
            octet("stall.bin", 100_000),
            pace(
                octet_head(100_000) + 20_000,
                1,
                ms(0),
                octet_head(100_000) + 20_000,
            ),
            Ends::Timeout("without a byte"),
            IDLE,
        ),
        Case::new(
            "chunk body trickled (200 bytes per 100 ms, under 8 KiB per 2 s)",
            octet("trickle.bin", 100_000),
            pace(octet_head(100_000), 200, ms(100), all),
            Ends::Timeout("fewer than the 8192 required"),
            WINDOW,
        ),
        Case::new(
            "chunk body dragging on (8 KiB per 100 ms, 1 MiB)",
            octet("drag.bin", 1 << 20),
            pace(octet_head(1 << 20), 8 * 1024, ms(100), all),
            Ends::Timeout("chunk's body"),
            BODY,
        ),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|case| {
            let Case {
                name,
                bytes,
                pace,
                ends,
                limit,
            } = case;
            let run = thread::spawn(move || send_slowly(addr, bytes, pace));
            (name, run, ends, limit)
        })
        .collect();

    // An idle keep-alive connection is closed once its head deadline passes after an answer.
    let keep_alive = thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(stream, "GET /files HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        // The answer: its head and its Content-Length bytes.
        let answered = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed before answering");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a content length");
                if raw.len() >= end + 4 + length {
                    break Instant::now();
                }
            }
        };
        let closed = stream.read(&mut buf);
        (closed.map(|n| n == 0).unwrap_or(true), answered.elapsed())
    });

    let mut complaints = Vec::new();
    for (name, run, ends, limit) in runs {
        let sent = run.join().expect("the sending thread");
        eprintln!("{name}: {:?} after {:?}", sent.status(), sent.elapsed);
        complaints.extend(check(name, &sent, ends, limit));
    }
    let (closed, after) = keep_alive.join().expect("the keep-alive thread");
    eprintln!("idle keep-alive connection: closed {closed} after {after:?}");
    if !closed || after < HEAD.mul_f64(0.9) || after > HEAD + SLACK {
        complaints.push(format!(
            "idle keep-alive connection: closed {closed} after {after:?}"
        ));
    }
    // With limits this small, an honest upload still goes through.
    honest_upload(&server, "small-limits.bin");
    assert!(
        complaints.is_empty(),
        "{}\n\nserver log:\n{}",
        complaints.join("\n"),
        server.log()
    );
}

/// An honest request goes through while a slow one waits for its body slot: time spent
/// waiting for a slot is not the client's (only waits for the client count).
#[test]
fn honest_uploads_pass_under_small_limits_and_many_bodies() {
    let root = scratch("hostile-slots-");
    let server = Server::start(
        &Options::new(&root.path().join("files"))
            .arg("--max-concurrent-bodies", 1)
            .arg("--idle-timeout", 2)
            .arg("--body-window", 2)
            .arg("--min-body-bytes", 1024),
    );
    let session = new_session();
    let files: Vec<FlowFile> = (0..6)
        .map(|i| FlowFile::new(&format!("slot-{i}.bin"), bytes(512 * 1024, i), 512 * 1024))
        .collect();
    let addr = server.addr;
    let sends: Vec<_> = files
        .iter()
        .cloned()
        .map(|file| {
            let session = session.clone();
            thread::spawn(move || {
                upload_request(
                    &server_support::flow_pairs(&file, 1),
                    &file.data,
                    Body::Octet,
                )
                .cookie(&session)
                .send(addr)
            })
        })
        .collect();
    for (file, send) in files.iter().zip(sends) {
        let answer = send.join().unwrap();
        assert!(answer.is_assembled(Some(true)), "{}: {answer}", file.name);
        assert_same_bytes(&server.options.dir.join(&file.name), &file.data, &file.name);
    }
}
