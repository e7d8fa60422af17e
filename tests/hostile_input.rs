//! A table of hostile requests sent over HTTP to the example server (a real process): path
//! traversal in every string (identifier, file name, relative path; `../`, absolute paths,
//! backslashes, percent-encoded and double-encoded forms), NUL and other control bytes, invalid
//! UTF-8, empty and 64 KiB values, chunk numbers that are 0, negative, past the end,
//! non-numeric, fractional or beyond `u64`, sizes that lie about the body, totals that disagree
//! with the geometry or the limits, malformed forms, test `GET`s with invalid parameters,
//! requests for another session's upload, and the same for Dropzone, Fine Uploader and
//! Plupload.
//!
//! Each answer must have the expected status and, for errors, a JSON `error` that names the
//! parameter or the problem. Hostile names that are legitimate uploads must be assembled under
//! their sanitized name inside `DIR` (unicode names kept as they are), and the double-encoded
//! one decoded once only. Afterwards the folders around the server are compared with a listing
//! taken before: nothing new in the parent of `DIR` or in `DIR` but the expected files and the
//! chunk folder's content; the chunk folder's entries are all hashes (no client string reaches
//! a path); no staging file is left; and a sentinel word used in every traversal payload
//! appears nowhere outside `DIR` (the ancestors of the test folder, `/tmp`, `/etc` are checked).
//! A query string of 64 KiB is longer than hyper takes (414, from the HTTP layer, no JSON).
//!
//! Two more tests: a million declared chunks cost the server no memory until they arrive (a
//! regression test), and stalled bodies must not freeze the server (the adapters hold no thread
//! while waiting for the network).

mod common;
mod server_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use common::{FlowFile, bytes};
use server_support::{
    Answer, Body, Options, Request, Server, assert_same_bytes, fields, flow_pairs, multipart,
    multipart_type, new_session, query, scratch, set, staging_leftovers, tree, upload_request,
    without,
};

/// Chunk size of the refused flow.js requests.
const CS: u64 = 16 * 1024;
const MAX_CHUNK: u64 = 256 * 1024;
const MAX_FILE: u64 = 4 << 20;

/// What a case must get.
#[derive(Debug, Clone)]
enum Expect {
    /// This status, JSON `success: false`, and an `error` containing every one of these.
    Error(u16, Vec<String>),
    /// 200, assembled (fresh) under this name in `DIR`, with these bytes.
    Assembled(String, Vec<u8>),
    /// 200, the chunk stored, with this many chunks of the upload present.
    Stored(u64),
    /// 204 with an empty body (a test `GET` for an absent chunk).
    Absent,
    /// This status, from the HTTP layer (no JSON).
    Status(u16),
}

struct Case {
    name: String,
    request: Request,
    expect: Expect,
}

/// The table, filled case by case.
struct Table {
    session: String,
    cases: Vec<Case>,
}

fn err(status: u16, words: &[&str]) -> Expect {
    Expect::Error(status, words.iter().map(|w| (*w).to_owned()).collect())
}

impl Table {
    fn add(&mut self, name: impl Into<String>, request: Request, expect: Expect) {
        let request = if request.headers.iter().any(|(n, _)| n == "Cookie") {
            request
        } else {
            request.cookie(&self.session)
        };
        self.cases.push(Case {
            name: name.into(),
            request,
            expect,
        });
    }

    /// The refused file: chunk 1 of three 16 KiB chunks (plus 100 bytes in the last).
    fn base(&self) -> FlowFile {
        FlowFile {
            identifier: "hostile-base".into(),
            ..FlowFile::new("base.bin", bytes(3 * CS as usize + 100, 1), CS)
        }
    }

    /// A one-chunk flow.js file with these strings, which the server must accept and assemble
    /// (its relative path is its name).
    fn one_chunk(&self, identifier: &str, filename: &str) -> FlowFile {
        let seed = self.cases.len() as u64 + 100;
        FlowFile {
            identifier: identifier.to_owned(),
            name: filename.to_owned(),
            ..FlowFile::new("x", bytes(200 + seed as usize, seed), 1024)
        }
    }
}

/// The flow.js parameters of chunk 1, with `name` set to `value`.
fn pairs_with(file: &FlowFile, name: &str, value: &str) -> Vec<(String, String)> {
    let mut pairs = flow_pairs(file, 1);
    set(&mut pairs, name, value);
    pairs
}

/// An octet upload whose query is the file's parameters without `name`, then `name=raw` with
/// `raw` sent exactly as given (already percent-encoded, or not).
fn octet_raw(file: &FlowFile, n: u64, name: &str, raw: &str, body: &[u8]) -> Request {
    let q = query(&without(flow_pairs(file, n), name));
    Request::new("POST", format!("/upload?{q}&{name}={raw}"))
        .body("application/octet-stream", body.to_vec())
}

/// A test `GET` with `name=raw` sent exactly as given.
fn test_raw(file: &FlowFile, n: u64, name: &str, raw: &str) -> Request {
    let q = query(&without(flow_pairs(file, n), name));
    Request::new("GET", format!("/upload?{q}&{name}={raw}"))
}

fn test_get(pairs: &[(String, String)]) -> Request {
    Request::new("GET", format!("/upload?{}", query(pairs)))
}

/// A multipart form of text fields (raw bytes) and a file part.
fn form(fields: Vec<(String, Vec<u8>)>, file: Option<(&str, &str, &[u8])>) -> Request {
    Request::new("POST", "/upload").body(&multipart_type(), multipart(&fields, file, false))
}

fn text(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn build_table(session: &str, other: &str, sentinel: &str) -> Table {
    let mut t = Table {
        session: session.to_owned(),
        cases: Vec::new(),
    };
    let s = sentinel;
    let base = t.base();
    let chunk1 = base.data[base.range(1)].to_vec();
    let refused = |pairs: &[(String, String)], body: Body| upload_request(pairs, &chunk1, body);

    // --- Traversal in strings that are only metadata: accepted, neutralized. ---------------
    for (i, id) in [
        format!("../../../../../../tmp/{s}"),
        format!("/etc/{s}"),
        format!("..\\..\\..\\{s}"),
    ]
    .iter()
    .enumerate()
    {
        let f = t.one_chunk(id, &format!("id-traversal-{i}.txt"));
        let request = upload_request(&flow_pairs(&f, 1), &f.data, Body::ALL[i % 3]);
        let expect = Expect::Assembled(f.name.clone(), f.data.clone());
        t.add(format!("identifier {id:?}"), request, expect);
    }
    {
        // Percent-encoded in the query: decoded once, to ../../, and hashed like any identifier.
        let f = t.one_chunk("x", "id-encoded.txt");
        let raw = format!("%2e%2e%2f%2e%2e%2f{s}");
        let request = octet_raw(&f, 1, "flowIdentifier", &raw, &f.data);
        let expect = Expect::Assembled(f.name.clone(), f.data.clone());
        t.add("identifier %2e%2e%2f (octet query)", request, expect);
    }
    for (i, (filename, stored)) in [
        (
            format!("../../../../../../tmp/{s}-a.txt"),
            format!("{s}-a.txt"),
        ),
        (format!("/etc/{s}-b.txt"), format!("{s}-b.txt")),
        (format!("..\\..\\..\\{s}-c.txt"), format!("{s}-c.txt")),
        (format!("C:\\Windows\\{s}-d.txt"), format!("{s}-d.txt")),
        (".chunks".to_owned(), "chunks".to_owned()),
        ("..".to_owned(), "upload".to_owned()),
        ("日本語.txt".to_owned(), "日本語.txt".to_owned()),
        (
            "naïve résumé ✓.pdf".to_owned(),
            "naïve résumé ✓.pdf".to_owned(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let f = t.one_chunk(&format!("filename-{i}"), &filename);
        let request = upload_request(&flow_pairs(&f, 1), &f.data, Body::ALL[i % 3]);
        t.add(
            format!("filename {filename:?}"),
            request,
            Expect::Assembled(stored, f.data.clone()),
        );
    }
    {
        let f = t.one_chunk("filename-pct", "x");
        let raw = format!("%2e%2e%2f%2e%2e%2f{s}-e.txt");
        let request = octet_raw(&f, 1, "flowFilename", &raw, &f.data);
        let expect = Expect::Assembled(format!("{s}-e.txt"), f.data.clone());
        t.add("filename %2e%2e%2f (decoded once)", request, expect);

        let f = t.one_chunk("filename-pct2", "x");
        let raw = format!("%252e%252e%252f{s}-f.txt");
        let request = octet_raw(&f, 1, "flowFilename", &raw, &f.data);
        // Decoded once only: the name keeps its literal "%2e%2e%2f".
        let expect = Expect::Assembled(format!("%2e%2e%2f{s}-f.txt"), f.data.clone());
        t.add("filename %252e%252e%252f (double-encoded)", request, expect);
    }
    for (i, path) in [
        format!("../../../../{s}-g/x"),
        format!("/etc/{s}-h"),
        format!("..\\..\\{s}-i"),
    ]
    .iter()
    .enumerate()
    {
        let f = t.one_chunk(&format!("relpath-{i}"), &format!("relpath-{i}.txt"));
        let mut pairs = flow_pairs(&f, 1);
        set(&mut pairs, "flowRelativePath", path);
        let request = upload_request(&pairs, &f.data, Body::ALL[i % 3]);
        let expect = Expect::Assembled(f.name.clone(), f.data.clone());
        t.add(format!("relative path {path:?}"), request, expect);
    }

    // --- NUL bytes, control characters, invalid UTF-8: refused, naming the parameter. -------
    for (param, raw) in [
        ("flowFilename", "a%00b.txt"),
        ("flowIdentifier", "id%00"),
        ("flowRelativePath", "x%00/../y"),
        ("flowFilename", "line%0Abreak.txt"),
    ] {
        t.add(
            format!("{param}={raw}"),
            octet_raw(&base, 1, param, raw, &chunk1),
            err(400, &[param, "control character"]),
        );
    }
    let mut nul_field = fields(&flow_pairs(&base, 1));
    nul_field.retain(|(n, _)| n != "flowFilename");
    nul_field.push(("flowFilename".into(), b"evil\0.txt".to_vec()));
    t.add(
        "multipart flowFilename with a raw NUL byte",
        form(nul_field, Some(("file", "blob", &chunk1))),
        err(400, &["flowFilename", "control character"]),
    );
    for (param, raw) in [("flowFilename", "%FF"), ("flowIdentifier", "%C3%28")] {
        t.add(
            format!("{param}={raw} (not UTF-8)"),
            octet_raw(&base, 1, param, raw, &chunk1),
            err(400, &[param, "not valid UTF-8"]),
        );
    }
    let mut bad_utf8 = fields(&flow_pairs(&base, 1));
    bad_utf8.retain(|(n, _)| n != "flowIdentifier");
    bad_utf8.push(("flowIdentifier".into(), vec![b'a', 0xFF, 0xFE]));
    t.add(
        "multipart flowIdentifier with raw 0xFF bytes",
        form(bad_utf8, Some(("file", "blob", &chunk1))),
        err(400, &["flowIdentifier", "not valid UTF-8"]),
    );
    t.add(
        "parameter name %FF",
        octet_raw(&base, 1, "%FF", "1", &chunk1),
        err(400, &["parameter name is not valid UTF-8"]),
    );

    // --- Empty, missing and 64 KiB values. ---------------------------------------------------
    let big = "A".repeat(64 * 1024);
    let empty_id = pairs_with(&base, "flowIdentifier", "");
    t.add(
        "empty identifier",
        refused(&empty_id, Body::Octet),
        err(400, &["flowIdentifier", "must not be empty"]),
    );
    t.add(
        "missing identifier",
        refused(
            &without(flow_pairs(&base, 1), "flowIdentifier"),
            Body::Multipart,
        ),
        err(400, &["flowIdentifier", "missing"]),
    );
    t.add(
        "empty filename",
        refused(&pairs_with(&base, "flowFilename", ""), Body::Multipart),
        err(400, &["flowFilename", "must not be empty"]),
    );
    for (param, body) in [
        ("flowFilename", Body::Multipart),
        ("flowRelativePath", Body::FileFirst),
        ("flowIdentifier", Body::Multipart),
    ] {
        t.add(
            format!("64 KiB {param} ({body:?})"),
            refused(&pairs_with(&base, param, &big), body),
            err(400, &[param, "longer than"]),
        );
    }
    // In a query string, 32 KiB reach the server's own check; 64 KiB make a request head
    // longer than --max-head-bytes (64 KiB), refused with 431 before any parsing.
    t.add(
        "32 KiB flowIdentifier (query)",
        refused(
            &pairs_with(&base, "flowIdentifier", &big[..32 * 1024]),
            Body::Octet,
        ),
        err(400, &["flowIdentifier", "longer than"]),
    );
    t.add(
        "64 KiB flowIdentifier (query)",
        refused(&pairs_with(&base, "flowIdentifier", &big), Body::Octet),
        Expect::Status(431),
    );
    t.add(
        "64 KiB value in a urlencoded form",
        Request::new("POST", "/upload").body(
            "application/x-www-form-urlencoded",
            query(&pairs_with(&base, "flowFilename", &big)).into_bytes(),
        ),
        err(413, &["form's text fields", "65536"]),
    );

    // --- Chunk numbers. ----------------------------------------------------------------------
    for (value, problem) in [
        ("0", "out of range"),
        ("-1", "negative"),
        ("4", "out of range"),
        ("abc", "not a non-negative integer"),
        ("1.5", "not a non-negative integer"),
        ("1e0", "not a non-negative integer"),
        ("0x1", "not a non-negative integer"),
        ("%201", "not a non-negative integer"),
        ("%EF%BC%91", "not a non-negative integer"),
        ("", "empty"),
        ("99999999999999999999999", "too large"),
        ("18446744073709551615", "out of range"),
    ] {
        t.add(
            format!("flowChunkNumber={value:?}"),
            octet_raw(&base, 1, "flowChunkNumber", value, &chunk1),
            err(400, &["flowChunkNumber", problem]),
        );
    }
    t.add(
        "flowChunkNumber=4 (multipart)",
        refused(&pairs_with(&base, "flowChunkNumber", "4"), Body::Multipart),
        err(400, &["flowChunkNumber", "out of range 1..=3"]),
    );

    // --- Sizes that lie about the body; totals that disagree with the geometry or limits. ---
    let short = &chunk1[..chunk1.len() - 384];
    let mut long = chunk1.clone();
    long.extend_from_slice(&[0x55; 100]);
    for body in Body::ALL {
        t.add(
            format!("declared size longer than the body ({body:?})"),
            upload_request(&flow_pairs(&base, 1), short, body),
            err(400, &["body", "bytes received", "declared"]),
        );
        t.add(
            format!("body longer than declared ({body:?})"),
            upload_request(&flow_pairs(&base, 1), &long, body),
            err(400, &["body", "longer than the 16384 bytes declared"]),
        );
    }
    t.add(
        "declared size shorter than the geometry's (and the body)",
        refused(
            &pairs_with(&base, "flowCurrentChunkSize", "16000"),
            Body::Octet,
        ),
        err(400, &["flowCurrentChunkSize", "16000 bytes declared"]),
    );
    t.add(
        "body shorter than its Content-Length",
        upload_request(&flow_pairs(&base, 1), short, Body::Octet)
            .header("Content-Length", chunk1.len().to_string())
            .half_close(),
        err(400, &["body"]),
    );
    for (param, value, problem) in [
        ("flowChunkSize", "0", "at least 1"),
        ("flowTotalChunks", "0", "at least 1"),
        ("flowTotalChunks", "7", "cannot hold"),
        ("flowTotalSize", "10", "cannot hold"),
        ("flowTotalSize", "abc", "not a non-negative integer"),
        ("flowTotalSize", "-5", "negative"),
    ] {
        let culprit = if param == "flowTotalSize" && value == "10" {
            "flowTotalChunks"
        } else {
            param
        };
        t.add(
            format!("{param}={value}"),
            refused(&pairs_with(&base, param, value), Body::Multipart),
            err(400, &[culprit, problem]),
        );
    }
    let mut small_total = flow_pairs(&base, 1);
    set(&mut small_total, "flowTotalChunks", "1");
    set(&mut small_total, "flowTotalSize", "100");
    set(&mut small_total, "flowCurrentChunkSize", "16384");
    t.add(
        "current size larger than the file",
        refused(&small_total, Body::Octet),
        err(400, &["flowCurrentChunkSize", "16384 bytes declared"]),
    );
    let mut over = flow_pairs(&base, 1);
    set(&mut over, "flowTotalSize", &(MAX_FILE * 4).to_string());
    set(
        &mut over,
        "flowTotalChunks",
        &(MAX_FILE * 4 / CS).to_string(),
    );
    t.add(
        "total size over --max-file-size",
        refused(&over, Body::Octet),
        err(413, &["file size", &(MAX_FILE * 4).to_string()]),
    );
    let mut huge = flow_pairs(&base, 1);
    set(&mut huge, "flowTotalSize", &u64::MAX.to_string());
    set(&mut huge, "flowTotalChunks", &(u64::MAX / CS).to_string());
    t.add(
        "total size u64::MAX",
        refused(&huge, Body::Multipart),
        err(413, &["over the limit"]),
    );
    let mut big_chunks = flow_pairs(&base, 1);
    let cs = 2 * MAX_CHUNK;
    set(&mut big_chunks, "flowChunkSize", &cs.to_string());
    set(&mut big_chunks, "flowCurrentChunkSize", &cs.to_string());
    set(&mut big_chunks, "flowTotalSize", &(3 * cs).to_string());
    t.add(
        "chunk size over --max-chunk-size",
        refused(&big_chunks, Body::Multipart),
        err(413, &["chunk size"]),
    );
    t.add(
        "Content-Length over the body limit, no body sent",
        Request::new("POST", format!("/upload?{}", query(&flow_pairs(&base, 1))))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", (1u64 << 40).to_string()),
        err(413, &["request body size"]),
    );

    // A chunked body (no Content-Length) over the limit, for a one-request upload whose size
    // is learnt from the body (fusty-flow.js: no sizes declared).
    let endless = vec![0x42u8; (MAX_CHUNK + (128 << 10)) as usize];
    let mut chunked = Vec::new();
    for piece in endless.chunks(32 << 10) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    t.add(
        "chunked body without Content-Length, over the limit",
        Request::new(
            "POST",
            "/upload?flowIdentifier=fusty&flowFilename=fusty.bin",
        )
        .header("Transfer-Encoding", "chunked")
        .body("application/octet-stream", chunked.clone()),
        err(413, &["over the limit"]),
    );
    t.add(
        // RFC 9112: Transfer-Encoding overrides Content-Length (and the connection closes).
        "both Content-Length and Transfer-Encoding",
        Request::new(
            "POST",
            "/upload?flowIdentifier=fusty&flowFilename=fusty.bin",
        )
        .header("Transfer-Encoding", "chunked")
        .header("Content-Length", "5")
        .body("application/octet-stream", chunked),
        err(413, &["over the limit"]),
    );

    // --- Malformed forms. --------------------------------------------------------------------
    t.add(
        "multipart without a file part",
        form(fields(&flow_pairs(&base, 1)), None),
        err(400, &["body", "missing"]),
    );
    t.add(
        "multipart body that is not multipart",
        Request::new("POST", "/upload").body(&multipart_type(), b"this is not a form".to_vec()),
        err(400, &["multipart"]),
    );
    let many: Vec<(String, Vec<u8>)> = (0..300).map(|i| (format!("f{i}"), b"x".to_vec())).collect();
    t.add(
        "300 form fields",
        form(many, Some(("file", "blob", b"x"))),
        err(413, &["number of form fields", "256"]),
    );
    add_framing_cases(&mut t, &base, &chunk1);
    add_late_field_cases(&mut t);
    t.add(
        "no recognisable parameters",
        Request::new("POST", "/upload?hello=world").body("application/octet-stream", b"x".into()),
        err(400, &["no upload protocol recognised"]),
    );

    // --- Test GETs validate like uploads. ----------------------------------------------------
    for (param, raw, problem) in [
        ("flowChunkNumber", "0", "out of range"),
        ("flowChunkNumber", "9", "out of range"),
        ("flowChunkNumber", "x", "not a non-negative integer"),
        ("flowFilename", "a%00", "control character"),
        ("flowIdentifier", "%FF", "not valid UTF-8"),
        ("flowTotalChunks", "2", "cannot hold"),
    ] {
        t.add(
            format!("test GET {param}={raw}"),
            test_raw(&base, 1, param, raw),
            err(400, &[param, problem]),
        );
    }
    t.add(
        "test GET with a traversal identifier (valid, absent)",
        test_get(&pairs_with(
            &base,
            "flowIdentifier",
            &format!("../../../{s}/x"),
        )),
        Expect::Absent,
    );

    // --- Another session's upload. -------------------------------------------------------------
    let theirs = FlowFile {
        identifier: "hostile-scope".into(),
        ..FlowFile::new("scope.bin", bytes(3 * CS as usize, 9), CS)
    };
    t.add(
        "session A stores chunk 1",
        upload_request(
            &flow_pairs(&theirs, 1),
            &theirs.data[theirs.range(1)],
            Body::Octet,
        ),
        Expect::Stored(1),
    );
    t.add(
        "session B: test GET of A's chunk",
        test_get(&flow_pairs(&theirs, 1)).cookie(other),
        Expect::Absent,
    );
    t.add(
        "session B: finalize A's upload",
        Request::new("POST", "/upload/done")
            .body(
                "application/x-www-form-urlencoded",
                b"flowIdentifier=hostile-scope".to_vec(),
            )
            .cookie(other),
        err(404, &["no upload", "hostile-scope"]),
    );
    t.add(
        "session B: chunk 2 goes to B's own upload",
        upload_request(
            &flow_pairs(&theirs, 2),
            &theirs.data[theirs.range(2)],
            Body::Octet,
        )
        .cookie(other),
        Expect::Stored(1),
    );
    t.add(
        "session A: B's chunk 2 is not A's",
        test_get(&flow_pairs(&theirs, 2)),
        Expect::Absent,
    );
    t.add(
        "session A: finalize while incomplete",
        Request::new("POST", "/upload/done").body(
            "application/x-www-form-urlencoded",
            b"flowIdentifier=hostile-scope".to_vec(),
        ),
        err(400, &["incomplete", "1 of 3"]),
    );
    let assembled = t.one_chunk("hostile-scope-done", "scope-done.txt");
    t.add(
        "session A assembles a file",
        upload_request(&flow_pairs(&assembled, 1), &assembled.data, Body::Multipart),
        Expect::Assembled(assembled.name.clone(), assembled.data.clone()),
    );
    t.add(
        "session B: test GET of A's assembled upload",
        test_get(&flow_pairs(&assembled, 1)).cookie(other),
        Expect::Absent,
    );
    t.add(
        "session B: finalize A's assembled upload",
        Request::new("POST", "/upload/done")
            .body(
                "application/x-www-form-urlencoded",
                b"flowIdentifier=hostile-scope-done".to_vec(),
            )
            .cookie(other),
        err(404, &["no upload", "hostile-scope-done"]),
    );
    t.add(
        "a session cookie that is a path: a new session, which has nothing",
        test_get(&flow_pairs(&assembled, 1)).header("Cookie", "cu_session=../../../etc/passwd"),
        Expect::Absent,
    );
    t.add(
        "finalize with a traversal identifier",
        Request::new("POST", "/upload/done").body(
            "application/x-www-form-urlencoded",
            format!("flowIdentifier=..%2F..%2F{s}%2Fnothing").into_bytes(),
        ),
        err(404, &["no upload"]),
    );
    let mut changed = flow_pairs(&theirs, 2);
    set(&mut changed, "flowTotalSize", &(3 * CS + 200).to_string());
    t.add(
        "session A: chunk 2 with another total size",
        upload_request(&changed, &theirs.data[theirs.range(2)], Body::Multipart),
        err(409, &["total size"]),
    );

    // --- Dropzone: 10 bytes in chunks of 4. --------------------------------------------------
    let dz = |index: &str, offset: &str, count: &str| {
        text(&[
            ("dzuuid", "hostile-dz"),
            ("dzchunkindex", index),
            ("dztotalfilesize", "10"),
            ("dzchunksize", "4"),
            ("dztotalchunkcount", count),
            ("dzchunkbyteoffset", offset),
        ])
    };
    for (name, fields, culprit, problem) in [
        (
            "dzchunkindex past the end",
            dz("3", "12", "3"),
            "dzchunkindex",
            "out of range",
        ),
        (
            "dzchunkindex=abc",
            dz("abc", "0", "3"),
            "dzchunkindex",
            "non-negative integer",
        ),
        (
            "dzchunkindex=-1",
            dz("-1", "0", "3"),
            "dzchunkindex",
            "negative",
        ),
        (
            "dzchunkbyteoffset mismatch",
            dz("1", "5", "3"),
            "dzchunkbyteoffset",
            "expected 4",
        ),
        (
            "dztotalchunkcount wrong",
            dz("0", "0", "4"),
            "dztotalchunkcount",
            "has 3",
        ),
    ] {
        t.add(
            format!("Dropzone {name}"),
            form(fields, Some(("file", "photo.jpg", b"abcd"))),
            err(400, &[culprit, problem]),
        );
    }
    t.add(
        "Dropzone plain upload, part filename with a NUL byte",
        form(Vec::new(), Some(("file", "evil\0.txt", b"abc"))),
        err(400, &["body", "malformed multipart form"]),
    );
    {
        let data = bytes(300, 77);
        let filename = format!("../../../../{s}-dz.txt");
        t.add(
            "Dropzone plain upload, part filename with ../",
            form(Vec::new(), Some(("file", &filename, &data))),
            Expect::Assembled(format!("{s}-dz.txt"), data.clone()),
        );
    }

    // --- Fine Uploader: 10 bytes in parts of 4. ----------------------------------------------
    let fu = |index: &str, offset: &str, size: &str| {
        text(&[
            ("qquuid", "hostile-fu"),
            ("qqpartindex", index),
            ("qqpartbyteoffset", offset),
            ("qqchunksize", size),
            ("qqtotalparts", "3"),
            ("qqtotalfilesize", "10"),
            ("qqfilename", "report.pdf"),
        ])
    };
    for (name, fields, body, culprit, problem) in [
        (
            "qqpartindex past the end",
            fu("3", "12", "4"),
            &b"abcd"[..],
            "qqpartindex",
            "out of range",
        ),
        (
            "qqpartindex=1.0",
            fu("1.0", "4", "4"),
            b"abcd",
            "qqpartindex",
            "non-negative integer",
        ),
        (
            "qqpartbyteoffset not a multiple",
            fu("2", "7", "2"),
            b"ab",
            "qqpartbyteoffset",
            "multiple",
        ),
        (
            "qqchunksize lies about the body",
            fu("0", "0", "4"),
            b"abc",
            "body",
            "declared",
        ),
    ] {
        t.add(
            format!("Fine Uploader {name}"),
            form(fields, Some(("qqfile", "blob", body))),
            err(400, &[culprit, problem]),
        );
    }
    {
        let data = bytes(321, 78);
        let name = format!("..\\..\\{s}-fu.txt");
        let fields = text(&[
            ("qquuid", "hostile-fu-whole"),
            ("qqfilename", &name),
            ("qqtotalfilesize", &data.len().to_string()),
        ]);
        t.add(
            "Fine Uploader whole file named ..\\..\\",
            form(fields, Some(("qqfile", &name, &data))),
            Expect::Assembled(format!("{s}-fu.txt"), data.clone()),
        );
    }

    // --- Plupload. ---------------------------------------------------------------------------
    let pl = |name: &str, chunk: &str, chunks: &str| {
        text(&[("name", name), ("chunk", chunk), ("chunks", chunks)])
    };
    for (name, fields, culprit, problem) in [
        (
            "chunk past the end",
            pl("p.txt", "3", "3"),
            "chunk",
            "out of range",
        ),
        (
            "chunk=x",
            pl("p.txt", "x", "3"),
            "chunk",
            "non-negative integer",
        ),
        ("chunks=-2", pl("p.txt", "0", "-2"), "chunks", "negative"),
        (
            "chunk beyond u64",
            pl("p.txt", "18446744073709551616", "3"),
            "chunk",
            "too large",
        ),
        (
            "name with a NUL byte",
            pl("p\0.txt", "0", "3"),
            "name",
            "control character",
        ),
    ] {
        t.add(
            format!("Plupload {name}"),
            form(fields, Some(("file", "blob", b"abcd"))),
            err(400, &[culprit, problem]),
        );
    }
    {
        let data = bytes(123, 79);
        let name = format!("../../../{s}-pl.txt");
        t.add(
            "Plupload name with ../",
            form(pl(&name, "0", "1"), Some(("file", "blob", &data))),
            Expect::Assembled(format!("{s}-pl.txt"), data.clone()),
        );
    }

    // Nothing of the refused chunk was stored.
    t.add(
        "refused chunk 1 is absent",
        test_get(&flow_pairs(&base, 1)),
        Expect::Absent,
    );
    t
}

/// Multipart framing and the request head, over the limits of `RequestLimits`: part headers,
/// preamble, boundary, text fields, a second file part, a request head.
fn add_framing_cases(t: &mut Table, base: &FlowFile, chunk1: &[u8]) {
    let b = "----chunked-upload-reliability-9f3c2a";
    let body = |raw: Vec<u8>| Request::new("POST", "/upload").body(&multipart_type(), raw);
    let pad = |n: usize| "p".repeat(n);
    // A part whose header block is over the 16 KiB default, then the form as usual.
    let mut raw = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"flowIdentifier\"\r\nX-Pad: {}\r\n\r\nx\r\n",
        pad(17 * 1024)
    )
    .into_bytes();
    raw.extend_from_slice(&multipart(
        &fields(&flow_pairs(base, 1)),
        Some(("file", "blob", chunk1)),
        false,
    ));
    t.add(
        "part header block of 17 KiB",
        body(raw),
        err(413, &["part's headers", "16384"]),
    );
    // The endless header: no blank line ever (1 MiB of it here).
    let raw = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"flowIdentifier\"\r\nX-Pad: {}",
        pad(256 << 10)
    );
    t.add(
        "part header that never ends (256 KiB, no blank line)",
        body(raw.into_bytes()),
        err(413, &["part's headers", "over the limit of 16384"]),
    );
    let mut raw = pad(20 * 1024).into_bytes();
    raw.extend_from_slice(&multipart(
        &fields(&flow_pairs(base, 1)),
        Some(("file", "blob", chunk1)),
        false,
    ));
    t.add(
        "20 KiB before the first boundary",
        body(raw),
        err(413, &["preamble", "16384"]),
    );
    let mut raw = format!("--{b}").into_bytes();
    raw.extend(std::iter::repeat_n(b' ', 20 * 1024));
    t.add(
        "20 KiB of transport padding after a boundary",
        body(raw),
        err(413, &["part's headers"]),
    );
    let long = "b".repeat(300);
    t.add(
        "multipart boundary of 300 bytes",
        Request::new("POST", "/upload").body(
            &format!("multipart/form-data; boundary={long}"),
            format!("--{long}--\r\n").into_bytes(),
        ),
        err(400, &["Content-Type", "boundary has 300 bytes"]),
    );
    let heavy: Vec<(String, Vec<u8>)> = (0..9)
        .map(|i| (format!("extra{i}"), vec![b'v'; 8000]))
        .chain(fields(&flow_pairs(base, 1)))
        .collect();
    t.add(
        "nine text fields of 8000 bytes (72 KB of fields)",
        form(heavy, Some(("file", "blob", chunk1))),
        err(413, &["form's text fields", "65536"]),
    );
    let two = server_support::multipart_around(
        &fields(&flow_pairs(base, 1)),
        ("file", "blob", chunk1),
        &[],
    );
    let two = [
        &two[..two.len() - format!("--{b}--\r\n").len()],
        &multipart(&[], Some(("file", "blob2", b"more")), false),
    ]
    .concat();
    t.add(
        "a second file part",
        body(two),
        err(400, &["second file part"]),
    );
    t.add(
        "request head of 70 KiB (one header)",
        Request::new("GET", format!("/upload?{}", query(&flow_pairs(base, 1))))
            .header("X-Pad", pad(70 * 1024)),
        Expect::Status(431),
    );
}

/// Fields after the file part, for flow.js, Plupload and Fine Uploader: a form is decided
/// once all its fields are read. Fields that complete the description are honoured (the file
/// is assembled byte-identical from the chunks so sent); fields that change a description the
/// file part was already streamed under are refused with 400, and nothing is stored.
fn add_late_field_cases(t: &mut Table) {
    let split_form = |pairs: &[(String, String)], early: &[&str], file: (&str, &str, &[u8])| {
        let (before, after): (Vec<_>, Vec<_>) = pairs
            .iter()
            .cloned()
            .partition(|(n, _)| early.contains(&n.as_str()));
        let raw = server_support::multipart_around(&fields(&before), file, &fields(&after));
        Request::new("POST", "/upload").body(&multipart_type(), raw)
    };

    // flow.js, the form: identifier and file name first, the rest after the file.
    let f = FlowFile {
        identifier: "late-flow".into(),
        ..FlowFile::new("late-flow.bin", bytes(3000, 61), 1000)
    };
    let early = ["flowIdentifier", "flowFilename"];
    for n in 1..=3 {
        let expect = if n == 3 {
            Expect::Assembled(f.name.clone(), f.data.clone())
        } else {
            Expect::Stored(n)
        };
        t.add(
            format!("flow.js chunk {n} of 3, chunk fields after the file part"),
            split_form(
                &flow_pairs(&f, n),
                &early,
                ("file", "blob", &f.data[f.range(n)]),
            ),
            expect,
        );
    }
    // Every field before the file part (streamed), then one that changes the total: refused,
    // and the chunk is not stored.
    let g = FlowFile {
        identifier: "late-flow-changed".into(),
        ..FlowFile::new("late-flow-changed.bin", bytes(3000, 62), 1000)
    };
    let raw = server_support::multipart_around(
        &fields(&flow_pairs(&g, 1)),
        ("file", "blob", &g.data[g.range(1)]),
        &text(&[("flowTotalSize", "2500")]),
    );
    t.add(
        "flow.js: flowTotalSize changed after the file part",
        Request::new("POST", "/upload").body(&multipart_type(), raw),
        err(400, &["flowTotalSize", "after the file part"]),
    );
    // An optional field the streamed chunk was described without: refused too.
    let late_size = without(flow_pairs(&g, 1), "flowCurrentChunkSize");
    let raw = server_support::multipart_around(
        &fields(&late_size),
        ("file", "blob", &g.data[g.range(1)]),
        &text(&[("flowCurrentChunkSize", "1000")]),
    );
    t.add(
        "flow.js: flowCurrentChunkSize only after the file part",
        Request::new("POST", "/upload").body(&multipart_type(), raw),
        err(400, &["flowCurrentChunkSize", "after the file part"]),
    );
    t.add(
        "flow.js: the refused chunk is absent",
        test_get(&flow_pairs(&g, 1)),
        Expect::Absent,
    );
    // A field no dialect reads (flow.js `query` option) after the file part changes nothing.
    let raw = server_support::multipart_around(
        &fields(&flow_pairs(&g, 2)),
        ("file", "blob", &g.data[g.range(2)]),
        &text(&[("csrf", "token-123")]),
    );
    t.add(
        "flow.js: an unrelated field after the file part",
        Request::new("POST", "/upload").body(&multipart_type(), raw),
        Expect::Stored(1),
    );

    // Plupload: `name` first, `chunk` and `chunks` after (without them it reads as a whole
    // file in one request).
    let data = bytes(30, 63);
    for index in 0..3u64 {
        let start = index as usize * 10;
        let pairs: Vec<(String, String)> = [
            ("name", "late-plupload.txt".to_owned()),
            ("chunk", index.to_string()),
            ("chunks", "3".to_owned()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let expect = if index == 2 {
            Expect::Assembled("late-plupload.txt".into(), data.clone())
        } else {
            Expect::Stored(index + 1)
        };
        t.add(
            format!("Plupload chunk {index} of 3, chunk and chunks after the file part"),
            split_form(
                &pairs,
                &["name"],
                ("file", "blob", &data[start..start + 10]),
            ),
            expect,
        );
    }

    // Fine Uploader: qquuid and qqfilename first, the part fields after (without them it
    // reads as a whole file).
    let data = bytes(10, 64);
    for (index, range) in [(0u64, 0..4), (1, 4..8), (2, 8..10)] {
        let pairs: Vec<(String, String)> = [
            ("qquuid", "late-fine".to_owned()),
            ("qqfilename", "late-fine.pdf".to_owned()),
            ("qqpartindex", index.to_string()),
            ("qqpartbyteoffset", range.start.to_string()),
            ("qqchunksize", range.len().to_string()),
            ("qqtotalparts", "3".to_owned()),
            ("qqtotalfilesize", "10".to_owned()),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let expect = if index == 2 {
            Expect::Assembled("late-fine.pdf".into(), data.clone())
        } else {
            Expect::Stored(index + 1)
        };
        t.add(
            format!("Fine Uploader part {index} of 3, part fields after the file part"),
            split_form(
                &pairs,
                &["qquuid", "qqfilename"],
                ("qqfile", "blob", &data[range]),
            ),
            expect,
        );
    }
}

/// Checks one answer; returns a complaint, or `None`.
fn check(case: &Case, answer: &Answer, dir: &Path) -> Option<String> {
    let complaint = |why: &str| Some(format!("{}: {why}: {answer}", case.name));
    match &case.expect {
        Expect::Error(status, words) => {
            if answer.status != *status {
                return complaint(&format!("expected {status}"));
            }
            if answer.header("Content-Type") != Some("application/json") {
                return complaint("not JSON");
            }
            if answer.json()["success"] != false {
                return complaint("success is not false");
            }
            let error = answer.error();
            if let Some(missing) = words.iter().find(|w| !error.contains(w.as_str())) {
                return complaint(&format!("the error does not say {missing:?}"));
            }
        }
        Expect::Assembled(name, data) => {
            if !answer.is_assembled(Some(true)) {
                return complaint("expected a fresh assembly");
            }
            if answer.json()["file"]["name"] != name.as_str() {
                return complaint(&format!("expected the name {name:?}"));
            }
            if std::fs::read(dir.join(name)).ok().as_ref() != Some(data) {
                return complaint(&format!("{name:?} is not in DIR with its bytes"));
            }
        }
        Expect::Stored(present) => {
            if answer.status != 200
                || answer.json()["status"] != "chunk_stored"
                || answer.json()["chunks_present"] != *present
            {
                return complaint(&format!("expected chunk_stored with {present} present"));
            }
        }
        Expect::Absent => {
            if answer.status != 204 || !answer.body.is_empty() {
                return complaint("expected 204 with an empty body");
            }
        }
        Expect::Status(status) => {
            if answer.status != *status {
                return complaint(&format!("expected {status}"));
            }
        }
    }
    None
}

/// Entries whose name contains `word` in `dir` (not below it).
fn named_like(dir: &Path, word: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(word))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hostile_requests_get_the_right_4xx_and_write_nothing_outside_the_temp_dir() {
    let outer = scratch("hostile-");
    let root = outer.path().join("root");
    let dir = root.join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let sentinel = format!("cu-sentinel-{}", &new_session()[..8]);
    let server = Server::start(
        &Options::new(&dir)
            .arg("--max-chunk-size", MAX_CHUNK)
            .arg("--max-file-size", MAX_FILE),
    );
    let addr: SocketAddr = server.addr;
    let before = tree(outer.path());
    let (a, b) = (new_session(), new_session());
    let table = build_table(&a, &b, &sentinel);
    assert!(table.cases.len() >= 40, "{} cases", table.cases.len());

    let mut complaints = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, u32> = Default::default();
    for case in &table.cases {
        let answer = case.request.send(addr);
        *statuses.entry(answer.status).or_default() += 1;
        eprintln!("{:>3} {}: {}", answer.status, case.name, answer.text());
        if let Some(c) = check(case, &answer, &dir) {
            complaints.push(c);
        }
    }
    assert!(
        complaints.is_empty(),
        "{} of {} cases failed:\n{}\n\nserver log:\n{}",
        complaints.len(),
        table.cases.len(),
        complaints.join("\n"),
        server.log()
    );

    // Nothing new around the server but the chunk folder's content and the expected files.
    let expected_files: BTreeSet<String> = table
        .cases
        .iter()
        .filter_map(|c| match &c.expect {
            Expect::Assembled(name, _) => Some(format!("root/files/{name}")),
            _ => None,
        })
        .collect();
    let after = tree(outer.path());
    let new: BTreeSet<String> = after
        .difference(&before)
        .filter(|e| !e.starts_with("root/files/.chunks"))
        .cloned()
        .collect();
    assert_eq!(new, expected_files, "new entries around the server");
    assert!(before.is_subset(&after), "something disappeared");
    // Every request is answered: no staging file is left (refused bodies are deleted).
    assert_eq!(
        staging_leftovers(&dir),
        Vec::<String>::new(),
        "staging left"
    );
    // Storage names are hashes: no client string in the chunk folder's names.
    let chunks = dir.join(".chunks");
    for entry in std::fs::read_dir(&chunks).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hashed = name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hashed || name == ".incoming", "chunk folder entry {name:?}");
    }
    // The sentinel of every traversal payload: only inside DIR, as a sanitized name.
    let mut ancestor = Some(outer.path());
    while let Some(path) = ancestor {
        assert_eq!(
            named_like(path, &sentinel),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        ancestor = path.parent();
    }
    for path in [Path::new("/tmp"), Path::new("/etc"), root.as_path()] {
        assert!(named_like(path, &sentinel).is_empty(), "{}", path.display());
    }
    let inside: Vec<String> = tree(&dir)
        .into_iter()
        .filter(|e| e.contains(&sentinel))
        .collect();
    assert!(
        inside.iter().all(|e| !e.contains('/')),
        "sentinel below DIR: {inside:?}"
    );
    for (name, data) in table.cases.iter().filter_map(|c| match &c.expect {
        Expect::Assembled(name, data) => Some((name, data)),
        _ => None,
    }) {
        assert_same_bytes(&dir.join(name), data, name);
    }
    eprintln!(
        "hostile_input: {} hostile requests, statuses {statuses:?}, 0 failures, {} files \
         assembled under sanitized names, nothing outside the temp dir",
        table.cases.len(),
        expected_files.len()
    );
    drop(server);
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    server_support::vm_kib(pid, "VmRSS")
}

/// A file may declare a million chunks (the default `max_chunks`); what the server keeps for
/// an upload must grow with the chunks that arrive, not with the chunks declared. Before the
/// completion ledger kept only the chunks present, each of these one-byte requests cost the
/// server 8 MiB of memory for as long as the upload was remembered (4096 uploads: 32 GiB).
#[test]
fn a_million_declared_chunks_cost_no_memory_until_they_arrive() {
    let root = scratch("hostile-memory-");
    let server = Server::start(&Options::new(&root.path().join("files")));
    let session = new_session();
    let send = |i: u64| {
        let pairs: Vec<(String, String)> = [
            ("flowChunkNumber", "1".to_owned()),
            ("flowChunkSize", "1".to_owned()),
            ("flowCurrentChunkSize", "1".to_owned()),
            ("flowTotalSize", "1000000".to_owned()),
            ("flowIdentifier", format!("million-{i}")),
            ("flowFilename", "million.bin".to_owned()),
            ("flowTotalChunks", "1000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        upload_request(&pairs, b"x", Body::Octet)
            .cookie(&session)
            .send(server.addr)
            .expect(200);
    };
    // Warm up (runtime threads, allocator arenas), then measure.
    for i in 0..8 {
        send(i);
    }
    let before = rss_kib(server.pid());
    let uploads = 48;
    for i in 8..8 + uploads {
        send(i);
    }
    let grown = rss_kib(server.pid()).saturating_sub(before);
    eprintln!(
        "{uploads} uploads declaring 1 000 000 chunks each, one byte sent: the server grew by \
         {grown} KiB"
    );
    assert!(
        grown < 64 * 1024,
        "the server grew by {grown} KiB for {uploads} one-byte requests"
    );
}

/// Clients that stall part-way through their chunk bodies must not stop the server from
/// serving others. (The adapters once read bodies through a pipe on a `spawn_blocking` thread:
/// about 512 stalled uploads, tokio's default blocking pool, froze every upload and `/files`.
/// They now write bodies in batches and hold no thread while waiting for the network.)
#[test]
fn stalled_bodies_do_not_freeze_the_server() {
    let root = scratch("hostile-stalled-");
    let server = Server::start(&Options::new(&root.path().join("files")));
    let session = new_session();
    let mut stalled = Vec::new();
    for i in 0..600 {
        let file = FlowFile {
            identifier: format!("stalled-{i}"),
            ..FlowFile::new("stalled.bin", bytes(1000, i), 1000)
        };
        let request =
            upload_request(&flow_pairs(&file, 1), &file.data, Body::Octet).cookie(&session);
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        let head = request.head(server.addr);
        std::io::Write::write_all(&mut stream, &head).unwrap();
        std::io::Write::write_all(&mut stream, &file.data[..10]).unwrap();
        stalled.push(stream);
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let file = FlowFile::new("fine.bin", bytes(100, 1), 1000);
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = server.addr;
    std::thread::spawn(move || {
        let _ = tx.send(
            upload_request(&flow_pairs(&file, 1), &file.data, Body::Octet)
                .cookie(&session)
                .try_send(addr),
        );
    });
    let answer = rx.recv_timeout(std::time::Duration::from_secs(20));
    assert!(
        matches!(&answer, Ok(Ok(a)) if a.status == 200),
        "with 600 stalled uploads, a normal upload got {answer:?}"
    );
    drop(stalled);
}
