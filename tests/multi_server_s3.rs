//! Scale-out over object storage: three example servers share one bucket of a real S3
//! protocol server on loopback (`s3s-fs`, see `s3_support`) and one signing key. One browser
//! session uploads several files at once (0 B, 1 B, just under and just over 5 MiB, 13 MiB in
//! 6 MiB chunks, 40 MiB in 1 MiB chunks), each file's chunks spread at random over the three
//! servers with duplicates and several requests in flight; one server is killed with SIGKILL
//! midway (a request it was answering is retried on another, as a load balancer would), then
//! every file's last chunk goes to both remaining servers at the same instant.
//!
//! Then: every request was finally answered 200, exactly one answer per file says it assembled
//! the file (`"fresh":true`), the bucket holds each file once below the prefix, byte-identical
//! (the servers rename on conflict, so a second assembly would show as `name (1).bin`), nothing
//! else is visible there, and `GET /files` on a surviving server lists them.

mod common;
mod s3_support;
mod server_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{FlowFile, Rng, bytes};
use server_support::{
    Answer, Body, Options, Server, flow_pairs, flow_test, new_session, scratch, upload_request,
};

const MIB: usize = 1 << 20;
const THREADS: usize = 6;

fn files() -> Vec<FlowFile> {
    let file = |name: &str, len: usize, chunk: usize, seed: u64| FlowFile {
        force_chunk_size: seed.is_multiple_of(2),
        ..FlowFile::new(name, bytes(len, seed), chunk as u64)
    };
    vec![
        file("empty.bin", 0, MIB, 1),
        file("one-byte.bin", 1, MIB, 2),
        file("under-5-mib.bin", 5 * MIB - 1, MIB, 3),
        file("over-5-mib.bin", 5 * MIB + 1, MIB, 4),
        file("big-chunks.bin", 13 * MIB, 6 * MIB, 5),
        file("forty-mib.bin", 40 * MIB + 12_345, MIB, 6),
    ]
}

/// Sends chunk `n` of `file` to `addrs[first]`, or the next live server when that one does not
/// answer (killed); retries 503 (a lease of the killed server not expired yet).
fn send(
    addrs: &[SocketAddr],
    dead: &AtomicU64,
    first: usize,
    session: &str,
    file: &FlowFile,
    n: u64,
    body: Body,
) -> Answer {
    let request =
        upload_request(&flow_pairs(file, n), &file.data[file.range(n)], body).cookie(session);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut server = first;
    loop {
        if dead.load(Ordering::SeqCst) == server as u64 {
            server = (server + 1) % addrs.len();
        }
        match request.try_send(addrs[server]) {
            Ok(a) if a.status == 503 && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(200));
            }
            Ok(a) => return a,
            Err(e) => {
                assert!(Instant::now() < deadline, "chunk {n} of {}: {e}", file.name);
                server = (server + 1) % addrs.len();
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn three_servers_one_bucket_one_killed() {
    let Some(s3) = s3_support::S3Server::start("multi_server_s3") else {
        return;
    };
    let root = scratch("multi-server-s3-");
    let mut options = Options::new(&root.path().join("unused"))
        .arg("--s3-bucket", s3_support::BUCKET)
        .arg("--s3-endpoint", &s3.endpoint)
        .arg("--s3-prefix", "files")
        .arg("--s3-lease-secs", 5)
        .arg("--max-chunk-size", 16 * MIB);
    for (name, value) in s3.env() {
        options = options.env(name, value);
    }
    let mut servers: Vec<Option<Server>> = (0..3).map(|_| Some(Server::start(&options))).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let session = new_session();
    let client = Arc::new(s3.client());

    // A chunk stored through one server is present on every other.
    let probe = FlowFile::new("probe.bin", bytes(3000, 7), 1000);
    send(
        &addrs,
        &AtomicU64::new(u64::MAX),
        0,
        &session,
        &probe,
        1,
        Body::Multipart,
    )
    .expect(200);
    for &addr in &addrs[1..] {
        flow_test(addr, &session, &probe, 1).expect(200);
        flow_test(addr, &new_session(), &probe, 1).expect(204);
        flow_test(addr, &session, &probe, 2).expect(204);
    }

    let files = Arc::new(files());
    let mut rng = Rng(42);
    // Every chunk but each file's last (and the probe's other two), to a random server, a
    // third of them twice (to two servers); shuffled.
    let mut sends: Vec<(usize, u64, usize, Body)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        for n in 1..f.total_chunks() {
            let server = rng.below(3) as usize;
            sends.push((i, n, server, Body::ALL[rng.below(3) as usize]));
            if rng.below(3) == 0 {
                sends.push((i, n, (server + 1) % 3, Body::ALL[rng.below(3) as usize]));
            }
        }
    }
    rng.shuffle(&mut sends);
    let total_sends = sends.len();
    let queue = Arc::new(Mutex::new(sends));
    let done = Arc::new(AtomicU64::new(0));
    let dead = Arc::new(AtomicU64::new(u64::MAX));
    let killing = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let started = Instant::now();
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (files, queue, done, dead, barrier, session, addrs) = (
                Arc::clone(&files),
                Arc::clone(&queue),
                Arc::clone(&done),
                Arc::clone(&dead),
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
                    answers.push((
                        i,
                        n,
                        send(&addrs, &dead, server, &session, &files[i], n, body),
                    ));
                    done.fetch_add(1, Ordering::SeqCst);
                }
                // Then every file's last chunk, from every thread, to the live servers at once.
                barrier.wait();
                for (i, f) in files.iter().enumerate() {
                    let n = f.total_chunks();
                    let body = Body::ALL[(t + i) % 3];
                    answers.push((i, n, send(&addrs, &dead, t % 2, &session, f, n, body)));
                }
                answers
            })
        })
        .collect();
    // Kill server 2 midway through the chunks.
    while done.load(Ordering::SeqCst) < (total_sends / 2) as u64 {
        thread::sleep(Duration::from_millis(5));
    }
    killing.store(true, Ordering::SeqCst);
    dead.store(2, Ordering::SeqCst);
    servers[2].take().unwrap().kill9();
    let killed_after = done.load(Ordering::SeqCst);
    barrier.wait();
    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client panicked"))
        .collect();
    let elapsed = started.elapsed();

    let failed: Vec<String> = answers
        .iter()
        .filter(|(_, _, a)| a.status != 200)
        .map(|(i, n, a)| format!("{} chunk {n}: {a}", files[*i].name))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for (i, f) in files.iter().enumerate() {
        let fresh = answers
            .iter()
            .filter(|(j, _, a)| *j == i && a.is_assembled(Some(true)))
            .count();
        assert_eq!(
            fresh, 1,
            "{}: {fresh} answers say they assembled it",
            f.name
        );
        let got = s3_support::read_object(&client, &format!("files/{}", f.name));
        assert!(
            got == f.data,
            "{}: {} bytes in the bucket, {} sent (or other bytes)",
            f.name,
            got.len(),
            f.data.len()
        );
    }
    // The probe's last chunks, on the server that did not take the first.
    send(&addrs, &dead, 1, &session, &probe, 2, Body::Octet).expect(200);
    let last = send(&addrs, &dead, 0, &session, &probe, 3, Body::FileFirst);
    assert!(last.is_assembled(Some(true)), "{last}");

    let mut expected: Vec<String> = files.iter().map(|f| format!("files/{}", f.name)).collect();
    expected.push("files/probe.bin".to_owned());
    expected.sort();
    let visible: Vec<String> = s3_support::list_keys(&client, "files")
        .into_iter()
        .filter(|k| !k.split('/').any(|p| p.starts_with('.')))
        .collect();
    assert_eq!(
        visible, expected,
        "each file once below the prefix, nothing else"
    );
    let listed = server_support::Request::new("GET", "/files").send(addrs[0]);
    let listed = listed.json();
    let mut names: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|f| format!("files/{}", f["name"].as_str().unwrap()))
        .collect();
    names.sort();
    assert_eq!(names, expected, "GET /files lists the bucket");
    for server in servers.iter_mut().flatten() {
        assert!(server.alive(), "a server died:\n{}", server.log());
    }
    eprintln!(
        "multi_server_s3: {} files, {} requests over 3 servers sharing a bucket, server 2 \
         killed after {killed_after} of {total_sends} chunks; {:.1} s; each file assembled once",
        files.len(),
        answers.len(),
        elapsed.as_secs_f64()
    );
}
