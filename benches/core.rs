//! Core benchmarks of the in-place layout (plain `harness = false`; prints its figures, the
//! ratios and a met/MISSED verdict for each bar of DESIGN.md section 6 it measures):
//!
//! 1. **Scaling**: the per-chunk cost of `save()` for files of 100 chunks and of 100 000 chunks
//!    (1 KiB each), the assembling request left out (it is measured on its own, in 2). The
//!    ledger makes completion O(1) per chunk and a piece is a `pwrite` at its offset, so the two
//!    should be close. Bar: 100 000 within 1.2x of 100.
//! 2. **Assembly**: the assembling request on its own (the last chunk, whose request finds the
//!    upload complete, fsyncs the data file and publishes it by a hard link) for files of 100
//!    and of 20 000 chunks of 1 KiB. Bar: 20 000 within 8x of 100. Measured twice:
//!    - as a client sees it, right after the other chunks: its fsync also writes back the
//!      pages the earlier chunks left dirty in the page cache (100 KiB against 20 MiB);
//!    - with the data file fsynced first (untimed): what the request itself does (its chunk,
//!      an fsync with nothing else to write, the link, the marker, the directory syncs).
//! 3. **1 GiB**: the assembling request of a 1 GiB upload of 1 MiB chunks, right after the
//!    other 1023, against `fsync` of a 1 GiB file written the same way (1 MiB `pwrite`s at
//!    their offsets into a file sized first, nothing synced): with nothing copied, assembling
//!    should cost about that fsync. Also shown with the data file synced first.
//!
//! For a profiler, `cargo bench --bench core -- file N [FILES]` uploads FILES (default 1) files
//! of N chunks of 1 KiB and prints their per-chunk cost and assembling requests, nothing else:
//!
//! ```text
//! cargo bench --bench core --no-run
//! perf record -e cpu-clock -g target/release/deps/core-* file 100000
//! ```
//!
//! Run with `cargo bench --bench core`. Each figure is the median of `BENCH_ROUNDS` rounds
//! (default 3), the contenders of a round interleaved. `BENCH_ASSEMBLY_MIB` sets the size of 3
//! (default 1024), `BENCH_DIR` the working directory (default `target/bench-core`, on the
//! filesystem of the build).
//!
//! Every measurement starts after a `sync` and a pause of `BENCH_SETTLE_SECS` (default 6): on
//! ext4 without a journal, creating a file skips every inode freed in the last 5 s (300 s while
//! the inode table block is still dirty), so the files the previous measurement created and
//! deleted would otherwise make the next one's creates slower. The header says which
//! filesystem the working directory is on.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chunked_upload::{ChunkBody, Config, Outcome, Params, RawRequest, RequestKind, Uploads};

/// The bars (DESIGN.md section 6).
const SCALING_BAR: f64 = 1.2;
const ASSEMBLY_BAR: f64 = 8.0;

fn params(id: &str, number: u64, chunk: u64, total_chunks: u64, current: u64) -> Params {
    [
        ("flowChunkNumber", number.to_string()),
        ("flowChunkSize", chunk.to_string()),
        ("flowCurrentChunkSize", current.to_string()),
        ("flowTotalSize", (chunk * total_chunks).to_string()),
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
    let p = params(id, number, chunk, total_chunks, body.len() as u64);
    let mut request =
        RawRequest::new(RequestKind::Upload, p).with_body(ChunkBody::bytes(body.to_vec()));
    uploads.save(&mut request).expect("save")
}

fn uploads_in(dir: &Path) -> Uploads {
    let _ = fs::remove_dir_all(dir);
    Uploads::new(Config::builder(dir.join("chunks"), dir.join("files")).build()).unwrap()
}

/// Flushes the upload's data file (untimed), so that the assembling request's fsync has only
/// its own chunk to write. The path is the local store's layout (`<temp dir>/<key>/data`).
fn settle_data_file(uploads: &Uploads, id: &str) {
    let key = chunked_upload::default_hash_name("", id);
    let data = uploads.temp_dir().unwrap().join(key).join("data");
    File::open(&data)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("sync {}: {e}", data.display()));
}

/// What one file of `n` chunks took: the chunk requests 2..=n (each only stores its chunk),
/// then chunk 1, the assembling request, timed on its own.
struct FileTimes {
    chunks: Duration,
    assembling: Duration,
}

/// Uploads file `id` of `n` chunks of `chunk` bytes: chunks 2..=n, then chunk 1 (which
/// completes the upload and assembles it), the data file synced before it when `settle`.
fn one_file(
    uploads: &Uploads,
    id: &str,
    n: u64,
    chunk: u64,
    body: &[u8],
    settle: bool,
) -> FileTimes {
    let start = Instant::now();
    for number in 2..=n {
        let outcome = upload(uploads, id, number, chunk, n, body);
        assert!(
            matches!(outcome, Outcome::ChunkStored { .. }),
            "{outcome:?}"
        );
    }
    let chunks = start.elapsed();
    if settle {
        settle_data_file(uploads, id);
    }
    let start = Instant::now();
    let last = upload(uploads, id, 1, chunk, n, body);
    let assembling = start.elapsed();
    let Outcome::Assembled { file, fresh: true } = last else {
        panic!("chunk 1 did not assemble: {last:?}")
    };
    assert_eq!(file.size, chunk * n);
    FileTimes { chunks, assembling }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn verdict(ratio: f64, bar: f64) -> &'static str {
    if ratio <= bar { "met" } else { "MISSED" }
}

/// 1 KiB chunks.
const SMALL: u64 = 1024;

/// Per-chunk microseconds of the chunk requests (assembling request excluded) over `files`
/// files of `n` chunks, and the assembling requests' milliseconds.
fn small_files(base: &Path, n: u64, files: u64, settle: bool, round: u32) -> (f64, Vec<f64>) {
    let body = vec![7u8; SMALL as usize];
    let dir = base.join(format!("small-{n}-{settle}-{round}"));
    let uploads = uploads_in(&dir);
    let mut spent = Duration::ZERO;
    let mut assembling = Vec::new();
    for f in 0..files {
        let t = one_file(&uploads, &format!("f{n}-{f}"), n, SMALL, &body, settle);
        spent += t.chunks;
        assembling.push(t.assembling.as_secs_f64() * 1e3);
    }
    drop(uploads);
    let _ = fs::remove_dir_all(&dir);
    (
        spent.as_secs_f64() * 1e6 / ((n - 1) * files) as f64,
        assembling,
    )
}

/// Seconds of the assembling request of a `mib` MiB upload of 1 MiB chunks, and of `fsync` of
/// a `mib` MiB file written alike; the first synced beforehand when `settle`.
fn big_file(base: &Path, mib: u64, settle: bool, round: u32) -> (f64, f64) {
    const CHUNK: u64 = 1 << 20;
    let body: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let dir = base.join(format!("big-{settle}-{round}"));

    // The reference: a file sized first, each MiB written at its offset, then fsync.
    fs::create_dir_all(&dir).unwrap();
    let reference = dir.join("reference.bin");
    sync_everything();
    let fsync = {
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&reference)
            .unwrap();
        f.set_len(CHUNK * mib).unwrap();
        for i in (1..mib).chain([0]) {
            f.write_all_at(&body, i * CHUNK).unwrap();
        }
        let start = Instant::now();
        f.sync_all().unwrap();
        start.elapsed().as_secs_f64()
    };
    fs::remove_file(&reference).unwrap();

    sync_everything();
    let uploads = uploads_in(&dir.join("ours"));
    let t = one_file(&uploads, &format!("big{round}"), mib, CHUNK, &body, settle);
    drop(uploads);
    let _ = fs::remove_dir_all(&dir);
    (t.assembling.as_secs_f64(), fsync)
}

/// `sync`, then the settle pause (see the crate docs above): each measurement starts from the
/// same state of the filesystem.
fn settle(secs: u64) {
    sync_everything();
    std::thread::sleep(Duration::from_secs(secs));
}

/// The filesystem type of `dir` and, for ext4, whether it has a journal.
fn filesystem(dir: &Path) -> String {
    let Ok(dir) = fs::canonicalize(dir) else {
        return "?".into();
    };
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let Some((_, device, fstype)) = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, point, fstype) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point)
                .then_some((point.len(), device, fstype))
        })
        .max_by_key(|(len, _, _)| *len)
    else {
        return "?".into();
    };
    let journal = if fstype == "ext4" {
        let dev = device.trim_start_matches("/dev/");
        let has = fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(dev))
        });
        if has { " (journal)" } else { " (no journal)" }
    } else {
        ""
    };
    format!("{} = {fstype} on {device}{journal}", dir.display())
}

/// `sync(2)`: every dirty page of the machine written back, so that a contender does not pay
/// for what came before it.
fn sync_everything() {
    assert!(
        std::process::Command::new("sync")
            .status()
            .unwrap()
            .success()
    );
}

fn main() {
    let base = std::env::var_os("BENCH_DIR")
        .map_or_else(|| PathBuf::from("target/bench-core"), PathBuf::from);
    fs::create_dir_all(&base).unwrap();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "file") {
        let arg = |k: usize, default: u64| {
            args.get(i + k)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (n, files) = (arg(1, 100_000).max(2), arg(2, 1).max(1));
        let (per, asm) = small_files(&base, n, files, false, 0);
        println!(
            "{files} file(s) of {n} chunks of 1 KiB: {per:.1} us per chunk, assembling requests {asm:.2?} ms"
        );
        return;
    }
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mib = env("BENCH_ASSEMBLY_MIB", 1024);
    let rounds = env("BENCH_ROUNDS", 3).max(1) as u32;
    let pause = env("BENCH_SETTLE_SECS", 6);
    let load = || {
        let l = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    };
    println!(
        "core benchmarks: {rounds} round(s), median shown; {}; load average at start {}",
        filesystem(&base),
        load()
    );

    // 1 and 2 share their runs: the 100-chunk files give both the per-chunk cost and the
    // assembling request at 100 chunks.
    const FILES_100: u64 = 200;
    const FILES_20K: u64 = 3;
    let (mut per_100, mut per_100k) = (Vec::new(), Vec::new());
    let (mut asm_100, mut asm_20k) = (Vec::new(), Vec::new());
    let (mut settled_100, mut settled_20k) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        settle(pause);
        let (per, asm) = small_files(&base, 100, FILES_100, false, round);
        per_100.push(per);
        asm_100.extend(asm);
        settle(pause);
        per_100k.push(small_files(&base, 100_000, 1, false, round).0);
        settle(pause);
        asm_20k.extend(small_files(&base, 20_000, FILES_20K, false, round).1);
        settle(pause);
        settled_100.extend(small_files(&base, 100, 50, true, round).1);
        settle(pause);
        settled_20k.extend(small_files(&base, 20_000, FILES_20K, true, round).1);
    }
    let (p100, p100k) = (median(per_100.clone()), median(per_100k.clone()));
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "== scaling: per-chunk cost of save(), 1 KiB chunks (the assembling request left out)"
    );
    println!(
        "   100 chunks/file       : {p100:>8.1} us per chunk ({FILES_100} files a round; rounds {})",
        show(&per_100)
    );
    println!(
        "   100 000 chunks/file   : {p100k:>8.1} us per chunk (1 file a round; rounds {})",
        show(&per_100k)
    );
    let scaling = p100k / p100;
    println!(
        "   ratio 100 000 / 100   : {scaling:>8.2}   bar <= {SCALING_BAR:.1}   {}",
        verdict(scaling, SCALING_BAR)
    );

    println!("== assembly: the assembling request on its own, 1 KiB chunks (median over files)");
    let (a100, a20k) = (median(asm_100.clone()), median(asm_20k.clone()));
    let ratio = a20k / a100;
    println!("   right after the other chunks (its fsync writes back what they left dirty):");
    println!(
        "     100 chunks          : {a100:>8.2} ms ({} files)",
        asm_100.len()
    );
    println!(
        "     20 000 chunks       : {a20k:>8.2} ms ({} files: {} ms)",
        asm_20k.len(),
        show(&asm_20k)
    );
    println!(
        "     ratio 20 000 / 100  : {ratio:>8.2}   bar <= {ASSEMBLY_BAR:.1}   {}",
        verdict(ratio, ASSEMBLY_BAR)
    );
    let (s100, s20k) = (median(settled_100.clone()), median(settled_20k.clone()));
    let settled = s20k / s100;
    println!("   with the data file synced first (the request's own work):");
    println!(
        "     100 chunks          : {s100:>8.2} ms ({} files)",
        settled_100.len()
    );
    println!(
        "     20 000 chunks       : {s20k:>8.2} ms ({} files: {} ms)",
        settled_20k.len(),
        show(&settled_20k)
    );
    println!(
        "     ratio 20 000 / 100  : {settled:>8.2}   bar <= {ASSEMBLY_BAR:.1}   {}",
        verdict(settled, ASSEMBLY_BAR)
    );

    println!(
        "== {mib} MiB from 1 MiB chunks: the assembling request against fsync of a file written alike (seconds)"
    );
    let (mut ours, mut fsyncs, mut ours_settled) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        settle(pause);
        let (asm, fsync) = big_file(&base, mib, false, round);
        ours.push(asm);
        fsyncs.push(fsync);
        settle(pause);
        ours_settled.push(big_file(&base, mib, true, round).0);
    }
    let (o, f, os) = (
        median(ours.clone()),
        median(fsyncs.clone()),
        median(ours_settled.clone()),
    );
    let secs = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "   assembling request, right after the other chunks : {o:>7.3} s (rounds {})",
        secs(&ours)
    );
    println!(
        "   fsync of a {mib} MiB file just written alike      : {f:>7.3} s (rounds {})",
        secs(&fsyncs)
    );
    println!(
        "   ratio                                            : {:>7.2}",
        o / f
    );
    println!(
        "   assembling request, data file synced first       : {os:>7.3} s (rounds {})",
        secs(&ours_settled)
    );
    println!("   (load average at the end {})", load());
}
