//! A table of hostile tus requests sent over HTTP to the example server (a real process):
//! offsets and lengths that are negative, huge, non-numeric or duplicated; metadata with bad
//! base64, duplicate keys, empty pairs, binary or oversized values, traversal in the file name;
//! checksums malformed, of unknown algorithms, of the wrong length or wrong; concatenation lists
//! naming foreign, unfinished, whole or repeated uploads, paths outside the endpoint, too many
//! parts; ids with traversal, dots or too long; another session's upload; versions the server
//! does not speak; methods it does not answer.
//!
//! Each answer must have the expected status. Afterwards: the upload the table aimed at is
//! untouched (offset 0), the one legitimate upload with a traversal name landed inside `DIR`
//! under its sanitized name, nothing appeared beside `DIR`, and the chunk folder holds only
//! hash-named entries.

mod common;
mod server_support;

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use server_support::{Answer, Options, Request, Server, new_session, scratch};

const OCTET: &str = "application/offset+octet-stream";

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn tus(method: &str, target: &str, session: &str) -> Request {
    Request::new(method, target)
        .cookie(session)
        .header("Tus-Resumable", "1.0.0")
}

fn create(addr: SocketAddr, session: &str, headers: &[(&str, &str)]) -> Answer {
    let mut r = tus("POST", "/tus/", session);
    for (n, v) in headers {
        r = r.header(n, *v);
    }
    r.send(addr)
}

fn location(answer: &Answer) -> String {
    answer.expect(201);
    answer.header("location").expect("a Location").to_owned()
}

fn append(addr: SocketAddr, session: &str, url: &str, offset: u64, body: &[u8]) -> Answer {
    tus("PATCH", url, session)
        .header("Upload-Offset", offset.to_string())
        .body(OCTET, body.to_vec())
        .send(addr)
}

#[test]
fn hostile_tus_requests_are_refused_and_write_nothing() {
    let root = scratch("tus-hostile-");
    let dir = root.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::start(&Options::new(&dir).arg("--max-file-size", 4 << 20));
    let addr = server.addr;
    let (a, b) = (new_session(), new_session());

    // The uploads the table aims at: a whole one of A, a partial of A (unfinished), a finished
    // partial of A, a finished partial of B, a final upload of A.
    let target = location(&create(addr, &a, &[("Upload-Length", "100")]));
    let unfinished = location(&create(
        addr,
        &a,
        &[("Upload-Length", "10"), ("Upload-Concat", "partial")],
    ));
    let part = location(&create(
        addr,
        &a,
        &[("Upload-Length", "3"), ("Upload-Concat", "partial")],
    ));
    append(addr, &a, &part, 0, b"abc").expect(204);
    let foreign = location(&create(
        addr,
        &b,
        &[("Upload-Length", "3"), ("Upload-Concat", "partial")],
    ));
    append(addr, &b, &foreign, 0, b"xyz").expect(204);
    let whole = location(&create(addr, &a, &[("Upload-Length", "1")]));
    append(addr, &a, &whole, 0, b"1").expect(204);
    let final_upload = location(&create(
        addr,
        &a,
        &[("Upload-Concat", &format!("final;{part}"))],
    ));

    let many_parts: Vec<String> = (0..300).map(|i| format!("/tus/p{i}")).collect();
    let many_parts = format!("final;{}", many_parts.join(" "));
    let long_metadata = format!("filename {}", "A".repeat(20 * 1024));
    let ff = String::from_utf8_lossy(&[0xff]).into_owned();
    let long_id = format!("/tus/{}", "a".repeat(65));
    let digest16 = b64(&[0u8; 16]);
    let wrong_sha1 = b64(&[0u8; 20]);

    let post = |headers: &[(&str, &str)]| {
        let mut r = tus("POST", "/tus/", &a);
        for (n, v) in headers {
            r = r.header(n, *v);
        }
        r
    };
    let patch = |headers: &[(&str, &str)], body: &[u8]| {
        let mut r = tus("PATCH", &target, &a);
        for (n, v) in headers {
            r = r.header(n, *v);
        }
        r.body(OCTET, body.to_vec())
    };
    let cases: Vec<(&str, Request, u16)> = vec![
        // Lengths.
        ("length negative", post(&[("Upload-Length", "-1")]), 400),
        (
            "length past u64",
            post(&[("Upload-Length", "18446744073709551616")]),
            400,
        ),
        ("length non-numeric", post(&[("Upload-Length", "abc")]), 400),
        ("length exponent", post(&[("Upload-Length", "1e3")]), 400),
        ("length fraction", post(&[("Upload-Length", "1.5")]), 400),
        ("length plus sign", post(&[("Upload-Length", "+5")]), 400),
        (
            "length huge, over the max",
            post(&[("Upload-Length", "18446744073709551615")]),
            413,
        ),
        (
            "length over the max",
            post(&[("Upload-Length", "4194305")]),
            413,
        ),
        (
            "length twice",
            post(&[("Upload-Length", "5"), ("Upload-Length", "6")]),
            400,
        ),
        ("no length", post(&[]), 400),
        (
            "length and defer",
            post(&[("Upload-Length", "5"), ("Upload-Defer-Length", "1")]),
            400,
        ),
        ("defer 0", post(&[("Upload-Defer-Length", "0")]), 400),
        ("defer yes", post(&[("Upload-Defer-Length", "yes")]), 400),
        // Metadata.
        (
            "metadata bad base64",
            post(&[("Upload-Length", "5"), ("Upload-Metadata", "filename !!!")]),
            400,
        ),
        (
            "metadata duplicate keys",
            post(&[("Upload-Length", "5"), ("Upload-Metadata", "a YQ==,a Yg==")]),
            400,
        ),
        (
            "metadata empty pair",
            post(&[
                ("Upload-Length", "5"),
                ("Upload-Metadata", "a YQ==,,b Yg=="),
            ]),
            400,
        ),
        (
            "metadata three words",
            post(&[("Upload-Length", "5"), ("Upload-Metadata", "a YQ== Yg==")]),
            400,
        ),
        (
            "metadata binary value",
            post(&[("Upload-Length", "5"), ("Upload-Metadata", "a /w==")]),
            400,
        ),
        (
            "metadata non-ASCII key",
            post(&[
                ("Upload-Length", "5"),
                ("Upload-Metadata", &format!("{ff} YQ==")),
            ]),
            400,
        ),
        (
            "metadata oversized",
            post(&[("Upload-Length", "5"), ("Upload-Metadata", &long_metadata)]),
            400,
        ),
        // Versions.
        ("old tus version", create_like(&a, "0.2.2"), 412),
        (
            "no tus version",
            Request::new("POST", "/tus/")
                .cookie(&a)
                .header("Upload-Length", "5"),
            412,
        ),
        (
            "unknown draft",
            Request::new("POST", "/tus/")
                .cookie(&a)
                .header("Upload-Draft-Interop-Version", "99"),
            412,
        ),
        // Offsets.
        (
            "offset negative",
            patch(&[("Upload-Offset", "-1")], b"x"),
            400,
        ),
        (
            "offset past u64",
            patch(&[("Upload-Offset", "99999999999999999999")], b"x"),
            400,
        ),
        ("offset hex", patch(&[("Upload-Offset", "0x0")], b"x"), 400),
        ("offset empty", patch(&[("Upload-Offset", "")], b"x"), 400),
        (
            "offset twice",
            patch(&[("Upload-Offset", "0"), ("Upload-Offset", "0")], b"x"),
            400,
        ),
        (
            "offset control byte",
            patch(&[("Upload-Offset", "0\u{1}")], b"x"),
            400,
        ),
        ("offset wrong", patch(&[("Upload-Offset", "50")], b"x"), 409),
        ("offset missing", patch(&[], b"x"), 400),
        (
            "body past the length",
            patch(&[("Upload-Offset", "0")], &[7; 200]),
            413,
        ),
        (
            "length changed",
            patch(&[("Upload-Offset", "0"), ("Upload-Length", "5")], b"x"),
            400,
        ),
        (
            "wrong content type",
            tus("PATCH", &target, &a)
                .header("Upload-Offset", "0")
                .body("text/plain", b"x".to_vec()),
            415,
        ),
        // Checksums.
        (
            "checksum without digest",
            patch(&[("Upload-Offset", "0"), ("Upload-Checksum", "sha1")], b"x"),
            400,
        ),
        (
            "checksum unknown algorithm",
            patch(
                &[
                    ("Upload-Offset", "0"),
                    ("Upload-Checksum", "crc32 AAAAAA=="),
                ],
                b"x",
            ),
            400,
        ),
        (
            "checksum not base64",
            patch(
                &[("Upload-Offset", "0"), ("Upload-Checksum", "sha1 !!!!")],
                b"x",
            ),
            400,
        ),
        (
            "checksum wrong length",
            patch(
                &[
                    ("Upload-Offset", "0"),
                    ("Upload-Checksum", &format!("sha1 {digest16}")),
                ],
                b"x",
            ),
            400,
        ),
        (
            "checksum wrong",
            patch(
                &[
                    ("Upload-Offset", "0"),
                    ("Upload-Checksum", &format!("sha1 {wrong_sha1}")),
                ],
                b"x",
            ),
            460,
        ),
        // Ids and scopes.
        (
            "id with traversal",
            tus("HEAD", "/tus/..%2F..%2Fetc%2Fpasswd", &a),
            404,
        ),
        ("id with a dot", tus("HEAD", "/tus/a.b", &a), 404),
        ("id too long", tus("HEAD", &long_id, &a), 404),
        (
            "unknown id",
            tus("HEAD", "/tus/0123456789abcdef0123456789abcdef", &a),
            404,
        ),
        ("another session's HEAD", tus("HEAD", &target, &b), 404),
        (
            "another session's PATCH",
            tus("PATCH", &target, &b)
                .header("Upload-Offset", "0")
                .body(OCTET, b"x".to_vec()),
            404,
        ),
        ("another session's DELETE", tus("DELETE", &target, &b), 404),
        // Concatenation.
        (
            "final of a whole upload",
            post(&[("Upload-Concat", &format!("final;{whole}"))]),
            400,
        ),
        (
            "final of an unfinished part",
            post(&[("Upload-Concat", &format!("final;{unfinished}"))]),
            400,
        ),
        (
            "final of a foreign part",
            post(&[("Upload-Concat", &format!("final;{foreign}"))]),
            400,
        ),
        (
            "final outside the endpoint",
            post(&[("Upload-Concat", "final;/etc/passwd")]),
            400,
        ),
        (
            "final of too many parts",
            post(&[("Upload-Concat", &many_parts)]),
            400,
        ),
        (
            "final naming a part twice",
            post(&[("Upload-Concat", &format!("final;{part} {part}"))]),
            400,
        ),
        (
            "final with a length",
            post(&[
                ("Upload-Concat", &format!("final;{part}")),
                ("Upload-Length", "3"),
            ]),
            400,
        ),
        (
            "final of nothing",
            post(&[("Upload-Concat", "final;")]),
            400,
        ),
        (
            "concat semi-final",
            post(&[("Upload-Concat", "semi-final")]),
            400,
        ),
        (
            "append to a final upload",
            tus("PATCH", &final_upload, &a)
                .header("Upload-Offset", "3")
                .body(OCTET, b"x".to_vec()),
            403,
        ),
        // Methods and the draft.
        (
            "override not a token",
            tus("POST", &target, &a).header("X-HTTP-Method-Override", "PA TCH"),
            400,
        ),
        ("PUT", tus("PUT", &target, &a), 405),
        ("GET", tus("GET", &target, &a), 405),
        ("PATCH the endpoint", tus("PATCH", "/tus/", &a), 405),
        (
            "draft Upload-Complete ?2",
            Request::new("PATCH", &target)
                .cookie(&a)
                .header("Upload-Draft-Interop-Version", "6")
                .header("Upload-Offset", "0")
                .header("Upload-Complete", "?2")
                .body("application/partial-upload", b"x".to_vec()),
            400,
        ),
        (
            "draft 6 append of the tus type",
            Request::new("PATCH", &target)
                .cookie(&a)
                .header("Upload-Draft-Interop-Version", "6")
                .header("Upload-Offset", "0")
                .body(OCTET, b"x".to_vec()),
            415,
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, request, status) in &cases {
        let answer = request.send(addr);
        if answer.status != *status {
            failures.push(format!("{name}: expected {status}, got {answer}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The target is untouched, and completes.
    let head = tus("HEAD", &target, &a).send(addr);
    head.expect(200);
    assert_eq!(head.header("upload-offset"), Some("0"), "{head}");
    // A traversal file name is a legitimate upload, published inside DIR under its sanitized
    // name.
    let traversal = location(&create(
        addr,
        &a,
        &[
            ("Upload-Length", "4"),
            (
                "Upload-Metadata",
                &format!("filename {}", b64(b"../../outside-TUSSENTINEL.txt")),
            ),
        ],
    ));
    append(addr, &a, &traversal, 0, b"safe").expect(204);
    let published: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        published
            .iter()
            .any(|n| n.contains("outside-TUSSENTINEL") && !n.contains('/')),
        "{published:?}"
    );
    let beside: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, vec!["files".to_owned()], "nothing beside DIR");
    for entry in std::fs::read_dir(dir.join(".chunks")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with('.') || name.bytes().all(|b| b.is_ascii_hexdigit()),
            "a client string in the chunk folder: {name}"
        );
    }
    drop(server);
}

/// A creation request with this `Tus-Resumable`.
fn create_like(session: &str, version: &str) -> Request {
    Request::new("POST", "/tus/")
        .cookie(session)
        .header("Tus-Resumable", version)
        .header("Upload-Length", "5")
}
