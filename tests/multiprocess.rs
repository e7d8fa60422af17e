//! Three processes sharing one temp dir store the chunks of several files at once, the last
//! chunks of each file racing across processes: every file is assembled exactly once and
//! byte-identical. The per-upload lock is `std::fs::File::lock` (flock), which is what makes
//! this hold across processes.
//!
//! The test re-runs its own executable as the child processes (`child_worker`, inert unless
//! the environment says otherwise). 10 iterations; `CHUNKED_UPLOAD_LONG=1` runs 50.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chunked_upload::{ConflictPolicy, Uploads};
use common::{FlowFile, Rng, bytes, config, visible_files};

const PROCESSES: u64 = 3;
const FILES: u64 = 4;
const CHILD_ENV: &str = "CHUNKED_UPLOAD_MULTIPROCESS_CHILD";

fn iterations() -> u64 {
    if std::env::var_os("CHUNKED_UPLOAD_LONG").is_some() {
        50
    } else {
        10
    }
}

/// File `i` of iteration `seed`: same bytes in every process.
fn file(seed: u64, i: u64) -> FlowFile {
    let mut rng = Rng(seed * 1000 + i + 1);
    let chunk_size = 512 + rng.below(4096);
    let size = chunk_size * (10 + rng.below(30)) + rng.below(chunk_size);
    FlowFile::new(
        &format!("file-{i}.bin"),
        bytes(size as usize, seed * 100 + i),
        chunk_size,
    )
}

/// Which chunks process `p` sends: its share (round robin) plus ~30 % duplicates, shuffled,
/// then every file's last chunk (sent by all processes).
fn plan(seed: u64, p: u64) -> Vec<(u64, u64)> {
    let mut rng = Rng(seed * 31 + p + 7);
    let mut sends = Vec::new();
    for i in 0..FILES {
        let n = file(seed, i).total_chunks();
        for number in 1..n {
            if number % PROCESSES == p || rng.below(10) < 3 {
                sends.push((i, number));
            }
        }
    }
    rng.shuffle(&mut sends);
    for i in 0..FILES {
        sends.push((i, file(seed, i).total_chunks()));
    }
    sends
}

fn uploads(dir: &Path) -> Uploads {
    Uploads::new(config(dir).on_conflict(ConflictPolicy::Rename).build()).unwrap()
}

/// The child: waits for the start signal, then sends its plan.
#[test]
fn child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let dir = PathBuf::from(parts.next().unwrap());
    let seed: u64 = parts.next().unwrap().parse().unwrap();
    let p: u64 = parts.next().unwrap().parse().unwrap();
    let uploads = uploads(&dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no start signal");
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, number) in plan(seed, p) {
        uploads.save(&mut file(seed, i).upload(number, "")).unwrap();
    }
}

#[test]
fn three_processes_share_one_temp_dir() {
    let exe = std::env::current_exe().unwrap();
    for seed in 0..iterations() {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..PROCESSES)
            .map(|p| {
                Command::new(&exe)
                    .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, format!("{}|{seed}|{p}", dir.path().display()))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        fs::write(dir.path().join("go"), b"").unwrap();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a child failed (seed {seed}):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let files = dir.path().join("files");
        let expected: Vec<String> = (0..FILES).map(|i| format!("file-{i}.bin")).collect();
        assert_eq!(
            visible_files(&files),
            expected,
            "seed {seed}: one file each, no copies"
        );
        for i in 0..FILES {
            let f = file(seed, i);
            assert!(
                fs::read(files.join(&f.name)).unwrap() == f.data,
                "seed {seed} file {i} differs"
            );
        }
    }
}
