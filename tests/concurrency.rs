//! Many threads storing the chunks of one file at once, in random order, with duplicates, the
//! last chunks racing: exactly one assembly, byte-identical, hook fired once.
//!
//! 50 iterations in the normal run; `CHUNKED_UPLOAD_LONG=1` runs 200.

mod common;

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use chunked_upload::{ConflictPolicy, Outcome, Uploads};
use common::{FlowFile, Rng, bytes, config, visible_files};

const THREADS: usize = 16;

fn iterations() -> u64 {
    if std::env::var_os("CHUNKED_UPLOAD_LONG").is_some() {
        200
    } else {
        50
    }
}

#[test]
fn sixteen_threads_random_order_with_duplicates() {
    let runs = iterations();
    let mut total_requests = 0u64;
    for run in 0..runs {
        let mut rng = Rng(0x5EED_0000 + run * 7919);
        let dir = tempfile::tempdir().unwrap();
        let assembled = Arc::new(AtomicU64::new(0));
        let a = Arc::clone(&assembled);
        let uploads = Uploads::new(
            config(dir.path())
                // A second assembly would show up as "file (1).bin".
                .on_conflict(ConflictPolicy::Rename)
                .on_assembled(move |_| {
                    a.fetch_add(1, Ordering::SeqCst);
                })
                .build(),
        )
        .unwrap();
        let chunk_size = 1024 + rng.below(8 * 1024);
        let size = chunk_size * (20 + rng.below(60)) + rng.below(chunk_size);
        let f = Arc::new(FlowFile {
            force_chunk_size: rng.below(2) == 0,
            ..FlowFile::new("file.bin", bytes(size as usize, run), chunk_size)
        });
        let n = f.total_chunks();

        // Everything but the last three chunks, plus ~30 % duplicates, shuffled.
        let mut early: Vec<u64> = (1..=n.saturating_sub(3)).collect();
        let dups: Vec<u64> = early
            .iter()
            .copied()
            .filter(|_| rng.below(10) < 3)
            .collect();
        early.extend(dups);
        rng.shuffle(&mut early);
        // The last three, each sent by several threads at the same instant.
        let racing: Vec<u64> = (n.saturating_sub(3) + 1..=n).collect();

        let queue = Arc::new(Mutex::new(early));
        let barrier = Arc::new(Barrier::new(THREADS));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (uploads, f, queue, barrier, outcomes) = (
                    uploads.clone(),
                    Arc::clone(&f),
                    Arc::clone(&queue),
                    Arc::clone(&barrier),
                    Arc::clone(&outcomes),
                );
                let last = racing[t % racing.len()];
                thread::spawn(move || {
                    loop {
                        let next = queue.lock().unwrap().pop();
                        let Some(number) = next else { break };
                        let outcome = uploads.save(&mut f.upload(number, "")).unwrap();
                        outcomes.lock().unwrap().push(outcome);
                    }
                    barrier.wait();
                    let outcome = uploads.save(&mut f.upload(last, "")).unwrap();
                    outcomes.lock().unwrap().push(outcome);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let outcomes = outcomes.lock().unwrap();
        total_requests += outcomes.len() as u64;
        let fresh = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Assembled { fresh: true, .. }))
            .count();
        assert_eq!(fresh, 1, "run {run}: {fresh} requests assembled");
        assert_eq!(assembled.load(Ordering::SeqCst), 1, "run {run}: hook count");
        let files = dir.path().join("files");
        assert_eq!(visible_files(&files), ["file.bin"], "run {run}");
        assert!(
            fs::read(files.join("file.bin")).unwrap() == f.data,
            "run {run}: bytes differ"
        );
    }
    eprintln!("{runs} runs, {total_requests} requests, 1 assembly each, 0 failures");
}
