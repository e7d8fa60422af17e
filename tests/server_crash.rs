//! `kill -9` of the example server at random moments, then a restart on the same folder and a
//! resume the way flow.js resumes after a page reload (a test `GET` per chunk, a `POST` of each
//! chunk answered 204):
//!
//! - half the runs kill while chunk bodies stream in: three slow clients (a multipart form with
//!   its fields first, one with its file part first, which the server stages in
//!   `.chunks/.incoming`, and a raw octet body), each killed part-way through its body;
//! - the other half kill while a 64 MiB file (`CHUNKED_UPLOAD_LONG=1`: 128 MiB) is being
//!   assembled: at a random moment of the request that completes it (its chunk, the data file's
//!   fsync, the record, the link, the marker), or as soon as the assembly is recorded, or as
//!   soon as the file is published and before its marker.
//!
//! Each time: the folder never shows a partial or corrupt file (nothing, or the whole file,
//! also while the assembly runs), the resumed upload completes byte-identical, and once the
//! sweep has run (the restarted server sweeps every second; the dead process's staging files
//! are aged past their grace period with `File::set_modified`) no staging file is left:
//! `DIR` holds the file and the hidden chunk folder, nothing else.
//!
//! 10 runs; `CHUNKED_UPLOAD_LONG=1` runs 100. The figures go to stderr.

mod common;
mod server_support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{FlowFile, Rng, visible_files};
use server_support::{
    Body, Options, Server, SlowSend, TIMEOUT, age_staging_files, assert_same_bytes, files_in,
    flow_pairs, flow_post, iterations, long_run, new_session, resume, scratch, staging_leftovers,
    upload_request, wait_until,
};

/// Fast deterministic bytes (one xorshift step per 8 bytes: the big file is 64 MiB or more).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn options(dir: &Path, sweep_every_second: bool) -> Options {
    let options = Options::new(dir).arg("--max-chunk-size", 8 << 20);
    if sweep_every_second {
        options.arg("--sweep-interval", 1)
    } else {
        options
    }
}

/// What one run saw.
#[derive(Debug, Default)]
struct Figures {
    runs: u64,
    mid_body: u64,
    during_assembly: u64,
    /// Kills during assembly before its record was written (the last chunk, the data file's
    /// fsync).
    before_record: u64,
    /// Kills once the assembly was recorded, before the file was published.
    recorded_unpublished: u64,
    /// Kills once the file was published, before its marker.
    published_unmarked: u64,
    /// Kills once the marker was written (the request was answering).
    marked: u64,
    /// Kills during assembly that came after the file was published.
    assembly_finished_first: u64,
    /// Runs whose kill left staging files behind (that the sweep then removed).
    leftovers_swept: u64,
    chunks_reposted: u64,
}

/// After the kill: nothing visible, or the whole file.
#[track_caller]
fn assert_nothing_partial(dir: &Path, file: &FlowFile, context: &str) -> bool {
    match visible_files(dir).as_slice() {
        [] => false,
        [name] if *name == file.name => {
            assert_same_bytes(&dir.join(name), &file.data, context);
            true
        }
        other => panic!("{context}: unexpected files {other:?}"),
    }
}

/// Restart, resume, and check the end state (the file, no staging leftovers after the sweep).
fn restart_and_resume(
    dir: &Path,
    session: &str,
    file: &FlowFile,
    rng: &mut Rng,
    figures: &mut Figures,
    context: &str,
) {
    let leftovers = staging_leftovers(dir);
    if !leftovers.is_empty() {
        figures.leftovers_swept += 1;
    }
    // The dead process's staging files, past the sweep's grace period.
    age_staging_files(dir);
    let server = Server::start(&options(dir, true));
    let body = Body::ALL[rng.below(3) as usize];
    let (assembled, posted) = resume(server.addr, session, file, body);
    figures.chunks_reposted += posted;
    assert!(
        !assembled.is_empty(),
        "{context}: not assembled after the resume"
    );
    let fresh = assembled
        .iter()
        .filter(|a| a.is_assembled(Some(true)))
        .count();
    assert!(fresh <= 1, "{context}: {fresh} fresh assemblies");
    assert_same_bytes(&dir.join(&file.name), &file.data, context);
    let swept = wait_until(TIMEOUT, || staging_leftovers(dir).is_empty());
    assert!(
        swept,
        "{context}: staging files left after the sweep: {:?} (before: {leftovers:?})\n{}",
        staging_leftovers(dir),
        server.log()
    );
    assert_eq!(
        files_in(dir),
        [file.name.clone()].into(),
        "{context}: the folder holds the file only"
    );
    server.kill9();
}

/// Kills the server while three slow clients are part-way through their chunk bodies.
fn kill_mid_body(run: u64, rng: &mut Rng, figures: &mut Figures) {
    let root = scratch("server-crash-");
    let dir = root.path().join("files");
    let context = format!("run {run} (kill mid-body)");
    let chunk = 256 * 1024;
    let file = FlowFile::new("resumed.bin", data(8 * chunk + 1234, run), chunk as u64);
    let session = new_session();
    let server = Server::start(&options(&dir, false));
    let mut numbers: Vec<u64> = (1..=file.total_chunks()).collect();
    rng.shuffle(&mut numbers);
    let stored = rng.below(5) as usize;
    for &n in &numbers[..stored] {
        flow_post(
            server.addr,
            &session,
            &file,
            n,
            Body::ALL[rng.below(3) as usize],
        )
        .expect(200);
    }
    // Three more chunks trickle in (4 KiB every 2 ms), each stalling after a random part of
    // its body (10 % to 90 %); the kill comes once all three have sent that much.
    let slow: Vec<SlowSend> = numbers[stored..stored + 3]
        .iter()
        .zip(Body::ALL)
        .map(|(&n, body)| {
            let request = upload_request(&flow_pairs(&file, n), &file.data[file.range(n)], body)
                .cookie(&session);
            let len = request.body.len() as u64;
            let stop = len / 10 + rng.below(len * 8 / 10);
            SlowSend::start(server.addr, request, 4096, Duration::from_millis(2), stop)
        })
        .collect();
    let stalled = wait_until(TIMEOUT, || slow.iter().all(|s| s.sent() >= s.stop_after));
    assert!(stalled, "{context}: the slow clients did not get going");
    // Let the server take in what was sent (a random pause: 0 to 30 ms).
    thread::sleep(Duration::from_millis(rng.below(30)));
    server.kill9();
    for s in slow {
        let sent = (s.sent(), s.total);
        if let Ok(answer) = s.join() {
            panic!("{context}: a cut-off body was answered {answer} ({sent:?})");
        }
    }
    assert!(
        !assert_nothing_partial(&dir, &file, &context),
        "{context}: assembled without all its chunks"
    );
    restart_and_resume(&dir, &session, &file, rng, figures, &context);
    figures.mid_body += 1;
}

/// Kills the server while it assembles a big file: the request with the last chunk writes it,
/// syncs the data file, records the assembly (`assembling.json`), links the file at its
/// destination, syncs the folders and writes the marker (`assembled.json`). The kill lands at a
/// random moment of that request, or (a third of the runs each) as soon as the record appears
/// or as soon as the file is published, before its marker.
fn kill_during_assembly(run: u64, big: &FlowFile, rng: &mut Rng, figures: &mut Figures) {
    let root = scratch("server-crash-");
    let dir = root.path().join("files");
    let context = format!("run {run} (kill during assembly)");
    let session = new_session();
    let scope = session.split('.').next().expect("a session id").to_owned();
    let upload = dir
        .join(".chunks")
        .join(chunked_upload::default_hash_name(&scope, &big.identifier));
    let server = Server::start(&options(&dir, false));
    let last = big.total_chunks();
    for n in 1..last {
        flow_post(server.addr, &session, big, n, Body::Octet).expect(200);
    }
    // The last chunk starts the assembly; its answer may never come.
    let request = upload_request(
        &flow_pairs(big, last),
        &big.data[big.range(last)],
        Body::Octet,
    )
    .cookie(&session);
    let addr = server.addr;
    let sent = Instant::now();
    let sender = thread::spawn(move || request.try_send(addr));

    // Watch the folder: a visible file must always be whole.
    let total = big.data.len() as u64;
    let mode = rng.below(3);
    let delay = Duration::from_millis(rng.below(400));
    loop {
        assert!(
            sent.elapsed() < TIMEOUT,
            "{context}: the assembly never ended\n{}",
            server.log()
        );
        let mut published = false;
        for name in files_in(&dir) {
            let len = std::fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
            assert_eq!(len, total, "{context}: {name} visible with {len} bytes");
            assert!(!name.starts_with('.'), "{context}: {name} in the folder");
            published = true;
        }
        let recorded = upload.join("assembling.json").exists();
        let kill = match mode {
            0 => sent.elapsed() >= delay || published,
            1 => recorded || published,
            _ => published,
        };
        if kill {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    // Where the kill landed (read just before it; the server may move on meanwhile).
    let recorded = upload.join("assembling.json").exists();
    let marked = upload.join("assembled.json").exists();
    let published = !files_in(&dir).is_empty();
    server.kill9();
    let _ = sender.join();
    match (published, recorded, marked) {
        (false, false, _) => figures.before_record += 1,
        (false, true, _) => figures.recorded_unpublished += 1,
        (true, _, false) => figures.published_unmarked += 1,
        (true, _, true) => figures.marked += 1,
    }
    figures.during_assembly += 1;
    if assert_nothing_partial(&dir, big, &context) {
        figures.assembly_finished_first += 1;
    }
    restart_and_resume(&dir, &session, big, rng, figures, &context);
}

#[test]
fn kill_9_while_chunks_stream_in_and_while_a_big_file_is_assembled() {
    let runs = iterations(10, 100);
    let mib = if long_run() { 128 } else { 64 };
    let chunk = 4 << 20;
    let big = FlowFile::new("big.bin", data(mib << 20, 0xB16), chunk);
    let mut figures = Figures::default();
    let started = Instant::now();
    for run in 0..runs {
        let mut rng = Rng(0xDEAD_0000 + run * 104_729);
        if run % 2 == 0 {
            kill_mid_body(run, &mut rng, &mut figures);
        } else {
            kill_during_assembly(run, &big, &mut rng, &mut figures);
        }
        figures.runs += 1;
    }
    eprintln!(
        "server_crash: {} kills ({} mid-body, {} during the assembly of a {mib} MiB file: {} \
         before its record, {} recorded but not published, {} published but not marked, {} \
         marked; {} found the file published), 0 failures; {} runs left staging files that the \
         sweep removed; {} chunks re-posted on resume; {:.1} s",
        figures.runs,
        figures.mid_body,
        figures.during_assembly,
        figures.before_record,
        figures.recorded_unpublished,
        figures.published_unmarked,
        figures.marked,
        figures.assembly_finished_first,
        figures.leftovers_swept,
        figures.chunks_reposted,
        started.elapsed().as_secs_f64()
    );
}
