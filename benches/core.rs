//! Core benchmarks (plain `harness = false`; prints its figures):
//!
//! 1. Per-chunk cost of `save()` for a file of 100 chunks and of 100 000 chunks (1 KiB each),
//!    excluding the final assembly. The ledger makes completion O(1) per chunk, so the two
//!    should be close (target: ratio <= 1.5).
//! 2. Assembly of a 1 GiB file from 1 MiB chunks, against `cat` of the same chunk files into one
//!    file, and `cat` followed by an fsync of the result (the assembly always syncs).
//!
//! Run with `cargo bench --bench core`. `BENCH_ASSEMBLY_MIB` sets the assembled size (default
//! 1024), `BENCH_DIR` the working directory (default `target/bench-core`, on the same
//! filesystem as the build).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chunked_upload::{ChunkBody, Config, Outcome, Params, RawRequest, RequestKind, Uploads};

fn params(
    id: &str,
    number: u64,
    chunk: u64,
    total_size: u64,
    total_chunks: u64,
    current: u64,
) -> Params {
    [
        ("flowChunkNumber", number.to_string()),
        ("flowChunkSize", chunk.to_string()),
        ("flowCurrentChunkSize", current.to_string()),
        ("flowTotalSize", total_size.to_string()),
        ("flowIdentifier", id.to_string()),
        ("flowFilename", format!("{id}.bin")),
        ("flowTotalChunks", total_chunks.to_string()),
    ]
    .into_iter()
    .collect()
}

fn upload(
    uploads: &Uploads,
    id: &str,
    number: u64,
    chunk: u64,
    total_chunks: u64,
    body: &[u8],
) -> Outcome {
    let total_size = chunk * total_chunks;
    let p = params(
        id,
        number,
        chunk,
        total_size,
        total_chunks,
        body.len() as u64,
    );
    let mut request =
        RawRequest::new(RequestKind::Upload, p).with_body(ChunkBody::bytes(body.to_vec()));
    uploads.save(&mut request).expect("save")
}

/// Mean time per chunk to store chunks 2..=n of an n-chunk file (chunk 1 last, untimed).
fn per_chunk(base: &Path, n: u64, files: u64) -> Duration {
    const CHUNK: u64 = 1024;
    let body = vec![7u8; CHUNK as usize];
    let dir = base.join(format!("per-chunk-{n}"));
    let _ = fs::remove_dir_all(&dir);
    let uploads =
        Uploads::new(Config::builder(dir.join("chunks"), dir.join("files")).build()).unwrap();
    let mut spent = Duration::ZERO;
    for f in 0..files {
        let id = format!("f{n}-{f}");
        let start = Instant::now();
        for number in 2..=n {
            upload(&uploads, &id, number, CHUNK, n, &body);
        }
        spent += start.elapsed();
        let last = upload(&uploads, &id, 1, CHUNK, n, &body);
        assert!(matches!(last, Outcome::Assembled { .. }));
    }
    let _ = fs::remove_dir_all(&dir);
    spent / ((n - 1) * files) as u32
}

/// Seconds to assemble `mib` MiB from 1 MiB chunks, and to `cat` (and `cat` + fsync) them.
fn assembly(base: &Path, mib: u64, round: u32) -> (f64, f64, f64) {
    const CHUNK: u64 = 1 << 20;
    let dir = base.join(format!("assembly-{round}"));
    let _ = fs::remove_dir_all(&dir);
    let uploads = Uploads::new(
        Config::builder(dir.join("chunks"), dir.join("files"))
            .delete_chunks_on_save(false)
            .build(),
    )
    .unwrap();
    let id = format!("big{round}");
    let body: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    for number in 1..mib {
        upload(&uploads, &id, number, CHUNK, mib, &body);
    }
    // The last chunk goes in behind the ledger's back; the test request that finds it then
    // records it and assembles: what is timed is the assembly alone.
    let key = chunked_upload::default_hash_name("", &id);
    let chunk_dir = dir.join("chunks").join(&key);
    fs::write(chunk_dir.join(format!("chunk.{}", mib - 1)), &body).unwrap();
    let chunk_files: Vec<PathBuf> = (0..mib)
        .map(|i| chunk_dir.join(format!("chunk.{i}")))
        .collect();

    let cat_out = dir.join("cat.bin");
    // Each contender starts with no dirty pages in flight (the chunks were just written).
    let settle = || assert!(Command::new("sync").status().unwrap().success());
    let cat = |sync: bool| {
        let _ = fs::remove_file(&cat_out);
        settle();
        let script = if sync {
            "cat \"$@\" > \"$0\" && sync \"$0\""
        } else {
            "cat \"$@\" > \"$0\""
        };
        let start = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&cat_out)
            .args(&chunk_files)
            .status()
            .unwrap();
        assert!(status.success());
        start.elapsed().as_secs_f64()
    };
    let cat_plain = cat(false);
    let cat_synced = cat(true);

    let _ = fs::remove_file(&cat_out);
    let mut test = RawRequest::new(
        RequestKind::Test,
        params(&id, mib, CHUNK, CHUNK * mib, mib, CHUNK),
    );
    settle();
    let start = Instant::now();
    let outcome = uploads.save(&mut test).unwrap();
    let ours = start.elapsed().as_secs_f64();
    let Outcome::Assembled { file, .. } = outcome else {
        panic!("not assembled: {outcome:?}")
    };
    assert_eq!(file.size, CHUNK * mib);
    let _ = fs::remove_dir_all(&dir);
    (ours, cat_plain, cat_synced)
}

fn main() {
    let base = std::env::var_os("BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench-core"), PathBuf::from);
    fs::create_dir_all(&base).unwrap();
    let mib: u64 = std::env::var("BENCH_ASSEMBLY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);

    println!(
        "== per-chunk cost of save() (1 KiB chunks, completion check included, assembly excluded)"
    );
    let small = per_chunk(&base, 100, 200);
    let large = per_chunk(&base, 100_000, 1);
    println!(
        "   100 chunks/file     : {:>8.1} us per chunk (200 files)",
        small.as_secs_f64() * 1e6
    );
    println!(
        "   100 000 chunks/file : {:>8.1} us per chunk (1 file)",
        large.as_secs_f64() * 1e6
    );
    println!(
        "   ratio 100k / 100    : {:>8.2} (target <= 1.5)",
        large.as_secs_f64() / small.as_secs_f64()
    );

    println!("== assembly of {mib} MiB from 1 MiB chunks (seconds; best of 2)");
    let mut best = (f64::MAX, f64::MAX, f64::MAX);
    for round in 0..2 {
        let (ours, cat, cat_sync) = assembly(&base, mib, round);
        best = (best.0.min(ours), best.1.min(cat), best.2.min(cat_sync));
    }
    println!(
        "   chunked-upload (copy_file_range + fsync) : {:>7.3} s  {:>7.0} MiB/s",
        best.0,
        mib as f64 / best.0
    );
    println!(
        "   cat > file                              : {:>7.3} s  {:>7.0} MiB/s",
        best.1,
        mib as f64 / best.1
    );
    println!(
        "   cat > file && sync file                 : {:>7.3} s  {:>7.0} MiB/s",
        best.2,
        mib as f64 / best.2
    );
}
