//! The tus cases of the HTTP conformance suite: what every adapter's tus endpoint must do, over
//! a live server, with a real HTTP client (and raw sockets for broken and stalled bodies).
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use chunked_upload::conformance::tus::TusTarget;
//!
//! fn target() -> &'static TusTarget {
//!     static TARGET: OnceLock<TusTarget> = OnceLock::new();
//!     TARGET.get_or_init(|| {
//!         // Start your server with its tus endpoint at /tus/ (default configuration, with
//!         // `ConflictPolicy::Rename`), the scope taken from the `x-scope` header, then:
//!         # let (port, files_dir) = (8080, std::path::PathBuf::from("files"));
//!         TusTarget::new(format!("http://127.0.0.1:{port}/tus/"), files_dir, "x-scope")
//!     })
//! }
//!
//! chunked_upload::tus_conformance_tests!(target());
//! ```
//!
//! The server must use the default limits but for a `max_chunk_size` of at most 1 MiB (the
//! cases send appends larger than it: tus does not apply it), the default expiry, and
//! [`ConflictPolicy::Rename`](crate::ConflictPolicy::Rename), so that a second publication of
//! one upload would show as a second file. Every case uses its own file names and scopes.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::{Client, RequestBuilder, Response};
use sha1::{Digest, Sha1};

/// A server's tus endpoint under test.
#[derive(Debug, Clone)]
pub struct TusTarget {
    /// The creation endpoint, ending in `/`: `http://127.0.0.1:PORT/tus/`.
    pub url: String,
    /// Where assembled files land.
    pub files_dir: PathBuf,
    /// The request header the server takes the caller's scope from.
    pub scope_header: &'static str,
}

impl TusTarget {
    /// A target (a `/` is added to `url` when missing).
    pub fn new(
        url: impl Into<String>,
        files_dir: impl Into<PathBuf>,
        scope_header: &'static str,
    ) -> TusTarget {
        let mut url = url.into();
        if !url.ends_with('/') {
            url.push('/');
        }
        TusTarget {
            url,
            files_dir: files_dir.into(),
            scope_header,
        }
    }

    /// `scheme://host:port`.
    fn origin(&self) -> &str {
        let after = self.url.find("://").map_or(0, |i| i + 3);
        let end = self.url[after..]
            .find('/')
            .map_or(self.url.len(), |i| after + i);
        &self.url[..end]
    }

    /// The path of the creation endpoint: `/tus/`.
    fn mount(&self) -> &str {
        &self.url[self.origin().len()..]
    }

    /// `host:port`, for raw sockets.
    fn authority(&self) -> &str {
        let origin = self.origin();
        &origin[origin.find("://").map_or(0, |i| i + 3)..]
    }
}

/// A named case.
pub type TusCase = fn(&TusTarget);

/// Every tus case, in the order [`tus_conformance_tests!`](crate::tus_conformance_tests) runs
/// them.
pub const TUS_CASES: &[(&str, TusCase)] = &[
    ("tus_options", tus_options),
    ("tus_create_append_head", tus_create_append_head),
    ("tus_protocol_errors", tus_protocol_errors),
    ("tus_creation_with_upload", tus_creation_with_upload),
    ("tus_defer_length", tus_defer_length),
    ("tus_termination", tus_termination),
    ("tus_checksum", tus_checksum),
    ("tus_concatenation", tus_concatenation),
    ("tus_scopes", tus_scopes),
    ("tus_ietf_draft", tus_ietf_draft),
    ("tus_method_override", tus_method_override),
    ("tus_empty_file", tus_empty_file),
    (
        "tus_broken_append_keeps_bytes",
        tus_broken_append_keeps_bytes,
    ),
    ("tus_takeover", tus_takeover),
];

/// One `#[test]` per case of [`TUS_CASES`](crate::conformance::tus::TUS_CASES) against the
/// [`TusTarget`](crate::conformance::tus::TusTarget) the expression gives, and a test that the
/// list is complete.
#[macro_export]
macro_rules! tus_conformance_tests {
    ($target:expr) => {
        $crate::tus_conformance_tests!(@cases ($target)
            tus_options
            tus_create_append_head
            tus_protocol_errors
            tus_creation_with_upload
            tus_defer_length
            tus_termination
            tus_checksum
            tus_concatenation
            tus_scopes
            tus_ietf_draft
            tus_method_override
            tus_empty_file
            tus_broken_append_keeps_bytes
            tus_takeover
        );
    };
    (@cases ($target:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::tus::$case($target);
            }
        )*

        #[test]
        fn tus_conformance_runs_every_case() {
            let run: &[&str] = &[$(stringify!($case)),*];
            let all: Vec<&str> =
                $crate::conformance::tus::TUS_CASES.iter().map(|(name, _)| *name).collect();
            assert_eq!(run, all.as_slice());
        }
    };
}

const OCTET: &str = "application/offset+octet-stream";

// ---------------------------------------------------------------------------------------------
// The cases.

/// `OPTIONS`: 204 with `Tus-Version`, every extension, the checksum algorithms; no
/// `Tus-Resumable` needed on the request.
pub fn tus_options(t: &TusTarget) {
    let r = Answer::of(client().request(reqwest::Method::OPTIONS, &t.url));
    r.expect(204);
    assert_eq!(r.header("tus-version"), Some("1.0.0"), "{r:?}");
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"), "{r:?}");
    let extensions: Vec<&str> = r.header("tus-extension").unwrap_or("").split(',').collect();
    for ext in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    ] {
        assert!(extensions.contains(&ext), "{ext} missing: {r:?}");
    }
    assert_eq!(r.header("tus-checksum-algorithm"), Some("sha1,md5,sha256"));
}

/// Creation with metadata (201, a `Location` under the endpoint, `Upload-Expires`), `HEAD`
/// (offset, length, metadata echoed, `Cache-Control: no-store`), three appends larger than the
/// server's chunk limit, the file published once, byte-identical, under its metadata name;
/// `HEAD` of the finished upload: offset = length, no `Upload-Expires`.
pub fn tus_create_append_head(t: &TusTarget) {
    let name = "tus-basic.bin";
    let data = pseudo_random(3 * 1024 * 1024 + 17, name);
    let c = client();
    let created = create(t, &c, "basic", data.len() as u64, &[("filename", name)]);
    created.expect(201);
    let location = created.header("location").expect("a Location").to_owned();
    assert!(
        location.starts_with(t.mount()),
        "{location} not under {}",
        t.mount()
    );
    assert!(
        location.len() >= t.mount().len() + 32,
        "an unguessable id: {location}"
    );
    let expires = created.header("upload-expires").expect("Upload-Expires");
    assert!(httpdate::parse_http_date(expires).is_ok(), "{expires}");
    let url = format!("{}{location}", t.origin());
    let head = Answer::of(tus(c.head(&url), t, "basic"));
    head.expect(200);
    assert_eq!(head.header("upload-offset"), Some("0"));
    assert_eq!(
        head.header("upload-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(head.header("cache-control"), Some("no-store"));
    assert_eq!(
        head.header("upload-metadata"),
        Some(format!("filename {}", STANDARD.encode(name)).as_str())
    );
    assert!(head.header("upload-expires").is_some());
    let mut offset = 0;
    for piece in data.chunks(1024 * 1024 + 5) {
        let r = patch(t, &c, "basic", &url, offset, piece.to_vec());
        r.expect(204);
        offset += piece.len();
        assert_eq!(r.header("upload-offset"), Some(offset.to_string().as_str()));
    }
    assert_file(t, name, &data);
    let head = Answer::of(tus(c.head(&url), t, "basic"));
    head.expect(200);
    assert_eq!(head.header("upload-offset"), head.header("upload-length"));
    assert_eq!(
        head.header("upload-expires"),
        None,
        "a finished upload does not expire: {head:?}"
    );
    // A retried last append (its answer lost) changes nothing.
    let again = patch(t, &c, "basic", &url, data.len(), Vec::new());
    again.expect(204);
    assert_file(t, name, &data);
}

/// The errors of the core protocol: 412 without `Tus-Resumable` (and with another version),
/// 415 for another content type, 409 with the upload's offset for a wrong `Upload-Offset`,
/// 413 for bytes past `Upload-Length`, 400 for malformed headers; none of them stores a byte.
pub fn tus_protocol_errors(t: &TusTarget) {
    let c = client();
    let created = create(t, &c, "errors", 10, &[("filename", "tus-errors.bin")]);
    created.expect(201);
    let url = format!("{}{}", t.origin(), created.header("location").unwrap());
    let no_version = Answer::of(
        c.patch(&url)
            .header(t.scope_header, "errors")
            .header("Upload-Offset", "0")
            .header("Content-Type", OCTET)
            .body(b"abc".to_vec()),
    );
    no_version.expect(412);
    assert_eq!(no_version.header("tus-version"), Some("1.0.0"));
    let old = Answer::of(
        c.head(&url)
            .header(t.scope_header, "errors")
            .header("Tus-Resumable", "0.2.2"),
    );
    old.expect(412);
    let wrong_type = Answer::of(
        tus(c.patch(&url), t, "errors")
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/octet-stream")
            .body(b"abc".to_vec()),
    );
    wrong_type.expect(415);
    let r = patch(t, &c, "errors", &url, 0, b"abcd".to_vec());
    r.expect(204);
    let wrong_offset = patch(t, &c, "errors", &url, 2, b"xx".to_vec());
    wrong_offset.expect(409);
    assert_eq!(wrong_offset.header("upload-offset"), Some("4"));
    let too_long = patch(t, &c, "errors", &url, 4, b"0123456789".to_vec());
    too_long.expect(413);
    for (offset, expected) in [("-1", 400), ("x", 400), ("99999999999999999999", 400)] {
        let r = Answer::of(
            tus(c.patch(&url), t, "errors")
                .header("Upload-Offset", offset)
                .header("Content-Type", OCTET)
                .body(b"x".to_vec()),
        );
        r.expect(expected);
    }
    let head = Answer::of(tus(c.head(&url), t, "errors"));
    assert_eq!(
        head.header("upload-offset"),
        Some("4"),
        "nothing stored: {head:?}"
    );
    for headers in [
        &[("Upload-Length", "-5")][..],
        &[("Upload-Length", "5"), ("Upload-Defer-Length", "1")],
        &[("Upload-Defer-Length", "2")],
        &[],
        &[("Upload-Length", "5"), ("Upload-Metadata", "filename !!!")],
        &[("Upload-Length", "5"), ("Upload-Metadata", "a YQ==,a Yg==")],
    ] {
        let mut request = tus(c.post(&t.url), t, "errors");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::of(request).expect(400);
    }
    let unknown = Answer::of(tus(
        c.head(format!("{}{}nosuchupload", t.origin(), t.mount())),
        t,
        "errors",
    ));
    unknown.expect(404);
}

/// creation-with-upload: the `POST`'s body is the first append (201 with `Upload-Offset`);
/// a body that is the whole file publishes it.
pub fn tus_creation_with_upload(t: &TusTarget) {
    let c = client();
    let name = "tus-with-upload.bin";
    let data = pseudo_random(200_000, name);
    let r = Answer::of(
        tus(c.post(&t.url), t, "with-upload")
            .header("Upload-Length", data.len().to_string())
            .header("Upload-Metadata", metadata(&[("filename", name)]))
            .header("Content-Type", OCTET)
            .body(data[..150_000].to_vec()),
    );
    r.expect(201);
    assert_eq!(r.header("upload-offset"), Some("150000"));
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    patch(
        t,
        &c,
        "with-upload",
        &url,
        150_000,
        data[150_000..].to_vec(),
    )
    .expect(204);
    assert_file(t, name, &data);
    let whole = "tus-with-upload-whole.bin";
    let data = pseudo_random(1000, whole);
    let r = Answer::of(
        tus(c.post(&t.url), t, "with-upload")
            .header("Upload-Length", "1000")
            .header("Upload-Metadata", metadata(&[("filename", whole)]))
            .header("Content-Type", OCTET)
            .body(data.clone()),
    );
    r.expect(201);
    assert_eq!(r.header("upload-offset"), Some("1000"));
    assert_file(t, whole, &data);
}

/// creation-defer-length: `Upload-Defer-Length: 1`; `HEAD` says so; the length comes with a
/// later `PATCH`, and the upload completes at it.
pub fn tus_defer_length(t: &TusTarget) {
    let c = client();
    let name = "tus-deferred.bin";
    let data = pseudo_random(70_000, name);
    let r = Answer::of(
        tus(c.post(&t.url), t, "deferred")
            .header("Upload-Defer-Length", "1")
            .header("Upload-Metadata", metadata(&[("filename", name)])),
    );
    r.expect(201);
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    patch(t, &c, "deferred", &url, 0, data[..40_000].to_vec()).expect(204);
    let head = Answer::of(tus(c.head(&url), t, "deferred"));
    assert_eq!(head.header("upload-defer-length"), Some("1"), "{head:?}");
    assert_eq!(head.header("upload-length"), None);
    let shorter = Answer::of(
        tus(c.patch(&url), t, "deferred")
            .header("Upload-Offset", "40000")
            .header("Upload-Length", "30000")
            .header("Content-Type", OCTET)
            .body(Vec::new()),
    );
    shorter.expect(400);
    let r = Answer::of(
        tus(c.patch(&url), t, "deferred")
            .header("Upload-Offset", "40000")
            .header("Upload-Length", data.len().to_string())
            .header("Content-Type", OCTET)
            .body(data[40_000..].to_vec()),
    );
    r.expect(204);
    assert_eq!(r.header("upload-offset"), Some("70000"));
    assert_file(t, name, &data);
}

/// termination: `DELETE` answers 204; afterwards `HEAD`, `PATCH` and `DELETE` answer 404.
pub fn tus_termination(t: &TusTarget) {
    let c = client();
    let r = create(t, &c, "delete", 100, &[("filename", "tus-deleted.bin")]);
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    patch(t, &c, "delete", &url, 0, vec![1; 50]).expect(204);
    Answer::of(tus(c.delete(&url), t, "delete")).expect(204);
    Answer::of(tus(c.head(&url), t, "delete")).expect(404);
    patch(t, &c, "delete", &url, 50, vec![1; 50]).expect(404);
    Answer::of(tus(c.delete(&url), t, "delete")).expect(404);
    assert!(!t.files_dir.join("tus-deleted.bin").exists());
}

/// checksum: the right digest (sha1, md5, sha256) is accepted; a wrong one is 460 and the
/// bytes are dropped (the offset stays); an unknown algorithm or a malformed header is 400.
pub fn tus_checksum(t: &TusTarget) {
    let c = client();
    let name = "tus-checksum.bin";
    let data = pseudo_random(3000, name);
    let r = create(t, &c, "checksum", 3000, &[("filename", name)]);
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    let append = |offset: usize, bytes: &[u8], checksum: &str| {
        Answer::of(
            tus(c.patch(&url), t, "checksum")
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Checksum", checksum)
                .header("Content-Type", OCTET)
                .body(bytes.to_vec()),
        )
    };
    let sha1 = |b: &[u8]| STANDARD.encode(Sha1::digest(b));
    let md5 = |b: &[u8]| STANDARD.encode(md5::Md5::digest(b));
    let sha256 = |b: &[u8]| STANDARD.encode(sha2::Sha256::digest(b));
    let (a, b, rest) = (&data[..1000], &data[1000..2000], &data[2000..]);
    let wrong = append(0, a, &format!("sha1 {}", sha1(b)));
    wrong.expect(460);
    assert_eq!(wrong.header("upload-offset"), Some("0"), "{wrong:?}");
    let head = Answer::of(tus(c.head(&url), t, "checksum"));
    assert_eq!(
        head.header("upload-offset"),
        Some("0"),
        "the bytes are dropped: {head:?}"
    );
    append(0, a, &format!("sha1 {}", sha1(a))).expect(204);
    append(1000, b, &format!("md5 {}", md5(b))).expect(204);
    append(2000, rest, "sha512 AAAA").expect(400);
    append(2000, rest, "sha256").expect(400);
    append(2000, rest, "sha256 not-base64!").expect(400);
    let done = append(2000, rest, &format!("sha256 {}", sha256(rest)));
    done.expect(204);
    assert_eq!(done.header("upload-offset"), Some("3000"));
    assert_file(t, name, &data);
}

/// concatenation: three partial uploads (written in parallel), then a final one naming them
/// by absolute URL and path: 201, the file is their bytes in order, published once; the same
/// final request again names the same upload (no second file); `HEAD` of the final upload
/// says `Upload-Concat: final;...`; a `PATCH` to it is 403; a final upload naming an
/// unfinished part, a part that is not partial, or an unknown one is 400.
pub fn tus_concatenation(t: &TusTarget) {
    let name = "tus-concat.bin";
    let data = pseudo_random(300_000, name);
    let parts: Vec<&[u8]> = vec![&data[..100_000], &data[100_000..250_000], &data[250_000..]];
    let urls: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                s.spawn(move || {
                    let c = client();
                    let r = Answer::of(
                        tus(c.post(&t.url), t, "concat")
                            .header("Upload-Length", part.len().to_string())
                            .header("Upload-Concat", "partial"),
                    );
                    r.expect(201);
                    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
                    let head = Answer::of(tus(c.head(&url), t, "concat"));
                    assert_eq!(head.header("upload-concat"), Some("partial"));
                    patch(t, &c, "concat", &url, 0, part.to_vec()).expect(204);
                    url
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The first part by its full URL, the others by their paths.
    let list: Vec<String> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if i == 0 {
                u.clone()
            } else {
                u[t.origin().len()..].to_owned()
            }
        })
        .collect();
    let c = client();
    let final_request = || {
        Answer::of(
            tus(c.post(&t.url), t, "concat")
                .header("Upload-Concat", format!("final;{}", list.join(" ")))
                .header("Upload-Metadata", metadata(&[("filename", name)])),
        )
    };
    let r = final_request();
    r.expect(201);
    let location = r.header("location").unwrap().to_owned();
    assert_file(t, name, &data);
    let again = final_request();
    again.expect(201);
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert_file(t, name, &data);
    let url = format!("{}{location}", t.origin());
    let head = Answer::of(tus(c.head(&url), t, "concat"));
    head.expect(200);
    assert_eq!(head.header("upload-offset"), Some("300000"));
    let concat = head.header("upload-concat").unwrap_or("");
    assert!(concat.starts_with("final;"), "{head:?}");
    assert_eq!(concat.split(' ').count(), 3, "{head:?}");
    patch(t, &c, "concat", &url, 300_000, vec![1]).expect(403);
    // Parts that cannot make a file.
    let unfinished = Answer::of(
        tus(c.post(&t.url), t, "concat")
            .header("Upload-Length", "10")
            .header("Upload-Concat", "partial"),
    );
    let unfinished = unfinished.header("location").unwrap().to_owned();
    let whole = create(t, &c, "concat", 1, &[]);
    let whole_url = format!("{}{}", t.origin(), whole.header("location").unwrap());
    patch(t, &c, "concat", &whole_url, 0, vec![7]).expect(204);
    let whole = whole.header("location").unwrap().to_owned();
    for bad in [
        format!("final;{unfinished}"),
        format!("final;{whole}"),
        format!("final;{}nosuchpart", t.mount()),
        format!("final;{} {}", list[0], list[0]),
        "final;".to_owned(),
    ] {
        let r = Answer::of(tus(c.post(&t.url), t, "concat").header("Upload-Concat", bad.as_str()));
        r.expect(400);
    }
}

/// Uploads belong to their scope: another scope's `HEAD`, `PATCH`, `DELETE` answer 404, a
/// final upload cannot name another scope's part, and the upload is untouched.
pub fn tus_scopes(t: &TusTarget) {
    let c = client();
    let r = create(t, &c, "owner", 10, &[("filename", "tus-scoped.bin")]);
    let location = r.header("location").unwrap().to_owned();
    let url = format!("{}{location}", t.origin());
    Answer::of(tus(c.head(&url), t, "intruder")).expect(404);
    patch(t, &c, "intruder", &url, 0, vec![0; 10]).expect(404);
    Answer::of(tus(c.delete(&url), t, "intruder")).expect(404);
    let part = Answer::of(
        tus(c.post(&t.url), t, "owner")
            .header("Upload-Length", "1")
            .header("Upload-Concat", "partial"),
    );
    let part_url = format!("{}{}", t.origin(), part.header("location").unwrap());
    patch(t, &c, "owner", &part_url, 0, vec![1]).expect(204);
    let stolen = Answer::of(
        tus(c.post(&t.url), t, "intruder").header("Upload-Concat", format!("final;{part_url}")),
    );
    stolen.expect(400);
    let head = Answer::of(tus(c.head(&url), t, "owner"));
    head.expect(200);
    assert_eq!(head.header("upload-offset"), Some("0"));
    let done = patch(t, &c, "owner", &url, 0, b"0123456789".to_vec());
    done.expect(204);
    assert_file(t, "tus-scoped.bin", b"0123456789");
}

/// The IETF draft as tus-js-client speaks it: interop version 6 (`ietf-draft-05`: creation with
/// `Upload-Complete: ?0`, `HEAD` 204 with `Upload-Complete`, `application/partial-upload`
/// appends, the 409 problem document with `expected-offset`, the last append `?1`) and 5
/// (`ietf-draft-03`: appends of any type); both publish the file.
pub fn tus_ietf_draft(t: &TusTarget) {
    let c = client();
    for (version, media) in [("6", Some("application/partial-upload")), ("5", None)] {
        let name = format!("tus-ietf-{version}.bin");
        let data = pseudo_random(90_000, &name);
        let ietf = |r: RequestBuilder| {
            r.header(t.scope_header, "ietf")
                .header("Upload-Draft-Interop-Version", version)
        };
        let created = Answer::of(
            ietf(c.post(&t.url))
                .header("Upload-Complete", "?0")
                .header("Upload-Length", data.len().to_string())
                .header("Upload-Metadata", metadata(&[("filename", &name)])),
        );
        created.expect(201);
        assert_eq!(created.header("tus-resumable"), None);
        assert_eq!(
            created.header("upload-draft-interop-version"),
            Some(version)
        );
        let url = format!("{}{}", t.origin(), created.header("location").unwrap());
        let head = Answer::of(ietf(c.head(&url)));
        head.expect(204);
        assert_eq!(head.header("upload-complete"), Some("?0"));
        assert_eq!(head.header("upload-offset"), Some("0"));
        assert!(head.header("upload-limit").is_some(), "{head:?}");
        let append = |offset: usize, bytes: &[u8], complete: &str| {
            let mut r = ietf(c.patch(&url))
                .header("Upload-Offset", offset.to_string())
                .header("Upload-Complete", complete);
            if let Some(media) = media {
                r = r.header("Content-Type", media);
            }
            Answer::of(r.body(bytes.to_vec()))
        };
        let first = append(0, &data[..50_000], "?0");
        first.expect(204);
        assert_eq!(first.header("upload-offset"), Some("50000"));
        let mismatch = append(10, &data[10..20], "?0");
        mismatch.expect(409);
        if version == "6" {
            assert_eq!(
                mismatch.header("content-type"),
                Some("application/problem+json")
            );
            let problem: serde_json::Value = serde_json::from_str(&mismatch.body).unwrap();
            assert_eq!(problem["expected-offset"], 50_000, "{mismatch:?}");
            assert_eq!(problem["provided-offset"], 10, "{mismatch:?}");
            let wrong_type = Answer::of(
                ietf(c.patch(&url))
                    .header("Upload-Offset", "50000")
                    .header("Upload-Complete", "?1")
                    .header("Content-Type", OCTET)
                    .body(data[50_000..].to_vec()),
            );
            wrong_type.expect(415);
        }
        let last = append(50_000, &data[50_000..], "?1");
        last.expect(204);
        assert_eq!(last.header("upload-complete"), Some("?1"));
        assert_eq!(last.header("upload-offset"), Some("90000"));
        assert_file(t, &name, &data);
        let completed = append(90_000, b"x", "?1");
        completed.expect(400);
    }
}

/// `X-HTTP-Method-Override`: a `POST` overridden to `PATCH` appends, to `DELETE` terminates.
pub fn tus_method_override(t: &TusTarget) {
    let c = client();
    let name = "tus-override.bin";
    let r = create(t, &c, "override", 5, &[("filename", name)]);
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    let r = Answer::of(
        tus(c.post(&url), t, "override")
            .header("X-HTTP-Method-Override", "PATCH")
            .header("Upload-Offset", "0")
            .header("Content-Type", OCTET)
            .body(b"hello".to_vec()),
    );
    r.expect(204);
    assert_file(t, name, b"hello");
    let other = create(t, &c, "override", 5, &[]);
    let other = format!("{}{}", t.origin(), other.header("location").unwrap());
    Answer::of(tus(c.post(&other), t, "override").header("X-HTTP-Method-Override", "DELETE"))
        .expect(204);
    Answer::of(tus(c.head(&other), t, "override")).expect(404);
}

/// A 0-byte upload is published at its creation (tus-js-client sends no `PATCH` for it).
pub fn tus_empty_file(t: &TusTarget) {
    let c = client();
    let name = "tus-empty.bin";
    let r = create(t, &c, "empty", 0, &[("filename", name)]);
    r.expect(201);
    assert_file(t, name, b"");
    let url = format!("{}{}", t.origin(), r.header("location").unwrap());
    let head = Answer::of(tus(c.head(&url), t, "empty"));
    assert_eq!(head.header("upload-offset"), Some("0"));
    assert_eq!(head.header("upload-length"), Some("0"));
}

/// A `PATCH` whose connection breaks after some of its body keeps the bytes that arrived:
/// `HEAD` reports them, and the upload completes from there.
pub fn tus_broken_append_keeps_bytes(t: &TusTarget) {
    let c = client();
    let name = "tus-broken.bin";
    let data = pseudo_random(300_000, name);
    let r = create(t, &c, "broken", data.len() as u64, &[("filename", name)]);
    let location = r.header("location").unwrap().to_owned();
    let url = format!("{}{location}", t.origin());
    {
        let mut socket = raw_patch(t, &location, "broken", 0, data.len());
        socket.write_all(&data[..200_000]).expect("send");
        socket.flush().expect("send");
        std::thread::sleep(Duration::from_millis(300));
        // Dropped: the connection closes mid-body.
    }
    let offset = wait_for_offset(t, &c, &url, "broken", |o| o > 0);
    assert!(offset <= 200_000, "{offset}");
    assert!(
        offset >= 131_072,
        "the bytes that arrived are kept: {offset}"
    );
    patch(
        t,
        &c,
        "broken",
        &url,
        offset as usize,
        data[offset as usize..].to_vec(),
    )
    .expect(204);
    assert_file(t, name, &data);
}

/// A new request takes an upload over from an append whose client stalls (its connection
/// still open): the `HEAD` is answered within seconds, not when the stalled body times out,
/// with the bytes the stalled append received, and the upload completes from there.
pub fn tus_takeover(t: &TusTarget) {
    let c = client();
    let name = "tus-takeover.bin";
    let data = pseudo_random(400_000, name);
    let r = create(t, &c, "takeover", data.len() as u64, &[("filename", name)]);
    let location = r.header("location").unwrap().to_owned();
    let url = format!("{}{location}", t.origin());
    let mut stalled = raw_patch(t, &location, "takeover", 0, data.len());
    stalled.write_all(&data[..150_000]).expect("send");
    stalled.flush().expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let head = Answer::of(tus(c.head(&url), t, "takeover"));
    let waited = started.elapsed();
    head.expect(200);
    assert!(
        waited < Duration::from_secs(5),
        "the HEAD waited {waited:?}"
    );
    let offset: usize = head.header("upload-offset").unwrap().parse().unwrap();
    assert!((131_072..=150_000).contains(&offset), "{head:?}");
    // The stalled request is answered (400) and its connection may be closed.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = [0u8; 12];
    if stalled.read_exact(&mut answer).is_ok() {
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    drop(stalled);
    patch(t, &c, "takeover", &url, offset, data[offset..].to_vec()).expect(204);
    assert_file(t, name, &data);
}

// ---------------------------------------------------------------------------------------------
// What the cases are made of.

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// A request with `Tus-Resumable` and the scope.
fn tus(request: RequestBuilder, t: &TusTarget, scope: &str) -> RequestBuilder {
    request
        .header("Tus-Resumable", "1.0.0")
        .header(t.scope_header, scope)
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", STANDARD.encode(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn create(t: &TusTarget, c: &Client, scope: &str, length: u64, meta: &[(&str, &str)]) -> Answer {
    let mut request = tus(c.post(&t.url), t, scope).header("Upload-Length", length.to_string());
    if !meta.is_empty() {
        request = request.header("Upload-Metadata", metadata(meta));
    }
    let r = Answer::of(request);
    r.expect(201);
    r
}

fn patch(
    t: &TusTarget,
    c: &Client,
    scope: &str,
    url: &str,
    offset: usize,
    body: Vec<u8>,
) -> Answer {
    Answer::of(
        tus(c.patch(url), t, scope)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", OCTET)
            .header(reqwest::header::CONNECTION, "close")
            .body(body),
    )
}

/// Opens a connection and sends the head of a `PATCH` declaring `length` bytes.
fn raw_patch(t: &TusTarget, location: &str, scope: &str, offset: u64, length: usize) -> TcpStream {
    let mut socket = TcpStream::connect(t.authority()).expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n{}: {scope}\r\n\
         Upload-Offset: {offset}\r\nContent-Type: {OCTET}\r\nContent-Length: {length}\r\n\r\n",
        t.authority(),
        t.scope_header
    );
    socket.write_all(head.as_bytes()).expect("send");
    socket
}

/// Polls `HEAD` until the offset satisfies `ok` (at most 10 s).
fn wait_for_offset(
    t: &TusTarget,
    c: &Client,
    url: &str,
    scope: &str,
    ok: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let head = Answer::of(tus(c.head(url), t, scope));
        let offset = head
            .header("upload-offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        if ok(offset) {
            return offset;
        }
        assert!(
            Instant::now() < deadline,
            "the offset stayed {offset}: {head:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A response, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    #[track_caller]
    fn of(request: RequestBuilder) -> Answer {
        let response: Response = request.send().expect("the request fails at the HTTP level");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.text().unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    fn expect(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
    }
}

/// The file `name` is in the target's folder once (no `name (1).ext`), byte-identical.
#[track_caller]
fn assert_file(t: &TusTarget, name: &str, data: &[u8]) {
    let path = t.files_dir.join(name);
    let found = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        found == data,
        "{name}: {} bytes, {} expected, or other bytes",
        found.len(),
        data.len()
    );
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let copies = fs::read_dir(&t.files_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(&format!("{stem} (")) && n.ends_with(ext)
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(copies, 0, "{name} was published more than once");
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
