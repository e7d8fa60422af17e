//! What the progress monitor costs (plain `harness = false`; prints its figures):
//!
//! 1. Time per chunk of `save()` with the upload tracked by the monitor and untracked (size
//!    below the threshold), 1 MiB chunks streamed in 64 KiB blocks (16 byte-count updates each).
//! 2. Memory per tracked upload: resident memory after starting 20 000 uploads (one chunk each)
//!    with and without tracking, divided by the number of uploads.
//!
//! Run with `cargo bench --bench progress`. Wall-clock figures on a busy machine are noisy; for
//! a repeatable count of the work the monitor adds, run one fixed workload per mode under
//! callgrind and compare the instruction totals:
//!
//! ```text
//! cargo bench --bench progress --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/progress-* workload tracked
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/progress-* workload untracked
//! ```
//!
//! (`workload` stores 256 chunks of 64 KiB, streamed in 64 KiB blocks, into 4 uploads.)

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chunked_upload::{ChunkBody, Config, Params, ProgressConfig, RawRequest, RequestKind, Uploads};

fn uploads(dir: &Path, tracked: bool) -> Uploads {
    let threshold = if tracked { 0 } else { u64::MAX };
    Uploads::new(
        Config::builder(dir.join("chunks"), dir.join("files"))
            .progress(ProgressConfig {
                threshold,
                max_entries: 1_000_000,
                ..ProgressConfig::default()
            })
            .build(),
    )
    .unwrap()
}

fn request(id: &str, number: u64, chunk: usize, chunks: u64, body: &[u8]) -> RawRequest {
    let params: Params = [
        ("flowChunkNumber", number.to_string()),
        ("flowChunkSize", chunk.to_string()),
        ("flowCurrentChunkSize", body.len().to_string()),
        ("flowTotalSize", (chunk as u64 * chunks).to_string()),
        ("flowIdentifier", id.to_string()),
        ("flowFilename", format!("{id}.bin")),
        ("flowTotalChunks", chunks.to_string()),
    ]
    .into_iter()
    .collect();
    RawRequest::new(RequestKind::Upload, params)
        .with_scope("bench")
        .with_body(ChunkBody::bytes(body.to_vec()))
}

fn per_chunk_us(base: &Path, tracked: bool) -> f64 {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: u64 = 64;
    const FILES: u64 = 8;
    let dir = base.join(format!("time-{tracked}"));
    let _ = fs::remove_dir_all(&dir);
    let uploads = uploads(&dir, tracked);
    let body = vec![1u8; CHUNK];
    let start = Instant::now();
    for f in 0..FILES {
        let id = format!("t{f}");
        // chunk 1 last: every timed request stores a chunk, the last one also assembles
        for number in (2..=CHUNKS).chain([1]) {
            uploads
                .save(&mut request(&id, number, CHUNK, CHUNKS, &body))
                .unwrap();
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / (FILES * CHUNKS) as f64;
    let _ = fs::remove_dir_all(&dir);
    us
}

fn resident_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory_per_upload(base: &Path, tracked: bool, n: u64) -> f64 {
    let dir = base.join(format!("mem-{tracked}"));
    let _ = fs::remove_dir_all(&dir);
    let uploads = uploads(&dir, tracked);
    let body = [7u8; 16];
    let before = resident_bytes();
    for i in 0..n {
        let id = format!("upload-{i:08}-with-a-realistic-identifier");
        uploads.save(&mut request(&id, 1, 16, 2, &body)).unwrap();
    }
    let after = resident_bytes();
    assert_eq!(uploads.progress().len() as u64, if tracked { n } else { 0 });
    drop(uploads);
    let _ = fs::remove_dir_all(&dir);
    after.saturating_sub(before) as f64 / n as f64
}

/// The fixed workload for instruction counts: 4 uploads of 64 chunks of 64 KiB.
fn workload(base: &Path, tracked: bool) {
    const CHUNK: usize = 64 * 1024;
    let dir = base.join(format!("workload-{tracked}"));
    let _ = fs::remove_dir_all(&dir);
    let uploads = uploads(&dir, tracked);
    let body = vec![3u8; CHUNK];
    for f in 0..4 {
        let id = format!("w{f}");
        for number in 1..=64 {
            uploads
                .save(&mut request(&id, number, CHUNK, 64, &body))
                .unwrap();
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "workload") {
        let base = PathBuf::from("target/bench-progress");
        fs::create_dir_all(&base).unwrap();
        workload(
            &base,
            args.get(i + 1).map(String::as_str) != Some("untracked"),
        );
        return;
    }
    let base = std::env::var_os("BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench-progress"), PathBuf::from);
    fs::create_dir_all(&base).unwrap();
    println!("== save() per 1 MiB chunk, with and without progress tracking (8 files x 64 chunks)");
    // Alternate to spread the machine's noise over both.
    let mut with = Vec::new();
    let mut without = Vec::new();
    for _ in 0..3 {
        without.push(per_chunk_us(&base, false));
        with.push(per_chunk_us(&base, true));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, wo) = (median(&mut with), median(&mut without));
    println!("   untracked : {wo:>8.1} us per chunk (median of 3)");
    println!("   tracked   : {w:>8.1} us per chunk (median of 3)");
    println!(
        "   cost      : {:>8.1} us per chunk ({:+.1} %)",
        w - wo,
        (w - wo) / wo * 100.0
    );

    const N: u64 = 20_000;
    println!("== resident memory per started upload ({N} uploads, one 16-byte chunk each)");
    let untracked = memory_per_upload(&base, false, N);
    let tracked = memory_per_upload(&base, true, N);
    println!("   untracked : {untracked:>8.0} bytes per upload (ledger cache etc.)");
    println!("   tracked   : {tracked:>8.0} bytes per upload");
    println!(
        "   monitor   : {:>8.0} bytes per tracked upload",
        tracked - untracked
    );
}
