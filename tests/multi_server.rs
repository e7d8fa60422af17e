//! Three example-server processes on three ports share one upload folder (`--dir`, and so the
//! chunk folder `DIR/.chunks`). One browser session (the same cookie value sent to all three:
//! the server derives the scope from the value alone) uploads several files at once, each
//! file's chunks spread over the three servers in random order with duplicates, and the last
//! chunk of every file sent to all three servers at the same instant. Each time: every request
//! answers 200, exactly one answer per file says it assembled it, and the folder holds each
//! file once (the server renames on conflict, so a second assembly would show as
//! `name (1).bin`), byte-identical.
//!
//! 20 iterations; `CHUNKED_UPLOAD_LONG=1` runs 200. The figures go to stderr.

mod common;
mod server_support;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use common::{FlowFile, Rng, bytes, visible_files};
use server_support::{
    Body, Options, Server, assert_same_bytes, flow_post, flow_test, iterations, new_session,
    scratch,
};

const SERVERS: usize = 3;
/// Client threads per server.
const THREADS_PER_SERVER: usize = 2;
const FILES: u64 = 4;

/// File `i` of iteration `run`.
fn file(run: u64, i: u64) -> FlowFile {
    let mut rng = Rng(run * 1000 + i + 1);
    let chunk_size = 512 + rng.below(4096);
    let size = chunk_size * (8 + rng.below(24)) + rng.below(chunk_size);
    FlowFile {
        force_chunk_size: rng.below(2) == 0,
        ..FlowFile::new(
            &format!("run-{run}-file-{i}.bin"),
            bytes(size as usize, run * 100 + i),
            chunk_size,
        )
    }
}

#[test]
fn three_servers_one_folder_one_session() {
    let runs = iterations(20, 200);
    let root = scratch("multi-server-");
    let dir = root.path().join("files");
    let options = Options::new(&dir).arg("--max-chunk-size", 1 << 20);
    let servers: Vec<Server> = (0..SERVERS).map(|_| Server::start(&options)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let session = new_session();

    // The scope survives from one server to another: a chunk stored through one is present for
    // the same cookie on the others, and absent for another session.
    let probe = FlowFile::new("probe.bin", bytes(3000, 7), 1000);
    flow_post(addrs[0], &session, &probe, 1, Body::Multipart).expect(200);
    for &addr in &addrs[1..] {
        flow_test(addr, &session, &probe, 1).expect(200);
        flow_test(addr, &new_session(), &probe, 1).expect(204);
        flow_test(addr, &session, &probe, 2).expect(204);
    }
    flow_post(addrs[1], &session, &probe, 2, Body::Octet).expect(200);
    let done = flow_post(addrs[2], &session, &probe, 3, Body::FileFirst);
    assert!(done.is_assembled(Some(true)), "{done}");
    assert_same_bytes(&dir.join("probe.bin"), &probe.data, "probe");

    let (mut requests, mut failures) = (0u64, 0u64);
    for run in 0..runs {
        let files: Arc<Vec<FlowFile>> = Arc::new((0..FILES).map(|i| file(run, i)).collect());
        let mut rng = Rng(run * 31 + 7);
        // Every chunk but each file's last, to a random server, ~30 % of them a second time to
        // another one; shuffled.
        let mut sends: Vec<(usize, u64, usize, Body)> = Vec::new();
        for (i, f) in files.iter().enumerate() {
            for n in 1..f.total_chunks() {
                let server = rng.below(SERVERS as u64) as usize;
                sends.push((i, n, server, Body::ALL[rng.below(3) as usize]));
                if rng.below(10) < 3 {
                    let other = (server + 1 + rng.below(2) as usize) % SERVERS;
                    sends.push((i, n, other, Body::ALL[rng.below(3) as usize]));
                }
            }
        }
        rng.shuffle(&mut sends);
        let queue = Arc::new(Mutex::new(sends));
        let threads = SERVERS * THREADS_PER_SERVER;
        let barrier = Arc::new(Barrier::new(threads));
        let clients: Vec<_> = (0..threads)
            .map(|t| {
                let (files, queue, barrier, session, addrs) = (
                    Arc::clone(&files),
                    Arc::clone(&queue),
                    Arc::clone(&barrier),
                    session.clone(),
                    addrs.clone(),
                );
                thread::spawn(move || {
                    let mut answers = Vec::new();
                    loop {
                        let next = queue.lock().unwrap().pop();
                        let Some((i, n, server, body)) = next else {
                            break;
                        };
                        let a = flow_post(addrs[server], &session, &files[i], n, body);
                        answers.push((i, n, a));
                    }
                    // Then every file's last chunk, from every thread, to every server at once.
                    barrier.wait();
                    let server = addrs[t % SERVERS];
                    for (i, f) in files.iter().enumerate() {
                        let n = f.total_chunks();
                        let body = Body::ALL[(t + i) % 3];
                        answers.push((i, n, flow_post(server, &session, f, n, body)));
                    }
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
            .filter(|(_, _, a)| a.status != 200)
            .map(|(i, n, a)| format!("file {i} chunk {n}: {a}"))
            .collect();
        failures += failed.len() as u64;
        assert!(failed.is_empty(), "run {run}: {failed:#?}");
        for (i, f) in files.iter().enumerate() {
            let fresh = answers
                .iter()
                .filter(|(j, _, a)| *j == i && a.is_assembled(Some(true)))
                .count();
            assert_eq!(fresh, 1, "run {run} file {i}: {fresh} assemblies");
            assert_same_bytes(&dir.join(&f.name), &f.data, &format!("run {run} file {i}"));
            // Every server knows the file is done: a test asks for the bytes again (a changed
            // file would be sent), and the same bytes answer "assembled" with no second file.
            for &addr in &addrs {
                flow_test(addr, &session, f, 1).expect(204);
                let a = flow_post(addr, &session, f, 1, Body::Octet);
                assert!(a.is_assembled(Some(false)), "run {run} file {i}: {a}");
            }
        }
    }
    let mut expected: Vec<String> = (0..runs)
        .flat_map(|run| (0..FILES).map(move |i| format!("run-{run}-file-{i}.bin")))
        .chain(["probe.bin".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(visible_files(&dir), expected, "each file once, no copies");
    for mut server in servers {
        assert!(server.alive(), "a server died:\n{}", server.log());
    }
    eprintln!(
        "multi_server: {runs} iterations x {FILES} files over {SERVERS} servers, \
         {requests} requests, {failures} failures, {} files assembled once each",
        runs * FILES
    );
}
