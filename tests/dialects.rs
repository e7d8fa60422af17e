//! Dropzone, Fine Uploader and Plupload uploads through `Uploads::save`, with the requests each
//! widget really sends: in order, in parallel with duplicates, empty and one-chunk files,
//! one-request uploads, repeated finalize requests. Every file must arrive byte-identical,
//! assembled exactly once.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use chunked_upload::{
    ChunkBody, ChunkRequest, ConflictPolicy, Dialects, Dropzone, Error, FineUploader, Limit,
    Outcome, Params, Plupload, RawRequest, Reply, RequestKind, Uploads,
};
use common::{Rng, bytes, config, uploads, visible_files};

// ---------------------------------------------------------------------------------------------
// The widgets' requests.

/// A file as Dropzone (`chunking: true`) cuts it.
#[derive(Debug, Clone)]
struct DropzoneFile {
    uuid: String,
    name: String,
    data: Vec<u8>,
    chunk_size: u64,
}

impl DropzoneFile {
    fn new(name: &str, data: Vec<u8>, chunk_size: u64) -> DropzoneFile {
        DropzoneFile {
            uuid: format!("dz-{name}-{}", data.len()),
            name: name.into(),
            data,
            chunk_size,
        }
    }

    /// `Math.ceil(size / chunkSize)`: 0 for an empty file, as Dropzone 6.0 sends it.
    fn count(&self) -> u64 {
        (self.data.len() as u64).div_ceil(self.chunk_size)
    }

    fn upload(&self, index: u64, scope: &str) -> RawRequest {
        let start = (index * self.chunk_size) as usize;
        let end = (start + self.chunk_size as usize).min(self.data.len());
        let params: Params = [
            ("dzuuid", self.uuid.clone()),
            ("dzchunkindex", index.to_string()),
            ("dztotalfilesize", self.data.len().to_string()),
            ("dzchunksize", self.chunk_size.to_string()),
            ("dztotalchunkcount", self.count().to_string()),
            ("dzchunkbyteoffset", (index * self.chunk_size).to_string()),
        ]
        .into_iter()
        .collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_scope(scope)
            .with_part_filename(&self.name)
            .with_body(ChunkBody::bytes(self.data[start..end].to_vec()))
    }

    /// What an app's `chunksUploaded` callback might post: the upload's `dzuuid`.
    fn done(&self, scope: &str) -> RawRequest {
        let params: Params = [("dzuuid", self.uuid.as_str())].into_iter().collect();
        RawRequest::new(RequestKind::Upload, params).with_scope(scope)
    }
}

/// A plain one-request upload: a small Dropzone file, or an HTML form.
fn form_post(name: &str, data: &[u8], scope: &str) -> RawRequest {
    RawRequest::new(RequestKind::Upload, Params::new())
        .with_scope(scope)
        .with_part_filename(name)
        .with_body(ChunkBody::bytes(data.to_vec()))
}

/// A file as Fine Uploader (`chunking.enabled`) cuts it.
#[derive(Debug, Clone)]
struct FineFile {
    uuid: String,
    name: String,
    data: Vec<u8>,
    part_size: u64,
}

impl FineFile {
    fn new(name: &str, data: Vec<u8>, part_size: u64) -> FineFile {
        FineFile {
            uuid: format!("qq-{name}-{}", data.len()),
            name: name.into(),
            data,
            part_size,
        }
    }

    fn parts(&self) -> u64 {
        (self.data.len() as u64).div_ceil(self.part_size)
    }

    /// Part `index`, multipart (the file part is named `blob`).
    fn upload(&self, index: u64, scope: &str) -> RawRequest {
        let start = index * self.part_size;
        let end = (start + self.part_size).min(self.data.len() as u64);
        let params: Params = [
            ("qqpartindex", index.to_string()),
            ("qqpartbyteoffset", start.to_string()),
            ("qqchunksize", (end - start).to_string()),
            ("qqtotalparts", self.parts().to_string()),
            ("qqtotalfilesize", self.data.len().to_string()),
            ("qqfilename", self.name.clone()),
            ("qquuid", self.uuid.clone()),
        ]
        .into_iter()
        .collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_scope(scope)
            .with_part_filename("blob")
            .with_body(ChunkBody::bytes(
                self.data[start as usize..end as usize].to_vec(),
            ))
    }

    /// The whole file in one multipart request (not larger than `partSize`).
    fn whole(&self, scope: &str) -> RawRequest {
        let params: Params = [
            ("qquuid", self.uuid.clone()),
            ("qqfilename", self.name.clone()),
            ("qqtotalfilesize", self.data.len().to_string()),
        ]
        .into_iter()
        .collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_scope(scope)
            .with_part_filename(&self.name)
            .with_body(ChunkBody::bytes(self.data.clone()))
    }

    /// The `chunking.success.endpoint` request: urlencoded.
    fn done(&self, scope: &str) -> RawRequest {
        let body = format!(
            "qquuid={}&qqfilename={}&qqtotalfilesize={}&qqtotalparts={}",
            self.uuid,
            self.name,
            self.data.len(),
            self.parts()
        );
        RawRequest::new(
            RequestKind::Upload,
            Params::from_urlencoded(body.as_bytes()).unwrap(),
        )
        .with_scope(scope)
    }
}

/// A file as Plupload (`chunk_size` set) cuts it.
#[derive(Debug, Clone)]
struct PluploadFile {
    name: String,
    data: Vec<u8>,
    chunk_size: u64,
}

impl PluploadFile {
    fn new(name: &str, data: Vec<u8>, chunk_size: u64) -> PluploadFile {
        PluploadFile {
            name: name.into(),
            data,
            chunk_size,
        }
    }

    /// `Math.ceil(blob.size / chunkSize)`: 0 for an empty file.
    fn chunks(&self) -> u64 {
        (self.data.len() as u64).div_ceil(self.chunk_size)
    }

    fn body(&self, index: u64) -> Vec<u8> {
        let start = (index * self.chunk_size) as usize;
        let end = (start + self.chunk_size as usize).min(self.data.len());
        self.data[start..end].to_vec()
    }

    /// Chunk `index`, multipart: `name`, `chunk`, `chunks`, then the part `file`.
    fn upload(&self, index: u64, scope: &str) -> RawRequest {
        let params: Params = [
            ("name", self.name.clone()),
            ("chunk", index.to_string()),
            ("chunks", self.chunks().to_string()),
        ]
        .into_iter()
        .collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_scope(scope)
            .with_part_filename("blob")
            .with_body(ChunkBody::bytes(self.body(index)))
    }

    /// Chunk `index` with `send_chunk_number: false` and `multipart: false`: `name`, `offset`
    /// and `total` in the query string, the chunk as the raw body.
    fn upload_offset(&self, index: u64, scope: &str) -> RawRequest {
        let query = format!(
            "name={}&offset={}&total={}",
            self.name,
            index * self.chunk_size,
            self.data.len()
        );
        RawRequest::new(
            RequestKind::Upload,
            Params::from_urlencoded(query.as_bytes()).unwrap(),
        )
        .with_scope(scope)
        .with_body(ChunkBody::bytes(self.body(index)))
    }

    /// The whole file without `chunk_size`: `name` and the part.
    fn whole(&self, scope: &str) -> RawRequest {
        let params: Params = [("name", self.name.as_str())].into_iter().collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_scope(scope)
            .with_part_filename(&self.name)
            .with_body(ChunkBody::bytes(self.data.clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// Uploads that count their assemblies; a second assembly would show up as `name (1).ext`.
fn counting_uploads(dir: &Path) -> (Uploads, Arc<AtomicU64>) {
    let assembled = Arc::new(AtomicU64::new(0));
    let a = Arc::clone(&assembled);
    let uploads = Uploads::new(
        config(dir)
            .on_conflict(ConflictPolicy::Rename)
            .on_assembled(move |_| {
                a.fetch_add(1, Ordering::SeqCst);
            })
            .build(),
    )
    .unwrap();
    (uploads, assembled)
}

/// Exactly one file in the destination, named `name`, holding `data`.
fn assert_one_file(dir: &Path, name: &str, data: &[u8]) {
    let files = dir.join("files");
    assert_eq!(visible_files(&files), [name]);
    assert!(
        fs::read(files.join(name)).unwrap() == data,
        "{name} differs"
    );
}

/// Saves the requests in order: every one but the last answers "stored", the last "assembled".
fn save_in_order(uploads: &Uploads, requests: Vec<RawRequest>) {
    let n = requests.len();
    for (i, mut request) in requests.into_iter().enumerate() {
        let outcome = uploads.save(&mut request).unwrap();
        if i + 1 < n {
            assert!(
                matches!(outcome, Outcome::ChunkStored { chunks_present, .. } if chunks_present == i as u64 + 1),
                "{outcome:?}"
            );
        } else {
            assert!(
                matches!(outcome, Outcome::Assembled { fresh: true, .. }),
                "{outcome:?}"
            );
        }
    }
}

/// Saves the requests from `threads` threads at once, in the order given; returns the outcomes.
fn save_in_parallel(uploads: &Uploads, requests: Vec<RawRequest>, threads: usize) -> Vec<Outcome> {
    let queue = Arc::new(Mutex::new(requests));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (uploads, queue, outcomes) =
                (uploads.clone(), Arc::clone(&queue), Arc::clone(&outcomes));
            thread::spawn(move || {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some(mut request) = next else { break };
                    let outcome = uploads.save(&mut request).unwrap();
                    outcomes.lock().unwrap().push(outcome);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    Arc::try_unwrap(outcomes).unwrap().into_inner().unwrap()
}

/// Every index once, plus about a third again, shuffled.
fn shuffled_with_duplicates(n: u64, rng: &mut Rng) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    order.extend((0..n).filter(|_| rng.below(3) == 0));
    rng.shuffle(&mut order);
    order
}

fn fresh_assemblies(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Assembled { fresh: true, .. }))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Dropzone.

#[test]
fn dropzone_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = DropzoneFile::new("video.mp4", bytes(10_000, 1), 1024);
    assert_eq!(f.count(), 10);
    save_in_order(&uploads, (0..f.count()).map(|i| f.upload(i, "s")).collect());
    assert_one_file(dir.path(), "video.mp4", &f.data);
}

#[test]
fn dropzone_parallel_chunk_uploads_with_duplicates() {
    for run in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let (uploads, assembled) = counting_uploads(dir.path());
        let mut rng = Rng(0xD20 + run);
        let f = DropzoneFile::new("big.bin", bytes(40_000 + run as usize * 17, run), 1000);
        let order = shuffled_with_duplicates(f.count(), &mut rng);
        let outcomes = save_in_parallel(
            &uploads,
            order.iter().map(|&i| f.upload(i, "s")).collect(),
            8,
        );
        assert_eq!(fresh_assemblies(&outcomes), 1, "run {run}");
        assert_eq!(assembled.load(Ordering::SeqCst), 1, "run {run}");
        assert_one_file(dir.path(), "big.bin", &f.data);
        // chunksUploaded: the app's finalize, repeated by a proxy.
        for _ in 0..3 {
            let outcome = uploads.finalize_request(&f.done("s")).unwrap();
            assert!(
                matches!(outcome, Outcome::Assembled { fresh: false, .. }),
                "{outcome:?}"
            );
        }
        assert_eq!(assembled.load(Ordering::SeqCst), 1);
        assert_one_file(dir.path(), "big.bin", &f.data);
    }
}

#[test]
fn dropzone_finalize_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, assembled) = counting_uploads(dir.path());
    let f = DropzoneFile::new("a.bin", bytes(5000, 2), 1000);
    for i in 1..f.count() {
        uploads.save(&mut f.upload(i, "s")).unwrap();
    }
    let early = uploads.finalize_request(&f.done("s")).unwrap_err();
    assert!(
        matches!(
            early,
            Error::Incomplete {
                present: 4,
                total: 5,
                ..
            }
        ),
        "{early}"
    );
    assert!(visible_files(&dir.path().join("files")).is_empty());
    // A retried chunk, then the missing one completes the file.
    uploads.save(&mut f.upload(3, "s")).unwrap();
    let last = uploads.save(&mut f.upload(0, "s")).unwrap();
    assert!(matches!(last, Outcome::Assembled { fresh: true, .. }));
    for _ in 0..3 {
        assert!(matches!(
            uploads.finalize_request(&f.done("s")),
            Ok(Outcome::Assembled { fresh: false, .. })
        ));
        // A chunk retried after assembly is answered without storing anything.
        assert!(matches!(
            uploads.save(&mut f.upload(2, "s")),
            Ok(Outcome::Assembled { fresh: false, .. })
        ));
    }
    assert_eq!(assembled.load(Ordering::SeqCst), 1);
    assert_one_file(dir.path(), "a.bin", &f.data);
    // Another scope has no such upload.
    assert!(matches!(
        uploads.finalize_request(&f.done("t")),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn dropzone_empty_and_one_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    // Dropzone 6.0 with forceChunking sends dztotalchunkcount=0 for an empty file.
    let empty = DropzoneFile::new("empty.txt", Vec::new(), 2 << 20);
    assert_eq!(empty.count(), 0);
    save_in_order(&uploads, vec![empty.upload(0, "s")]);
    // forceChunking of a file smaller than a chunk.
    let one = DropzoneFile::new("one.txt", b"hello".to_vec(), 2 << 20);
    save_in_order(&uploads, vec![one.upload(0, "s")]);
    // Exactly one chunk's worth.
    let exact = DropzoneFile::new("exact.bin", bytes(1000, 3), 1000);
    assert_eq!(exact.count(), 1);
    save_in_order(&uploads, vec![exact.upload(0, "s")]);
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["empty.txt", "exact.bin", "one.txt"]);
    assert_eq!(fs::read(files.join("empty.txt")).unwrap(), b"");
    assert_eq!(fs::read(files.join("one.txt")).unwrap(), b"hello");
    assert_eq!(fs::read(files.join("exact.bin")).unwrap(), exact.data);
}

#[test]
fn dropzone_chunk_body_must_fit_the_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = DropzoneFile::new("a.bin", bytes(2500, 4), 1000);
    let mut short = f.upload(0, "s");
    short.set_body(ChunkBody::bytes(vec![0; 999]));
    assert!(
        matches!(uploads.save(&mut short), Err(Error::BadRequest { field, .. }) if field == "body")
    );
    let mut long = f.upload(2, "s");
    long.set_body(ChunkBody::bytes(vec![0; 501]));
    assert!(
        matches!(uploads.save(&mut long), Err(Error::BadRequest { field, .. }) if field == "body")
    );
    save_in_order(&uploads, (0..3).map(|i| f.upload(i, "s")).collect());
    assert_one_file(dir.path(), "a.bin", &f.data);
}

#[test]
fn one_request_uploads_get_their_own_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .on_conflict(ConflictPolicy::Rename)
            .build(),
    )
    .unwrap();
    // A small Dropzone file (no forceChunking), twice, with the same name and scope: two
    // uploads, two files, never mixed.
    for data in [b"first".as_slice(), b"second"] {
        let outcome = uploads.save(&mut form_post("note.txt", data, "s")).unwrap();
        assert!(
            matches!(outcome, Outcome::Assembled { fresh: true, .. }),
            "{outcome:?}"
        );
    }
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["note (1).txt", "note.txt"]);
    assert_eq!(fs::read(files.join("note.txt")).unwrap(), b"first");
    assert_eq!(fs::read(files.join("note (1).txt")).unwrap(), b"second");
    // An empty file.
    assert!(matches!(
        uploads.save(&mut form_post("e.txt", b"", "s")),
        Ok(Outcome::Assembled { .. })
    ));
    assert_eq!(fs::read(files.join("e.txt")).unwrap(), b"");
}

#[test]
fn one_request_uploads_respect_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .max_file_size(10)
            .max_chunk_size(100)
            .build(),
    )
    .unwrap();
    let over_file = uploads
        .save(&mut form_post("a.bin", &[1; 11], "s"))
        .unwrap_err();
    assert!(
        matches!(
            over_file,
            Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: 11,
                limit: 10
            }
        ),
        "{over_file}"
    );
    // A whole file in one request stops being read once it passes the file limit (the smaller
    // of the two here), not the chunk limit.
    let over_both = uploads
        .save(&mut form_post("b.bin", &[1; 101], "s"))
        .unwrap_err();
    assert!(
        matches!(
            over_both,
            Error::TooLarge {
                limit_kind: Limit::FileSize,
                limit: 10,
                ..
            }
        ),
        "{over_both}"
    );
    let p = PluploadFile::new("c.bin", vec![1; 11], 4);
    assert!(matches!(
        uploads.save(&mut p.whole("s")),
        Err(Error::TooLarge {
            limit_kind: Limit::FileSize,
            ..
        })
    ));
    // Chunked Plupload uploads declare no size either: the bytes received count.
    let mut outcome = None;
    for i in 0..p.chunks() {
        outcome = Some(uploads.save(&mut p.upload(i, "s")));
    }
    assert!(matches!(
        outcome,
        Some(Err(Error::TooLarge {
            limit_kind: Limit::FileSize,
            ..
        }))
    ));
    assert!(visible_files(&dir.path().join("files")).is_empty());
    assert!(matches!(
        uploads.save(&mut form_post("ok.bin", &[1; 10], "s")),
        Ok(Outcome::Assembled { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Fine Uploader.

#[test]
fn fine_uploader_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FineFile::new("report.pdf", bytes(9_999, 5), 2000);
    assert_eq!(f.parts(), 5);
    save_in_order(&uploads, (0..f.parts()).map(|i| f.upload(i, "s")).collect());
    assert_one_file(dir.path(), "report.pdf", &f.data);
}

#[test]
fn fine_uploader_concurrent_with_duplicates_and_repeated_finalize() {
    for run in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let (uploads, assembled) = counting_uploads(dir.path());
        let mut rng = Rng(0xF1E + run);
        let f = FineFile::new(
            "data.bin",
            bytes(30_000 + run as usize * 31, run + 100),
            1000,
        );
        let order = shuffled_with_duplicates(f.parts(), &mut rng);
        // maxConnections: 3.
        let outcomes = save_in_parallel(
            &uploads,
            order.iter().map(|&i| f.upload(i, "s")).collect(),
            3,
        );
        assert_eq!(fresh_assemblies(&outcomes), 1, "run {run}");
        // chunking.success.endpoint, sent once all parts succeeded and repeated by a proxy.
        for _ in 0..3 {
            let outcome = uploads.finalize_request(&f.done("s")).unwrap();
            assert!(
                matches!(outcome, Outcome::Assembled { fresh: false, .. }),
                "{outcome:?}"
            );
            let reply = Reply::from_result(&Ok(outcome));
            assert_eq!(reply.status, 200);
            let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(json["success"], true, "Fine Uploader needs success: true");
        }
        assert_eq!(assembled.load(Ordering::SeqCst), 1);
        assert_one_file(dir.path(), "data.bin", &f.data);
    }
}

#[test]
fn fine_uploader_finalize_assembles_what_the_parts_completed() {
    // A finalize request that arrives before the last part is refused (Fine Uploader shows the
    // error and does not retry); once the last part has completed the file, every finalize
    // answers "assembled".
    let dir = tempfile::tempdir().unwrap();
    let (uploads, assembled) = counting_uploads(dir.path());
    let f = FineFile::new("x.bin", bytes(3500, 6), 1000);
    for i in 0..3 {
        uploads.save(&mut f.upload(i, "s")).unwrap();
    }
    let err = uploads.finalize_request(&f.done("s")).unwrap_err();
    assert!(matches!(
        err,
        Error::Incomplete {
            present: 3,
            total: 4,
            ..
        }
    ));
    let reply = Reply::error(&err);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        (reply.status, &json["success"], &json["preventRetry"]),
        (400, &serde_json::json!(false), &serde_json::json!(true))
    );
    uploads.save(&mut f.upload(3, "s")).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            uploads.finalize_request(&f.done("s")),
            Ok(Outcome::Assembled { .. })
        ));
    }
    assert_eq!(assembled.load(Ordering::SeqCst), 1);
    assert_one_file(dir.path(), "x.bin", &f.data);
}

#[test]
fn fine_uploader_small_files_and_mandatory_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let files = dir.path().join("files");
    // Not chunked: qquuid, qqfilename, qqtotalfilesize and the file.
    let small = FineFile::new("small.txt", b"tiny".to_vec(), 2_000_000);
    save_in_order(&uploads, vec![small.whole("s")]);
    // An empty file (validation.allowEmpty).
    let empty = FineFile::new("empty.txt", Vec::new(), 2_000_000);
    save_in_order(&uploads, vec![empty.whole("s")]);
    // chunking.mandatory: one part with the part parameters.
    let one = FineFile::new("one.txt", b"one part".to_vec(), 2_000_000);
    assert_eq!(one.parts(), 1);
    save_in_order(&uploads, vec![one.upload(0, "s")]);
    // Raw body, parameters in the query string (no qqtotalfilesize, qqfile is the name).
    let query = Params::from_urlencoded(b"qquuid=raw-1&qqfilename=raw.bin&qqfile=raw.bin").unwrap();
    let mut raw = RawRequest::new(RequestKind::Upload, query)
        .with_body(ChunkBody::bytes(b"raw bytes".to_vec()));
    assert!(matches!(
        uploads.save(&mut raw),
        Ok(Outcome::Assembled { fresh: true, .. })
    ));
    assert_eq!(
        visible_files(&files),
        ["empty.txt", "one.txt", "raw.bin", "small.txt"]
    );
    assert_eq!(fs::read(files.join("small.txt")).unwrap(), b"tiny");
    assert_eq!(fs::read(files.join("empty.txt")).unwrap(), b"");
    assert_eq!(fs::read(files.join("one.txt")).unwrap(), b"one part");
    assert_eq!(fs::read(files.join("raw.bin")).unwrap(), b"raw bytes");
    // A whole file whose body is not the declared size.
    let liar = FineFile::new("liar.txt", b"12345".to_vec(), 2_000_000);
    let mut req = liar.whole("s");
    req.set_body(ChunkBody::bytes(b"1234".to_vec()));
    assert!(
        matches!(uploads.save(&mut req), Err(Error::BadRequest { field, .. }) if field == "body")
    );
}

#[test]
fn fine_uploader_parts_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = FineFile::new("a.bin", bytes(10_000, 7), 1000);
    uploads.save(&mut f.upload(0, "s")).unwrap();
    // The same uuid with another part size (a part that derives 2000 bytes).
    let other = FineFile {
        part_size: 2000,
        ..f.clone()
    };
    let err = uploads.save(&mut other.upload(1, "s")).unwrap_err();
    assert!(matches!(err, Error::GeometryMismatch { .. }), "{err}");
    // A part whose body is shorter than its qqchunksize.
    let mut short = f.upload(1, "s");
    short.set_body(ChunkBody::bytes(vec![0; 10]));
    assert!(
        matches!(uploads.save(&mut short), Err(Error::BadRequest { field, .. }) if field == "body")
    );
}

// ---------------------------------------------------------------------------------------------
// Plupload.

#[test]
fn plupload_in_order_multipart_and_raw() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = PluploadFile::new("movie.mp4", bytes(10_500, 8), 1000);
    assert_eq!(f.chunks(), 11);
    save_in_order(
        &uploads,
        (0..f.chunks()).map(|i| f.upload(i, "s")).collect(),
    );
    // multipart: false: the same parameters in the query string, the chunk as the raw body.
    let g = PluploadFile::new("raw.bin", bytes(3000, 9), 1000);
    let requests = (0..g.chunks())
        .map(|i| {
            let query = format!("name=raw.bin&chunk={i}&chunks={}", g.chunks());
            RawRequest::new(
                RequestKind::Upload,
                Params::from_urlencoded(query.as_bytes()).unwrap(),
            )
            .with_scope("s")
            .with_body(ChunkBody::bytes(g.body(i)))
        })
        .collect();
    save_in_order(&uploads, requests);
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["movie.mp4", "raw.bin"]);
    assert_eq!(fs::read(files.join("movie.mp4")).unwrap(), f.data);
    assert_eq!(fs::read(files.join("raw.bin")).unwrap(), g.data);
}

#[test]
fn plupload_retried_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, assembled) = counting_uploads(dir.path());
    let f = PluploadFile::new("a.bin", bytes(4500, 10), 1000);
    // max_retries: every chunk sent twice (the first answer lost), one at a time, in order.
    for i in 0..f.chunks() {
        uploads.save(&mut f.upload(i, "s")).unwrap();
        uploads.save(&mut f.upload(i, "s")).unwrap();
    }
    assert_eq!(assembled.load(Ordering::SeqCst), 1);
    assert_one_file(dir.path(), "a.bin", &f.data);
}

#[test]
fn plupload_empty_one_chunk_and_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let files = dir.path().join("files");
    // chunks=0 for an empty file (filters.prevent_empty: false).
    let empty = PluploadFile::new("empty.txt", Vec::new(), 1000);
    assert_eq!(empty.chunks(), 0);
    save_in_order(&uploads, vec![empty.upload(0, "s")]);
    // chunk=0&chunks=1: chunk parameters are sent even for a small file.
    let one = PluploadFile::new("one.txt", b"12345".to_vec(), 1000);
    save_in_order(&uploads, vec![one.upload(0, "s")]);
    // No chunk_size: the whole file, `name` and the part.
    let whole = PluploadFile::new("whole.bin", bytes(5000, 11), 1000);
    save_in_order(&uploads, vec![whole.whole("s")]);
    assert_eq!(visible_files(&files), ["empty.txt", "one.txt", "whole.bin"]);
    assert_eq!(fs::read(files.join("empty.txt")).unwrap(), b"");
    assert_eq!(fs::read(files.join("one.txt")).unwrap(), b"12345");
    assert_eq!(fs::read(files.join("whole.bin")).unwrap(), whole.data);
    // An "empty" chunk with bytes in it.
    let mut liar = empty.upload(0, "t");
    liar.set_body(ChunkBody::bytes(b"x".to_vec()));
    assert!(
        matches!(uploads.save(&mut liar), Err(Error::BadRequest { field, .. }) if field == "body")
    );
}

#[test]
fn plupload_same_name_in_two_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .on_conflict(ConflictPolicy::Rename)
            .build(),
    )
    .unwrap();
    let alice = PluploadFile::new("cv.pdf", bytes(3000, 12), 1000);
    let bob = PluploadFile::new("cv.pdf", bytes(3000, 13), 1000);
    // Interleaved: the same name, keyed apart by scope.
    for i in 0..3 {
        uploads.save(&mut alice.upload(i, "alice")).unwrap();
        uploads.save(&mut bob.upload(i, "bob")).unwrap();
    }
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["cv (1).pdf", "cv.pdf"]);
    assert_eq!(fs::read(files.join("cv.pdf")).unwrap(), alice.data);
    assert_eq!(fs::read(files.join("cv (1).pdf")).unwrap(), bob.data);
}

#[test]
fn plupload_unequal_chunks_are_never_assembled() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = PluploadFile::new("a.bin", bytes(3000, 14), 1000);
    uploads.save(&mut f.upload(0, "s")).unwrap();
    let mut short = f.upload(1, "s");
    short.set_body(ChunkBody::bytes(vec![0; 999]));
    // A chunk in the middle shorter than the first: refused on arrival with the reason.
    let refused = uploads.save(&mut short).unwrap_err();
    assert!(
        matches!(&refused, Error::BadRequest { field, .. } if field == "body")
            && refused.to_string().contains("chunk 1 has 999 bytes"),
        "{refused}"
    );
    let mut long = f.upload(1, "s");
    long.set_body(ChunkBody::bytes(vec![0; 1001]));
    let refused = uploads.save(&mut long).unwrap_err();
    assert!(
        matches!(&refused, Error::BadRequest { field, .. } if field == "body"),
        "{refused}"
    );
    // So the last chunk finds a gap: refused, not assembled.
    let last = uploads.save(&mut f.upload(2, "s")).unwrap_err();
    assert!(matches!(last, Error::Incomplete { .. }), "{last}");
    assert!(visible_files(&dir.path().join("files")).is_empty());
    // With the widget's chunk size configured, the short chunk is refused on arrival.
    let dir = tempfile::tempdir().unwrap();
    let uploads = Uploads::new(
        config(dir.path())
            .dialects(Dialects::only(Plupload::new().chunk_size(1000)))
            .build(),
    )
    .unwrap();
    let mut short = f.upload(1, "s");
    short.set_body(ChunkBody::bytes(vec![0; 999]));
    assert!(
        matches!(uploads.save(&mut short), Err(Error::BadRequest { field, .. }) if field == "body")
    );
}

#[test]
fn plupload_offset_and_total() {
    let dir = tempfile::tempdir().unwrap();
    let f = PluploadFile::new("o.bin", bytes(2500, 15), 1000);
    // Without the widget's chunk size, offset requests cannot be placed.
    let plain = uploads(dir.path());
    let err = plain.save(&mut f.upload_offset(1, "s")).unwrap_err();
    assert!(
        matches!(&err, Error::BadRequest { field, .. } if field == "offset"),
        "{err}"
    );
    let uploads = Uploads::new(
        config(dir.path())
            .dialects(Dialects::only(Plupload::new().chunk_size(1000)))
            .build(),
    )
    .unwrap();
    save_in_order(&uploads, (0..3).map(|i| f.upload_offset(i, "s")).collect());
    let empty = PluploadFile::new("e.bin", Vec::new(), 1000);
    save_in_order(&uploads, vec![empty.upload_offset(0, "s")]);
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["e.bin", "o.bin"]);
    assert_eq!(fs::read(files.join("o.bin")).unwrap(), f.data);
    // The body must be what offset and total leave for it.
    let g = PluploadFile::new("g.bin", bytes(2500, 16), 1000);
    let mut long = g.upload_offset(2, "s");
    long.set_body(ChunkBody::bytes(vec![0; 501]));
    assert!(
        matches!(uploads.save(&mut long), Err(Error::BadRequest { field, .. }) if field == "body")
    );
}

// ---------------------------------------------------------------------------------------------
// All widgets on one route.

#[test]
fn one_route_for_all_widgets() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let dz = DropzoneFile::new("dz.bin", bytes(2100, 20), 1000);
    let fine = FineFile::new("fine.bin", bytes(2100, 21), 1000);
    let plup = PluploadFile::new("plup.bin", bytes(2100, 22), 1000);
    let flow = common::FlowFile::new("flow.bin", bytes(2100, 23), 1000);
    for i in 0..3 {
        uploads.save(&mut dz.upload(i, "s")).unwrap();
        uploads.save(&mut fine.upload(i, "s")).unwrap();
        uploads.save(&mut plup.upload(i, "s")).unwrap();
    }
    for n in 1..=flow.total_chunks() {
        uploads.save(&mut flow.upload(n, "s")).unwrap();
    }
    uploads
        .save(&mut form_post("form.txt", b"plain form", "s"))
        .unwrap();
    let files = dir.path().join("files");
    assert_eq!(
        visible_files(&files),
        ["dz.bin", "fine.bin", "flow.bin", "form.txt", "plup.bin"]
    );
    for (name, data) in [
        ("dz.bin", &dz.data),
        ("fine.bin", &fine.data),
        ("plup.bin", &plup.data),
        ("flow.bin", &flow.data),
    ] {
        assert!(fs::read(files.join(name)).unwrap() == *data, "{name}");
    }
}

#[test]
fn errors_are_json_and_at_least_400_for_every_widget() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let dz = DropzoneFile::new("a", bytes(10, 1), 4);
    let mut bad_dz = dz.upload(1, "s");
    bad_dz
        .params_mut()
        .insert("dzchunkbyteoffset", "5")
        .unwrap();
    let fine = FineFile::new("b", bytes(10, 1), 4);
    let mut bad_fine = fine.upload(1, "s");
    bad_fine.params_mut().insert("qqpartindex", "x").unwrap();
    let plup = PluploadFile::new("c", bytes(10, 1), 4);
    let mut bad_plup = plup.upload(1, "s");
    bad_plup.params_mut().insert("chunks", "-3").unwrap();
    for (mut request, field) in [
        (bad_dz, "dzchunkbyteoffset"),
        (bad_fine, "qqpartindex"),
        (bad_plup, "chunks"),
    ] {
        let result = uploads.save(&mut request);
        assert!(
            matches!(&result, Err(Error::BadRequest { field: f, .. }) if f == field),
            "{result:?}"
        );
        let reply = Reply::from_result(&result);
        assert_eq!(reply.status, 400);
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(json["success"], false);
        assert_eq!(json["preventRetry"], true);
        assert!(json["error"].as_str().unwrap().starts_with(field), "{json}");
    }
    // Busy: a status every widget treats as an error, and Fine Uploader may retry.
    let busy = Reply::error(&Error::Busy { retry_after: 2 });
    let json: serde_json::Value = serde_json::from_str(&busy.body).unwrap();
    assert_eq!((busy.status, busy.retry_after), (503, Some(2)));
    assert_eq!(json["preventRetry"], false);
}

#[test]
fn dialect_options_on_a_forced_route() {
    // Dropzone resizing images before a chunked upload: `dztotalfilesize` is the original's.
    let resized = DropzoneFile::new("photo.jpg", bytes(2500, 30), 1000);
    let requests = || {
        (0..resized.count()).map(|i| {
            let mut r = resized.upload(i, "s");
            r.params_mut().insert("dztotalfilesize", "9000000").unwrap();
            r
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let refused = uploads(dir.path())
        .save(&mut requests().next().unwrap())
        .unwrap_err();
    assert!(
        matches!(&refused, Error::BadRequest { field, .. } if field == "dztotalchunkcount"),
        "{refused}"
    );
    let uploads = Uploads::new(
        config(dir.path())
            .dialects(Dialects::only(Dropzone::new().transform_file(true)))
            .build(),
    )
    .unwrap();
    save_in_order(&uploads, requests().collect());
    assert_one_file(dir.path(), "photo.jpg", &resized.data);

    // Fine Uploader with `request.uuidName` and `chunking.paramNames.partIndex` renamed.
    use chunked_upload::dialect::FineUploaderParam;
    let dir = tempfile::tempdir().unwrap();
    let fine = FineUploader::new()
        .rename(FineUploaderParam::Uuid, "fileId")
        .rename(FineUploaderParam::PartIndex, "part");
    let uploads = Uploads::new(config(dir.path()).dialects(Dialects::only(fine)).build()).unwrap();
    let f = FineFile::new("renamed.bin", bytes(2500, 31), 1000);
    let requests = (0..f.parts())
        .map(|i| {
            let mut part = f.upload(i, "s");
            let mut params = Params::new();
            for (name, value) in part.params().iter() {
                let name = match name {
                    "qquuid" => "fileId",
                    "qqpartindex" => "part",
                    other => other,
                };
                params.insert(name, value).unwrap();
            }
            let body = part.take_body().unwrap();
            RawRequest::new(RequestKind::Upload, params)
                .with_scope("s")
                .with_body(body)
        })
        .collect();
    save_in_order(&uploads, requests);
    let done: Params = [("fileId", f.uuid.as_str())].into_iter().collect();
    let done = RawRequest::new(RequestKind::Upload, done).with_scope("s");
    assert!(matches!(
        uploads.finalize_request(&done),
        Ok(Outcome::Assembled { fresh: false, .. })
    ));
    assert_one_file(dir.path(), "renamed.bin", &f.data);
}

/// Plupload sends no identifier, so uploads are keyed by name: a new upload of a name already
/// uploaded (or abandoned half-way, with another chunk count) in the same scope starts over
/// with its chunk 0 instead of being answered "already assembled" and dropped.
#[test]
fn plupload_same_name_again_is_a_new_upload() {
    let dir = tempfile::tempdir().unwrap();
    let (uploads, assembled) = counting_uploads(dir.path());
    let first = PluploadFile::new("report.pdf", bytes(2500, 20), 1000);
    for i in 0..first.chunks() {
        uploads.save(&mut first.upload(i, "s")).unwrap();
    }
    // An abandoned attempt with another chunk count, then the real second version.
    let abandoned = PluploadFile::new("report.pdf", bytes(9000, 21), 1000);
    uploads.save(&mut abandoned.upload(0, "s")).unwrap();
    let second = PluploadFile::new("report.pdf", bytes(3500, 22), 1000);
    for i in 0..second.chunks() {
        uploads.save(&mut second.upload(i, "s")).unwrap();
    }
    assert_eq!(assembled.load(Ordering::SeqCst), 2);
    let files = dir.path().join("files");
    assert_eq!(visible_files(&files), ["report (1).pdf", "report.pdf"]);
    assert!(fs::read(files.join("report.pdf")).unwrap() == first.data);
    assert!(fs::read(files.join("report (1).pdf")).unwrap() == second.data);
}

/// Plupload sends its chunks in order, one at a time: when its last chunk arrives and the file
/// is still incomplete (it skipped a chunk, as its `stop()`/`start()` can), the answer is an
/// error, so the widget reports a failure instead of a success.
#[test]
fn plupload_last_chunk_with_a_gap_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = uploads(dir.path());
    let f = PluploadFile::new("gap.bin", bytes(4000, 23), 1000);
    uploads.save(&mut f.upload(0, "s")).unwrap();
    uploads.save(&mut f.upload(2, "s")).unwrap(); // chunk 1 skipped
    let err = uploads.save(&mut f.upload(3, "s")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Incomplete {
                present: 3,
                total: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.status(), 400);
    assert!(visible_files(&dir.path().join("files")).is_empty());
}
