//! A process killed with SIGKILL while chunks stream in or while a file is being assembled
//! leaves no partial file at the destination; after a restart the upload resumes the way the
//! widget resumes it (a test request per chunk, uploading only what is missing) and completes
//! byte-identical, and the sweep leaves no stray staging file behind.
//!
//! The child assembles through a (slow) pre-process hook, so the kills during assembly land in
//! the hook's pass into the hidden file beside the destination; `tests/server_crash.rs` kills
//! the example server during the default publication (fsync, record, link, marker).
//!
//! The test re-runs its own executable as the process to kill (`crash_child`, inert unless the
//! environment says otherwise). 10 iterations; `CHUNKED_UPLOAD_LONG=1` runs 100.

mod common;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chunked_upload::{ChunkBody, Error, Outcome, RawRequest, RequestKind, Uploads};
use common::{FlowFile, Rng, all_entries, bytes, config, visible_files};

const CHILD_ENV: &str = "CHUNKED_UPLOAD_CRASH_CHILD";
const CHUNK: u64 = 256 * 1024;
const CHUNKS: u64 = 24;

fn iterations() -> u64 {
    if std::env::var_os("CHUNKED_UPLOAD_LONG").is_some() {
        100
    } else {
        10
    }
}

fn the_file(seed: u64) -> FlowFile {
    FlowFile::new(
        "big.bin",
        bytes((CHUNK * CHUNKS + 12345) as usize, seed),
        CHUNK,
    )
}

/// A body that trickles in, so the kill lands while it streams.
struct Slow(io::Cursor<Vec<u8>>);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        thread::sleep(Duration::from_millis(2));
        let n = buf.len().min(16 * 1024);
        self.0.read(&mut buf[..n])
    }
}

/// The child: uploads every chunk (slowly), then assembles with a slow pre-process hook.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, seed) = spec.split_once('|').unwrap();
    let dir = PathBuf::from(dir);
    let uploads = Uploads::new(
        config(&dir)
            .preprocess(|_, r, w| {
                thread::sleep(Duration::from_millis(15));
                io::copy(r, w).map(|_| ())
            })
            .build(),
    )
    .unwrap();
    let f = the_file(seed.parse().unwrap());
    for n in 1..=f.total_chunks() {
        let body = Slow(io::Cursor::new(f.data[f.range(n)].to_vec()));
        let mut request =
            RawRequest::new(RequestKind::Upload, f.params(n)).with_body(ChunkBody::stream(body));
        uploads.save(&mut request).unwrap();
    }
}

/// Waits until `pred` holds or the deadline passes.
fn wait_for(deadline: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if pred() {
            return true;
        }
        thread::sleep(Duration::from_millis(2));
    }
    false
}

fn assembling(files: &Path) -> bool {
    all_entries(files).iter().any(|e| e.ends_with(".part"))
}

#[test]
fn kill_9_during_upload_and_assembly() {
    let exe = std::env::current_exe().unwrap();
    let runs = iterations();
    let mut killed_during_assembly = 0;
    for seed in 0..runs {
        let mut rng = Rng(seed + 99);
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{seed}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Half the runs kill while chunks stream in, half during the assembly.
        let during_assembly = seed % 2 == 1;
        if during_assembly {
            assert!(
                wait_for(Duration::from_secs(60), || assembling(&files)),
                "assembly never started"
            );
            thread::sleep(Duration::from_millis(rng.below(300)));
            killed_during_assembly += 1;
        } else {
            thread::sleep(Duration::from_millis(20 + rng.below(400)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Never a partial file at the destination: nothing visible, or the whole file.
        let f = the_file(seed);
        match visible_files(&files).as_slice() {
            [] => {}
            [name] => assert!(
                fs::read(files.join(name)).unwrap() == f.data,
                "seed {seed}: corrupt"
            ),
            more => panic!("seed {seed}: {more:?}"),
        }

        // Restart and resume as the widget does: test each chunk, upload the missing ones.
        let uploads = Uploads::new(config(dir.path()).build()).unwrap();
        let mut assembled = None;
        for n in 1..=f.total_chunks() {
            let outcome = match uploads.save(&mut f.test(n, "")) {
                Err(Error::NoContent { .. }) => uploads.save(&mut f.upload(n, "")).unwrap(),
                other => other.unwrap(),
            };
            if let Outcome::Assembled { file, .. } = outcome {
                assembled = Some(file);
            }
        }
        let file = assembled.unwrap_or_else(|| panic!("seed {seed}: not assembled after resume"));
        assert!(
            fs::read(file.path().unwrap()).unwrap() == f.data,
            "seed {seed}: bytes differ"
        );
        assert_eq!(visible_files(&files), ["big.bin"], "seed {seed}");

        // Crash leftovers (a staging chunk the killed process was writing) go with the sweep
        // once they are past the grace period; simulate the wait by ageing them.
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for entry in all_entries(uploads.temp_dir().unwrap()) {
            let p = uploads.temp_dir().unwrap().join(&entry);
            if p.is_file() && entry.contains("staging/") {
                fs::File::open(&p).unwrap().set_modified(old).unwrap();
            }
        }
        uploads.sweep().unwrap();
        let stray: Vec<String> = all_entries(uploads.temp_dir().unwrap())
            .into_iter()
            .filter(|e| e.contains(".stage-") || e.ends_with(".part"))
            .collect();
        assert!(
            stray.is_empty(),
            "seed {seed}: stray staging files {stray:?}"
        );
        assert_eq!(
            all_entries(&files),
            ["big.bin"],
            "seed {seed}: no hidden leftovers"
        );
    }
    eprintln!("{runs} kills ({killed_during_assembly} during assembly), 0 failures");
}
