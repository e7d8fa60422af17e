//! The storage and assembly invariants of DESIGN.md section 3, each with a test that fails
//! without it.

mod common;

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, SystemTime};

use chunked_upload::{
    ChunkBody, ConflictPolicy, Error, Outcome, RawRequest, RequestKind, Uploads, default_hash_name,
};
use common::{FlowFile, bytes, config, uploads, visible_files};

fn upload_dir(uploads: &Uploads, scope: &str, id: &str) -> std::path::PathBuf {
    uploads
        .temp_dir()
        .unwrap()
        .join(default_hash_name(scope, id))
}

/// A body that yields `first` bytes, then waits for a signal before yielding the rest.
struct Gated {
    data: io::Cursor<Vec<u8>>,
    first: usize,
    reached: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let pos = self.data.position() as usize;
        if pos == self.first
            && let Some(tx) = self.reached.take()
        {
            tx.send(()).unwrap();
            self.go.recv().unwrap();
        }
        let limit = if pos < self.first {
            self.first - pos
        } else {
            buf.len()
        };
        let n = limit.min(buf.len());
        self.data.read(&mut buf[..n])
    }
}

/// Invariant 1: a chunk is present only once all its bytes are stored.
#[test]
fn a_chunk_streaming_in_is_not_present() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("a.bin", bytes(200_000, 1), 100_000);
    let (reached_tx, reached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let body = Gated {
        data: io::Cursor::new(f.data[f.range(1)].to_vec()),
        first: 50_000,
        reached: Some(reached_tx),
        go: go_rx,
    };
    let mut request =
        RawRequest::new(RequestKind::Upload, f.params(1)).with_body(ChunkBody::stream(body));
    let u = uploads.clone();
    let writer = thread::spawn(move || u.save(&mut request));
    reached_rx.recv().unwrap(); // half of the chunk is on disk
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Err(Error::NoContent { .. })
    ));
    let key = default_hash_name("", &f.identifier);
    assert_eq!(
        uploads.store().tally(&key).unwrap().present,
        0,
        "not recorded"
    );
    go_tx.send(()).unwrap();
    assert!(matches!(
        writer.join().unwrap(),
        Ok(Outcome::ChunkStored { .. })
    ));
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Ok(Outcome::ChunkPresent { .. })
    ));
}

/// Invariant 1: a duplicate never changes the stored bytes (a reader of the data never sees
/// them torn), and a second copy with other bytes is refused instead of mixed in.
#[test]
fn duplicates_never_change_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("a.bin", bytes(2_000_000, 2), 1_000_000);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let data = upload_dir(&uploads, "", &f.identifier).join("data");
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let expected = f.data[f.range(1)].to_vec();
    let reader = thread::spawn(move || {
        let mut reads = 0;
        while !s.load(Ordering::Relaxed) {
            let got = fs::read(&data).expect("data stays present");
            assert!(got[..expected.len()] == expected[..], "torn chunk seen");
            reads += 1;
        }
        reads
    });
    for _ in 0..30 {
        assert!(matches!(
            uploads.save(&mut f.upload(1, "")).unwrap(),
            Outcome::ChunkStored {
                chunks_present: 1,
                ..
            }
        ));
    }
    let mut other = f.upload(1, "");
    other.set_body(ChunkBody::bytes(bytes(1_000_000, 99)));
    let err = uploads.save(&mut other).unwrap_err();
    assert!(
        matches!(err, Error::ContentMismatch { chunk: 1, .. }),
        "{err}"
    );
    assert_eq!(err.status(), 409);
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(2, "")).unwrap() else {
        panic!("the second chunk completes the file")
    };
    assert!(fs::read(file.path().unwrap()).unwrap() == f.data);
}

/// Invariant 1 with copies in flight at once: of several requests writing the same chunk at
/// the same moment, one writes it in place and the others aside; the file holds the bytes sent.
#[test]
fn concurrent_copies_of_one_chunk_yield_the_bytes_sent() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let uploads = uploads(dir.path());
        let f = FlowFile::new("p.bin", bytes(300_000, round), 100_000);
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (uploads, f, barrier) = (uploads.clone(), f.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    uploads.save(&mut f.upload(2, "")).unwrap()
                })
            })
            .collect();
        for h in handles {
            assert!(matches!(h.join().unwrap(), Outcome::ChunkStored { .. }));
        }
        uploads.save(&mut f.upload(1, "")).unwrap();
        let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(3, "")).unwrap() else {
            panic!()
        };
        assert!(
            fs::read(file.path().unwrap()).unwrap() == f.data,
            "round {round}"
        );
    }
}

/// Invariant 2: completion comes from the ledger: bytes written at a chunk's place without a
/// record (a crash between writing and recording) do not count. Invariant 3: a test request
/// that finds every chunk recorded completes the upload (here after the first assembly was
/// refused by the conflict policy and the way was cleared).
#[test]
fn completion_is_tracked_by_the_ledger_and_a_test_request_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("b.bin", bytes(30, 3), 10);
    let up = upload_dir(&uploads, "", &f.identifier);
    uploads.save(&mut f.upload(1, "")).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let data = fs::OpenOptions::new()
            .write(true)
            .open(up.join("data"))
            .unwrap();
        data.write_all_at(&f.data[f.range(3)], 20).unwrap();
    }
    assert!(matches!(
        uploads.save(&mut f.upload(2, "")),
        Ok(Outcome::ChunkStored {
            chunks_present: 2,
            total_chunks: 3,
            ..
        })
    ));
    assert!(matches!(
        uploads.save(&mut f.test(3, "")),
        Err(Error::NoContent { .. })
    ));
    let files = dir.path().join("files");
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("b.bin"), b"in the way").unwrap();
    assert!(matches!(
        uploads.save(&mut f.upload(3, "")),
        Err(Error::Conflict { .. })
    ));
    fs::remove_file(files.join("b.bin")).unwrap();
    let Ok(Outcome::Assembled { file, fresh: true }) = uploads.save(&mut f.test(3, "")) else {
        panic!("the test request should complete the upload")
    };
    assert_eq!(fs::read(file.path().unwrap()).unwrap(), f.data);
}

/// Invariant 3: later requests for an assembled upload answer success and do not assemble
/// again; the hook fires once.
#[test]
fn assembled_uploads_answer_without_reassembling() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let uploads = Uploads::new(
        config(dir.path())
            .on_conflict(ConflictPolicy::Rename)
            .on_assembled(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .build(),
    )
    .unwrap();
    let f = FlowFile::new("c.txt", bytes(25, 4), 10);
    for n in 1..=2 {
        uploads.save(&mut f.upload(n, "")).unwrap();
    }
    let dest = dir.path().join("files/c.txt");
    let modified = fs::metadata(&dest).unwrap().modified().unwrap();
    for n in 1..=2 {
        // A test request says "absent", so that a changed file would be sent; the same bytes
        // then answer "assembled" without assembling again.
        assert!(matches!(
            uploads.save(&mut f.test(n, "")),
            Err(Error::NoContent { .. })
        ));
        assert!(matches!(
            uploads.save(&mut f.upload(n, "")),
            Ok(Outcome::Assembled { fresh: false, .. })
        ));
    }
    assert!(matches!(
        uploads.finalize("", &f.identifier),
        Ok(Outcome::Assembled { fresh: false, .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        visible_files(&dir.path().join("files")),
        ["c.txt"],
        "no second copy"
    );
    assert_eq!(fs::metadata(&dest).unwrap().modified().unwrap(), modified);
}

/// Invariant 4: the destination is never visible half-written: while chunks are being copied
/// only a hidden staging file exists in the destination folder.
#[test]
fn destination_is_invisible_until_complete() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let f2 = files.clone();
    let seen_during = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen_during);
    let uploads = Uploads::new(
        config(dir.path())
            .preprocess(move |_, r, w| {
                s.lock()
                    .unwrap()
                    .push((visible_files(&f2), common::all_entries(&f2)));
                io::copy(r, w).map(|_| ())
            })
            .build(),
    )
    .unwrap();
    let f = FlowFile::new("d.bin", bytes(40, 5), 10);
    for n in 1..=4 {
        uploads.save(&mut f.upload(n, "")).unwrap();
    }
    let seen = seen_during.lock().unwrap();
    assert_eq!(seen.len(), 4);
    for (visible, all) in seen.iter() {
        assert!(visible.is_empty(), "visible during assembly: {visible:?}");
        assert_eq!(all.len(), 1, "only the staging file: {all:?}");
        assert!(all[0].starts_with('.'));
    }
    assert_eq!(
        common::all_entries(&files),
        ["d.bin"],
        "staging file removed"
    );
}

/// Config: delete-chunks-on-save `false` keeps the chunks.
#[test]
fn chunks_are_kept_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(config(dir.path()).delete_chunks_on_save(false).build()).unwrap();
    let f = FlowFile::new("e.txt", bytes(20, 6), 10);
    for n in 1..=2 {
        uploads.save(&mut f.upload(n, "")).unwrap();
    }
    let up = upload_dir(&uploads, "", &f.identifier);
    assert_eq!(fs::read(up.join("data")).unwrap(), f.data);
    assert_eq!(fs::read(dir.path().join("files/e.txt")).unwrap(), f.data);
}

/// Invariant 7: two scopes never share chunks, even with identical identifiers.
#[test]
fn scopes_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .on_conflict(ConflictPolicy::Rename)
            .build(),
    )
    .unwrap();
    let a = FlowFile::new("same.txt", bytes(20, 7), 10);
    let b = FlowFile {
        data: bytes(20, 8),
        ..a.clone()
    };
    uploads.save(&mut a.upload(1, "alice")).unwrap();
    assert!(matches!(
        uploads.save(&mut b.test(1, "bob")),
        Err(Error::NoContent { .. })
    ));
    uploads.save(&mut b.upload(1, "bob")).unwrap();
    uploads.save(&mut b.upload(2, "bob")).unwrap();
    uploads.save(&mut a.upload(2, "alice")).unwrap();
    let files = dir.path().join("files");
    assert_eq!(fs::read(files.join("same.txt")).unwrap(), b.data);
    assert_eq!(fs::read(files.join("same (1).txt")).unwrap(), a.data);
    assert!(matches!(
        uploads.finalize("mallory", &a.identifier),
        Err(Error::NotFound { .. })
    ));
}

/// Chunks of one upload must agree on the geometry the first chunk declared.
#[test]
fn geometry_changes_are_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("g.txt", bytes(40, 9), 10);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let other = FlowFile {
        chunk_size: 20,
        ..f.clone()
    };
    let err = uploads.save(&mut other.upload(1, "")).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::GeometryMismatch {
                field: "total chunks",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.status(), 409);
}

/// The conflict policy decides what happens to an existing destination.
#[test]
fn conflict_policies() {
    for (policy, expected_files) in [
        (ConflictPolicy::Refuse, vec!["x.txt"]),
        (ConflictPolicy::Overwrite, vec!["x.txt"]),
        (ConflictPolicy::Rename, vec!["x (1).txt", "x.txt"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join("x.txt"), b"old").unwrap();
        let uploads = Uploads::new(config(dir.path()).on_conflict(policy).build()).unwrap();
        let f = FlowFile::new("x.txt", bytes(5, 10), 10);
        let result = uploads.save(&mut f.upload(1, ""));
        match policy {
            ConflictPolicy::Refuse => {
                assert!(matches!(result, Err(Error::Conflict { .. })));
                assert_eq!(fs::read(files.join("x.txt")).unwrap(), b"old");
            }
            ConflictPolicy::Overwrite => {
                assert!(result.is_ok());
                assert_eq!(fs::read(files.join("x.txt")).unwrap(), f.data);
            }
            _ => {
                assert!(result.is_ok());
                assert_eq!(fs::read(files.join("x (1).txt")).unwrap(), f.data);
            }
        }
        assert_eq!(common::all_entries(&files), expected_files, "{policy:?}");
    }
}

/// Invariant 7: client strings never reach a path: hostile identifiers and names are stored
/// under a hash, and the destination name is sanitized.
#[test]
fn hostile_names_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile {
        identifier: "../../../../etc/passwd".into(),
        name: "../../outside.txt".into(),
        ..FlowFile::new("x", bytes(10, 11), 10)
    };
    uploads.save(&mut f.upload(1, "")).unwrap();
    let mut top = common::all_entries(dir.path());
    top.retain(|e| !e.contains('/'));
    assert_eq!(top, ["chunks", "files"]);
    assert_eq!(visible_files(&dir.path().join("files")), ["outside.txt"]);
}

/// Invariant 8: the sweep never touches an upload whose lock is held (an assembly in progress),
/// removes idle ones, and removes staging files left by crashed requests.
#[test]
fn sweep_respects_locks_and_removes_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("h.bin", bytes(20, 12), 10);
    uploads.save(&mut f.upload(1, "")).unwrap();
    let up = upload_dir(&uploads, "", &f.identifier);

    let held = fs::File::open(up.join("lock")).unwrap();
    held.lock().unwrap();
    let report = uploads.sweep_idle(Duration::ZERO).unwrap();
    assert_eq!((report.busy_skipped, report.uploads_expired), (1, 0));
    assert!(up.exists());
    drop(held);

    // A crashed request's staging file (unlocked, a minute old) and a live one (locked).
    let staging = up.join("staging");
    fs::create_dir_all(&staging).unwrap();
    let orphan = staging.join(".stage-orphan");
    let live = staging.join(".stage-live");
    fs::write(&orphan, b"half").unwrap();
    fs::write(&live, b"streaming").unwrap();
    let minute_ago = SystemTime::now() - Duration::from_secs(60);
    fs::File::open(&orphan)
        .unwrap()
        .set_modified(minute_ago)
        .unwrap();
    fs::File::open(&live)
        .unwrap()
        .set_modified(minute_ago)
        .unwrap();
    let live_handle = fs::File::open(&live).unwrap();
    live_handle.lock().unwrap();
    let report = uploads.sweep().unwrap();
    assert_eq!((report.orphans_removed, report.uploads_expired), (1, 0));
    assert!(!orphan.exists() && live.exists());
    drop(live_handle);

    let report = uploads.sweep_idle(Duration::ZERO).unwrap();
    thread::sleep(Duration::from_millis(5));
    let report2 = uploads.sweep_idle(Duration::ZERO).unwrap();
    assert_eq!(report.uploads_expired + report2.uploads_expired, 1);
    assert!(!up.exists());
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Err(Error::NoContent { .. })
    ));
}

/// An empty file is one chunk of 0 bytes and assembles into an empty file.
#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("empty.txt", Vec::new(), 1 << 20);
    assert_eq!(f.total_chunks(), 1);
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Err(Error::NoContent { .. })
    ));
    let Outcome::Assembled { file, .. } = uploads.save(&mut f.upload(1, "")).unwrap() else {
        panic!()
    };
    assert_eq!(fs::metadata(file.path().unwrap()).unwrap().len(), 0);
}

/// Both last-chunk geometries assemble byte-identical files.
#[test]
fn both_geometries_round_trip() {
    for force in [false, true] {
        for size in [1usize, 9, 10, 11, 19, 20, 21, 99] {
            let dir = tempfile::tempdir().unwrap();
            let uploads = uploads(dir.path());
            let f = FlowFile {
                force_chunk_size: force,
                ..FlowFile::new("geo.bin", bytes(size, size as u64), 10)
            };
            let mut order: Vec<u64> = (1..=f.total_chunks()).rev().collect();
            order.rotate_left(1);
            let mut last = None;
            for n in order {
                last = Some(uploads.save(&mut f.upload(n, "")).unwrap());
            }
            let Some(Outcome::Assembled { file, .. }) = last else {
                panic!("force={force} size={size}: {last:?}")
            };
            assert_eq!(
                fs::read(file.path().unwrap()).unwrap(),
                f.data,
                "force={force} size={size}"
            );
        }
    }
}

/// A body longer than declared is refused and stores nothing.
#[test]
fn overlong_body_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FlowFile::new("o.bin", bytes(20, 13), 10);
    let mut request =
        RawRequest::new(RequestKind::Upload, f.params(1)).with_body(ChunkBody::bytes(bytes(11, 1)));
    assert!(
        matches!(uploads.save(&mut request), Err(Error::BadRequest { field, .. }) if field == "body")
    );
    assert!(matches!(
        uploads.save(&mut f.test(1, "")),
        Err(Error::NoContent { .. })
    ));
    let staging = upload_dir(&uploads, "", &f.identifier).join("staging");
    assert_eq!(fs::read_dir(staging).map_or(0, |d| d.count()), 0);
}

/// A pre-process hook refuses a file with an `InvalidData` error: 415 with its reason, nothing
/// published; any other hook error is a server failure.
#[test]
fn a_hook_can_refuse_a_file_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .preprocess(|_, r, w| {
                let mut head = [0u8; 2];
                r.read_exact(&mut head)?;
                if &head == b"MZ" {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "executables are not accepted",
                    ));
                }
                w.write_all(&head)?;
                io::copy(r, w).map(|_| ())
            })
            .build(),
    )
    .unwrap();
    let exe = FlowFile::new("setup.exe", b"MZ\x90\x00 rest of it".to_vec(), 100);
    let err = uploads.save(&mut exe.upload(1, "")).unwrap_err();
    assert!(
        matches!(&err, Error::Refused { reason } if reason.contains("executables")),
        "{err}"
    );
    assert_eq!(err.status(), 415);
    assert!(common::all_entries(&dir.path().join("files")).is_empty());
    let ok = FlowFile::new("notes.txt", b"hello".to_vec(), 100);
    let Outcome::Assembled { file, .. } = uploads.save(&mut ok.upload(1, "")).unwrap() else {
        panic!()
    };
    assert_eq!(fs::read(file.path().unwrap()).unwrap(), b"hello");
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Uploads>();
    is::<chunked_upload::Config>();
    is::<Error>();
    let _ = Path::new("");
}
