//! The HTTP conformance suite: what every adapter must do, as test cases over a live server.
//!
//! Each case is a public function taking a [`Target`] (where the server listens, where its
//! assembled files land) and panicking on the first thing that is wrong. The bundled adapters
//! run every case against a real server on `127.0.0.1` with a real HTTP client; an adapter of
//! your own proves itself the same way:
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use chunked_upload::conformance::Target;
//!
//! fn target() -> &'static Target {
//!     static TARGET: OnceLock<Target> = OnceLock::new();
//!     TARGET.get_or_init(|| {
//!         // Start your server on 127.0.0.1:0 in a background thread, with
//!         // `ConflictPolicy::Rename` and a `max_chunk_size` of at least 64 KiB, then:
//!         # let (port, files_dir) = (8080, std::path::PathBuf::from("files"));
//!         Target::new(format!("http://127.0.0.1:{port}/upload"), files_dir, 128 * 1024)
//!     })
//! }
//!
//! // One #[test] per case, all sharing the server (every case uses its own identifiers).
//! chunked_upload::conformance_tests!(target());
//! ```
//!
//! What the server must be configured with:
//! - the default dialects (all five widgets) and destination (assembled files directly in
//!   [`Target::files_dir`] under their sanitized file name);
//! - [`ConflictPolicy::Rename`](crate::ConflictPolicy::Rename), so that a second assembly of
//!   one upload would show as a second file (the cases check there is exactly one);
//! - a `max_chunk_size` of at least 64 KiB, given as [`Target::max_chunk_size`] (the cases use
//!   16 KiB chunks);
//! - a scope that is the same for every request of the suite (it sends no cookie).
//!
//! The cases run in parallel safely: each uses its own identifiers and file names.

pub mod store;
pub mod tus;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;
use sha1::{Digest, Sha1};

/// A server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// The upload route (test `GET`, upload `POST`), e.g. `http://127.0.0.1:PORT/upload`.
    pub base_url: String,
    /// The finalize route; [`Target::new`] makes it `{base_url}/done`.
    pub done_url: String,
    /// The directory assembled files land in.
    pub files_dir: PathBuf,
    /// The server's configured `max_chunk_size`, in bytes (at least 64 KiB).
    pub max_chunk_size: u64,
}

impl Target {
    /// A target whose finalize route is `{base_url}/done`.
    pub fn new(
        base_url: impl Into<String>,
        files_dir: impl Into<PathBuf>,
        max_chunk_size: u64,
    ) -> Target {
        let base_url = base_url.into();
        Target {
            done_url: format!("{base_url}/done"),
            base_url,
            files_dir: files_dir.into(),
            max_chunk_size,
        }
    }
}

/// A named case of the suite.
pub type Case = fn(&Target);

/// Every case, by name, in the order [`conformance_tests!`](crate::conformance_tests) runs them.
pub const CASES: &[(&str, Case)] = &[
    ("flow_multipart", flow_multipart),
    ("resumable_multipart", resumable_multipart),
    ("flow_octet", flow_octet),
    ("resumable_octet", resumable_octet),
    ("test_requests", test_requests),
    (
        "parallel_out_of_order_with_duplicates",
        parallel_out_of_order_with_duplicates,
    ),
    ("last_chunk_geometries", last_chunk_geometries),
    ("empty_file", empty_file),
    ("resume_after_partial_upload", resume_after_partial_upload),
    ("last_two_chunks_race", last_two_chunks_race),
    ("invalid_requests", invalid_requests),
    ("chunk_over_limit", chunk_over_limit),
    ("finalize_is_idempotent", finalize_is_idempotent),
    ("fields_after_file_part", fields_after_file_part),
    (
        "fields_split_around_file_part",
        fields_split_around_file_part,
    ),
    ("dropzone_chunked", dropzone_chunked),
    (
        "dropzone_small_and_empty_files",
        dropzone_small_and_empty_files,
    ),
    ("fine_uploader_chunked", fine_uploader_chunked),
    ("fine_uploader_small_file", fine_uploader_small_file),
    ("plupload_chunked", plupload_chunked),
    (
        "plupload_small_and_empty_files",
        plupload_small_and_empty_files,
    ),
    ("widget_errors_name_the_field", widget_errors_name_the_field),
];

/// Generates one `#[test]` per case of [`CASES`](crate::conformance::CASES), each running it
/// against the [`Target`](crate::conformance::Target) the expression evaluates to (a `&Target`,
/// typically from a `OnceLock` that starts the server once), plus a test that the list is
/// complete.
#[macro_export]
macro_rules! conformance_tests {
    ($target:expr) => {
        $crate::conformance_tests!(@cases ($target)
            flow_multipart
            resumable_multipart
            flow_octet
            resumable_octet
            test_requests
            parallel_out_of_order_with_duplicates
            last_chunk_geometries
            empty_file
            resume_after_partial_upload
            last_two_chunks_race
            invalid_requests
            chunk_over_limit
            finalize_is_idempotent
            fields_after_file_part
            fields_split_around_file_part
            dropzone_chunked
            dropzone_small_and_empty_files
            fine_uploader_chunked
            fine_uploader_small_file
            plupload_chunked
            plupload_small_and_empty_files
            widget_errors_name_the_field
        );
    };
    (@cases ($target:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case($target);
            }
        )*

        #[test]
        fn conformance_runs_every_case() {
            let run: &[&str] = &[$(stringify!($case)),*];
            let all: Vec<&str> = $crate::conformance::CASES.iter().map(|(name, _)| *name).collect();
            assert_eq!(run, all.as_slice());
        }
    };
}

/// Chunk size the cases use.
const CS: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// The cases.

/// flow.js, `multipart/form-data` (fields, then the `file` part), chunks in order: every chunk
/// answers 200 `chunk_stored` with JSON, the last one `assembled` (fresh), and the file is
/// byte-identical.
pub fn flow_multipart(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-flow-multipart", 3 * CS + CS / 2, false);
    assert_eq!(
        upload.total_chunks(),
        3,
        "default geometry: the last chunk is 1.5 chunks"
    );
    let client = client();
    for n in 1..=3 {
        let r = upload.send(&client, t, n, Body::Multipart(Layout::FieldsFirst));
        r.expect(200);
        assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
        let json = r.json();
        assert_eq!(json["success"], true, "{r:?}");
        if n < 3 {
            assert_eq!(json["status"], "chunk_stored", "{r:?}");
            assert_eq!(json["chunk"], n, "{r:?}");
            assert_eq!(json["chunks_present"], n, "{r:?}");
            assert_eq!(json["total_chunks"], 3, "{r:?}");
        } else {
            expect_assembled(&r, &upload, true);
        }
    }
    assert_assembled(t, &upload);
}

/// resumable.js, multipart: the parameters in the query string and in the form, as
/// resumable.js sends them.
pub fn resumable_multipart(t: &Target) {
    let upload = Upload::new(
        Protocol::Resumable,
        "cf-resumable-multipart",
        2 * CS + 100,
        false,
    );
    let client = client();
    for n in 1..=upload.total_chunks() {
        let r = upload.send(&client, t, n, Body::Multipart(Layout::QueryAndFields));
        r.expect(200);
        if n == upload.total_chunks() {
            expect_assembled(&r, &upload, true);
        } else {
            assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
        }
    }
    assert_assembled(t, &upload);
}

/// flow.js `method: 'octet'`: parameters in the query string, the raw chunk as the body.
pub fn flow_octet(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-flow-octet", 4 * CS, false);
    send_in_order(t, &upload, Body::Octet);
    assert_assembled(t, &upload);
}

/// resumable.js `method: 'octet'`, with `forceChunkSize` (a 1-byte last chunk).
pub fn resumable_octet(t: &Target) {
    let upload = Upload::new(Protocol::Resumable, "cf-resumable-octet", 2 * CS + 1, true);
    assert_eq!(upload.total_chunks(), 3);
    send_in_order(t, &upload, Body::Octet);
    assert_assembled(t, &upload);
}

/// Test `GET`s: 204 with an empty body for an absent chunk (never 404), 200 with JSON for a
/// stored one, and 204 for a chunk of an assembled upload (so that a changed file under the
/// same identifier is sent, not skipped): sent again, the same bytes answer "assembled" without
/// a second file.
pub fn test_requests(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-test-requests", 2 * CS, false);
    let client = client();
    let absent = upload.test(&client, t, 1);
    absent.expect(204);
    assert!(absent.body.is_empty(), "204 has an empty body: {absent:?}");
    upload
        .send(&client, t, 1, Body::Multipart(Layout::FieldsFirst))
        .expect(200);
    let present = upload.test(&client, t, 1);
    present.expect(200);
    assert_eq!(present.json()["status"], "chunk_present", "{present:?}");
    assert_eq!(present.json()["chunk"], 1, "{present:?}");
    upload.test(&client, t, 2).expect(204);
    let r = upload.send(&client, t, 2, Body::Octet);
    expect_assembled(&r, &upload, true);
    for n in 1..=2 {
        upload.test(&client, t, n).expect(204);
    }
    let again = upload.send(&client, t, 1, Body::Multipart(Layout::FieldsFirst));
    expect_assembled(&again, &upload, false);
    assert_assembled(t, &upload);
}

/// Four threads send twelve chunks in a shuffled order, with duplicates, as multipart and octet
/// requests: every request succeeds, exactly one assembles, and the file is byte-identical.
pub fn parallel_out_of_order_with_duplicates(t: &Target) {
    let upload = Arc::new(Upload::new(
        Protocol::Flow,
        "cf-parallel",
        12 * CS + 7,
        false,
    ));
    assert_eq!(upload.total_chunks(), 12);
    let mut jobs: Vec<u64> = (1..=12).chain([1, 5, 12, 7, 12]).collect();
    shuffle(&mut jobs, 0x5eed);
    let jobs = Arc::new(Mutex::new(jobs));
    let fresh = Arc::new(Mutex::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (upload, jobs, fresh, t) = (upload.clone(), jobs.clone(), fresh.clone(), t.clone());
            std::thread::spawn(move || {
                let client = client();
                loop {
                    let Some(n) = jobs.lock().unwrap().pop() else {
                        break;
                    };
                    let body = if n % 2 == 0 {
                        Body::Octet
                    } else {
                        Body::Multipart(Layout::FieldsFirst)
                    };
                    let r = upload.send(&client, &t, n, body);
                    r.expect(200);
                    let json = r.json();
                    if json["status"] == "assembled" && json["fresh"] == true {
                        *fresh.lock().unwrap() += 1;
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a sending thread failed");
    }
    assert_eq!(
        *fresh.lock().unwrap(),
        1,
        "exactly one request assembles the file"
    );
    assert_assembled(t, &upload);
}

/// Both last-chunk geometries: flow.js's default (`floor`: the last chunk holds the remainder
/// on top of a full chunk) and `forceChunkSize` (`ceil`: the last chunk is the remainder).
pub fn last_chunk_geometries(t: &Target) {
    let default = Upload::new(
        Protocol::Flow,
        "cf-geometry-default",
        3 * CS + CS / 2,
        false,
    );
    let forced = Upload::new(Protocol::Flow, "cf-geometry-forced", 3 * CS + CS / 2, true);
    assert_eq!((default.total_chunks(), forced.total_chunks()), (3, 4));
    assert_eq!(default.chunk(3).len(), CS + CS / 2);
    assert_eq!(forced.chunk(4).len(), CS / 2);
    for upload in [&default, &forced] {
        send_in_order(t, upload, Body::Multipart(Layout::FieldsFirst));
        assert_assembled(t, upload);
    }
}

/// A 0-byte file is one chunk of 0 bytes, as multipart and as octet.
pub fn empty_file(t: &Target) {
    let multipart = Upload::new(Protocol::Flow, "cf-empty-multipart", 0, false);
    let octet = Upload::new(Protocol::Resumable, "cf-empty-octet", 0, false);
    let client = client();
    for (upload, body) in [
        (&multipart, Body::Multipart(Layout::FieldsFirst)),
        (&octet, Body::Octet),
    ] {
        assert_eq!(upload.total_chunks(), 1);
        upload.test(&client, t, 1).expect(204);
        let r = upload.send(&client, t, 1, body);
        expect_assembled(&r, upload, true);
        assert_assembled(t, upload);
    }
}

/// Resuming: after chunks 1, 2 and 4 of 5 are stored, test `GET`s answer 200 for those and 204
/// for the others; uploading only the absent ones completes the file.
pub fn resume_after_partial_upload(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-resume", 5 * CS, false);
    let client = client();
    for n in [1, 2, 4] {
        upload
            .send(&client, t, n, Body::Multipart(Layout::FieldsFirst))
            .expect(200);
    }
    // Later, another page load: the widget tests every chunk and skips the stored ones.
    let client = self::client();
    let absent: Vec<u64> = (1..=5)
        .filter(|&n| {
            let r = upload.test(&client, t, n);
            assert!(r.status == 200 || r.status == 204, "{r:?}");
            r.status == 204
        })
        .collect();
    assert_eq!(absent, [3, 5]);
    upload
        .send(&client, t, 3, Body::Multipart(Layout::FieldsFirst))
        .expect(200);
    let r = upload.send(&client, t, 5, Body::Multipart(Layout::FieldsFirst));
    expect_assembled(&r, &upload, true);
    assert_assembled(t, &upload);
}

/// The last two chunks sent at the same moment, a few times over: exactly one request
/// assembles, and there is exactly one byte-identical file each time.
pub fn last_two_chunks_race(t: &Target) {
    for round in 0..4 {
        let upload = Arc::new(Upload::new(
            Protocol::Flow,
            &format!("cf-race-{round}"),
            6 * CS,
            false,
        ));
        let client = client();
        for n in 1..=4 {
            upload
                .send(&client, t, n, Body::Multipart(Layout::FieldsFirst))
                .expect(200);
        }
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [5, 6]
            .into_iter()
            .map(|n| {
                let (upload, barrier, t) = (upload.clone(), barrier.clone(), t.clone());
                std::thread::spawn(move || {
                    let client = self::client();
                    barrier.wait();
                    upload.send(&client, &t, n, Body::Octet)
                })
            })
            .collect();
        let replies: Vec<Answer> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let mut fresh = 0;
        for r in &replies {
            r.expect(200);
            if r.json()["status"] == "assembled" && r.json()["fresh"] == true {
                fresh += 1;
            }
        }
        assert_eq!(
            fresh, 1,
            "exactly one of the racing chunks assembles: {replies:?}"
        );
        assert_assembled(t, &upload);
    }
}

/// Invalid requests answer 400 with JSON (`success: false`) whose error names the culprit: a
/// missing parameter, chunk number 0, a non-numeric number, a parameter that is not UTF-8, a
/// body shorter than declared (multipart and octet). Nothing of them is stored.
pub fn invalid_requests(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-invalid", 2 * CS, false);
    let client = client();
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("flowIdentifier", upload.params_without(1, "flowIdentifier")),
        (
            "flowChunkNumber",
            upload.params_with(1, "flowChunkNumber", "0"),
        ),
        (
            "flowTotalSize",
            upload.params_with(1, "flowTotalSize", "abc"),
        ),
        (
            "flowChunkNumber",
            upload.params_with(1, "flowChunkNumber", "-1"),
        ),
        (
            "flowTotalChunks",
            upload.params_with(1, "flowTotalChunks", "7"),
        ),
    ];
    for (field, params) in &cases {
        let chunk = upload.chunk(1).to_vec();
        for body in [Body::Multipart(Layout::FieldsFirst), Body::Octet] {
            let r = send(&client, t, params, chunk.clone(), body);
            expect_error(&r, 400, field);
        }
        expect_error(&test_get(&client, t, params), 400, field);
    }
    // Not UTF-8 after percent-decoding.
    let query = format!(
        "{}&flowFilename=%FF",
        urlencode(&upload.params_without(1, "flowFilename"))
    );
    let r = Answer::from(client.get(format!("{}?{query}", t.base_url)).send());
    expect_error(&r, 400, "flowFilename");
    // A body shorter than declared is refused and not stored.
    let short = upload.chunk(1)[..CS - 10].to_vec();
    for body in [Body::Multipart(Layout::FieldsFirst), Body::Octet] {
        let r = send(&client, t, &upload.params(1), short.clone(), body);
        expect_error(&r, 400, "body");
    }
    upload.test(&client, t, 1).expect(204);
    assert_eq!(count_files(t, &upload.filename), 0);
}

/// Too large: a chunk declared larger than `max_chunk_size` answers 413 (before its body
/// matters), and so does a request whose `Content-Length` is over the body limit, before the
/// server reads any of it.
pub fn chunk_over_limit(t: &Target) {
    let max = t.max_chunk_size;
    let upload = Upload::new(Protocol::Flow, "cf-over-limit", 4 * CS, false);
    let declared = [
        ("flowChunkSize", (max + 1).to_string()),
        ("flowCurrentChunkSize", (max + 1).to_string()),
        ("flowTotalSize", (2 * (max + 1)).to_string()),
        ("flowTotalChunks", "2".to_owned()),
    ];
    let mut params = upload.params(1);
    for (name, value) in &declared {
        set(&mut params, name, value);
    }
    for body in [Body::Multipart(Layout::FieldsFirst), Body::Octet] {
        let r = send(&client(), t, &params, b"small".to_vec(), body);
        expect_error(&r, 413, "chunk size");
    }
    // Content-Length far over any body limit, and no body sent at all: the answer must come
    // from the header alone.
    let status = status_for_declared_length(t, &upload.params(1), 2 * max + (1 << 20));
    assert_eq!(status, 413, "Content-Length over the limit");
    upload.test(&client(), t, 1).expect(204);
}

/// A finalize ("done") request: 400 while chunks are missing, then, once the file is
/// assembled, 200 `assembled` (not fresh) every time, with the parameters as a urlencoded
/// form, a multipart form or a query string; 404 for an unknown upload; one file.
pub fn finalize_is_idempotent(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-finalize", 3 * CS, false);
    let client = client();
    let id = [("flowIdentifier".to_owned(), upload.identifier.clone())];
    for n in 1..=2 {
        upload.send(&client, t, n, Body::Octet).expect(200);
    }
    let early = Answer::from(client.post(&t.done_url).form(&id).send());
    expect_error(&early, 400, "cf-finalize");
    let r = upload.send(&client, t, 3, Body::Multipart(Layout::FieldsFirst));
    expect_assembled(&r, &upload, true);
    let requests = [
        client.post(&t.done_url).form(&id),
        multipart(client.post(&t.done_url), &id, None, false),
        client.post(&t.done_url).query(&id),
    ];
    for request in requests {
        let r = Answer::from(request.send());
        expect_assembled(&r, &upload, false);
    }
    let unknown = [("flowIdentifier", "cf-finalize-unknown")];
    let r = Answer::from(client.post(&t.done_url).form(&unknown).send());
    expect_error(&r, 404, "cf-finalize-unknown");
    assert_assembled(t, &upload);
}

/// A multipart form whose file part comes before its fields (the body is staged until the
/// parameters arrive) is stored and assembled like any other.
pub fn fields_after_file_part(t: &Target) {
    let upload = Upload::new(Protocol::Flow, "cf-fields-after-file", 2 * CS + 3, false);
    let client = client();
    let r = upload.send(&client, t, 2, Body::Multipart(Layout::FileFirst));
    r.expect(200);
    assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
    upload.test(&client, t, 2).expect(200);
    let r = upload.send(&client, t, 1, Body::Multipart(Layout::FileFirst));
    expect_assembled(&r, &upload, true);
    assert_assembled(t, &upload);
}

/// A form is decided once all its fields are read, in every dialect. Fields after the file part
/// are honoured: flow.js with only its identifier and file name before the file part (with
/// them alone it would read as a whole file in one request), Plupload with only `name`, Fine
/// Uploader with only `qquuid` and `qqfilename`; each file is assembled byte-identical. A field
/// after a chunk streamed under the fields before it that changes what they said is refused
/// with 400 naming it, and the chunk is not stored.
pub fn fields_split_around_file_part(t: &Target) {
    let client = client();
    let split = |pairs: &[(String, String)], early: &[&str]| {
        let (before, after): (Vec<_>, Vec<_>) = pairs
            .iter()
            .cloned()
            .partition(|(n, _)| early.contains(&n.as_str()));
        (before, after)
    };
    let send = |pairs: &[(String, String)], early: &[&str], part: (&str, &str, &[u8])| {
        let (before, after) = split(pairs, early);
        let request = form_around(client.post(&t.base_url), &before, Some(part), &after);
        Answer::from(request.header(reqwest::header::CONNECTION, "close").send())
    };

    let upload = Upload::new(Protocol::Flow, "cf-split-flow", 3 * CS, false);
    let early = ["flowIdentifier", "flowFilename"];
    for n in 1..=3 {
        let r = send(&upload.params(n), &early, ("file", "blob", upload.chunk(n)));
        if n == 3 {
            expect_assembled(&r, &upload, true);
        } else {
            r.expect(200);
            assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
            assert_eq!(r.json()["total_chunks"], 3, "{r:?}");
        }
    }
    assert_assembled(t, &upload);

    // Every field before the file part (so it streams), then one that changes the total.
    let changed = Upload::new(Protocol::Flow, "cf-split-changed", 3 * CS, false);
    let late = [("flowTotalSize".to_owned(), (2 * CS).to_string())];
    let request = form_around(
        client.post(&t.base_url),
        &changed.params(1),
        Some(("file", "blob", changed.chunk(1))),
        &late,
    );
    let r = Answer::from(request.header(reqwest::header::CONNECTION, "close").send());
    expect_error(&r, 400, "flowTotalSize");
    let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("after the file part"), "{r:?}");
    changed.test(&client, t, 1).expect(204);

    let data = pseudo_random(3 * CS, "cf-split-plupload");
    for index in 0..3usize {
        let pairs = [
            ("name", "cf-split-plupload.bin".to_owned()),
            ("chunk", index.to_string()),
            ("chunks", "3".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v));
        let r = send(
            &pairs,
            &["name"],
            ("file", "blob", &data[index * CS..(index + 1) * CS]),
        );
        if index == 2 {
            expect_file(&r, "cf-split-plupload.bin", &data, true);
        } else {
            r.expect(200);
            assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
        }
    }
    assert_file(t, "cf-split-plupload.bin", &data);

    let data = pseudo_random(2 * CS + 7, "cf-split-fine");
    for index in 0..3usize {
        let range = index * CS..((index + 1) * CS).min(data.len());
        let pairs = [
            ("qquuid", "cf-split-fine-7c2d".to_owned()),
            ("qqfilename", "cf-split-fine.pdf".to_owned()),
            ("qqpartindex", index.to_string()),
            ("qqpartbyteoffset", range.start.to_string()),
            ("qqchunksize", range.len().to_string()),
            ("qqtotalparts", "3".to_owned()),
            ("qqtotalfilesize", data.len().to_string()),
        ]
        .map(|(n, v)| (n.to_owned(), v));
        let r = send(
            &pairs,
            &["qquuid", "qqfilename"],
            ("qqfile", "blob", &data[range]),
        );
        if index == 2 {
            expect_file(&r, "cf-split-fine.pdf", &data, true);
        } else {
            r.expect(200);
            assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
        }
    }
    assert_file(t, "cf-split-fine.pdf", &data);
}

/// Dropzone with `chunking` and `parallelChunkUploads`: the `dz*` fields, then the part `file`
/// carrying the file's real name; chunks sent by three threads in a shuffled order with
/// duplicates; then the app's `chunksUploaded` finalize request, three times: one file.
pub fn dropzone_chunked(t: &Target) {
    let data = pseudo_random(5 * CS + 123, "cf-dropzone");
    let widget = Widget::Dropzone {
        uuid: "cf-dropzone-5b3c".into(),
        name: "cf-dropzone.bin".into(),
    };
    let count = data.len().div_ceil(CS) as u64;
    let mut jobs: Vec<u64> = (0..count).chain([0, 3, count - 1]).collect();
    shuffle(&mut jobs, 7);
    let fresh = send_parallel(t, &widget, &data, jobs, 3);
    assert_eq!(fresh, 1, "exactly one request assembles the file");
    for _ in 0..3 {
        let r = Answer::from(
            client()
                .post(&t.done_url)
                .form(&[("dzuuid", "cf-dropzone-5b3c")])
                .send(),
        );
        expect_file(&r, "cf-dropzone.bin", &data, false);
    }
    assert_file(t, "cf-dropzone.bin", &data);
}

/// Dropzone files up to the chunk size go whole, as a plain form post with nothing but the
/// file part (no `forceChunking`); an empty file with `forceChunking` is one 0-byte chunk.
pub fn dropzone_small_and_empty_files(t: &Target) {
    let small = pseudo_random(1000, "cf-dropzone-small");
    let r = send_form(
        &client(),
        &t.base_url,
        &[],
        Some(("file", "cf-dropzone-small.txt", &small)),
    );
    expect_file(&r, "cf-dropzone-small.txt", &small, true);
    assert_file(t, "cf-dropzone-small.txt", &small);

    let empty = Widget::Dropzone {
        uuid: "cf-dropzone-empty".into(),
        name: "cf-dropzone-empty.txt".into(),
    };
    let r = empty.send(&client(), t, &[], 0, 1);
    expect_file(&r, "cf-dropzone-empty.txt", &[], true);
    assert_file(t, "cf-dropzone-empty.txt", &[]);
}

/// Fine Uploader with `chunking` and `concurrent`: the `qq*` fields, the part `qqfile` named
/// "blob", chunks in parallel with duplicates, every answer `{"success": true}`; then the
/// `chunking.success.endpoint` request, three times (proxies repeat it): one file.
pub fn fine_uploader_chunked(t: &Target) {
    let data = pseudo_random(4 * CS + 5, "cf-fine");
    let widget = Widget::FineUploader {
        uuid: "cf-fine-0b1c".into(),
        name: "cf-fine.pdf".into(),
    };
    let count = data.len().div_ceil(CS) as u64;
    let mut jobs: Vec<u64> = (0..count).chain([1, count - 1]).collect();
    shuffle(&mut jobs, 11);
    let fresh = send_parallel(t, &widget, &data, jobs, 3);
    assert_eq!(fresh, 1, "exactly one request assembles the file");
    let finalize = [
        ("qquuid", "cf-fine-0b1c".to_owned()),
        ("qqfilename", "cf-fine.pdf".to_owned()),
        ("qqtotalfilesize", data.len().to_string()),
        ("qqtotalparts", count.to_string()),
    ];
    for _ in 0..3 {
        let r = Answer::from(client().post(&t.done_url).form(&finalize).send());
        expect_file(&r, "cf-fine.pdf", &data, false);
    }
    assert_file(t, "cf-fine.pdf", &data);
}

/// Fine Uploader sends files up to its part size whole: `qquuid`, `qqfilename`,
/// `qqtotalfilesize` and the part `qqfile`.
pub fn fine_uploader_small_file(t: &Target) {
    let data = pseudo_random(777, "cf-fine-small");
    let fields = [
        ("qquuid", "cf-fine-small-9d8e".to_owned()),
        ("qqfilename", "cf-fine-small.txt".to_owned()),
        ("qqtotalfilesize", data.len().to_string()),
    ];
    let r = send_form(
        &client(),
        &t.base_url,
        &fields,
        Some(("qqfile", "cf-fine-small.txt", &data)),
    );
    expect_file(&r, "cf-fine-small.txt", &data, true);
    assert_file(t, "cf-fine-small.txt", &data);
}

/// Plupload: `name`, 0-based `chunk`, `chunks`, one chunk at a time in order, every chunk sent
/// twice (its `max_retries` after a lost answer), as multipart (part `file` named "blob") and
/// as a raw body with the parameters in the query string (`multipart: false`).
pub fn plupload_chunked(t: &Target) {
    for raw in [false, true] {
        let name = if raw {
            "cf-plupload-raw.bin"
        } else {
            "cf-plupload.bin"
        };
        let data = pseudo_random(3 * CS + 10, name);
        let widget = Widget::Plupload {
            name: name.into(),
            raw,
        };
        let count = data.len().div_ceil(CS) as u64;
        let client = client();
        for index in 0..count {
            for attempt in 0..2 {
                let r = widget.send(&client, t, &data, index, count);
                if index + 1 == count {
                    expect_file(&r, name, &data, attempt == 0);
                } else {
                    r.expect(200);
                    assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
                }
            }
        }
        assert_file(t, name, &data);
    }
}

/// Plupload: an empty file is `chunks=0` (one 0-byte chunk), a one-chunk file still sends
/// `chunk=0&chunks=1`, and without `chunk_size` a file goes whole with only `name`.
pub fn plupload_small_and_empty_files(t: &Target) {
    let client = client();
    let empty = Widget::Plupload {
        name: "cf-plupload-empty.txt".into(),
        raw: false,
    };
    let r = empty.send(&client, t, &[], 0, 0);
    expect_file(&r, "cf-plupload-empty.txt", &[], true);
    assert_file(t, "cf-plupload-empty.txt", &[]);

    let one = Widget::Plupload {
        name: "cf-plupload-one.txt".into(),
        raw: true,
    };
    let data = pseudo_random(100, "cf-plupload-one");
    let r = one.send(&client, t, &data, 0, 1);
    expect_file(&r, "cf-plupload-one.txt", &data, true);
    assert_file(t, "cf-plupload-one.txt", &data);

    let whole = pseudo_random(2 * CS, "cf-plupload-whole");
    let r = send_form(
        &client,
        &t.base_url,
        &[("name", "cf-plupload-whole.bin".to_owned())],
        Some(("file", "cf-plupload-whole.bin", &whole)),
    );
    expect_file(&r, "cf-plupload-whole.bin", &whole, true);
    assert_file(t, "cf-plupload-whole.bin", &whole);
}

/// Malformed chunk parameters of every widget answer 400 with JSON naming the parameter, and
/// nothing is stored.
pub fn widget_errors_name_the_field(t: &Target) {
    let data = pseudo_random(2 * CS, "cf-widget-errors");
    let client = client();
    let dropzone = Widget::Dropzone {
        uuid: "cf-errors-dz".into(),
        name: "cf-errors-dz.bin".into(),
    };
    let fine = Widget::FineUploader {
        uuid: "cf-errors-qq".into(),
        name: "cf-errors-qq.bin".into(),
    };
    let plupload = Widget::Plupload {
        name: "cf-errors-pl.bin".into(),
        raw: false,
    };
    let cases: [(&Widget, &str, &str); 8] = [
        (&dropzone, "dzchunkindex", "2"),
        (&dropzone, "dzchunkindex", "-1"),
        (&dropzone, "dzchunkbyteoffset", "5"),
        (&fine, "qqpartindex", "x"),
        (&fine, "qqtotalparts", "1.5"),
        (&fine, "qqpartbyteoffset", "99999999999999999999999"),
        (&plupload, "chunk", "2"),
        (&plupload, "chunks", "abc"),
    ];
    for (widget, field, value) in cases {
        let r = widget.send_with(&client, t, &data, 0, 2, Some((field, value)));
        expect_error(&r, 400, field);
    }
    for name in ["cf-errors-dz.bin", "cf-errors-qq.bin", "cf-errors-pl.bin"] {
        assert_eq!(count_files(t, name), 0, "{name}");
    }
}

/// A chunk of the widgets without a test request, sent with their own parameter names.
#[derive(Debug, Clone)]
enum Widget {
    Dropzone { uuid: String, name: String },
    FineUploader { uuid: String, name: String },
    Plupload { name: String, raw: bool },
}

impl Widget {
    /// Chunk `index` of `count` of `data` (remainder geometry, chunks of `CS` bytes).
    fn send(&self, client: &Client, t: &Target, data: &[u8], index: u64, count: u64) -> Answer {
        self.send_with(client, t, data, index, count, None)
    }

    /// The same, with one parameter replaced.
    fn send_with(
        &self,
        client: &Client,
        t: &Target,
        data: &[u8],
        index: u64,
        count: u64,
        replace: Option<(&str, &str)>,
    ) -> Answer {
        let start = (index as usize * CS).min(data.len());
        let chunk = &data[start..(start + CS).min(data.len())];
        let (mut fields, part_name, part_filename) = match self {
            Widget::Dropzone { uuid, name } => (
                vec![
                    ("dzuuid", uuid.clone()),
                    ("dzchunkindex", index.to_string()),
                    ("dztotalfilesize", data.len().to_string()),
                    ("dzchunksize", CS.to_string()),
                    ("dztotalchunkcount", count.to_string()),
                    ("dzchunkbyteoffset", start.to_string()),
                ],
                "file",
                name.as_str(),
            ),
            Widget::FineUploader { uuid, name } => (
                vec![
                    ("qquuid", uuid.clone()),
                    ("qqpartindex", index.to_string()),
                    ("qqpartbyteoffset", start.to_string()),
                    ("qqchunksize", chunk.len().to_string()),
                    ("qqtotalparts", count.to_string()),
                    ("qqtotalfilesize", data.len().to_string()),
                    ("qqfilename", name.clone()),
                ],
                "qqfile",
                "blob",
            ),
            Widget::Plupload { name, .. } => (
                vec![
                    ("name", name.clone()),
                    ("chunk", index.to_string()),
                    ("chunks", count.to_string()),
                ],
                "file",
                "blob",
            ),
        };
        if let Some((field, value)) = replace {
            fields.retain(|(n, _)| *n != field);
            fields.push((field, value.to_owned()));
        }
        if let Widget::Plupload { raw: true, .. } = self {
            let query: Vec<(String, String)> = fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect();
            return Answer::from(
                client
                    .post(&t.base_url)
                    .query(&query)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONNECTION, "close")
                    .body(chunk.to_vec())
                    .send(),
            );
        }
        send_form(
            client,
            &t.base_url,
            &fields,
            Some((part_name, part_filename, chunk)),
        )
    }
}

/// Sends the chunks `jobs` (indices) of `data` from `threads` threads; every answer must be
/// 200 with `success: true`. Returns how many answers said "assembled" freshly.
fn send_parallel(
    t: &Target,
    widget: &Widget,
    data: &[u8],
    jobs: Vec<u64>,
    threads: usize,
) -> usize {
    let count = data.len().div_ceil(CS) as u64;
    let jobs = Arc::new(Mutex::new(jobs));
    let fresh = Arc::new(Mutex::new(0));
    let data = Arc::new(data.to_vec());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (jobs, fresh, data, widget, t) = (
                jobs.clone(),
                fresh.clone(),
                data.clone(),
                widget.clone(),
                t.clone(),
            );
            std::thread::spawn(move || {
                let client = client();
                loop {
                    let Some(index) = jobs.lock().unwrap().pop() else {
                        break;
                    };
                    let r = widget.send(&client, &t, &data, index, count);
                    r.expect(200);
                    let json = r.json();
                    assert_eq!(json["success"], true, "{r:?}");
                    if json["status"] == "assembled" && json["fresh"] == true {
                        *fresh.lock().unwrap() += 1;
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a sending thread failed");
    }
    Arc::into_inner(fresh)
        .and_then(|m| m.into_inner().ok())
        .expect("every sending thread is done")
}

/// A `multipart/form-data` POST of `fields` and an optional file part (field name, file name,
/// bytes), built whole.
fn send_form(
    client: &Client,
    url: &str,
    fields: &[(&str, String)],
    part: Option<(&str, &str, &[u8])>,
) -> Answer {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    let request = form(client.post(url), &fields, part, false);
    Answer::from(request.header(reqwest::header::CONNECTION, "close").send())
}

#[track_caller]
fn expect_file(r: &Answer, name: &str, data: &[u8], fresh: bool) {
    r.expect(200);
    let json = r.json();
    assert_eq!(json["success"], true, "{r:?}");
    assert_eq!(json["status"], "assembled", "{r:?}");
    assert_eq!(json["fresh"], fresh, "{r:?}");
    assert_eq!(json["file"]["name"], name, "{r:?}");
    assert_eq!(json["file"]["size"], data.len(), "{r:?}");
}

/// The file `name` is there once, byte-identical.
#[track_caller]
fn assert_file(t: &Target, name: &str, data: &[u8]) {
    let path = t.files_dir.join(name);
    let stored = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(sha1_hex(&stored), sha1_hex(data), "{}", path.display());
    assert_eq!(count_files(t, name), 1, "exactly one {name}");
}

// ---------------------------------------------------------------------------------------------
// What the cases are made of.

/// The widget whose parameter names a request uses.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Flow,
    Resumable,
}

/// How a chunk travels.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// `multipart/form-data` with the chunk in the `file` part.
    Multipart(Layout),
    /// The raw chunk as the body, parameters in the query string.
    Octet,
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Fields, then the file part (what the widgets send).
    FieldsFirst,
    /// Parameters in the query string and as fields, then the file part (resumable.js).
    QueryAndFields,
    /// The file part, then the fields.
    FileFirst,
}

/// One file as a widget uploads it.
#[derive(Debug)]
struct Upload {
    protocol: Protocol,
    identifier: String,
    filename: String,
    data: Vec<u8>,
    force_chunk_size: bool,
}

impl Upload {
    fn new(protocol: Protocol, name: &str, len: usize, force_chunk_size: bool) -> Upload {
        Upload {
            protocol,
            identifier: format!("{len}-{name}"),
            filename: format!("{name}.bin"),
            data: pseudo_random(len, name),
            force_chunk_size,
        }
    }

    fn total_chunks(&self) -> u64 {
        let len = self.data.len();
        let n = if self.force_chunk_size {
            len.div_ceil(CS)
        } else {
            len / CS
        };
        n.max(1) as u64
    }

    fn chunk(&self, n: u64) -> &[u8] {
        let start = (n as usize - 1) * CS;
        let end = if n == self.total_chunks() {
            self.data.len()
        } else {
            start + CS
        };
        &self.data[start..end]
    }

    fn params(&self, n: u64) -> Vec<(String, String)> {
        let prefix = match self.protocol {
            Protocol::Flow => "flow",
            Protocol::Resumable => "resumable",
        };
        [
            ("ChunkNumber", n.to_string()),
            ("ChunkSize", CS.to_string()),
            ("CurrentChunkSize", self.chunk(n).len().to_string()),
            ("TotalSize", self.data.len().to_string()),
            ("Identifier", self.identifier.clone()),
            ("Filename", self.filename.clone()),
            ("RelativePath", format!("dir/{}", self.filename)),
            ("TotalChunks", self.total_chunks().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (format!("{prefix}{name}"), value))
        .collect()
    }

    fn params_with(&self, n: u64, name: &str, value: &str) -> Vec<(String, String)> {
        let mut params = self.params(n);
        set(&mut params, name, value);
        params
    }

    fn params_without(&self, n: u64, name: &str) -> Vec<(String, String)> {
        let mut params = self.params(n);
        params.retain(|(n, _)| n != name);
        params
    }

    fn send(&self, client: &Client, t: &Target, n: u64, body: Body) -> Answer {
        send(client, t, &self.params(n), self.chunk(n).to_vec(), body)
    }

    fn test(&self, client: &Client, t: &Target, n: u64) -> Answer {
        test_get(client, t, &self.params(n))
    }
}

fn set(params: &mut Vec<(String, String)>, name: &str, value: &str) {
    params.retain(|(n, _)| n != name);
    params.push((name.to_owned(), value.to_owned()));
}

/// A response, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl From<reqwest::Result<reqwest::blocking::Response>> for Answer {
    fn from(response: reqwest::Result<reqwest::blocking::Response>) -> Answer {
        let response = response.expect("the request fails at the HTTP level");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().expect("the response body cannot be read");
        Answer {
            status,
            content_type,
            body,
        }
    }
}

impl Answer {
    #[track_caller]
    fn expect(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

fn send(
    client: &Client,
    t: &Target,
    params: &[(String, String)],
    chunk: Vec<u8>,
    body: Body,
) -> Answer {
    let request: RequestBuilder = match body {
        Body::Octet => client
            .post(&t.base_url)
            .query(params)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(chunk),
        Body::Multipart(layout) => {
            let file = Some(chunk.as_slice());
            let request = client.post(&t.base_url);
            match layout {
                Layout::FieldsFirst => multipart(request, params, file, false),
                Layout::QueryAndFields => multipart(request.query(params), params, file, false),
                Layout::FileFirst => multipart(request, params, file, true),
            }
        }
    };
    // A refused request may be answered before its body is read, and the connection closed.
    Answer::from(request.header(reqwest::header::CONNECTION, "close").send())
}

/// A `multipart/form-data` body (fields, and the chunk as the part `file` named "blob").
fn multipart(
    request: RequestBuilder,
    fields: &[(String, String)],
    file: Option<&[u8]>,
    file_first: bool,
) -> RequestBuilder {
    form(
        request,
        fields,
        file.map(|f| ("file", "blob", f)),
        file_first,
    )
}

/// A `multipart/form-data` body (fields, and a file part: field name, file name, bytes), built
/// whole so that the request is on the wire before the server can answer it (a refused request
/// is answered without reading its body, and a client still streaming one would see a broken
/// connection).
fn form(
    request: RequestBuilder,
    fields: &[(String, String)],
    part: Option<(&str, &str, &[u8])>,
    file_first: bool,
) -> RequestBuilder {
    if file_first {
        form_around(request, &[], part, fields)
    } else {
        form_around(request, fields, part, &[])
    }
}

/// A `multipart/form-data` body with fields before the file part and fields after it.
fn form_around(
    request: RequestBuilder,
    before: &[(String, String)],
    part: Option<(&str, &str, &[u8])>,
    after: &[(String, String)],
) -> RequestBuilder {
    const BOUNDARY: &str = "----chunked-upload-conformance-5b1d8e0c7a";
    let mut body = Vec::new();
    let text = |body: &mut Vec<u8>, fields: &[(String, String)]| {
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
    };
    text(&mut body, before);
    if let Some((field, filename, bytes)) = part {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    text(&mut body, after);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
}

fn test_get(client: &Client, t: &Target, params: &[(String, String)]) -> Answer {
    Answer::from(client.get(&t.base_url).query(params).send())
}

#[track_caller]
fn expect_assembled(r: &Answer, upload: &Upload, fresh: bool) {
    r.expect(200);
    let json = r.json();
    assert_eq!(json["success"], true, "{r:?}");
    assert_eq!(json["status"], "assembled", "{r:?}");
    assert_eq!(json["fresh"], fresh, "{r:?}");
    assert_eq!(json["file"]["name"], upload.filename.as_str(), "{r:?}");
    assert_eq!(json["file"]["size"], upload.data.len(), "{r:?}");
}

#[track_caller]
fn expect_error(r: &Answer, status: u16, culprit: &str) {
    r.expect(status);
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
    let json = r.json();
    assert_eq!(json["success"], false, "{r:?}");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(culprit),
        "the error should name {culprit:?}: {r:?}"
    );
}

/// The assembled file is there, byte-identical (SHA-1), and there is exactly one of it (a
/// second assembly would have made `name (1).bin`).
#[track_caller]
fn assert_assembled(t: &Target, upload: &Upload) {
    let path = t.files_dir.join(&upload.filename);
    let stored = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(stored.len(), upload.data.len(), "{}", path.display());
    assert_eq!(
        sha1_hex(&stored),
        sha1_hex(&upload.data),
        "{}",
        path.display()
    );
    assert_eq!(
        count_files(t, &upload.filename),
        1,
        "exactly one {}",
        upload.filename
    );
}

/// Files in the target's folder named `name` or a renamed copy of it (`stem (N).ext`).
fn count_files(t: &Target, name: &str) -> usize {
    let stem = Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name);
    let renamed = format!("{stem} (");
    fs::read_dir(&t.files_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n == name || n.starts_with(&renamed)
                })
                .count()
        })
        .unwrap_or(0)
}

fn send_in_order(t: &Target, upload: &Upload, body: Body) {
    let client = client();
    let last = upload.total_chunks();
    for n in 1..=last {
        let r = upload.send(&client, t, n, body);
        if n == last {
            expect_assembled(&r, upload, true);
        } else {
            r.expect(200);
            assert_eq!(r.json()["status"], "chunk_stored", "{r:?}");
        }
    }
}

/// Sends only the head of an octet upload that declares `length` bytes, and returns the status
/// of the answer, which must come without the body.
fn status_for_declared_length(t: &Target, params: &[(String, String)], length: u64) -> u16 {
    let rest = t
        .base_url
        .strip_prefix("http://")
        .expect("an http:// base URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n",
        query = urlencode(params),
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            other => panic!("no answer before the body was sent: {other:?}"),
        }
    }
    // "HTTP/1.1 413 Payload Too Large"
    let line = String::from_utf8_lossy(&line);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"))
}

fn urlencode(params: &[(String, String)]) -> String {
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    params
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// Deterministic bytes, different for every name.
fn pseudo_random(len: usize, name: &str) -> Vec<u8> {
    let mut state = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A deterministic Fisher-Yates shuffle.
fn shuffle(items: &mut [u64], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}
