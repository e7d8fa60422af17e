//! The example server's scopes (issue 10), over HTTP against the binary started as a process:
//!
//! - a widget on a page the server did not serve: the test requests, the chunks and the finalize
//!   of a new upload sent at once (a barrier) with **no cookie** all land in one session, and the
//!   file is assembled exactly once, byte-identical; 50 times (flow.js and Fine Uploader
//!   requests, a new browser each time);
//! - after a restart with the same `--signing-key`, and on a second server given the same key,
//!   the upload resumes in the same session, with or without its cookie; another key ends it;
//! - two users with the same identifier and the same file name never complete, read or learn of
//!   each other's uploads, and no error body holds a server path;
//! - a forged, unsigned, upper-cased or truncated `cu_session` is no session: the request gets a
//!   fresh signed one.

mod common;
mod server_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;

use chunked_upload::default_hash_name;
use common::{FlowFile, bytes};
use server_support::{
    Answer, Body, Options, Request, Server, assert_same_bytes, files_in, flow_pairs, iterations,
    new_session, query, scratch, sessions, upload_request,
};

const CHUNK: u64 = 16 * 1024;

fn options(dir: &std::path::Path) -> Options {
    Options::new(dir).arg("--max-chunk-size", 1 << 20)
}

/// One browser: its `User-Agent` (all of its requests send the same one) and, once it has one,
/// its cookie.
#[derive(Debug, Clone)]
struct Browser {
    agent: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(agent: &str) -> Browser {
        Browser {
            agent: agent.to_owned(),
            cookie: None,
        }
    }

    fn with_cookie(agent: &str, session: &str) -> Browser {
        Browser {
            agent: agent.to_owned(),
            cookie: Some(session.to_owned()),
        }
    }

    fn send(&self, request: Request, addr: SocketAddr) -> Answer {
        let request = request
            .header("User-Agent", &self.agent)
            .header("Accept-Language", "en-GB,en;q=0.8");
        match &self.cookie {
            Some(session) => request.cookie(session),
            None => request,
        }
        .send(addr)
    }
}

/// What one browser sends for one upload: flow.js chunks (test `GET`s first) or Fine Uploader
/// chunks, and a finalize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Widget {
    Flow,
    FineUploader,
}

/// The Fine Uploader fields of part `index` (0-based) of `file`, in `CHUNK`-byte parts.
fn fine_pairs(file: &FlowFile, index: u64) -> Vec<(String, String)> {
    let parts = (file.data.len() as u64).div_ceil(CHUNK);
    let start = index * CHUNK;
    let len = (file.data.len() as u64 - start).min(CHUNK);
    [
        ("qquuid", format!("uuid-{}", file.identifier)),
        ("qqfilename", file.name.clone()),
        ("qqtotalfilesize", file.data.len().to_string()),
        ("qqtotalparts", parts.to_string()),
        ("qqpartindex", index.to_string()),
        ("qqpartbyteoffset", start.to_string()),
        ("qqchunksize", len.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The requests of one upload, numbered as the widget numbers its chunks.
fn chunk_requests(widget: Widget, file: &FlowFile) -> Vec<Request> {
    match widget {
        Widget::Flow => (1..=file.total_chunks())
            .map(|n| {
                upload_request(
                    &flow_pairs(file, n),
                    &file.data[file.range(n)],
                    Body::Multipart,
                )
            })
            .collect(),
        Widget::FineUploader => {
            let parts = (file.data.len() as u64).div_ceil(CHUNK);
            (0..parts)
                .map(|i| {
                    let start = (i * CHUNK) as usize;
                    let end = (start + CHUNK as usize).min(file.data.len());
                    let pairs = fine_pairs(file, i);
                    let fields = server_support::fields(&pairs);
                    let body = server_support::multipart(
                        &fields,
                        Some(("qqfile", &file.name, &file.data[start..end])),
                        false,
                    );
                    Request::new("POST", "/upload").body(&server_support::multipart_type(), body)
                })
                .collect()
        }
    }
}

fn test_requests(file: &FlowFile) -> Vec<Request> {
    (1..=file.total_chunks())
        .map(|n| Request::new("GET", format!("/upload?{}", query(&flow_pairs(file, n)))))
        .collect()
}

fn finalize_request(widget: Widget, file: &FlowFile) -> Request {
    let pairs = match widget {
        Widget::Flow => flow_pairs(file, file.total_chunks()),
        // What Fine Uploader's chunking.success.endpoint request carries.
        Widget::FineUploader => fine_pairs(file, 0)
            .into_iter()
            .filter(|(name, _)| {
                ["qquuid", "qqfilename", "qqtotalfilesize", "qqtotalparts"].contains(&name.as_str())
            })
            .collect(),
    };
    Request::new("POST", "/upload/done").body(
        "application/x-www-form-urlencoded",
        query(&pairs).into_bytes(),
    )
}

/// Sends every request at once from `browser`, one thread each, released by a barrier.
fn all_at_once(addr: SocketAddr, browser: &Browser, requests: Vec<Request>) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let threads: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let (barrier, browser) = (barrier.clone(), browser.clone());
            thread::spawn(move || {
                barrier.wait();
                browser.send(request, addr)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The one session every answer sets (they must all set it, and the same one).
#[track_caller]
fn one_session(answers: &[Answer]) -> String {
    let set: BTreeSet<Option<String>> = answers.iter().map(Answer::session).collect();
    assert_eq!(set.len(), 1, "answers set different sessions: {set:?}");
    let session = set
        .into_iter()
        .next()
        .unwrap()
        .expect("every answer sets the session");
    assert!(
        sessions().verify(&session).is_some(),
        "a session the server signed: {session}"
    );
    session
}

/// Files in `dir` named `name` (`stem.ext`) or `stem (N).ext`: more than one means a second
/// assembly.
fn copies(dir: &std::path::Path, name: &str) -> Vec<String> {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    files_in(dir)
        .into_iter()
        .filter(|file| file == name || file.starts_with(&format!("{stem} (")))
        .collect()
}

#[test]
fn cookieless_parallel_first_requests_land_in_one_scope() {
    let root = scratch("sessions-parallel-");
    let dir = root.path().join("files");
    let server = Server::start(&options(&dir));
    let rounds = iterations(50, 200);
    let mut seen = BTreeSet::new();
    for round in 0..rounds {
        let widget = if round % 2 == 0 {
            Widget::Flow
        } else {
            Widget::FineUploader
        };
        // A new browser, with no cookie, on a page this server did not serve.
        let browser = Browser::new(&format!("Mozilla/5.0 (sessions test {round})"));
        let name = format!("parallel-{round}.bin");
        let size = 6 * CHUNK as usize + 1000 + round as usize;
        let file = FlowFile::new(&name, bytes(size, round), CHUNK);
        let mut answers = Vec::new();
        if widget == Widget::Flow {
            // flow.js tests the first chunks at once: all absent, all in one new session.
            let tests = all_at_once(server.addr, &browser, test_requests(&file));
            assert!(tests.iter().all(|a| a.status == 204), "{tests:?}");
            answers.extend(tests);
        }
        let chunks = all_at_once(server.addr, &browser, chunk_requests(widget, &file));
        for answer in &chunks {
            assert_eq!(answer.status, 200, "round {round}: {answer}");
            let status = answer.json()["status"].clone();
            assert!(
                status == "chunk_stored" || status == "assembled",
                "{answer}"
            );
        }
        answers.extend(chunks);
        answers.push(browser.send(finalize_request(widget, &file), server.addr));
        let finalize = answers.last().unwrap();
        assert!(
            finalize.is_assembled(None),
            "round {round}: finalize: {finalize}"
        );
        let session = one_session(&answers);
        assert!(
            seen.insert(session),
            "round {round}: another browser's session"
        );
        let fresh = answers
            .iter()
            .filter(|a| a.is_assembled(Some(true)))
            .count();
        assert_eq!(fresh, 1, "round {round}: assembled {fresh} times");
        assert_eq!(copies(&dir, &name), [name.as_str()], "round {round}");
        assert_same_bytes(&dir.join(&name), &file.data, &format!("round {round}"));
    }
}

#[test]
fn an_upload_resumes_in_its_scope_after_a_restart_and_on_another_server_with_the_key() {
    let root = scratch("sessions-restart-");
    let dir = root.path().join("files");
    let opts = options(&dir);
    let file = FlowFile::new("restart.bin", bytes(6 * CHUNK as usize + 77, 7), CHUNK);
    let other = FlowFile::new("other-key.bin", bytes(2 * CHUNK as usize, 8), CHUNK);
    let browser = Browser::new("Mozilla/5.0 (restart test)");
    let requests = chunk_requests(Widget::Flow, &file);

    let first = Server::start(&opts);
    let answers = all_at_once(first.addr, &browser, requests[..3].to_vec());
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let session = one_session(&answers);
    let partial = browser.send(chunk_requests(Widget::Flow, &other)[0].clone(), first.addr);
    assert_eq!(partial.session().as_ref(), Some(&session));
    first.kill9();

    // The same key: the cookie is accepted (no new one), the stored chunks are there.
    let second = Server::start(&opts);
    let with_cookie = Browser::with_cookie(&browser.agent, &session);
    let tests = test_requests(&file);
    let present = with_cookie.send(tests[0].clone(), second.addr);
    assert_eq!(
        (present.status, present.session()),
        (200, None),
        "{present}"
    );
    assert_eq!(with_cookie.send(tests[3].clone(), second.addr).status, 204);
    // Without the cookie, the same browser derives the same session again.
    let derived = browser.send(tests[1].clone(), second.addr);
    assert_eq!(derived.status, 200, "{derived}");
    assert_eq!(derived.session().as_ref(), Some(&session));

    // A second server on the same folder, with the same key, finishes the upload with it.
    let third = Server::start(&opts);
    let rest = vec![
        (third.addr, with_cookie.clone(), requests[3].clone()),
        (second.addr, browser.clone(), requests[4].clone()),
        (third.addr, browser.clone(), requests[5].clone()),
    ];
    let barrier = Arc::new(Barrier::new(rest.len()));
    let answers: Vec<Answer> = rest
        .into_iter()
        .map(|(addr, browser, request)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                browser.send(request, addr)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let fresh = answers
        .iter()
        .filter(|a| a.is_assembled(Some(true)))
        .count();
    assert_eq!(fresh, 1, "{answers:?}");
    for answer in &answers {
        if let Some(set) = answer.session() {
            assert_eq!(set, session, "a cookieless request of the same browser");
        }
    }
    assert_same_bytes(
        &dir.join("restart.bin"),
        &file.data,
        "resumed across servers",
    );
    drop(third);
    drop(second);

    // Another key: the old cookie is no session, and the other upload is out of reach.
    let rekeyed = Server::start(
        &opts
            .clone()
            .signing_key(Some("another-signing-key-for-the-restart-test-0123")),
    );
    let test = with_cookie.send(test_requests(&other)[0].clone(), rekeyed.addr);
    assert_eq!(test.status, 204, "{test}");
    let fresh = test.session().expect("a fresh session");
    assert_ne!(fresh, session);
    drop(rekeyed);

    // No key: the server says that sessions end with it.
    let generated = Server::start(&opts.signing_key(None));
    let log = generated.log();
    assert!(log.contains("do not survive a restart"), "{log}");
    assert_eq!(
        with_cookie
            .send(test_requests(&other)[0].clone(), generated.addr)
            .status,
        204
    );
}

#[test]
fn two_users_with_the_same_identifier_and_file_name_stay_apart() {
    let root = scratch("sessions-users-");
    let dir = root.path().join("files");
    let temp = dir.join(".chunks");
    let server = Server::start(&options(&dir));
    let (alice, bob, carol) = (new_session(), new_session(), new_session());
    let alice_browser = Browser::with_cookie("Alice's browser", &alice);
    let bob_browser = Browser::with_cookie("Bob's browser", &bob);
    let carol_browser = Browser::with_cookie("Carol's browser", &carol);
    // Same name, same size: the same flow.js identifier; different bytes.
    let alices = FlowFile::new("same.bin", bytes(3 * CHUNK as usize, 1), CHUNK);
    let bobs = FlowFile::new("same.bin", bytes(3 * CHUNK as usize, 2), CHUNK);
    assert_eq!(alices.identifier, bobs.identifier);
    let id = &alices.identifier;
    let mut error_bodies = Vec::new();

    for request in &chunk_requests(Widget::Flow, &alices)[..2] {
        assert_eq!(alice_browser.send(request.clone(), server.addr).status, 200);
    }
    // Bob sees none of it: not by test requests, progress, or finalize.
    for test in test_requests(&bobs) {
        assert_eq!(bob_browser.send(test, server.addr).status, 204);
    }
    let list = bob_browser.send(Request::new("GET", "/progress"), server.addr);
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(id.as_str()), "{list}");
    let one = bob_browser.send(Request::new("GET", format!("/progress/{id}")), server.addr);
    assert_eq!(one.status, 404, "{one}");
    let done = bob_browser.send(finalize_request(Widget::Flow, &bobs), server.addr);
    assert_eq!(done.status, 404, "{done}");
    error_bodies.extend([one, done]);
    // Bob's last chunk does not complete Alice's upload: it starts his own.
    let last = bob_browser.send(chunk_requests(Widget::Flow, &bobs)[2].clone(), server.addr);
    assert_eq!(last.json()["status"], "chunk_stored", "{last}");
    assert_eq!(last.json()["chunks_present"], 1, "{last}");
    let incomplete = bob_browser.send(finalize_request(Widget::Flow, &bobs), server.addr);
    assert_eq!(incomplete.status, 400, "{incomplete}");
    assert!(
        incomplete.error().contains("1 of 3"),
        "only his own chunks: {incomplete}"
    );
    error_bodies.push(incomplete);
    // Carol's upload of the same identifier with another size is not measured against Alice's.
    let carols = FlowFile {
        data: bytes(5 * CHUNK as usize, 3),
        ..alices.clone()
    };
    let first = carol_browser.send(
        chunk_requests(Widget::Flow, &carols)[0].clone(),
        server.addr,
    );
    assert_eq!(
        first.json()["status"],
        "chunk_stored",
        "no conflict with another scope: {first}"
    );

    // Each completes their own file, byte-identical.
    let alice_done = alice_browser.send(
        chunk_requests(Widget::Flow, &alices)[2].clone(),
        server.addr,
    );
    assert!(alice_done.is_assembled(Some(true)), "{alice_done}");
    assert_same_bytes(&dir.join("same.bin"), &alices.data, "Alice's file");
    for request in &chunk_requests(Widget::Flow, &bobs)[..2] {
        let answer = bob_browser.send(request.clone(), server.addr);
        assert_eq!(answer.status, 200, "{answer}");
    }
    let bob_progress =
        bob_browser.send(Request::new("GET", format!("/progress/{id}")), server.addr);
    assert_eq!(
        bob_progress.json()["size"],
        bobs.data.len(),
        "his own: {bob_progress}"
    );
    // The shared drop folder: his copy is renamed (README: a folder per user keeps them apart).
    assert_same_bytes(&dir.join("same (1).bin"), &bobs.data, "Bob's file");

    // Errors that mention their own upload, in Carol's scope.
    let mismatch = FlowFile {
        data: bytes(4 * CHUNK as usize, 4),
        ..carols.clone()
    };
    let geometry = carol_browser.send(
        chunk_requests(Widget::Flow, &mismatch)[1].clone(),
        server.addr,
    );
    assert_eq!(geometry.status, 409, "{geometry}");
    let over = (1u64 << 20) + 1; // --max-chunk-size + 1
    let mut too_big = flow_pairs(&carols, 1);
    for (name, value) in [
        ("flowIdentifier", "too-big".to_owned()),
        ("flowChunkSize", over.to_string()),
        ("flowCurrentChunkSize", over.to_string()),
        ("flowTotalSize", (2 * over).to_string()),
        ("flowTotalChunks", "2".to_owned()),
    ] {
        server_support::set(&mut too_big, name, &value);
    }
    let too_big = carol_browser.send(upload_request(&too_big, b"x", Body::Octet), server.addr);
    assert_eq!(too_big.status, 413, "{too_big}");
    let bad = carol_browser.send(
        Request::new("GET", "/upload?flowChunkNumber=0"),
        server.addr,
    );
    assert_eq!(bad.status, 400, "{bad}");
    let malformed = carol_browser.send(
        Request::new("POST", "/upload").body(&server_support::multipart_type(), b"--nope".to_vec()),
        server.addr,
    );
    assert_eq!(malformed.status, 400, "{malformed}");
    error_bodies.extend([geometry, too_big, bad, malformed]);

    // No error body names a server path, nor anything of another user's upload.
    let paths = [
        dir.to_string_lossy().into_owned(),
        temp.to_string_lossy().into_owned(),
        root.path().to_string_lossy().into_owned(),
        env!("CARGO_TARGET_TMPDIR").to_owned(),
        default_hash_name(&alice, id),
        alice.clone(),
    ];
    for answer in &error_bodies {
        assert!(answer.json()["success"] == false, "{answer}");
        for path in &paths {
            assert!(!answer.text().contains(path.as_str()), "{path} in {answer}");
        }
    }
}

#[test]
fn cookies_the_server_did_not_issue_are_not_sessions() {
    let root = scratch("sessions-forged-");
    let dir = root.path().join("files");
    let server = Server::start(&options(&dir));
    // The page gives a random session, and keeps a valid one.
    let page = Request::new("GET", "/").send(server.addr);
    assert_eq!(page.status, 200);
    let real = page.session().expect("the page sets a session");
    let again = Request::new("GET", "/").cookie(&real).send(server.addr);
    assert_eq!(again.session(), None);
    assert_ne!(
        Request::new("GET", "/").send(server.addr).session(),
        Some(real.clone())
    );

    let victim = Browser::with_cookie("Mozilla/5.0 (victim)", &real);
    let file = FlowFile::new("victim.bin", bytes(2 * CHUNK as usize, 5), CHUNK);
    let stored = victim.send(chunk_requests(Widget::Flow, &file)[0].clone(), server.addr);
    assert_eq!(stored.json()["status"], "chunk_stored", "{stored}");

    let (session, tag) = real.split_once('.').expect("session.tag");
    let forged = [
        session.to_owned(),                                // the old, unsigned format
        "0123456789abcdef0123456789abcdef".to_owned(),     // any 32 hex digits
        real.to_ascii_uppercase(),                         // upper case
        format!("{}.{tag}", session.to_ascii_uppercase()), // upper-case session
        real[..real.len() - 1].to_owned(),                 // truncated
        format!("{}.{tag}", "f".repeat(32)),               // another session, this tag
        format!("{session}.{}", "0".repeat(64)),           // a made-up tag
        format!("{real}00"),                               // too long
    ];
    for cookie in &forged {
        // From the victim's own browser, even: a cookie the server did not issue is no session.
        let forger = Browser::with_cookie("Mozilla/5.0 (victim)", cookie);
        let test = forger.send(test_requests(&file)[0].clone(), server.addr);
        assert_eq!(test.status, 204, "{cookie}: {test}");
        let fresh = test.session().expect("a fresh session");
        assert_ne!(&fresh, cookie);
        assert_ne!(sessions().verify(&fresh).as_deref(), Some(session));
        assert!(sessions().verify(&fresh).is_some(), "signed: {fresh}");
        let list = forger.send(Request::new("GET", "/progress"), server.addr);
        assert!(!list.text().contains(&file.identifier), "{cookie}: {list}");
    }
    // The real cookie still works.
    let present = victim.send(test_requests(&file)[0].clone(), server.addr);
    assert_eq!((present.status, present.session()), (200, None));
}

/// Behind a reverse proxy every browser has the proxy's address. With `--trusted-proxy` the
/// server reads the client's address from the `X-Forwarded-For` the proxy appended, so two
/// cookieless browsers behind it get sessions of their own while the parallel first requests
/// of one browser still agree; without the flag, or from a peer that is not the proxy, the
/// header changes nothing.
#[test]
fn browsers_behind_a_trusted_proxy_get_sessions_of_their_own() {
    let root = scratch("sessions-proxy-");
    let session_of = |server: &Server, forwarded_for: &str| {
        Browser::new("Mozilla/5.0 (same browser)")
            .send(
                Request::new("GET", "/progress").header("X-Forwarded-For", forwarded_for),
                server.addr,
            )
            .session()
            .expect("a cookieless request gets a session")
    };
    // The tests reach the server from loopback: the "proxy" is 127.0.0.1.
    let behind =
        Server::start(&options(&root.path().join("a")).arg("--trusted-proxy", "127.0.0.1"));
    let first = session_of(&behind, "192.0.2.7");
    assert_eq!(
        session_of(&behind, "192.0.2.7"),
        first,
        "one browser, one session"
    );
    assert_ne!(
        session_of(&behind, "198.51.100.4"),
        first,
        "two browsers, two sessions"
    );
    // A client-written prefix does not change the address the proxy appended.
    assert_eq!(session_of(&behind, "6.6.6.6, 192.0.2.7"), first);

    // Not trusted: the header is the client's own word and is ignored.
    let plain = Server::start(&options(&root.path().join("b")));
    assert_eq!(
        session_of(&plain, "192.0.2.7"),
        session_of(&plain, "198.51.100.4"),
        "without --trusted-proxy every browser here is 127.0.0.1"
    );
    let elsewhere =
        Server::start(&options(&root.path().join("c")).arg("--trusted-proxy", "192.0.2.1"));
    assert_eq!(
        session_of(&elsewhere, "192.0.2.7"),
        session_of(&elsewhere, "198.51.100.4"),
        "the header counts only on connections from the proxy named"
    );
}
