//! Fine Uploader (traditional endpoint, 5.x): `qquuid`, a 0-based `qqpartindex`, the part's
//! byte offset and actual size, no nominal chunk size; an optional finalize request after the
//! last part.

use std::sync::Arc;

use super::{
    Dialect, check_offset, check_remainder_rule, chunk_count, optional_u64, required, required_u64,
    single_chunk,
};
use crate::chunk::{ChunkInfo, FieldNames};
use crate::error::{Error, Result};
use crate::request::ChunkRequest;

/// Fine Uploader (`fine-uploader` 5.x, traditional server endpoint).
///
/// A part of a chunked file (`chunking.enabled`, files larger than `chunking.partSize`, or all
/// files with `chunking.mandatory`) is a `POST` with these parameters, as multipart fields
/// (default) or in the query string (`request.paramsInBody: false`), the bytes in the
/// multipart part `qqfile` (whose filename is `blob`) or as the raw body:
///
/// | parameter | renamed by | meaning |
/// |---|---|---|
/// | `qquuid` | `request.uuidName` | the upload identifier, a UUID kept across resumes |
/// | `qqfilename` | `request.filenameParam` | the file's name |
/// | `qqtotalfilesize` | `request.totalFileSizeName` | the file's size |
/// | `qqpartindex` | `chunking.paramNames.partIndex` | 0-based part index |
/// | `qqpartbyteoffset` | `chunking.paramNames.partByteOffset` | the part's first byte in the file |
/// | `qqchunksize` | `chunking.paramNames.chunkSize` | this part's actual size (not the nominal one) |
/// | `qqtotalparts` | `chunking.paramNames.totalParts` | `ceil(size / partSize)` |
/// | part `qqfile` | `request.inputName` | the bytes |
///
/// Fine Uploader does not send `partSize`; it is derived so that the geometry can be checked
/// like every other widget's: for part 0 of a file of several parts it is that part's
/// `qqchunksize`, for part `i > 0` it is `qqpartbyteoffset / i`, which must divide exactly.
/// Errors about it name `qqpartbyteoffset`. The body must be exactly `qqchunksize` bytes.
///
/// A file sent in one request (no `qqpartindex`: not chunked, or not larger than `partSize`)
/// carries `qquuid`, `qqfilename` and, in multipart mode, `qqtotalfilesize`; it is a one-chunk
/// upload whose body must be that size (or, without it, whatever the body holds).
///
/// The finalize request (`chunking.success.endpoint`, required with concurrent chunking) is a
/// urlencoded `POST` of `qquuid`, `qqfilename`, `qqtotalfilesize` and `qqtotalparts`: hand it to
/// [`Uploads::finalize_request`](crate::Uploads::finalize_request), which answers it
/// idempotently however often a proxy repeats it. Every answer carries the JSON Fine Uploader
/// requires (`{"success": true}`, or `success: false` with `error` and `preventRetry`).
#[derive(Debug, Clone)]
pub struct FineUploader {
    file_field: String,
    names: Arc<FieldNames>,
}

/// A Fine Uploader parameter that its options let users rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FineUploaderParam {
    /// `request.uuidName` (default `qquuid`).
    Uuid,
    /// `request.filenameParam` (default `qqfilename`).
    Filename,
    /// `request.totalFileSizeName` (default `qqtotalfilesize`; `chunking.paramNames.totalFileSize`
    /// in older versions).
    TotalFileSize,
    /// `chunking.paramNames.partIndex` (default `qqpartindex`).
    PartIndex,
    /// `chunking.paramNames.partByteOffset` (default `qqpartbyteoffset`).
    PartByteOffset,
    /// `chunking.paramNames.chunkSize` (default `qqchunksize`).
    ChunkSize,
    /// `chunking.paramNames.totalParts` (default `qqtotalparts`).
    TotalParts,
    /// `request.inputName` (default `qqfile`): the multipart part holding the bytes.
    File,
}

impl Default for FineUploader {
    fn default() -> FineUploader {
        FineUploader::new()
    }
}

impl FineUploader {
    /// Fine Uploader with its default names.
    pub fn new() -> FineUploader {
        FineUploader {
            file_field: "qqfile".into(),
            names: Arc::new(FieldNames {
                identifier: "qquuid".into(),
                filename: "qqfilename".into(),
                relative_path: "qqfilename".into(),
                chunk_number: "qqpartindex".into(),
                total_chunks: "qqtotalparts".into(),
                // The nominal chunk size is derived from the byte offset.
                chunk_size: "qqpartbyteoffset".into(),
                current_chunk_size: "qqchunksize".into(),
                total_size: "qqtotalfilesize".into(),
            }),
        }
    }

    /// Renames one parameter, as the Fine Uploader option named in [`FineUploaderParam`] does.
    #[must_use]
    pub fn rename(mut self, param: FineUploaderParam, name: impl Into<String>) -> FineUploader {
        let name = name.into();
        let names = Arc::make_mut(&mut self.names);
        match param {
            FineUploaderParam::Uuid => names.identifier = name,
            FineUploaderParam::Filename => {
                names.relative_path.clone_from(&name);
                names.filename = name;
            }
            FineUploaderParam::TotalFileSize => names.total_size = name,
            FineUploaderParam::PartIndex => names.chunk_number = name,
            FineUploaderParam::PartByteOffset => names.chunk_size = name,
            FineUploaderParam::ChunkSize => names.current_chunk_size = name,
            FineUploaderParam::TotalParts => names.total_chunks = name,
            FineUploaderParam::File => self.file_field = name,
        }
        self
    }

    /// A file sent whole: no part parameters.
    fn whole_file(&self, request: &dyn ChunkRequest, identifier: String) -> Result<ChunkInfo> {
        let n = &*self.names;
        for part_param in [&n.total_chunks, &n.chunk_size, &n.current_chunk_size] {
            if request.param(part_param).is_some() {
                return Err(Error::bad(
                    &n.chunk_number,
                    format!("missing, but the request carries {part_param} as a part does"),
                ));
            }
        }
        // In multipart mode the file part carries the real name too (it is `blob` only for
        // parts), so it can stand in for a missing `qqfilename`.
        let filename = request
            .param(&n.filename)
            .or_else(|| request.part_filename())
            .ok_or_else(|| Error::missing(&n.filename))?;
        let total_size = optional_u64(request, &n.total_size)?;
        Ok(single_chunk(
            identifier,
            filename.to_owned(),
            total_size,
            request.is_test(),
            &self.names,
        ))
    }
}

impl Dialect for FineUploader {
    fn name(&self) -> &'static str {
        "Fine Uploader"
    }

    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        request.param(&self.names.identifier).is_some()
    }

    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        let n = &*self.names;
        let identifier = required(request, &n.identifier)?.to_owned();
        if request.param(&n.chunk_number).is_none() {
            return self.whole_file(request, identifier);
        }
        let index = required_u64(request, &n.chunk_number)?;
        let parts = required_u64(request, &n.total_chunks)?;
        let offset = required_u64(request, &n.chunk_size)?;
        let size = required_u64(request, &n.current_chunk_size)?;
        let total_size = required_u64(request, &n.total_size)?;
        let filename = required(request, &n.filename)?.to_owned();
        let total_chunks = chunk_count(parts, Some(total_size));

        let chunk_size = if index >= total_chunks {
            // Out of range: validation refuses it, naming the index.
            None
        } else if total_chunks == 1 {
            // The only part (`chunking.mandatory`) is the whole file; `partSize` is unknown.
            check_offset(&n.chunk_size, offset, 0, 1)?;
            if size != total_size {
                return Err(Error::bad(
                    &n.current_chunk_size,
                    format!(
                        "{size} bytes declared, but the only part of a {total_size}-byte file is the whole file"
                    ),
                ));
            }
            None
        } else if index == 0 {
            check_offset(&n.chunk_size, offset, 0, 1)?;
            if size == 0 {
                return Err(Error::bad(
                    &n.current_chunk_size,
                    format!("0 bytes declared for the first part of a {parts}-part file"),
                ));
            }
            Some(size)
        } else {
            if offset == 0 || !offset.is_multiple_of(index) {
                return Err(Error::bad(
                    &n.chunk_size,
                    format!(
                        "{offset} is not a positive multiple of {} {index}, so no part size fits it",
                        n.chunk_number
                    ),
                ));
            }
            Some(offset / index)
        };
        if let Some(cs) = chunk_size {
            check_remainder_rule(&n.total_chunks, total_chunks, total_size, cs)?;
        }
        Ok(ChunkInfo {
            identifier,
            relative_path: filename.clone(),
            filename,
            index,
            total_chunks,
            chunk_size,
            current_chunk_size: Some(size),
            total_size: Some(total_size),
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
        &self.names.identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::request::{Params, RawRequest, RequestKind};

    const UUID: &str = "0b1c6a4e-3c1f-4f0e-8a5e-2f1b0e5d7c11";

    /// Part `index` of a 10-byte file with `partSize` 4, as Fine Uploader sends it (multipart
    /// fields; the file part's filename is `blob`).
    fn params(index: u64) -> Vec<(&'static str, String)> {
        let start = index * 4;
        let end = (start + 4).min(10);
        vec![
            ("qqpartindex", index.to_string()),
            ("qqpartbyteoffset", start.to_string()),
            ("qqchunksize", (end - start).to_string()),
            ("qqtotalparts", "3".into()),
            ("qqtotalfilesize", "10".into()),
            ("qqfilename", "report.pdf".into()),
            ("qquuid", UUID.into()),
        ]
    }

    fn request(pairs: &[(&str, String)]) -> RawRequest {
        let params: Params = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        RawRequest::new(RequestKind::Upload, params).with_part_filename("blob")
    }

    fn parse(d: &FineUploader, pairs: &[(&str, String)]) -> Result<ChunkInfo> {
        let info = d.parse(&request(pairs))?;
        info.validate(&Limits::default())?;
        Ok(info)
    }

    #[test]
    fn parts_in_order() {
        let d = FineUploader::new();
        for i in 0..3 {
            let info = parse(&d, &params(i)).unwrap();
            assert_eq!(info.identifier, UUID);
            assert_eq!(info.filename, "report.pdf", "not the part's `blob`");
            assert_eq!(
                (info.index, info.chunk_number(), info.total_chunks),
                (i, i, 3)
            );
            assert_eq!(
                info.chunk_size,
                Some(4),
                "derived part size, the same for every part"
            );
            assert_eq!(info.total_size, Some(10));
            assert_eq!(info.offset(), Some(i * 4));
            assert_eq!(info.body_size(), Some([4, 4, 2][i as usize]));
        }
        assert_eq!((d.file_field(), d.identifier_field()), ("qqfile", "qquuid"));
    }

    #[test]
    fn mandatory_chunking_of_a_one_part_file() {
        let pairs = vec![
            ("qqpartindex", "0".to_string()),
            ("qqpartbyteoffset", "0".into()),
            ("qqchunksize", "7".into()),
            ("qqtotalparts", "1".into()),
            ("qqtotalfilesize", "7".into()),
            ("qqfilename", "a.txt".into()),
            ("qquuid", "u".into()),
        ];
        let info = parse(&FineUploader::new(), &pairs).unwrap();
        assert_eq!(
            (info.total_chunks, info.chunk_size, info.body_size()),
            (1, None, Some(7))
        );
        let mut short = pairs.clone();
        short[2].1 = "6".into();
        assert!(matches!(
            parse(&FineUploader::new(), &short),
            Err(Error::BadRequest { field, .. }) if field == "qqchunksize"
        ));
        // An empty file with mandatory chunking: no parts, one 0-byte chunk.
        let mut empty = pairs;
        for (n, v) in &mut empty {
            if matches!(*n, "qqchunksize" | "qqtotalparts" | "qqtotalfilesize") {
                *v = "0".into();
            }
        }
        let info = parse(&FineUploader::new(), &empty).unwrap();
        assert_eq!((info.total_chunks, info.body_size()), (1, Some(0)));
    }

    #[test]
    fn whole_file_without_part_parameters() {
        let d = FineUploader::new();
        let multipart = request(&[
            ("qquuid", "u".into()),
            ("qqfilename", "small.txt".into()),
            ("qqtotalfilesize", "5".into()),
        ]);
        let info = d.parse(&multipart).unwrap();
        info.validate(&Limits::default()).unwrap();
        assert_eq!(
            (info.index, info.total_chunks, info.filename.as_str()),
            (0, 1, "small.txt")
        );
        assert_eq!((info.total_size, info.body_size()), (Some(5), Some(5)));
        assert_eq!(info.identifier, "u", "the widget's uuid, not a made-up one");

        // Raw body, parameters in the query string: no `qqtotalfilesize`, `qqfile` is the name.
        let raw: Params = [
            ("qquuid", "u"),
            ("qqfilename", "small.txt"),
            ("qqfile", "small.txt"),
        ]
        .into_iter()
        .collect();
        let info = d.parse(&RawRequest::new(RequestKind::Upload, raw)).unwrap();
        assert_eq!((info.total_size, info.body_size()), (None, None));

        // The part's filename stands in for a missing `qqfilename`.
        let info = d
            .parse(
                &RawRequest::new(RequestKind::Upload, [("qquuid", "u")].into_iter().collect())
                    .with_part_filename("x.bin"),
            )
            .unwrap();
        assert_eq!(info.filename, "x.bin");

        // An empty file.
        let empty = request(&[
            ("qquuid", "u".into()),
            ("qqfilename", "e".into()),
            ("qqtotalfilesize", "0".into()),
        ]);
        assert_eq!(d.parse(&empty).unwrap().body_size(), Some(0));
    }

    #[test]
    fn finalize_request_names_the_upload() {
        let d = FineUploader::new();
        let done: Params = Params::from_urlencoded(
            format!("qquuid={UUID}&qqfilename=report.pdf&qqtotalfilesize=10&qqtotalparts=3")
                .as_bytes(),
        )
        .unwrap();
        let req = RawRequest::new(RequestKind::Upload, done);
        assert!(d.detect(&req));
        assert_eq!(req.params().get(d.identifier_field()), Some(UUID));
    }

    #[test]
    fn renamed_parameters() {
        let d = FineUploader::new()
            .rename(FineUploaderParam::Uuid, "id")
            .rename(FineUploaderParam::PartIndex, "part")
            .rename(FineUploaderParam::File, "upload");
        let mut pairs = params(1);
        for (n, _) in &mut pairs {
            *n = match *n {
                "qquuid" => "id",
                "qqpartindex" => "part",
                other => other,
            };
        }
        let info = parse(&d, &pairs).unwrap();
        assert_eq!((info.identifier.as_str(), info.index), (UUID, 1));
        assert_eq!((d.file_field(), d.identifier_field()), ("upload", "id"));
        assert!(!FineUploader::new().detect(&request(&pairs)));
        pairs.retain(|(n, _)| *n != "part");
        assert!(
            matches!(parse(&d, &pairs), Err(Error::BadRequest { field, .. }) if field == "part")
        );
    }

    #[test]
    fn malformed_fields_are_named() {
        let numeric = [
            "qqpartindex",
            "qqpartbyteoffset",
            "qqchunksize",
            "qqtotalparts",
            "qqtotalfilesize",
        ];
        let mut cases: Vec<(&str, Option<&str>, &str)> = Vec::new();
        for field in numeric {
            for value in ["", "-1", "1.5", "abc", "99999999999999999999999", "1e3"] {
                cases.push((field, Some(value), field));
            }
        }
        for field in numeric.iter().skip(1).chain(&["qqfilename", "qquuid"]) {
            cases.push((field, None, field));
        }
        cases.extend([
            // Without the index, the other part parameters give the request away.
            ("qqpartindex", None, "qqpartindex"),
            ("qqpartindex", Some("3"), "qqpartindex"),
            ("qqpartindex", Some("18446744073709551615"), "qqpartindex"),
            ("qqpartbyteoffset", Some("0"), "qqpartbyteoffset"),
            // 6 / 1: a part size of 6 makes 2 parts of a 10-byte file, not 3.
            ("qqpartbyteoffset", Some("6"), "qqtotalparts"),
            ("qqchunksize", Some("3"), "qqchunksize"),
            ("qqchunksize", Some("11"), "qqchunksize"),
            ("qqtotalparts", Some("4"), "qqtotalparts"),
            // The flow.js geometry (10 bytes = 4 + 6) is not Fine Uploader's.
            ("qqtotalparts", Some("2"), "qqtotalparts"),
            ("qqtotalparts", Some("0"), "qqtotalparts"),
            ("qqtotalfilesize", Some("100"), "qqtotalparts"),
            ("qquuid", Some(""), "qquuid"),
            ("qqfilename", Some(""), "qqfilename"),
            ("qqfilename", Some("a\nb"), "qqfilename"),
        ]);
        crate::dialect::assert_culprits(&params(1), &cases, |p| parse(&FineUploader::new(), p));
        // Part 0 must start at 0 and cannot be empty; part 2 cannot start at 5 (5 / 2 is no
        // part size).
        for (index, field, value) in [
            (0, "qqpartbyteoffset", "4"),
            (0, "qqchunksize", "0"),
            (2, "qqpartbyteoffset", "5"),
            (2, "qqpartbyteoffset", "18446744073709551615"),
        ] {
            let mut pairs = params(index);
            pairs.retain(|(n, _)| *n != field);
            pairs.push((field, value.to_owned()));
            let err = parse(&FineUploader::new(), &pairs).unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field: f, .. } if f == field),
                "{err}"
            );
        }
        // A whole file with a malformed size.
        let whole = request(&[
            ("qquuid", "u".into()),
            ("qqfilename", "a".into()),
            ("qqtotalfilesize", "-1".into()),
        ]);
        assert!(
            matches!(FineUploader::new().parse(&whole), Err(Error::BadRequest { field, .. }) if field == "qqtotalfilesize")
        );
    }
}
