//! Storage that runs out, simulated portably with a file-size rlimit: the example server runs
//! under `ulimit -f` (2 MiB) with SIGXFSZ ignored, so a write past the limit fails with `EFBIG`
//! as a full disk fails with `ENOSPC` (the core answers both with 507 Insufficient Storage).
//!
//! - A chunk larger than the limit (as a multipart form with its fields first, one with its
//!   file part first, and a raw octet body) is answered 507 with a JSON error that says the
//!   file is too large and that a retry may succeed; nothing of it is stored (the test `GET`
//!   says 204), no staging file is left, and the server lives on.
//! - A file larger than the limit, in chunks smaller than it: the store writes every chunk in
//!   place in one data file sized for the whole file, so already the first chunk is answered
//!   507 (the file cannot be sized), nothing is stored, and no destination appears in `DIR`,
//!   not even a hidden one.
//! - Restarted without the limit on the same folder, both uploads resume as flow.js resumes
//!   them and complete byte-identical.
//!
//! Where a tmpfs can be mounted (root), a second test fills a 4 MiB tmpfs for real (`ENOSPC`):
//! a 3 MiB file assembles in it (assembly needs no second copy), a chunk that does not fit is
//! answered 507; then the tmpfs grows and the upload resumes. Elsewhere it is skipped.

mod common;
mod server_support;

use std::path::Path;

use common::{FlowFile, bytes, visible_files};
use server_support::{
    Answer, Body, Options, Server, assert_same_bytes, files_in, flow_post, flow_test, new_session,
    resume, scratch, staging_leftovers,
};

/// The file-size limit of the first server.
const LIMIT: u64 = 2 << 20;

/// The limit the kernel applies to `pid`, from `/proc/PID/limits` ("Max file size").
fn file_size_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max file size"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Whether `pid` ignores SIGXFSZ (signal 25), from `/proc/PID/status`.
fn ignores_sigxfsz(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (25 - 1)) != 0)
}

#[track_caller]
fn expect_storage_full(answer: &Answer, context: &str) {
    eprintln!("{context}: {answer}");
    assert_eq!(answer.status, 507, "{context}: {answer}");
    let json = answer.json();
    assert_eq!(json["success"], false, "{context}: {answer}");
    assert_eq!(
        json["preventRetry"], false,
        "{context}: a retry may succeed"
    );
    let error = answer.error();
    assert_eq!(
        error, "the server's storage is full; retry later",
        "{context}: a plain message, no server path"
    );
}

/// `DIR` holds no destination, finished or hidden (the chunk folder is a directory).
#[track_caller]
fn assert_no_destination(dir: &Path, context: &str) {
    assert_eq!(files_in(dir), Default::default(), "{context}: files in DIR");
}

#[test]
fn full_storage_answers_507_leaves_nothing_partial_and_the_upload_resumes() {
    let root = scratch("disk-full-");
    let dir = root.path().join("files");
    let session = new_session();
    let options = Options::new(&dir).arg("--max-chunk-size", 8 << 20);
    let mut limited = Server::start(&options.clone().file_size_limit(LIMIT));
    assert_eq!(file_size_limit(limited.pid()), Some(LIMIT), "the rlimit");
    assert!(ignores_sigxfsz(limited.pid()), "SIGXFSZ is ignored");

    // 1. A chunk larger than the limit: 507, nothing stored, no staging file left.
    let big_chunks = FlowFile::new("big-chunks.bin", bytes(6 << 20, 1), 3 << 20);
    assert_eq!(big_chunks.total_chunks(), 2);
    for body in Body::ALL {
        let context = format!("a 3 MiB chunk ({body:?})");
        let answer = flow_post(limited.addr, &session, &big_chunks, 1, body);
        expect_storage_full(&answer, &context);
        flow_test(limited.addr, &session, &big_chunks, 1).expect(204);
        assert!(limited.alive(), "{context}: the server died");
        assert_eq!(staging_leftovers(&dir), Vec::<String>::new(), "{context}");
    }
    assert_no_destination(&dir, "after the big chunks");

    // 2. A file larger than the limit in small chunks: its data file cannot hold it, so every
    // chunk, the last one too, is refused with 507 and nothing is stored.
    let big_file = FlowFile::new("big-file.bin", bytes(3 << 20, 2), 512 << 10);
    let last = big_file.total_chunks();
    assert_eq!(last, 6);
    for n in [1, 2, last] {
        let context = format!("chunk {n} of a 3 MiB file");
        let answer = flow_post(
            limited.addr,
            &session,
            &big_file,
            n,
            Body::ALL[n as usize % 3],
        );
        expect_storage_full(&answer, &context);
        flow_test(limited.addr, &session, &big_file, n).expect(204);
    }
    assert_no_destination(&dir, "after the big file");
    assert_eq!(staging_leftovers(&dir), Vec::<String>::new());
    assert!(limited.alive(), "the server died");
    let log = limited.log();
    limited.kill9();

    // 3. Space returns: restart without the limit, resume both.
    let server = Server::start(&options);
    let (assembled, posted) = resume(server.addr, &session, &big_chunks, Body::Multipart);
    assert_eq!(posted, 2, "both chunks of the first file were missing");
    assert!(assembled.iter().any(|a| a.is_assembled(Some(true))));
    let (assembled, posted) = resume(server.addr, &session, &big_file, Body::Multipart);
    assert_eq!(posted, 6, "none of the second file's chunks was stored");
    assert!(assembled.iter().any(|a| a.is_assembled(Some(true))));
    assert_same_bytes(
        &dir.join("big-chunks.bin"),
        &big_chunks.data,
        "big-chunks.bin",
    );
    assert_same_bytes(&dir.join("big-file.bin"), &big_file.data, "big-file.bin");
    assert_eq!(visible_files(&dir), ["big-chunks.bin", "big-file.bin"]);
    assert_eq!(files_in(&dir).len(), 2, "no hidden leftovers in DIR");
    let errors = log.lines().filter(|l| l.contains("507")).count();
    eprintln!(
        "disk_full: under a {} MiB file-size limit, 3 oversized chunks and 3 chunks of an \
         oversized file answered 507 (logged {errors} times), nothing partial; resumed without \
         the limit: 2 files byte-identical",
        LIMIT >> 20
    );
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes at `path`; `None` where mounting is not allowed (not
    /// root, no mount in a container).
    fn mount(path: &Path, size: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn resize(&self, size: u64) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// The real thing where the machine allows it: a 4 MiB tmpfs fills up (`ENOSPC`). A file whose
/// chunks fit but whose assembly does not, and a chunk that does not fit, are answered 507 with
/// nothing partial left; once the tmpfs grows, both uploads resume and complete byte-identical.
/// Skipped (with a note) where a tmpfs cannot be mounted.
#[test]
fn a_full_tmpfs_answers_507_and_the_uploads_resume_once_it_grows() {
    let root = scratch("disk-full-tmpfs-");
    let Some(tmpfs) = Tmpfs::mount(&root.path().join("mnt"), 4 << 20) else {
        eprintln!("disk_full: no tmpfs can be mounted here (not root?): ENOSPC test skipped");
        return;
    };
    let dir = tmpfs.path.join("files");
    let session = new_session();
    let server = Server::start(&Options::new(&dir).arg("--max-chunk-size", 8 << 20));

    // 3 MiB in 512 KiB chunks: they fit, and the assembly needs no second copy of them.
    let fits = FlowFile::new("fits.bin", bytes(3 << 20, 3), 512 << 10);
    let last = fits.total_chunks();
    for n in 1..last {
        flow_post(server.addr, &session, &fits, n, Body::ALL[n as usize % 3]).expect(200);
    }
    let answer = flow_post(server.addr, &session, &fits, last, Body::Multipart);
    assert!(answer.is_assembled(Some(true)), "{answer}");
    assert_same_bytes(&dir.join("fits.bin"), &fits.data, "fits.bin");

    // A 2 MiB chunk in what is left.
    let big = FlowFile::new("big.bin", bytes(4 << 20, 4), 2 << 20);
    let answer = flow_post(server.addr, &session, &big, 1, Body::Octet);
    assert_eq!(answer.status, 507, "{answer}");
    assert_eq!(
        answer.error(),
        "the server's storage is full; retry later",
        "{answer}"
    );
    flow_test(server.addr, &session, &big, 1).expect(204);
    assert_eq!(
        visible_files(&dir),
        ["fits.bin"],
        "after a chunk ran out of space"
    );
    assert_eq!(staging_leftovers(&dir), Vec::<String>::new());

    // Space returns.
    tmpfs.resize(32 << 20);
    let (_, posted) = resume(server.addr, &session, &big, Body::FileFirst);
    assert_eq!(posted, 2);
    assert_same_bytes(&dir.join("fits.bin"), &fits.data, "fits.bin");
    assert_same_bytes(&dir.join("big.bin"), &big.data, "big.bin");
    assert_eq!(files_in(&dir).len(), 2, "no hidden leftovers in DIR");
    server.kill9();
    eprintln!(
        "disk_full: on a 4 MiB tmpfs, a 3 MiB file assembled in place and a chunk that ran out \
         of space answered 507 (ENOSPC), nothing partial; grown to 32 MiB, it resumed \
         byte-identical"
    );
}
