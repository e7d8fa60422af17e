//! Dropzone (`dropzone`, chunking since 5.2): `dzuuid`, a 0-based `dzchunkindex`, sizes and the
//! byte offset as multipart fields before the file part; the file name only in that part's
//! `filename`. Without any `dz*` field, a plain one-request upload (a small file, or any
//! `<form>` post with a file input).

use std::sync::Arc;

use super::{
    Dialect, check_offset, check_remainder_rule, chunk_count, required, required_u64, single_chunk,
    unique_identifier,
};
use crate::chunk::{ChunkInfo, FieldNames};
use crate::error::{Error, Result};
use crate::request::ChunkRequest;

/// `file.upload.uuid`, random per added file.
const UUID: &str = "dzuuid";
/// 0-based chunk index.
const CHUNK_INDEX: &str = "dzchunkindex";
/// The file's size (of the file as added, before any `transformFile`).
const TOTAL_FILE_SIZE: &str = "dztotalfilesize";
/// The `chunkSize` option: every chunk but the last has this size.
const CHUNK_SIZE: &str = "dzchunksize";
/// `ceil(size / chunkSize)`, 0 for an empty file (Dropzone 6.0 with `forceChunking`).
const TOTAL_CHUNK_COUNT: &str = "dztotalchunkcount";
/// `dzchunkindex * dzchunksize`.
const CHUNK_BYTE_OFFSET: &str = "dzchunkbyteoffset";

const FIELDS: [&str; 6] = [
    UUID,
    CHUNK_INDEX,
    TOTAL_FILE_SIZE,
    CHUNK_SIZE,
    TOTAL_CHUNK_COUNT,
    CHUNK_BYTE_OFFSET,
];

/// Dropzone (`dropzone` 5.2 and later, with `chunking: true`).
///
/// Each chunk is a multipart `POST` whose fields come first and the file part last:
///
/// | field | meaning |
/// |---|---|
/// | `dzuuid` | the upload identifier, a random UUID per added file |
/// | `dzchunkindex` | 0-based chunk index |
/// | `dztotalfilesize` | the file's size |
/// | `dzchunksize` | the `chunkSize` option: every chunk but the last has this size |
/// | `dztotalchunkcount` | `ceil(size / chunkSize)` (`0` for an empty file in Dropzone 6.0) |
/// | `dzchunkbyteoffset` | `dzchunkindex * dzchunksize`, checked |
/// | part `file` (`paramName`) | the chunk's bytes; its `filename` is the file's name, sent nowhere else |
///
/// The chunk's own size is its body length, which must be what the geometry (remainder rule:
/// the last chunk holds the rest) says. Chunks may arrive in any order and at once
/// (`parallelChunkUploads`); the file is assembled when the last missing one is stored, and a
/// finalize request from the app's `chunksUploaded` callback (naming `dzuuid`, through
/// [`Uploads::finalize_request`](crate::Uploads::finalize_request)) is answered idempotently.
///
/// A request without any `dz*` field is a plain one-request upload, the way Dropzone sends
/// files up to `chunkSize` unless `forceChunking` is set, and the way any HTML form posts a
/// file: the whole file in the file part. Dropzone sends no identifier for it, so a unique
/// one is made up per request (there is nothing to resume). Its size is learnt from the body.
/// A part named `blob` is not taken for one: browsers give that name to slices of files, so it
/// is a chunk whose parameters are missing (or still to come, in a form whose file part comes
/// first).
///
/// Since any multipart request with a named file part looks like such an upload, Dropzone
/// must come after the other dialects of a route (as in [`Dialects::default`](super::Dialects)),
/// and a route that wants chunked uploads only turns plain ones off with
/// [`plain_uploads(false)`](Dropzone::plain_uploads) (Dropzone's `forceChunking: true` then
/// sends every file in chunks).
///
/// Not supported: `binaryBody: true` (Dropzone 6), which sends the bytes with no field and no
/// file name at all.
#[derive(Debug, Clone)]
pub struct Dropzone {
    file_field: String,
    transform_file: bool,
    plain_uploads: bool,
    names: Arc<FieldNames>,
}

impl Default for Dropzone {
    fn default() -> Dropzone {
        Dropzone::new()
    }
}

impl Dropzone {
    /// Dropzone with its default file field `file`, plain one-request uploads accepted.
    pub fn new() -> Dropzone {
        Dropzone::with_file_field("file".to_owned())
    }

    /// Uses `name` as the file field (Dropzone option `paramName`, default `file`). It also
    /// names the file part of plain one-request uploads.
    #[must_use]
    pub fn param_name(self, name: impl Into<String>) -> Dropzone {
        Dropzone {
            transform_file: self.transform_file,
            plain_uploads: self.plain_uploads,
            ..Dropzone::with_file_field(name.into())
        }
    }

    /// Whether requests without `dz*` fields are accepted as plain one-request uploads (the
    /// default). When `false`, Dropzone recognises only its chunk requests, and a request
    /// without `dzuuid` is refused naming it.
    #[must_use]
    pub fn plain_uploads(mut self, accept: bool) -> Dropzone {
        self.plain_uploads = accept;
        self
    }

    /// Accepts chunked uploads of files that Dropzone transformed before sending them: image
    /// resizing (`resizeWidth`, `resizeHeight`, `resizeMimeType`) or a custom `transformFile`.
    ///
    /// Dropzone then still sends the size of the original file as `dztotalfilesize`, while the
    /// chunks (and `dztotalchunkcount`) cover the transformed bytes, so the declared geometry
    /// does not add up and such uploads are refused with `400` by default. With this option,
    /// `dztotalfilesize` is parsed but not trusted: every chunk but the last must be exactly
    /// `dzchunksize` bytes, the last at most the chunk size limit, and the file is complete when
    /// every chunk is present ([`max_file_size`](crate::ConfigBuilder::max_file_size) still
    /// applies to the bytes received).
    #[must_use]
    pub fn transform_file(mut self, transformed: bool) -> Dropzone {
        self.transform_file = transformed;
        self
    }

    fn with_file_field(file_field: String) -> Dropzone {
        let names = FieldNames {
            identifier: UUID.into(),
            filename: file_field.clone(),
            relative_path: file_field.clone(),
            chunk_number: CHUNK_INDEX.into(),
            total_chunks: TOTAL_CHUNK_COUNT.into(),
            chunk_size: CHUNK_SIZE.into(),
            current_chunk_size: "body".into(),
            total_size: TOTAL_FILE_SIZE.into(),
        };
        Dropzone {
            file_field,
            transform_file: false,
            plain_uploads: true,
            names: Arc::new(names),
        }
    }

    /// The file name: the file part's `filename`. A test request (Dropzone sends none, but a
    /// client may probe) has no file part; the identifier stands in for it.
    fn filename(&self, request: &dyn ChunkRequest, identifier: &str) -> Result<String> {
        match request.part_filename() {
            Some(name) => Ok(name.to_owned()),
            None if request.is_test() => Ok(identifier.to_owned()),
            None => Err(no_filename(&self.file_field)),
        }
    }

    /// A request without `dz*` fields: the whole file in one request.
    fn plain(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        if !self.plain_uploads {
            return Err(Error::missing(UUID));
        }
        if request.is_test() {
            return Err(Error::bad(
                UUID,
                "missing: a test request needs the dz* fields of a chunked upload",
            ));
        }
        let filename = request
            .part_filename()
            .ok_or_else(|| no_filename(&self.file_field))?;
        if filename == BLOB {
            return Err(Error::bad(
                &self.file_field,
                "the part is named \"blob\", as browsers name a slice of a file: a chunk whose \
                 upload parameters are missing, not a whole file",
            ));
        }
        Ok(single_chunk(
            unique_identifier("dropzone"),
            filename.to_owned(),
            None,
            false,
            &self.names,
        ))
    }
}

/// The filename browsers give a multipart part made of a `Blob` rather than a picked `File`: the
/// chunks of Fine Uploader (and of other widgets' slices), never a whole file a user chose.
const BLOB: &str = "blob";

fn no_filename(file_field: &str) -> Error {
    Error::bad(
        file_field,
        "no file part with a filename (Dropzone sends the file name only there)",
    )
}

impl Dialect for Dropzone {
    fn name(&self) -> &'static str {
        "Dropzone"
    }

    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        FIELDS.iter().any(|f| request.param(f).is_some())
            || (self.plain_uploads && request.part_filename().is_some_and(|n| n != BLOB))
    }

    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        if !FIELDS.iter().any(|f| request.param(f).is_some()) {
            return self.plain(request);
        }
        let identifier = required(request, UUID)?.to_owned();
        let index = required_u64(request, CHUNK_INDEX)?;
        let total_size = required_u64(request, TOTAL_FILE_SIZE)?;
        let chunk_size = required_u64(request, CHUNK_SIZE)?;
        let count = required_u64(request, TOTAL_CHUNK_COUNT)?;
        let offset = required_u64(request, CHUNK_BYTE_OFFSET)?;
        let total_chunks = chunk_count(count, Some(total_size));
        if chunk_size > 0 && total_chunks > 0 {
            // Validation refuses a chunk size or count of 0 and an index out of range, naming
            // them.
            if index < total_chunks {
                check_offset(CHUNK_BYTE_OFFSET, offset, index, chunk_size)?;
            }
            if !self.transform_file {
                check_remainder_rule(TOTAL_CHUNK_COUNT, total_chunks, total_size, chunk_size)?;
            }
        }
        let filename = self.filename(request, &identifier)?;
        let (total_size, current_chunk_size) = if self.transform_file {
            // The declared size is the original file's: only the chunk size is known.
            let full = index.saturating_add(1) < total_chunks;
            (None, full.then_some(chunk_size))
        } else {
            (Some(total_size), None)
        };
        Ok(ChunkInfo {
            identifier,
            relative_path: filename.clone(),
            filename,
            index,
            total_chunks,
            chunk_size: Some(chunk_size),
            current_chunk_size,
            total_size,
            is_test: request.is_test(),
            number_base: 0,
            names: Arc::clone(&self.names),
            in_order: false,
        })
    }

    fn file_field(&self) -> &str {
        &self.file_field
    }

    fn identifier_field(&self) -> &str {
        UUID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::request::{ChunkBody, Params, RawRequest, RequestKind};

    /// Chunk `index` of a 10-byte file in chunks of 4, as Dropzone's default `params` sends it.
    fn params(index: u64) -> Vec<(&'static str, String)> {
        vec![
            ("dzuuid", "6f4a1a6c-7b5e-4d2a-9a43-2d3f1e0c9b11".into()),
            ("dzchunkindex", index.to_string()),
            ("dztotalfilesize", "10".into()),
            ("dzchunksize", "4".into()),
            ("dztotalchunkcount", "3".into()),
            ("dzchunkbyteoffset", (index * 4).to_string()),
        ]
    }

    fn request(pairs: &[(&str, String)]) -> RawRequest {
        let params: Params = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        RawRequest::new(RequestKind::Upload, params)
            .with_part_filename("photo.jpg")
            .with_body(ChunkBody::bytes(Vec::new()))
    }

    fn parse(d: &Dropzone, pairs: &[(&str, String)]) -> Result<ChunkInfo> {
        let info = d.parse(&request(pairs))?;
        info.validate(&Limits::default())?;
        Ok(info)
    }

    #[test]
    fn chunks_in_order() {
        let d = Dropzone::new();
        let sizes: Vec<u64> = (0..3)
            .map(|i| {
                let info = parse(&d, &params(i)).unwrap();
                assert_eq!(info.identifier, "6f4a1a6c-7b5e-4d2a-9a43-2d3f1e0c9b11");
                assert_eq!(
                    (info.filename.as_str(), info.relative_path.as_str()),
                    ("photo.jpg", "photo.jpg")
                );
                assert_eq!(
                    (info.index, info.chunk_number(), info.total_chunks),
                    (i, i, 3)
                );
                assert_eq!((info.total_size, info.chunk_size), (Some(10), Some(4)));
                assert_eq!(
                    info.current_chunk_size, None,
                    "the body length is the chunk size"
                );
                assert_eq!(info.offset(), Some(i * 4));
                info.body_size().unwrap()
            })
            .collect();
        assert_eq!(sizes, [4, 4, 2], "remainder rule");
        assert_eq!((d.file_field(), d.identifier_field()), ("file", "dzuuid"));
    }

    #[test]
    fn one_chunk_file_with_force_chunking() {
        let pairs = vec![
            ("dzuuid", "u".to_string()),
            ("dzchunkindex", "0".into()),
            ("dztotalfilesize", "5".into()),
            ("dzchunksize", "2097152".into()),
            ("dztotalchunkcount", "1".into()),
            ("dzchunkbyteoffset", "0".into()),
        ];
        let info = parse(&Dropzone::new(), &pairs).unwrap();
        assert_eq!((info.total_chunks, info.body_size()), (1, Some(5)));
    }

    #[test]
    fn empty_file_with_zero_chunks_is_one_empty_chunk() {
        let pairs = vec![
            ("dzuuid", "u".to_string()),
            ("dzchunkindex", "0".into()),
            ("dztotalfilesize", "0".into()),
            ("dzchunksize", "2097152".into()),
            ("dztotalchunkcount", "0".into()),
            ("dzchunkbyteoffset", "0".into()),
        ];
        let info = parse(&Dropzone::new(), &pairs).unwrap();
        assert_eq!(
            (info.index, info.total_chunks, info.body_size()),
            (0, 1, Some(0))
        );
        // ... but no chunks for a file that is not empty is malformed.
        let mut pairs = pairs;
        pairs[2].1 = "7".into();
        let err = parse(&Dropzone::new(), &pairs).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "dztotalchunkcount"));
    }

    #[test]
    fn plain_upload_without_dz_fields() {
        let d = Dropzone::new();
        let req = RawRequest::new(RequestKind::Upload, Params::new())
            .with_part_filename("small.txt")
            .with_body(ChunkBody::bytes(b"hi".to_vec()));
        assert!(d.detect(&req));
        let a = d.parse(&req).unwrap();
        a.validate(&Limits::default()).unwrap();
        assert_eq!(
            (a.index, a.total_chunks, a.filename.as_str()),
            (0, 1, "small.txt")
        );
        assert_eq!(
            (a.total_size, a.chunk_size, a.body_size()),
            (None, None, None)
        );
        let b = d.parse(&req).unwrap();
        assert_ne!(a.identifier, b.identifier, "a fresh identifier per request");
        assert!(a.identifier.starts_with("dropzone-"));

        // No file part: nothing to name the file after.
        let bare = RawRequest::new(RequestKind::Upload, Params::new());
        assert!(!d.detect(&bare));
        assert!(matches!(d.parse(&bare), Err(Error::BadRequest { field, .. }) if field == "file"));
        // A test request needs the chunk fields.
        let test = RawRequest::new(RequestKind::Test, Params::new()).with_part_filename("a");
        assert!(
            matches!(d.parse(&test), Err(Error::BadRequest { field, .. }) if field == "dzuuid")
        );
    }

    #[test]
    fn renamed_file_field() {
        let d = Dropzone::new().param_name("upload");
        assert_eq!(d.file_field(), "upload");
        let params: Params = params(0).iter().map(|(n, v)| (*n, v.as_str())).collect();
        let req = RawRequest::new(RequestKind::Upload, params);
        assert!(matches!(d.parse(&req), Err(Error::BadRequest { field, .. }) if field == "upload"));
        let info = d.parse(&req.with_part_filename("")).unwrap();
        let err = info.validate(&Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::BadRequest { field, .. } if field == "upload"),
            "{err}"
        );
    }

    #[test]
    fn test_request_uses_the_identifier_as_name() {
        let params: Params = params(1).iter().map(|(n, v)| (*n, v.as_str())).collect();
        let req = RawRequest::new(RequestKind::Test, params);
        let info = Dropzone::new().parse(&req).unwrap();
        assert!(info.is_test);
        assert_eq!(info.filename, info.identifier);
    }

    #[test]
    fn transformed_files_trust_only_the_chunk_size() {
        // Resized image: original 10 MB, the upload 5 bytes in chunks of 2, so 3 chunks.
        let d = Dropzone::new().transform_file(true);
        let at = |index: u64| {
            vec![
                ("dzuuid", "u".to_string()),
                ("dzchunkindex", index.to_string()),
                ("dztotalfilesize", "10000000".into()),
                ("dzchunksize", "2".into()),
                ("dztotalchunkcount", "3".into()),
                ("dzchunkbyteoffset", (index * 2).to_string()),
            ]
        };
        let sizes: Vec<Option<u64>> = (0..3)
            .map(|i| parse(&d, &at(i)).unwrap().body_size())
            .collect();
        assert_eq!(sizes, [Some(2), Some(2), None]);
        assert_eq!(parse(&d, &at(0)).unwrap().total_size, None);
        // The same request is refused without the option: the totals do not add up.
        let err = parse(&Dropzone::new(), &at(0)).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "dztotalchunkcount"));
        // The offset is still checked.
        let mut bad = at(1);
        bad[5].1 = "3".into();
        assert!(
            matches!(parse(&d, &bad), Err(Error::BadRequest { field, .. }) if field == "dzchunkbyteoffset")
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        let mut cases: Vec<(&str, Option<&str>, &str)> = Vec::new();
        for field in FIELDS {
            for value in ["-1", "1.5", "abc", "99999999999999999999999", " 1", "+1"] {
                if field != UUID {
                    cases.push((field, Some(value), field));
                }
            }
            if field != UUID {
                cases.push((field, Some(""), field));
            }
            // A missing field: the request is still chunked (other dz* fields are there).
            cases.push((field, None, field));
        }
        cases.extend([
            ("dzuuid", Some(""), "dzuuid"),
            ("dzchunkindex", Some("3"), "dzchunkindex"),
            ("dzchunkindex", Some("18446744073709551615"), "dzchunkindex"),
            ("dzchunkbyteoffset", Some("5"), "dzchunkbyteoffset"),
            ("dzchunkbyteoffset", Some("0"), "dzchunkbyteoffset"),
            ("dzchunksize", Some("0"), "dzchunksize"),
            ("dzchunksize", Some("3"), "dzchunkbyteoffset"),
            ("dztotalchunkcount", Some("2"), "dztotalchunkcount"),
            ("dztotalchunkcount", Some("4"), "dztotalchunkcount"),
            ("dztotalchunkcount", Some("0"), "dztotalchunkcount"),
            ("dztotalfilesize", Some("20"), "dztotalchunkcount"),
            ("dzuuid", Some("a\u{0}b"), "dzuuid"),
        ]);
        crate::dialect::assert_culprits(&params(1), &cases, |p| parse(&Dropzone::new(), p));
    }
}
