//! Protocol dialects: each widget's parameter names and numbering, mapped onto one
//! [`ChunkInfo`].
//!
//! | concern | flow.js ([`Flow`]) | resumable.js ([`Resumable`]) | Dropzone ([`Dropzone`]) | Fine Uploader ([`FineUploader`]) | Plupload ([`Plupload`]) |
//! |---|---|---|---|---|---|
//! | upload key | `flowIdentifier` | `resumableIdentifier` | `dzuuid` | `qquuid` | `name` (the core hashes it with the scope) |
//! | chunk index | `flowChunkNumber`, 1-based | `resumableChunkNumber`, 1-based | `dzchunkindex`, 0-based | `qqpartindex`, 0-based | `chunk`, 0-based (or `offset`) |
//! | total chunks | `flowTotalChunks` | `resumableTotalChunks` | `dztotalchunkcount` | `qqtotalparts` | `chunks` (`0` for an empty file) |
//! | total size | `flowTotalSize` | `resumableTotalSize` | `dztotalfilesize` | `qqtotalfilesize` | not sent (`total` in offset mode) |
//! | nominal chunk size | `flowChunkSize` | `resumableChunkSize` | `dzchunksize` | derived from `qqpartbyteoffset` | not sent (configurable) |
//! | this chunk's size | `flowCurrentChunkSize` | `resumableCurrentChunkSize` | body length | `qqchunksize` | body length |
//! | byte offset | implied | implied | `dzchunkbyteoffset`, checked | `qqpartbyteoffset`, checked | `offset` in offset mode |
//! | file name | `flowFilename` | `resumableFilename` | the file part's filename | `qqfilename` | `name` |
//! | relative path | `flowRelativePath` | `resumableRelativePath` | not sent | not sent | not sent |
//! | file part | `file` | `file` (with the `parameterNamespace` prefix) | `file` (`paramName`) | `qqfile` (`request.inputName`), or raw body | `file` (`file_data_name`), or raw body |
//! | test request | `GET` | `GET` | none | none | none |
//! | finalize request | none | none | optional (the app's `chunksUploaded`) | optional (`chunking.success.endpoint`) | none |
//! | one-request upload | fusty-flow.js | none | small file: no `dz*` fields | small file: no `qqpartindex` | `chunk_size: 0`: no `chunk`/`chunks` |
//!
//! ## Detection
//!
//! [`Dialects`] holds the dialects a route accepts, in detection order: the first one whose
//! parameters are present parses the request. [`Dialects::only`] forces one for a route.
//! [`Dialects::default`] accepts all five, tried in this order:
//!
//! | dialect | recognised by |
//! |---|---|
//! | [`Flow`] | `flowIdentifier` or `flowChunkNumber` |
//! | [`Resumable`] | `resumableIdentifier` or `resumableChunkNumber` |
//! | [`FineUploader`] | `qquuid` |
//! | [`Plupload`] | `name` with `chunk`, `chunks`, `offset` or `total`; for a whole file, `name` with a raw body or a file part named like it |
//! | [`Dropzone`] | any `dz*` field, or else any multipart file part with a filename (but `blob`) |
//!
//! Dropzone comes last because it is also the catch-all for plain one-request uploads: a small
//! Dropzone file arrives as an ordinary `<form>` post, with nothing but the file part, and so
//! does any HTML form with a file input named like a file field. A part named `blob` is not
//! taken for a whole file: browsers give that name to slices of files, so it is a chunk whose
//! parameters are missing, or still to come in a form whose file part precedes its fields.
//!
//! ## One-request uploads
//!
//! A file sent whole in one request is a one-chunk upload whose size the core learns from the
//! body: the body may be at most [`max_chunk_size`](crate::ConfigBuilder::max_chunk_size) long,
//! and [`max_file_size`](crate::ConfigBuilder::max_file_size) applies to it as well. When the
//! widget sends no identifier for it (Dropzone, a plain form, Plupload), the dialect makes up a
//! unique one per request (so parsing the same request twice gives two identifiers): there is
//! nothing to resume, and two such uploads never meet, even with the same file name.
//!
//! Taking a request for a one-request upload rests on chunk parameters being absent, so the
//! decision is final only once every parameter is known. An adapter that meets the file part
//! of a form before its end should commit it to [`Uploads::save`](crate::Uploads::save) only
//! when the parsed [`ChunkInfo`] is a chunk of a chunked upload (`total_chunks > 1`, or a
//! declared `chunk_size`), and otherwise stage the part and decide when the form is read.
//!
//! ## Status codes
//!
//! Every dialect answers with the one mapping [`Error::status`]: none needs its own. Dropzone,
//! Fine Uploader and Plupload read statuses coarsely (2xx or not; below 400 or not for
//! Plupload), all errors but `204` are 400 or above, and `204` only answers test requests,
//! which these three never send. Whether they retry after an error is their own option, and for
//! Fine Uploader also the `preventRetry` member of the JSON body, which [`Reply`](crate::Reply)
//! sets from [`Error::is_retryable`]. How each widget reacts (client defaults, from
//! `research/protocols.md`):
//!
//! | answer | status | flow.js | resumable.js | Dropzone | Fine Uploader | Plupload |
//! |---|---|---|---|---|---|---|
//! | stored, assembled, present | 200, `{"success": true}` | next chunk | next chunk | next chunk | next chunk (needs the JSON) | next chunk |
//! | test: absent ([`Error::NoContent`]) | 204 | uploads the chunk | uploads the chunk | sends no tests | sends no tests | sends no tests |
//! | invalid ([`Error::BadRequest`]) | 400 | error (retried only with `maxChunkRetries`) | fatal | error (retried with `retryChunks`) | fails, `preventRetry: true` | error (retried `max_retries` times) |
//! | conflict, geometry changed | 409 | error | fatal | error | fails, `preventRetry: true` | error |
//! | too large ([`Error::TooLarge`]) | 413 | fatal | retried | error | fails, `preventRetry: true` | error |
//! | refused ([`Error::Refused`]) | 415 | fatal | fatal | error | fails, `preventRetry: true` | error |
//! | too many uploads | 429 | error | retried | error | fails, retry allowed | error |
//! | busy ([`Error::Busy`]) | 503, `Retry-After` | retried with `maxChunkRetries` | retried | retried with `retryChunks` | retried with `retry.enableAuto` | retried `max_retries` times |
//!
//! Dropzone shows the JSON `error` member of a failed answer as the file's error message; Fine
//! Uploader shows it too.

mod dropzone;
mod fine_uploader;
mod flow;
mod plupload;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::chunk::{ChunkInfo, FieldNames};
use crate::error::{Error, Problem, Result};
use crate::request::ChunkRequest;

pub use dropzone::Dropzone;
pub use fine_uploader::{FineUploader, FineUploaderParam};
pub use flow::{Flow, Resumable, ResumableParam};
pub use plupload::Plupload;

/// One widget's way of describing a chunk.
pub trait Dialect: fmt::Debug + Send + Sync {
    /// A short name, e.g. `"flow.js"`.
    fn name(&self) -> &'static str;

    /// Whether the request carries this dialect's parameters.
    fn detect(&self, request: &dyn ChunkRequest) -> bool;

    /// Builds the typed view of the request. Implementations check that parameters are present
    /// and well-formed; [`ChunkInfo::validate`] then checks their consistency and the limits.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming a missing or malformed parameter.
    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo>;

    /// The name of the multipart field that carries the chunk's bytes.
    fn file_field(&self) -> &str;

    /// The name of the parameter holding the upload identifier (what a finalize request sends
    /// to name its upload).
    fn identifier_field(&self) -> &str;
}

/// The dialects one upload route accepts, in detection order.
#[derive(Clone)]
pub struct Dialects {
    list: Vec<Arc<dyn Dialect>>,
}

impl Default for Dialects {
    /// All five widgets with their default names: flow.js, resumable.js, Fine Uploader,
    /// Plupload, then Dropzone (which also takes plain one-request uploads). See
    /// [Detection](self#detection).
    fn default() -> Dialects {
        Dialects::none()
            .with(Flow::new())
            .with(Resumable::new())
            .with(FineUploader::new())
            .with(Plupload::new())
            .with(Dropzone::new())
    }
}

impl fmt::Debug for Dialects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|d| d.name()))
            .finish()
    }
}

impl Dialects {
    /// No dialect at all; add some with [`with`](Dialects::with).
    pub fn none() -> Dialects {
        Dialects { list: Vec::new() }
    }

    /// Only `dialect`: every request is parsed as it, without detection.
    pub fn only(dialect: impl Dialect + 'static) -> Dialects {
        Dialects::none().with(dialect)
    }

    /// Adds a dialect after the ones present.
    #[must_use]
    pub fn with(mut self, dialect: impl Dialect + 'static) -> Dialects {
        self.list.push(Arc::new(dialect));
        self
    }

    /// The dialects, in detection order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Dialect> {
        self.list.iter().map(|d| &**d)
    }

    /// The dialect that handles `request`: the only one if there is one, else the first that
    /// detects its parameters.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when no dialect recognises the request.
    pub fn select(&self, request: &dyn ChunkRequest) -> Result<&dyn Dialect> {
        if let [only] = self.list.as_slice() {
            return Ok(&**only);
        }
        self.iter().find(|d| d.detect(request)).ok_or_else(|| {
            let protocols = self.iter().map(|d| d.name()).collect();
            Error::problem("parameters", Problem::Unrecognised { protocols })
        })
    }

    /// Parses `request` with the dialect that handles it.
    ///
    /// # Errors
    /// As [`select`](Dialects::select) and [`Dialect::parse`].
    pub fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        self.select(request)?.parse(request)
    }

    /// The upload identifier a finalize ("done") request names, read with the dialect that
    /// handles it.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when no dialect recognises the request or the identifier is
    /// missing or empty.
    pub fn finalize_identifier<'r>(&self, request: &'r dyn ChunkRequest) -> Result<&'r str> {
        let field = self.select(request)?.identifier_field();
        let id = required(request, field)?;
        if id.is_empty() {
            return Err(Error::problem(field, Problem::Empty));
        }
        Ok(id)
    }

    /// Whether `name` is the file field of any dialect (adapters use it to pick the multipart
    /// part that holds the chunk).
    pub fn is_file_field(&self, name: &str) -> bool {
        self.iter().any(|d| d.file_field() == name)
    }
}

/// Reads a required text parameter.
pub(crate) fn required<'r>(request: &'r dyn ChunkRequest, name: &str) -> Result<&'r str> {
    request.param(name).ok_or_else(|| Error::missing(name))
}

/// Reads a required non-negative integer parameter.
pub(crate) fn required_u64(request: &dyn ChunkRequest, name: &str) -> Result<u64> {
    crate::chunk::parse_u64(name, required(request, name)?)
}

/// Reads an optional non-negative integer parameter.
pub(crate) fn optional_u64(request: &dyn ChunkRequest, name: &str) -> Result<Option<u64>> {
    request
        .param(name)
        .map(|v| crate::chunk::parse_u64(name, v))
        .transpose()
}

/// Checks a declared byte offset against `index` x `chunk_size`.
pub(crate) fn check_offset(field: &str, offset: u64, index: u64, chunk_size: u64) -> Result<()> {
    match index.checked_mul(chunk_size) {
        Some(expected) if expected == offset => Ok(()),
        Some(expected) => Err(Error::bad(
            field,
            format!(
                "{offset} does not match chunk {index} of {chunk_size} bytes (expected {expected})"
            ),
        )),
        None => Err(Error::bad(
            field,
            format!("{offset} does not match chunk {index} of {chunk_size} bytes (past u64::MAX)"),
        )),
    }
}

/// Dropzone and Fine Uploader cut files by the remainder rule only: `count` chunks must be
/// `ceil(total / chunk_size)` (one for an empty file). [`ChunkInfo::validate`] also accepts the
/// flow.js rule (the last chunk up to twice the chunk size), which these widgets never use.
pub(crate) fn check_remainder_rule(
    field: &str,
    count: u64,
    total: u64,
    chunk_size: u64,
) -> Result<()> {
    let expected = total.div_ceil(chunk_size).max(1);
    if count == expected {
        return Ok(());
    }
    Err(Error::bad(
        field,
        format!(
            "{count} chunks, but a {total}-byte file in chunks of {chunk_size} bytes has {expected}"
        ),
    ))
}

/// The number of chunks, reading the `0` some widgets send for an empty file (Plupload
/// `chunks`, Dropzone 6.0 `dztotalchunkcount` with `forceChunking`) as the one 0-byte chunk it
/// is. A count of 0 for a file that is not empty stays 0, which validation refuses.
pub(crate) fn chunk_count(count: u64, total_size: Option<u64>) -> u64 {
    if count == 0 && total_size.is_none_or(|t| t == 0) {
        1
    } else {
        count
    }
}

/// A file sent whole in one request: one chunk whose size is the file's, declared or (when
/// `total_size` is `None`) learnt from the body.
pub(crate) fn single_chunk(
    identifier: String,
    filename: String,
    total_size: Option<u64>,
    is_test: bool,
    names: &Arc<FieldNames>,
) -> ChunkInfo {
    ChunkInfo {
        identifier,
        relative_path: filename.clone(),
        filename,
        index: 0,
        total_chunks: 1,
        chunk_size: None,
        current_chunk_size: total_size,
        total_size,
        is_test,
        number_base: 0,
        names: Arc::clone(names),
        in_order: false,
    }
}

/// A fresh identifier for an upload whose widget sends none and that cannot be resumed (a file
/// sent whole in one request): unique within the process (a counter), across processes sharing
/// the temp dir (process id and clock) and across hosts (random bits).
pub(crate) fn unique_identifier(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let pid = std::process::id();
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u128(nanos);
    hasher.write_u32(pid);
    format!("{prefix}-{nanos:x}-{pid:x}-{n:x}-{:016x}", hasher.finish())
}

/// Test helper: for each `(field, value, culprit)`, `base` with `field` set to `value` (or
/// removed, for `None`) must fail to parse with a [`Error::BadRequest`] naming `culprit`.
#[cfg(test)]
pub(crate) fn assert_culprits(
    base: &[(&str, String)],
    cases: &[(&str, Option<&str>, &str)],
    parse: impl Fn(&[(&str, String)]) -> Result<ChunkInfo>,
) {
    for &(field, value, culprit) in cases {
        let mut pairs = base.to_vec();
        pairs.retain(|(n, _)| *n != field);
        if let Some(v) = value {
            pairs.push((field, v.to_owned()));
        }
        let err = parse(&pairs).expect_err(field);
        assert!(
            matches!(&err, Error::BadRequest { field: f, .. } if f == culprit),
            "{field}={value:?}: {err}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ChunkBody, Params, RawRequest, RequestKind};

    fn request(pairs: &[(&str, &str)]) -> RawRequest {
        RawRequest::new(
            RequestKind::Upload,
            pairs.iter().copied().collect::<Params>(),
        )
        .with_body(ChunkBody::bytes(Vec::new()))
    }

    #[test]
    fn default_detects_all_five() {
        let d = Dialects::default();
        let cases: Vec<(RawRequest, &str)> = vec![
            (request(&[("flowIdentifier", "x")]), "flow.js"),
            (request(&[("resumableChunkNumber", "1")]), "resumable.js"),
            (request(&[("qquuid", "u")]), "Fine Uploader"),
            (request(&[("name", "a.txt"), ("chunk", "0")]), "Plupload"),
            (request(&[("name", "a.txt"), ("offset", "0")]), "Plupload"),
            // A whole file: raw body with `name` in the query string (`multipart: false`), or
            // a file part named like it.
            (request(&[("name", "a.txt")]), "Plupload"),
            (
                request(&[("name", "a.txt")]).with_part_filename("a.txt"),
                "Plupload",
            ),
            (request(&[("dzuuid", "u")]), "Dropzone"),
            // A plain form post: only a file part with a filename.
            (request(&[]).with_part_filename("a.txt"), "Dropzone"),
            // A form with a text field called `name` and a file: not Plupload.
            (
                request(&[("name", "Ada")]).with_part_filename("a.txt"),
                "Dropzone",
            ),
        ];
        for (req, expected) in &cases {
            assert_eq!(d.select(req).unwrap().name(), *expected, "{req:?}");
        }
        // Nothing recognisable, or a slice of a file (`blob`) whose parameters may still come
        // after it in the form: no dialect, so adapters wait for the rest of the form.
        for req in [
            request(&[("other", "1")]),
            request(&[]).with_part_filename("blob"),
        ] {
            let err = d.select(&req).unwrap_err();
            assert!(matches!(&err, Error::BadRequest { field, .. } if field == "parameters"));
        }
        for field in ["file", "qqfile"] {
            assert!(d.is_file_field(field));
        }
    }

    #[test]
    fn finalize_identifier_per_widget() {
        let d = Dialects::default();
        let fine = request(&[
            ("qquuid", "u-1"),
            ("qqfilename", "a.bin"),
            ("qqtotalfilesize", "10"),
            ("qqtotalparts", "2"),
        ]);
        assert_eq!(d.finalize_identifier(&fine).unwrap(), "u-1");
        let dz = request(&[("dzuuid", "u-2")]);
        assert_eq!(d.finalize_identifier(&dz).unwrap(), "u-2");
        let empty = request(&[("qquuid", "")]);
        assert!(matches!(
            d.finalize_identifier(&empty),
            Err(Error::BadRequest { field, .. }) if field == "qquuid"
        ));
    }

    #[test]
    fn offsets_and_counts() {
        check_offset("o", 8, 2, 4).unwrap();
        for (offset, index, cs) in [(7, 2, 4), (0, 1, 4), (1, u64::MAX, 2)] {
            assert!(matches!(
                check_offset("o", offset, index, cs),
                Err(Error::BadRequest { field, .. }) if field == "o"
            ));
        }
        check_remainder_rule("c", 3, 10, 4).unwrap();
        check_remainder_rule("c", 1, 0, 4).unwrap();
        for (count, total) in [(2, 10), (4, 10), (0, 0), (0, 1)] {
            assert!(matches!(
                check_remainder_rule("c", count, total, 4),
                Err(Error::BadRequest { field, .. }) if field == "c"
            ));
        }
        assert_eq!(chunk_count(0, None), 1);
        assert_eq!(chunk_count(0, Some(0)), 1);
        assert_eq!(chunk_count(0, Some(5)), 0);
        assert_eq!(chunk_count(3, Some(5)), 3);
    }

    /// A deterministic sweep in the spirit of the `dialect_params` fuzz target: random mixes of
    /// every dialect's parameters and edge values parse to a validated chunk whose geometry
    /// holds, or to a 4xx error; never a panic or an overflow.
    #[test]
    fn parsing_never_panics() {
        use crate::limits::Limits;
        const NAMES: [&str; 19] = [
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
            "offset",
            "total",
            "id",
        ];
        const VALUES: [&str; 14] = [
            "",
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "8",
            "10",
            "-1",
            "abc",
            "18446744073709551615",
            "18446744073709551614",
            "99999999999999999999",
        ];
        let dialects = Dialects::default()
            .with(Plupload::new().chunk_size(4).identifier_param("id"))
            .with(Dropzone::new().transform_file(true));
        let limits = Limits::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..30_000 {
            let mut params = Params::new();
            for _ in 0..next(9) {
                let name = NAMES[next(NAMES.len())];
                params.insert(name, VALUES[next(VALUES.len())]).unwrap();
            }
            let kind = [RequestKind::Upload, RequestKind::Test][next(2)];
            let mut request = RawRequest::new(kind, params);
            match next(4) {
                0 => request.set_part_filename("blob"),
                1 => request.set_part_filename("a.txt"),
                _ => {}
            }
            for d in dialects.iter() {
                let info = match d.parse(&request) {
                    Ok(info) => info,
                    Err(e) => {
                        assert!((400..500).contains(&e.status()), "{}: {e:?}", d.name());
                        continue;
                    }
                };
                match info.validate(&limits) {
                    Ok(()) => {
                        assert!(info.index < info.total_chunks);
                        if let (Some(total), Some(size)) = (info.total_size, info.expected_size()) {
                            let offset = info.offset().unwrap();
                            assert!(offset.checked_add(size).is_some_and(|end| end <= total));
                        }
                    }
                    Err(e) => assert!((400..500).contains(&e.status()), "{e:?}"),
                }
            }
        }
    }

    #[test]
    fn unique_identifiers_differ() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| unique_identifier("x")).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with("x-") && id.len() < 100));
    }
}
