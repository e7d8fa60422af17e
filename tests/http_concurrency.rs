//! Sixteen HTTP clients post the chunks of one file to a real server on 127.0.0.1 (the axum
//! adapter's router, served in this process so the `on_assembled` hook can be counted), in
//! random order, about 30 % of them twice, as multipart forms (fields first or file first) and
//! raw octet bodies; the last chunks are held back and sent by all sixteen at the same instant
//! (a barrier). Each time: every request answers 200, exactly one answer says it assembled the
//! file, the hook fired once, and the one file in the folder is byte-identical (a second
//! assembly would show as `name (1).bin`: the server renames on conflict).
//!
//! 50 iterations; `CHUNKED_UPLOAD_LONG=1` runs 200. The figures go to stderr.

mod common;
mod server_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use std::convert::Infallible;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use chunked_upload::adapter::Scope;
use chunked_upload::{ConflictPolicy, Uploads, adapter};
use common::{FlowFile, Rng, bytes, config, visible_files};
use server_support::{Body, assert_same_bytes, flow_post, iterations, new_session};

const CLIENTS: usize = 16;
/// Chunks held back and raced by every client at once.
const RACING: u64 = 3;

/// Assemblies the hook saw, by identifier.
type Hooks = Arc<Mutex<HashMap<String, u32>>>;

/// The scope of the raw `Cookie` header (each client sends its own).
struct CookieScope(Scope);

impl<S: Send + Sync> FromRequestParts<S> for CookieScope {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let cookie = parts.headers.get(COOKIE).and_then(|v| v.to_str().ok());
        Ok(CookieScope(Scope::new(cookie.unwrap_or_default())))
    }
}

impl From<CookieScope> for Scope {
    fn from(scope: CookieScope) -> Scope {
        scope.0
    }
}

/// The axum router under `/upload` on a free port, in a runtime of its own; the scope is the
/// `Cookie` header.
fn start_server(root: &std::path::Path) -> (SocketAddr, PathBuf, Hooks) {
    let hooks: Hooks = Arc::default();
    let seen = Arc::clone(&hooks);
    let uploads = Uploads::new(
        config(root)
            .max_chunk_size(1 << 20)
            .on_conflict(ConflictPolicy::Rename)
            .on_assembled(move |file| {
                *seen
                    .lock()
                    .unwrap()
                    .entry(file.upload.identifier.clone())
                    .or_default() += 1;
            })
            .build(),
    )
    .unwrap();
    let app = Router::new().nest("/upload", adapter::axum::router::<CookieScope, _>(uploads));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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
    (addr, root.join("files"), hooks)
}

#[test]
fn sixteen_http_clients_one_file_random_order_duplicates_racing_last_chunks() {
    let runs = iterations(50, 200);
    let root = server_support::scratch("http-concurrency-");
    let (addr, files, hooks) = start_server(root.path());
    let (mut requests, mut failures, mut fresh_total) = (0u64, 0u64, 0u64);
    for run in 0..runs {
        let mut rng = Rng(0xC0FF_EE00 + run * 7919);
        let chunk_size = 1024 + rng.below(8 * 1024);
        let size = chunk_size * (RACING + 10 + rng.below(50)) + rng.below(chunk_size);
        let file = Arc::new(FlowFile {
            force_chunk_size: rng.below(2) == 0,
            ..FlowFile::new(
                &format!("run-{run}.bin"),
                bytes(size as usize, run),
                chunk_size,
            )
        });
        let n = file.total_chunks();
        // A new session per run: its own scope.
        let session = Arc::new(new_session());

        // Every chunk but the racing ones, ~30 % of them twice, shuffled, each with a body kind.
        let mut early: Vec<u64> = (1..=n - RACING).collect();
        let dups: Vec<u64> = early
            .iter()
            .copied()
            .filter(|_| rng.below(10) < 3)
            .collect();
        early.extend(dups);
        rng.shuffle(&mut early);
        let early: Vec<(u64, Body)> = early
            .into_iter()
            .map(|c| (c, Body::ALL[rng.below(3) as usize]))
            .collect();
        let racing: Vec<(u64, Body)> = (0..CLIENTS)
            .map(|t| (n - RACING + 1 + t as u64 % RACING, Body::ALL[t % 3]))
            .collect();

        let queue = Arc::new(Mutex::new(early));
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = racing
            .into_iter()
            .map(|last| {
                let (file, session, queue, barrier) = (
                    Arc::clone(&file),
                    Arc::clone(&session),
                    Arc::clone(&queue),
                    Arc::clone(&barrier),
                );
                thread::spawn(move || {
                    let mut answers = Vec::new();
                    loop {
                        let next = queue.lock().unwrap().pop();
                        let Some((chunk, body)) = next else { break };
                        answers.push((chunk, flow_post(addr, &session, &file, chunk, body)));
                    }
                    barrier.wait();
                    answers.push((last.0, flow_post(addr, &session, &file, last.0, last.1)));
                    answers
                })
            })
            .collect();
        let answers: Vec<_> = clients
            .into_iter()
            .flat_map(|c| c.join().expect("a client panicked"))
            .collect();

        requests += answers.len() as u64;
        let failed: Vec<String> = answers
            .iter()
            .filter(|(_, a)| a.status != 200)
            .map(|(chunk, a)| format!("chunk {chunk}: {a}"))
            .collect();
        failures += failed.len() as u64;
        assert!(failed.is_empty(), "run {run}: {failed:#?}");
        let fresh = answers
            .iter()
            .filter(|(_, a)| a.is_assembled(Some(true)))
            .count();
        fresh_total += fresh as u64;
        assert_eq!(fresh, 1, "run {run}: {fresh} answers assembled the file");
        assert_eq!(
            hooks.lock().unwrap().get(&file.identifier).copied(),
            Some(1),
            "run {run}: the on_assembled hook"
        );
        let name = format!("run-{run}.bin");
        assert_same_bytes(&files.join(&name), &file.data, &format!("run {run}"));
    }
    let mut expected: Vec<String> = (0..runs).map(|run| format!("run-{run}.bin")).collect();
    expected.sort();
    assert_eq!(
        visible_files(&files),
        expected,
        "one file per run, no copies"
    );
    let total_hooks: u32 = hooks.lock().unwrap().values().sum();
    eprintln!(
        "http_concurrency: {runs} iterations x {CLIENTS} clients, {requests} requests, \
         {failures} failures, {fresh_total} assemblies ({total_hooks} hook calls)"
    );
}
