//! Progress reports as `save()` feeds them, per-scope quotas and early refusals (core level;
//! the HTTP side is in the adapter tests).

mod common;

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chunked_upload::{
    ChunkBody, Error, Limit, Outcome, ProgressConfig, RawRequest, RequestKind, State, Uploads,
};
use common::{FlowFile, bytes, config};

/// A body that sends its bytes in steps, waiting for a signal before each.
struct Stepped {
    data: io::Cursor<Vec<u8>>,
    step: usize,
    go: mpsc::Receiver<()>,
}

impl Read for Stepped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.data.position() as usize).is_multiple_of(self.step)
            && (self.data.position() as usize) < self.data.get_ref().len()
        {
            let _ = self.go.recv();
        }
        let left = self.step - self.data.position() as usize % self.step;
        let n = buf.len().min(left);
        self.data.read(&mut buf[..n])
    }
}

#[test]
fn received_rises_while_a_chunk_streams_and_ends_done() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(config(dir.path()).build()).unwrap();
    let f = FlowFile::new("p.bin", bytes(400_000, 1), 200_000);
    uploads.save(&mut f.upload(1, "alice")).unwrap();
    let p = uploads.progress().report("alice", &f.identifier).unwrap();
    assert_eq!(
        (p.state, p.received, p.size),
        (State::Uploading, 200_000, Some(400_000))
    );

    let (go, rx) = mpsc::channel();
    let body = Stepped {
        data: io::Cursor::new(f.data[f.range(2)].to_vec()),
        step: 50_000,
        go: rx,
    };
    let mut request = RawRequest::new(RequestKind::Upload, f.params(2))
        .with_scope("alice")
        .with_body(ChunkBody::stream(body));
    let u = uploads.clone();
    let writer = thread::spawn(move || u.save(&mut request));
    let mut seen = Vec::new();
    for _ in 0..4 {
        go.send(()).unwrap();
        // Wait until the step is counted.
        let want = 200_000 + 50_000 * (seen.len() as u64 + 1);
        for _ in 0..2000 {
            let r = uploads
                .progress()
                .report("alice", &f.identifier)
                .unwrap()
                .received;
            if r >= want.min(399_999) {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        seen.push(
            uploads
                .progress()
                .report("alice", &f.identifier)
                .unwrap()
                .received,
        );
    }
    assert!(matches!(
        writer.join().unwrap(),
        Ok(Outcome::Assembled { .. })
    ));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "rising: {seen:?}");
    assert!(
        seen[0] > 200_000 && seen[0] < 400_000,
        "counted while streaming: {seen:?}"
    );
    let done = uploads.progress().report("alice", &f.identifier).unwrap();
    assert_eq!((done.state, done.received), (State::Done, 400_000));
    assert!(done.finished_at.is_some());

    // Another scope sees nothing, not even with the identifier.
    assert!(uploads.progress().report("bob", &f.identifier).is_none());
    assert!(uploads.progress().report_scope("bob").is_empty());
    assert_eq!(uploads.progress().report_scope("alice").len(), 1);
}

#[test]
fn received_is_right_after_restart_and_with_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let f = FlowFile::new("r.bin", bytes(300, 2), 100);
    {
        let before = Uploads::new(config(dir.path()).build()).unwrap();
        before.save(&mut f.upload(1, "s")).unwrap();
        before.save(&mut f.upload(2, "s")).unwrap();
    }
    let after = Uploads::new(config(dir.path()).build()).unwrap();
    assert!(
        after.progress().report("s", &f.identifier).is_none(),
        "new process, nothing yet"
    );
    // The widget resumes: test requests, a duplicate, then the missing chunk.
    assert!(matches!(
        after.save(&mut f.test(1, "s")),
        Ok(Outcome::ChunkPresent { .. })
    ));
    assert_eq!(
        after
            .progress()
            .report("s", &f.identifier)
            .unwrap()
            .received,
        200
    );
    after.save(&mut f.upload(2, "s")).unwrap();
    assert_eq!(
        after
            .progress()
            .report("s", &f.identifier)
            .unwrap()
            .received,
        200,
        "duplicate counted once"
    );
    after.save(&mut f.upload(3, "s")).unwrap();
    let p = after.progress().report("s", &f.identifier).unwrap();
    assert_eq!((p.state, p.received), (State::Done, 300));
}

#[test]
fn threshold_keeps_small_uploads_out() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .progress(ProgressConfig {
                threshold: 1000,
                ..ProgressConfig::default()
            })
            .build(),
    )
    .unwrap();
    let small = FlowFile::new("s.bin", bytes(999, 3), 500);
    uploads.save(&mut small.upload(1, "s")).unwrap();
    assert!(uploads.progress().report("s", &small.identifier).is_none());
    let big = FlowFile::new("b.bin", bytes(1000, 4), 500);
    uploads.save(&mut big.upload(1, "s")).unwrap();
    assert!(uploads.progress().report("s", &big.identifier).is_some());
}

#[test]
fn quota_on_live_uploads_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(config(dir.path()).max_uploads_per_scope(2).build()).unwrap();
    let files: Vec<FlowFile> = (0..3)
        .map(|i| FlowFile::new(&format!("q{i}.bin"), bytes(20, i), 10))
        .collect();
    uploads.save(&mut files[0].upload(1, "s")).unwrap();
    uploads.save(&mut files[1].upload(1, "s")).unwrap();
    let err = uploads.save(&mut files[2].upload(1, "s")).unwrap_err();
    assert!(
        matches!(err, Error::TooManyUploads { value: 3, limit: 2 }),
        "{err}"
    );
    assert_eq!(err.status(), 429);
    assert!(err.to_string().contains("limit is 2"));
    // Other scopes are not affected; chunks of an existing upload still go through.
    uploads.save(&mut files[2].upload(1, "t")).unwrap();
    uploads.save(&mut files[0].upload(2, "s")).unwrap(); // completes q0
    uploads.save(&mut files[2].upload(1, "s")).unwrap();

    // The count survives a restart (seeded from the temp dir).
    let restarted = Uploads::new(config(dir.path()).max_uploads_per_scope(2).build()).unwrap();
    let extra = FlowFile::new("q9.bin", bytes(20, 9), 10);
    assert!(matches!(
        restarted.save(&mut extra.upload(1, "s")),
        Err(Error::TooManyUploads { .. })
    ));
}

#[test]
fn quota_on_pending_bytes_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(config(dir.path()).max_pending_bytes_per_scope(25).build()).unwrap();
    let a = FlowFile::new("a.bin", bytes(30, 5), 10);
    uploads.save(&mut a.upload(1, "s")).unwrap();
    uploads.save(&mut a.upload(2, "s")).unwrap();
    let err = uploads.save(&mut a.upload(3, "s")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                limit_kind: Limit::PendingBytesPerScope,
                value: 30,
                limit: 25
            }
        ),
        "{err}"
    );
    assert_eq!(err.status(), 413);
}

#[test]
fn oversized_declarations_are_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .max_file_size(1000)
            .max_chunk_size(100)
            .build(),
    )
    .unwrap();
    // Content-Length over a chunk plus form overhead.
    assert!(
        uploads
            .check_content_length(100 + chunked_upload::FORM_OVERHEAD)
            .is_ok()
    );
    assert!(matches!(
        uploads.check_content_length(101 + chunked_upload::FORM_OVERHEAD),
        Err(Error::TooLarge {
            limit_kind: Limit::RequestBody,
            ..
        })
    ));
    // A declared total over the max file size, at the test request and at the first chunk,
    // without reading any body.
    let big = FlowFile::new("big.bin", bytes(2000, 6), 100);
    struct Untouchable;
    impl Read for Untouchable {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            panic!("the body must not be read")
        }
    }
    assert!(matches!(
        uploads.save(&mut big.test(1, "")),
        Err(Error::TooLarge {
            limit_kind: Limit::FileSize,
            value: 2000,
            limit: 1000
        })
    ));
    let mut upload = RawRequest::new(RequestKind::Upload, big.params(1))
        .with_body(ChunkBody::stream(Untouchable));
    assert!(matches!(
        uploads.save(&mut upload),
        Err(Error::TooLarge {
            limit_kind: Limit::FileSize,
            ..
        })
    ));
    assert!(
        common::all_entries(uploads.temp_dir().unwrap()).is_empty(),
        "nothing stored"
    );
}
