//! The normalized description of one chunk, whatever widget sent it, and its validation.

use std::sync::Arc;

use crate::error::{Error, Limit, Problem, Result};
use crate::limits::Limits;

/// Longest identifier accepted, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 1024;
/// Longest file name accepted, in bytes.
pub const MAX_FILENAME_LEN: usize = 1024;
/// Longest relative path accepted, in bytes.
pub const MAX_RELATIVE_PATH_LEN: usize = 4096;

/// The parameter names a dialect reads, used to name the culprit in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames {
    /// Upload identifier, e.g. `flowIdentifier`.
    pub identifier: String,
    /// File name, e.g. `flowFilename`.
    pub filename: String,
    /// Relative path, e.g. `flowRelativePath`.
    pub relative_path: String,
    /// Chunk number or index, e.g. `flowChunkNumber`.
    pub chunk_number: String,
    /// Number of chunks, e.g. `flowTotalChunks`.
    pub total_chunks: String,
    /// Nominal chunk size, e.g. `flowChunkSize`.
    pub chunk_size: String,
    /// This chunk's size, e.g. `flowCurrentChunkSize`.
    pub current_chunk_size: String,
    /// File size, e.g. `flowTotalSize`.
    pub total_size: String,
}

impl FieldNames {
    /// Neutral names (`identifier`, `chunk_number`, ...) for chunks built by hand.
    pub fn neutral() -> FieldNames {
        FieldNames {
            identifier: "identifier".into(),
            filename: "filename".into(),
            relative_path: "relative_path".into(),
            chunk_number: "chunk_number".into(),
            total_chunks: "total_chunks".into(),
            chunk_size: "chunk_size".into(),
            current_chunk_size: "current_chunk_size".into(),
            total_size: "total_size".into(),
        }
    }
}

/// One chunk as every dialect describes it: the typed view of a request.
///
/// Indices are 0-based here whatever the widget counts from; [`chunk_number`](ChunkInfo::chunk_number)
/// gives the number the widget used. Sizes the widget did not send are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkInfo {
    /// The client's upload identifier (metadata: storage names are hashes of it).
    pub identifier: String,
    /// The file's name as the client sent it (metadata; sanitized only for a destination).
    pub filename: String,
    /// The file's path inside a dropped folder, or its name (metadata).
    pub relative_path: String,
    /// 0-based chunk index.
    pub index: u64,
    /// Number of chunks in the file (at least 1; an empty file is one 0-byte chunk).
    pub total_chunks: u64,
    /// Nominal chunk size: every chunk but the last has exactly this size.
    pub chunk_size: Option<u64>,
    /// This chunk's size as declared by the client; the body must have exactly this length.
    pub current_chunk_size: Option<u64>,
    /// The file's size.
    pub total_size: Option<u64>,
    /// Whether this is a test request (`GET`) rather than an upload.
    pub is_test: bool,
    /// What the widget adds to `index` to number chunks (1 for flow.js and resumable.js).
    pub number_base: u64,
    /// The parameter names behind the fields, for error messages.
    pub names: Arc<FieldNames>,
    /// Whether the widget sends the chunks of a file strictly in order, one at a time, and
    /// keys uploads by something reused across uploads (Plupload: the file name). Then its
    /// first chunk can only mean a new upload (whatever the key holds, chunks or an assembled
    /// upload, is discarded first), and its last chunk must complete the upload (otherwise the
    /// answer is [`Error::Incomplete`](crate::Error::Incomplete), so the widget reports a
    /// failure instead of a success).
    pub in_order: bool,
}

impl ChunkInfo {
    /// A chunk described by hand (no widget): neutral field names, 0-based numbering.
    pub fn new(identifier: impl Into<String>, index: u64, total_chunks: u64) -> ChunkInfo {
        let identifier = identifier.into();
        ChunkInfo {
            filename: identifier.clone(),
            relative_path: identifier.clone(),
            identifier,
            index,
            total_chunks,
            chunk_size: None,
            current_chunk_size: None,
            total_size: None,
            is_test: false,
            number_base: 0,
            names: Arc::new(FieldNames::neutral()),
            in_order: false,
        }
    }

    /// The chunk number as the widget counts (`index + number_base`).
    pub fn chunk_number(&self) -> u64 {
        self.index.saturating_add(self.number_base)
    }

    /// The chunk's byte offset in the file, when the geometry is known.
    pub fn offset(&self) -> Option<u64> {
        self.chunk_size?.checked_mul(self.index)
    }

    /// The exact size this chunk must have according to the declared geometry (total size and
    /// nominal chunk size), or `None` when the widget does not declare enough to tell.
    ///
    /// Only meaningful after [`validate`](ChunkInfo::validate) succeeded.
    pub fn expected_size(&self) -> Option<u64> {
        let (total, cs) = (self.total_size?, self.chunk_size?);
        if self.index + 1 < self.total_chunks {
            Some(cs)
        } else {
            // Last chunk: the rest of the file, under both geometries.
            Some(total - cs * (self.total_chunks - 1))
        }
    }

    /// The size the body must have: the declared current size, else the geometry's.
    pub fn body_size(&self) -> Option<u64> {
        self.current_chunk_size.or_else(|| self.expected_size())
    }

    /// Checks everything that can be checked without the body, against `limits`.
    ///
    /// Accepts both last-chunk geometries widgets use: flow.js and resumable.js by default make
    /// `max(floor(size / chunk_size), 1)` chunks, the last one between 1x and 2x the chunk size;
    /// with `forceChunkSize` (and in Dropzone, Fine Uploader, Plupload) there are
    /// `ceil(size / chunk_size)` chunks and the last one is the remainder. An empty file is one
    /// chunk of 0 bytes.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the parameter for a malformed value or a geometry that does
    /// not add up; [`Error::TooLarge`] for a size or count over `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        let n = &*self.names;
        check_text(&n.identifier, &self.identifier, MAX_IDENTIFIER_LEN, true)?;
        check_text(&n.filename, &self.filename, MAX_FILENAME_LEN, true)?;
        check_text(
            &n.relative_path,
            &self.relative_path,
            MAX_RELATIVE_PATH_LEN,
            false,
        )?;

        if self.total_chunks == 0 {
            return Err(Error::bad_value(
                &n.total_chunks,
                "0",
                Problem::OutOfRange {
                    first: 1,
                    last: u64::MAX,
                },
            ));
        }
        if self.total_chunks > limits.max_chunks {
            return Err(Error::TooLarge {
                limit_kind: Limit::Chunks,
                value: self.total_chunks,
                limit: limits.max_chunks,
            });
        }
        if self.index >= self.total_chunks {
            let first = self.number_base;
            let last = (self.total_chunks - 1).saturating_add(self.number_base);
            let sent = self.index as u128 + self.number_base as u128;
            return Err(Error::bad_value(
                &n.chunk_number,
                &sent.to_string(),
                Problem::OutOfRange { first, last },
            ));
        }
        if let Some(total) = self.total_size
            && let Some(max) = limits.max_file_size
            && total > max
        {
            return Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: total,
                limit: max,
            });
        }
        if self.chunk_size == Some(0) {
            return Err(Error::bad_value(
                &n.chunk_size,
                "0",
                Problem::OutOfRange {
                    first: 1,
                    last: u64::MAX,
                },
            ));
        }
        if let (Some(total), Some(cs)) = (self.total_size, self.chunk_size) {
            let floor = (total / cs).max(1);
            let ceil = total.div_ceil(cs).max(1);
            if self.total_chunks != floor && self.total_chunks != ceil {
                let expected = if floor == ceil {
                    format!("{floor}")
                } else {
                    format!("{floor} or {ceil}")
                };
                return Err(Error::bad(
                    &n.total_chunks,
                    format!(
                        "{} chunks cannot hold {total} bytes in chunks of {cs} bytes (expected {expected})",
                        self.total_chunks
                    ),
                ));
            }
        }
        let expected = self.expected_size();
        if let (Some(declared), Some(expected)) = (self.current_chunk_size, expected)
            && declared != expected
        {
            return Err(Error::bad(
                &n.current_chunk_size,
                format!(
                    "{declared} bytes declared, but chunk {} of a {}-byte file in {}-byte chunks has {expected} bytes",
                    self.chunk_number(),
                    self.total_size.unwrap_or_default(),
                    self.chunk_size.unwrap_or_default(),
                ),
            ));
        }
        if let Some(total) = self.total_size
            && let Some(declared) = self.current_chunk_size
            && declared > total
        {
            return Err(Error::bad(
                &n.current_chunk_size,
                format!("{declared} bytes declared for a file of {total} bytes"),
            ));
        }
        if let Some(size) = self.body_size()
            && size > limits.max_chunk_size
        {
            return Err(Error::TooLarge {
                limit_kind: Limit::ChunkSize,
                value: size,
                limit: limits.max_chunk_size,
            });
        }
        Ok(())
    }
}

/// A metadata string: present (when required), not too long, no NUL or other control bytes.
fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<()> {
    if required && value.is_empty() {
        return Err(Error::problem(field, Problem::Empty));
    }
    if value.len() > max {
        return Err(Error::problem(
            field,
            Problem::TooLong {
                len: value.len(),
                max,
            },
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::bad_value(field, value, Problem::ControlCharacter(c)));
    }
    Ok(())
}

/// Parses a decimal, non-negative integer parameter strictly: ASCII digits only (no sign, no
/// spaces, no fraction, no exponent), at most `u64::MAX`.
///
/// # Errors
/// [`Error::BadRequest`] naming `field` and quoting (a prefix of) the value.
pub fn parse_u64(field: &str, value: &str) -> Result<u64> {
    if value.is_empty() {
        return Err(Error::problem(field, Problem::Empty));
    }
    let digits = |v: &str| v.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = value.strip_prefix('-')
        && !rest.is_empty()
        && digits(rest)
    {
        return Err(Error::bad_value(field, value, Problem::Negative));
    }
    if !digits(value) {
        return Err(Error::bad_value(field, value, Problem::NotAnInteger));
    }
    value
        .parse::<u64>()
        .map_err(|_| Error::bad_value(field, value, Problem::Overflow))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn chunk(index: u64, total_chunks: u64, cs: u64, total: u64, current: u64) -> ChunkInfo {
        ChunkInfo {
            chunk_size: Some(cs),
            total_size: Some(total),
            current_chunk_size: Some(current),
            ..ChunkInfo::new("id", index, total_chunks)
        }
    }

    #[test]
    fn both_last_chunk_geometries_are_accepted() {
        // 10 bytes in chunks of 4: floor geometry = 2 chunks (4 + 6), ceil = 3 (4 + 4 + 2).
        chunk(1, 2, 4, 10, 6).validate(&limits()).unwrap();
        chunk(2, 3, 4, 10, 2).validate(&limits()).unwrap();
        chunk(0, 3, 4, 10, 4).validate(&limits()).unwrap();
        // exact multiple: both geometries agree
        chunk(2, 3, 4, 12, 4).validate(&limits()).unwrap();
        // small file: one chunk smaller than the chunk size
        chunk(0, 1, 1 << 20, 5, 5).validate(&limits()).unwrap();
        // empty file: one 0-byte chunk
        chunk(0, 1, 1 << 20, 0, 0).validate(&limits()).unwrap();
    }

    #[test]
    fn wrong_totals_and_sizes_are_refused_with_the_field_named() {
        let cases = [
            (chunk(0, 4, 4, 10, 4), "total_chunks"),
            (chunk(0, 1, 4, 10, 4), "total_chunks"),
            (chunk(1, 2, 4, 10, 5), "current_chunk_size"),
            (chunk(0, 2, 4, 10, 6), "current_chunk_size"),
            (chunk(2, 2, 4, 10, 6), "chunk_number"),
            (chunk(0, 1, 0, 0, 0), "chunk_size"),
            (chunk(0, 0, 4, 0, 0), "total_chunks"),
            (chunk(0, 2, 1 << 20, 5, 5), "total_chunks"),
        ];
        for (c, field) in cases {
            let err = c.validate(&limits()).unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field: f, .. } if f == field),
                "{c:?}: {err}"
            );
        }
    }

    #[test]
    fn limits_give_too_large() {
        let l = Limits {
            max_file_size: Some(100),
            max_chunk_size: 10,
            max_chunks: 5,
            ..Limits::default()
        };
        let over_file = chunk(0, 1, 200, 200, 200);
        assert!(matches!(
            over_file.validate(&l),
            Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: 200,
                limit: 100
            })
        ));
        let over_chunk = chunk(0, 2, 20, 40, 20);
        assert!(matches!(
            over_chunk.validate(&l),
            Err(Error::TooLarge {
                limit_kind: Limit::ChunkSize,
                ..
            })
        ));
        let over_count = chunk(0, 10, 1, 10, 1);
        assert!(matches!(
            over_count.validate(&l),
            Err(Error::TooLarge {
                limit_kind: Limit::Chunks,
                ..
            })
        ));
    }

    #[test]
    fn text_fields_are_checked() {
        let mut c = chunk(0, 1, 4, 1, 1);
        c.identifier.clear();
        assert!(
            matches!(c.validate(&limits()), Err(Error::BadRequest { field, .. }) if field == "identifier")
        );
        let mut c = chunk(0, 1, 4, 1, 1);
        c.filename = "a\0b".into();
        assert!(
            matches!(c.validate(&limits()), Err(Error::BadRequest { field, .. }) if field == "filename")
        );
        let mut c = chunk(0, 1, 4, 1, 1);
        c.filename = "日本語 ✓.txt".into();
        c.validate(&limits()).unwrap();
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_u64("f", "0").unwrap(), 0);
        assert_eq!(parse_u64("f", "18446744073709551615").unwrap(), u64::MAX);
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "18446744073709551616",
            "١",
        ] {
            let err = parse_u64("f", bad).unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field, .. } if field == "f"),
                "{bad}"
            );
        }
        let err = parse_u64("f", "-5").unwrap_err();
        assert!(err.to_string().contains("negative"));
    }
}
