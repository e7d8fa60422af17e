//! A whole multipart upload request through the hyper adapter (multer behind the guard, the
//! field handling and deadlines of the collector, every dialect, the decision at the end of the
//! form): whatever the form, the answer is a success or a client error, never a panic and never
//! a server error.
//!
//! Input: a first byte choosing the piece size the body arrives in (1..=256 bytes), then the
//! form: parts separated by 0xFF bytes, each `name\nvalue` (a name from the widgets' vocabulary
//! when it starts with a digit, the file part when the name is `file` or `qqfile`), or a raw
//! body when the input does not start with `P`.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use chunked_upload::{Config, ConflictPolicy, RequestLimits, Uploads, adapter};
use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "fuzz-b0undary";

/// Parameter names of every dialect, so that short inputs reach deep into the parsers.
const NAMES: &[&str] = &[
    "flowChunkNumber",
    "flowChunkSize",
    "flowCurrentChunkSize",
    "flowTotalSize",
    "flowIdentifier",
    "flowFilename",
    "flowRelativePath",
    "flowTotalChunks",
    "resumableChunkNumber",
    "resumableIdentifier",
    "resumableFilename",
    "resumableTotalChunks",
    "resumableChunkSize",
    "resumableTotalSize",
    "dzuuid",
    "dzchunkindex",
    "dztotalfilesize",
    "dzchunksize",
    "dztotalchunkcount",
    "dzchunkbyteoffset",
    "qquuid",
    "qqpartindex",
    "qqpartbyteoffset",
    "qqchunksize",
    "qqtotalparts",
    "qqtotalfilesize",
    "qqfilename",
    "name",
    "chunk",
    "chunks",
    "file",
    "qqfile",
];

struct Server {
    runtime: tokio::runtime::Runtime,
    uploads: Uploads,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let limits = RequestLimits {
            max_part_header_bytes: 512,
            max_form_bytes: 4096,
            max_fields: 32,
            ..RequestLimits::default()
        };
        let config = Config::builder(dir.path().join("chunks"), dir.path().join("files"))
            .max_chunk_size(64 * 1024)
            .on_conflict(ConflictPolicy::Rename)
            .request_limits(limits)
            .build();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Server {
            runtime,
            uploads: Uploads::new(config).unwrap(),
            _dir: dir,
        }
    })
}

/// The form the input describes.
fn body(input: &[u8]) -> Vec<u8> {
    let Some(parts) = input.strip_prefix(b"P") else {
        return input.to_vec();
    };
    let mut body = Vec::new();
    for part in parts.split(|&b| b == 0xff) {
        let (name, value) = match part.iter().position(|&b| b == b'\n') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &part[..0]),
        };
        let name = match name {
            [digit, ..] if digit.is_ascii_digit() => {
                let i = usize::from(*digit - b'0') * 7 + name.len();
                NAMES[i % NAMES.len()].as_bytes()
            }
            other => other,
        };
        let file = name == b"file" || name == b"qqfile";
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Disposition: form-data; name=\"");
        body.extend_from_slice(name);
        if file {
            body.extend_from_slice(b"\"; filename=\"blob");
        }
        body.extend_from_slice(b"\"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fuzz_target!(|data: &[u8]| {
    let [piece, input @ ..] = data else { return };
    let piece = usize::from(*piece) + 1;
    let body = body(input);
    let pieces: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = body
        .chunks(piece)
        .map(|p| Ok(http_body::Frame::data(Bytes::copy_from_slice(p))))
        .collect();
    let stream = http_body_util::StreamBody::new(futures::stream::iter(pieces));
    let request = http::Request::post("/upload")
        .header(
            http::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(stream)
        .unwrap();
    let server = server();
    let response = server.runtime.block_on(adapter::hyper::handle(
        &server.uploads,
        adapter::Scope::new("fuzz"),
        request,
    ));
    let status = response.status().as_u16();
    assert!(
        status == 200 || (400..500).contains(&status),
        "status {status} for {:?}",
        String::from_utf8_lossy(&body)
    );
});
