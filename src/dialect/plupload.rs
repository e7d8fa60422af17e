//! Plupload (2.x): `name`, a 0-based `chunk` and `chunks` (or `offset` and `total`); no
//! identifier, no sizes; one chunk at a time, in order.

use std::sync::Arc;

use super::{Dialect, chunk_count, required, required_u64, single_chunk, unique_identifier};
use crate::chunk::{ChunkInfo, FieldNames};
use crate::error::{Error, Result};
use crate::request::ChunkRequest;

/// `file.target_name || file.name` (sent when `send_file_name`, the default).
const NAME: &str = "name";
/// 0-based chunk index (`send_chunk_number: true`, the default).
const CHUNK: &str = "chunk";
/// `ceil(size / chunk_size)`, `0` for an empty file.
const CHUNKS: &str = "chunks";
/// The chunk's first byte (`send_chunk_number: false`).
const OFFSET: &str = "offset";
/// The file's size (`send_chunk_number: false`).
const TOTAL: &str = "total";

/// Plupload (`plupload` 2.x) with `chunk_size` set, or without (whole files).
///
/// Each chunk is a `POST` of these parameters, as multipart fields before the part `file`
/// (`file_data_name`), or in the query string with the chunk as the raw body
/// (`multipart: false`):
///
/// | parameter | meaning |
/// |---|---|
/// | `name` | the file's name (`file.target_name`, or `file.name`) |
/// | `chunk` | 0-based chunk index, sent even for a file of one chunk |
/// | `chunks` | `ceil(size / chunk_size)`; `0` for an empty file |
/// | `offset`, `total` | instead of `chunk` and `chunks` with `send_chunk_number: false`: the chunk's first byte and the file's size |
///
/// Plupload sends no identifier: the upload is keyed by `name`, which the core hashes together
/// with the caller's scope, so two users uploading files of the same name never meet. It sends
/// no sizes either: the file is complete when every chunk is present, and at assembly all
/// chunks but the last must have the first one's size and the last must not be larger. An
/// empty file (`chunks=0`) is one chunk of 0 bytes.
///
/// With `send_chunk_number: false` Plupload sends the byte `offset` and the file's `total`
/// size instead. The chunk index is then `offset / chunk_size`, which needs the chunk size the
/// widget was configured with: set it with [`chunk_size`](Plupload::chunk_size) (the number of
/// bytes Plupload makes of its `chunk_size` option: `"1mb"` is 1048576). Without it, such
/// requests are refused with `400` naming `offset`. With it, the whole geometry is declared and
/// checked: the offset must be a multiple of the chunk size, and every body must have exactly
/// the size the offset and the total leave for it.
///
/// A file sent without `chunk` and `chunks` (Plupload without `chunk_size`) is a one-request
/// upload under a fresh identifier (there is nothing to resume); its size is learnt from the
/// body.
///
/// # Same name, same scope
/// Since the key is the name, a second file of the same name sent by the same scope while the
/// first one's upload is still kept (unfinished, or assembled and not yet expired, see
/// [`expire_after`](crate::ConfigBuilder::expire_after)) meets the first upload: a different
/// number of chunks is refused (`409`), and an upload already assembled answers "assembled"
/// without storing the new bytes. Where users re-send files under the same name, give each file
/// its own identifier: send Plupload's `file.id` in `multipart_params` (in `BeforeUpload`:
/// `up.setOption('multipart_params', {id: file.id})`) and name that parameter with
/// [`identifier_param`](Plupload::identifier_param), or set Plupload's `unique_names: true`
/// (then `name` is a unique made-up name, which also becomes the file's name).
#[derive(Debug, Clone)]
pub struct Plupload {
    file_field: String,
    identifier_param: Option<String>,
    chunk_size: Option<u64>,
    chunk_names: Arc<FieldNames>,
    offset_names: Arc<FieldNames>,
}

impl Default for Plupload {
    fn default() -> Plupload {
        Plupload::new()
    }
}

impl Plupload {
    /// Plupload with its default file field `file`, keyed by `name`, chunk size unknown.
    pub fn new() -> Plupload {
        Plupload {
            file_field: "file".into(),
            identifier_param: None,
            chunk_size: None,
            chunk_names: Arc::new(field_names(NAME, false)),
            offset_names: Arc::new(field_names(NAME, true)),
        }
    }

    /// Uses `name` as the file field (Plupload option `file_data_name`, default `file`).
    #[must_use]
    pub fn file_data_name(mut self, name: impl Into<String>) -> Plupload {
        self.file_field = name.into();
        self
    }

    /// Keys uploads by the parameter `name` instead of the file name: a parameter the page adds
    /// to every request through Plupload's `multipart_params` (or the `url`), such as
    /// `file.id`. Every request must then carry it, one-request uploads included.
    #[must_use]
    pub fn identifier_param(mut self, name: impl Into<String>) -> Plupload {
        let name = name.into();
        self.chunk_names = Arc::new(field_names(&name, false));
        self.offset_names = Arc::new(field_names(&name, true));
        self.identifier_param = Some(name);
        self
    }

    /// The widget's chunk size in bytes (Plupload option `chunk_size`; `0` means unknown).
    ///
    /// Needed for `send_chunk_number: false` (see the [type docs](Plupload)). With
    /// `chunk`/`chunks` it is optional and lets every chunk but the last be checked to have
    /// exactly this size when it arrives, rather than at assembly.
    #[must_use]
    pub fn chunk_size(mut self, bytes: u64) -> Plupload {
        self.chunk_size = Some(bytes).filter(|&b| b > 0);
        self
    }

    /// The identifier of a chunked upload: the configured parameter, or `name`.
    fn identifier(&self, request: &dyn ChunkRequest) -> Result<String> {
        let field = self.identifier_param.as_deref().unwrap_or(NAME);
        Ok(required(request, field)?.to_owned())
    }

    fn offset_mode(
        &self,
        request: &dyn ChunkRequest,
        identifier: String,
        filename: String,
    ) -> Result<ChunkInfo> {
        let offset = required_u64(request, OFFSET)?;
        let total = required_u64(request, TOTAL)?;
        let Some(cs) = self.chunk_size else {
            return Err(Error::bad(
                OFFSET,
                "Plupload's offset/total requests (send_chunk_number: false) carry no chunk \
                 index; configure the widget's chunk size with Plupload::chunk_size to accept them",
            ));
        };
        if !offset.is_multiple_of(cs) {
            return Err(Error::bad(
                OFFSET,
                format!("{offset} is not a multiple of the chunk size {cs}"),
            ));
        }
        if offset >= total && offset > 0 {
            return Err(Error::bad(
                OFFSET,
                format!("{offset} is at or past the end of a {total}-byte file"),
            ));
        }
        Ok(ChunkInfo {
            identifier,
            relative_path: filename.clone(),
            filename,
            index: offset / cs,
            total_chunks: total.div_ceil(cs).max(1),
            chunk_size: Some(cs),
            current_chunk_size: None,
            total_size: Some(total),
            is_test: request.is_test(),
            number_base: 0,
            names: Arc::clone(&self.offset_names),
            in_order: true,
        })
    }
}

/// The names behind the fields, for error messages. In offset mode the index comes from
/// `offset` and the count from `total`.
fn field_names(identifier: &str, offset_mode: bool) -> FieldNames {
    let (chunk_number, total_chunks) = if offset_mode {
        (OFFSET, TOTAL)
    } else {
        (CHUNK, CHUNKS)
    };
    FieldNames {
        identifier: identifier.into(),
        filename: NAME.into(),
        relative_path: NAME.into(),
        chunk_number: chunk_number.into(),
        total_chunks: total_chunks.into(),
        chunk_size: "chunk_size".into(),
        current_chunk_size: "chunk_size".into(),
        total_size: TOTAL.into(),
    }
}

impl Dialect for Plupload {
    fn name(&self) -> &'static str {
        "Plupload"
    }

    /// `name` (or the configured identifier parameter) together with chunk parameters; or,
    /// for a whole file, `name` with a raw body (`multipart: false`) or with a file part named
    /// like it (or `blob`). A form with a text field called `name` and a file part of another
    /// name, but no chunk parameters, is left to the next dialect.
    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        let has = |f: &str| request.param(f).is_some();
        let keyed = has(NAME) || self.identifier_param.as_deref().is_some_and(has);
        keyed
            && ([CHUNK, CHUNKS, OFFSET, TOTAL].into_iter().any(has)
                || request
                    .part_filename()
                    .is_none_or(|part| part == "blob" || Some(part) == request.param(NAME)))
    }

    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        let has = |f: &str| request.param(f).is_some();
        let filename = request
            .param(NAME)
            .or_else(|| request.part_filename())
            .ok_or_else(|| Error::missing(NAME))?
            .to_owned();

        if has(CHUNK) || has(CHUNKS) {
            let identifier = self.identifier(request)?;
            let index = required_u64(request, CHUNK)?;
            let chunks = required_u64(request, CHUNKS)?;
            let current_chunk_size = if chunks == 0 {
                // An empty file.
                Some(0)
            } else if index.saturating_add(1) < chunks {
                self.chunk_size
            } else {
                None
            };
            return Ok(ChunkInfo {
                identifier,
                relative_path: filename.clone(),
                filename,
                index,
                total_chunks: chunk_count(chunks, None),
                // With the widget's chunk size configured, every chunk's offset is known.
                chunk_size: self.chunk_size.filter(|_| chunks > 1),
                current_chunk_size,
                total_size: None,
                is_test: request.is_test(),
                number_base: 0,
                names: Arc::clone(&self.chunk_names),
                in_order: true,
            });
        }
        if has(OFFSET) || has(TOTAL) {
            let identifier = self.identifier(request)?;
            return self.offset_mode(request, identifier, filename);
        }

        // The whole file in one request.
        if request.is_test() {
            return Err(Error::bad(
                CHUNK,
                "missing: a test request needs chunk and chunks",
            ));
        }
        let identifier = match &self.identifier_param {
            Some(field) => required(request, field)?.to_owned(),
            None => unique_identifier("plupload"),
        };
        Ok(single_chunk(
            identifier,
            filename,
            None,
            false,
            &self.chunk_names,
        ))
    }

    fn file_field(&self) -> &str {
        &self.file_field
    }

    fn identifier_field(&self) -> &str {
        self.identifier_param.as_deref().unwrap_or(NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::request::{Params, RawRequest, RequestKind};

    fn request(pairs: &[(&str, &str)]) -> RawRequest {
        RawRequest::new(
            RequestKind::Upload,
            pairs.iter().copied().collect::<Params>(),
        )
    }

    fn parse(d: &Plupload, pairs: &[(&str, &str)]) -> Result<ChunkInfo> {
        let info = d.parse(&request(pairs))?;
        info.validate(&Limits::default())?;
        Ok(info)
    }

    #[test]
    fn chunks_in_order() {
        let d = Plupload::new();
        for i in 0..3u64 {
            let index = i.to_string();
            let pairs = [
                ("name", "movie.mp4"),
                ("chunk", index.as_str()),
                ("chunks", "3"),
            ];
            let req = request(&pairs).with_part_filename("blob");
            assert!(d.detect(&req));
            let info = d.parse(&req).unwrap();
            info.validate(&Limits::default()).unwrap();
            assert_eq!(
                info.identifier, "movie.mp4",
                "keyed by name (and, in the core, scope)"
            );
            assert_eq!(info.filename, "movie.mp4", "not the part's filename");
            assert_eq!(
                (info.index, info.chunk_number(), info.total_chunks),
                (i, i, 3)
            );
            assert_eq!((info.chunk_size, info.total_size), (None, None));
            assert_eq!(info.body_size(), None, "sizes are checked at assembly");
        }
        assert_eq!((d.file_field(), d.identifier_field()), ("file", "name"));
    }

    #[test]
    fn one_chunk_and_empty_files() {
        let one = parse(
            &Plupload::new(),
            &[("name", "a"), ("chunk", "0"), ("chunks", "1")],
        )
        .unwrap();
        assert_eq!((one.total_chunks, one.body_size()), (1, None));
        let empty = parse(
            &Plupload::new(),
            &[("name", "a"), ("chunk", "0"), ("chunks", "0")],
        )
        .unwrap();
        assert_eq!(
            (empty.index, empty.total_chunks, empty.body_size()),
            (0, 1, Some(0))
        );
        let err = parse(
            &Plupload::new(),
            &[("name", "a"), ("chunk", "1"), ("chunks", "0")],
        )
        .unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "chunk"));
    }

    #[test]
    fn whole_file_without_chunk_parameters() {
        let d = Plupload::new();
        // Multipart with `name`; raw body with `name` in the query string.
        for req in [
            request(&[("name", "a.txt")]).with_part_filename("a.txt"),
            request(&[("name", "a.txt")]),
        ] {
            let a = d.parse(&req).unwrap();
            a.validate(&Limits::default()).unwrap();
            assert_eq!(
                (a.index, a.total_chunks, a.filename.as_str()),
                (0, 1, "a.txt")
            );
            assert_eq!((a.total_size, a.body_size()), (None, None));
            assert!(a.identifier.starts_with("plupload-"));
            assert_ne!(
                a.identifier,
                d.parse(&req).unwrap().identifier,
                "fresh per request"
            );
        }
        // `send_file_name: false`: the part's filename.
        let info = d.parse(&request(&[]).with_part_filename("b.txt")).unwrap();
        assert_eq!(info.filename, "b.txt");
        // Detected with the file part named like `name`, or `blob`, but a form with a `name`
        // text field and a file of another name is not Plupload.
        assert!(d.detect(&request(&[("name", "cv.pdf")]).with_part_filename("cv.pdf")));
        assert!(d.detect(&request(&[("name", "cv.pdf")]).with_part_filename("blob")));
        assert!(!d.detect(&request(&[("name", "Ada")]).with_part_filename("cv.pdf")));
        // Nothing to name the file after.
        assert!(
            matches!(d.parse(&request(&[])), Err(Error::BadRequest { field, .. }) if field == "name")
        );
        // A test request needs the chunk parameters.
        let test = RawRequest::new(RequestKind::Test, [("name", "a")].into_iter().collect());
        assert!(matches!(d.parse(&test), Err(Error::BadRequest { field, .. }) if field == "chunk"));
    }

    #[test]
    fn offset_mode_needs_and_uses_the_chunk_size() {
        let pairs = |offset: &'static str| [("name", "a.bin"), ("offset", offset), ("total", "10")];
        let err = parse(&Plupload::new(), &pairs("4")).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "offset"));

        let d = Plupload::new().chunk_size(4);
        let sizes: Vec<(u64, u64, Option<u64>)> = ["0", "4", "8"]
            .into_iter()
            .map(|o| {
                let info = parse(&d, &pairs(o)).unwrap();
                assert_eq!(
                    (info.total_size, info.chunk_size, info.identifier.as_str()),
                    (Some(10), Some(4), "a.bin")
                );
                (info.index, info.total_chunks, info.body_size())
            })
            .collect();
        assert_eq!(sizes, [(0, 3, Some(4)), (1, 3, Some(4)), (2, 3, Some(2))]);
        // A small file (one chunk) and an empty one.
        let small = parse(&d, &[("name", "s"), ("offset", "0"), ("total", "3")]).unwrap();
        assert_eq!((small.total_chunks, small.body_size()), (1, Some(3)));
        let empty = parse(&d, &[("name", "e"), ("offset", "0"), ("total", "0")]).unwrap();
        assert_eq!((empty.total_chunks, empty.body_size()), (1, Some(0)));
        for (pairs, field) in [
            (pairs("5"), "offset"),
            (pairs("12"), "offset"),
            (pairs("-4"), "offset"),
            ([("name", "a"), ("offset", "0"), ("total", "x")], "total"),
        ] {
            let err = parse(&d, &pairs).unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field: f, .. } if f == field),
                "{pairs:?}: {err}"
            );
        }
        let err = parse(&d, &[("name", "a"), ("offset", "0")]).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "total"));
        let err = parse(&d, &[("name", "a"), ("total", "4")]).unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "offset"));
    }

    #[test]
    fn configured_chunk_size_checks_full_chunks_early() {
        let d = Plupload::new().chunk_size(4);
        let at = |c: &'static str| [("name", "a"), ("chunk", c), ("chunks", "3")];
        let sizes: Vec<Option<u64>> = ["0", "1", "2"]
            .map(|c| parse(&d, &at(c)).unwrap().body_size())
            .into();
        assert_eq!(sizes, [Some(4), Some(4), None]);
        assert_eq!(
            parse(&Plupload::new().chunk_size(0), &at("0"))
                .unwrap()
                .body_size(),
            None
        );
    }

    #[test]
    fn identifier_parameter_and_renamed_file_field() {
        let d = Plupload::new()
            .identifier_param("id")
            .file_data_name("upload");
        assert_eq!((d.file_field(), d.identifier_field()), ("upload", "id"));
        let info = parse(
            &d,
            &[
                ("id", "o_1h2k3"),
                ("name", "a.txt"),
                ("chunk", "0"),
                ("chunks", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            (info.identifier.as_str(), info.filename.as_str()),
            ("o_1h2k3", "a.txt")
        );
        let whole = d
            .parse(&request(&[("id", "o_9"), ("name", "b.txt")]))
            .unwrap();
        assert_eq!(
            whole.identifier, "o_9",
            "the page's identifier, not a made-up one"
        );
        for pairs in [
            &[("name", "a.txt"), ("chunk", "0"), ("chunks", "2")][..],
            &[("name", "a.txt")][..],
        ] {
            let err = d.parse(&request(pairs)).unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field, .. } if field == "id"),
                "{err}"
            );
        }
        let err = parse(
            &d,
            &[("id", ""), ("name", "a"), ("chunk", "0"), ("chunks", "1")],
        )
        .unwrap_err();
        assert!(matches!(&err, Error::BadRequest { field, .. } if field == "id"));
    }

    #[test]
    fn malformed_fields_are_named() {
        let mut cases: Vec<(&str, Option<&str>, &str)> = Vec::new();
        for field in ["chunk", "chunks"] {
            for value in ["", "-1", "1.5", "abc", "99999999999999999999999", "0x1"] {
                cases.push((field, Some(value), field));
            }
            cases.push((field, None, field));
        }
        cases.extend([
            ("name", None, "name"),
            ("name", Some(""), "name"),
            ("name", Some("a\u{7f}b"), "name"),
            ("chunk", Some("3"), "chunk"),
            ("chunk", Some("18446744073709551615"), "chunk"),
        ]);
        let base = [("name", "movie.mp4"), ("chunk", "1"), ("chunks", "3")]
            .map(|(n, v)| (n, v.to_owned()));
        crate::dialect::assert_culprits(&base, &cases, |pairs| {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            parse(&Plupload::new(), &pairs)
        });
    }
}
