//! flow.js and resumable.js: the same eight facts, 1-based chunk numbers, a test `GET` per chunk.

use std::sync::Arc;

use super::{Dialect, optional_u64, required, required_u64};
use crate::chunk::{ChunkInfo, FieldNames};
use crate::error::{Error, Result};
use crate::request::ChunkRequest;

/// flow.js (`@flowjs/flow.js`): `flowChunkNumber`, `flowIdentifier`, ... in the query string
/// (test `GET`, `octet` uploads) or as multipart fields, the bytes in the part `file`.
///
/// Also accepts fusty-flow.js (the IE 7-9 fallback): a whole file in one multipart `POST` with
/// `flowFilename` and `flowIdentifier` but no sizes, stored as a one-chunk upload.
#[derive(Debug, Clone)]
pub struct Flow {
    family: FlowFamily,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow::new()
    }
}

impl Flow {
    /// flow.js with its default names and file field `file`.
    pub fn new() -> Flow {
        Flow {
            family: FlowFamily::new("flow", "", "file"),
        }
    }

    /// Uses `name` as the file field (flow.js option `fileParameterName`).
    #[must_use]
    pub fn file_parameter_name(mut self, name: impl Into<String>) -> Flow {
        self.family.file_field = name.into();
        self
    }
}

impl Dialect for Flow {
    fn name(&self) -> &'static str {
        "flow.js"
    }

    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        self.family.detect(request)
    }

    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        self.family.parse(request, true)
    }

    fn file_field(&self) -> &str {
        &self.family.file_field
    }

    fn identifier_field(&self) -> &str {
        &self.family.names.identifier
    }
}

/// resumable.js (`resumablejs`): `resumableChunkNumber`, `resumableIdentifier`, ..., every name
/// configurable and prefixed with the `parameterNamespace` option.
#[derive(Debug, Clone)]
pub struct Resumable {
    family: FlowFamily,
}

impl Default for Resumable {
    fn default() -> Resumable {
        Resumable::new()
    }
}

/// A resumable.js parameter that its options let users rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumableParam {
    /// `chunkNumberParameterName` (default `resumableChunkNumber`).
    ChunkNumber,
    /// `chunkSizeParameterName` (default `resumableChunkSize`).
    ChunkSize,
    /// `currentChunkSizeParameterName` (default `resumableCurrentChunkSize`).
    CurrentChunkSize,
    /// `totalSizeParameterName` (default `resumableTotalSize`).
    TotalSize,
    /// `identifierParameterName` (default `resumableIdentifier`).
    Identifier,
    /// `fileNameParameterName` (default `resumableFilename`).
    Filename,
    /// `relativePathParameterName` (default `resumableRelativePath`).
    RelativePath,
    /// `totalChunksParameterName` (default `resumableTotalChunks`).
    TotalChunks,
    /// `fileParameterName` (default `file`): the multipart part holding the bytes.
    File,
}

impl Resumable {
    /// resumable.js with its default names and no namespace.
    pub fn new() -> Resumable {
        Resumable::with_namespace("")
    }

    /// resumable.js with the `parameterNamespace` option set: every parameter name, and the file
    /// field, carry this prefix.
    pub fn with_namespace(namespace: &str) -> Resumable {
        Resumable {
            family: FlowFamily::new("resumable", namespace, "file"),
        }
    }

    /// Renames one parameter (resumable.js options such as `chunkNumberParameterName`). The
    /// namespace given to [`with_namespace`](Resumable::with_namespace) is added in front.
    #[must_use]
    pub fn rename(mut self, param: ResumableParam, name: &str) -> Resumable {
        let full = format!("{}{name}", self.family.namespace);
        let names = Arc::make_mut(&mut self.family.names);
        match param {
            ResumableParam::ChunkNumber => names.chunk_number = full,
            ResumableParam::ChunkSize => names.chunk_size = full,
            ResumableParam::CurrentChunkSize => names.current_chunk_size = full,
            ResumableParam::TotalSize => names.total_size = full,
            ResumableParam::Identifier => names.identifier = full,
            ResumableParam::Filename => names.filename = full,
            ResumableParam::RelativePath => names.relative_path = full,
            ResumableParam::TotalChunks => names.total_chunks = full,
            ResumableParam::File => self.family.file_field = full,
        }
        self
    }
}

impl Dialect for Resumable {
    fn name(&self) -> &'static str {
        "resumable.js"
    }

    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        self.family.detect(request)
    }

    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        self.family.parse(request, false)
    }

    fn file_field(&self) -> &str {
        &self.family.file_field
    }

    fn identifier_field(&self) -> &str {
        &self.family.names.identifier
    }
}

/// What flow.js and resumable.js share: the eight parameters under a prefix.
#[derive(Debug, Clone)]
struct FlowFamily {
    namespace: String,
    names: Arc<FieldNames>,
    file_field: String,
}

impl FlowFamily {
    fn new(prefix: &str, namespace: &str, file_field: &str) -> FlowFamily {
        let name = |suffix: &str| format!("{namespace}{prefix}{suffix}");
        FlowFamily {
            namespace: namespace.to_owned(),
            names: Arc::new(FieldNames {
                identifier: name("Identifier"),
                filename: name("Filename"),
                relative_path: name("RelativePath"),
                chunk_number: name("ChunkNumber"),
                total_chunks: name("TotalChunks"),
                chunk_size: name("ChunkSize"),
                current_chunk_size: name("CurrentChunkSize"),
                total_size: name("TotalSize"),
            }),
            file_field: format!("{namespace}{file_field}"),
        }
    }

    fn detect(&self, request: &dyn ChunkRequest) -> bool {
        request.param(&self.names.identifier).is_some()
            || request.param(&self.names.chunk_number).is_some()
    }

    fn parse(&self, request: &dyn ChunkRequest, allow_fusty: bool) -> Result<ChunkInfo> {
        let n = &self.names;
        let identifier = required(request, &n.identifier)?.to_owned();
        let filename = required(request, &n.filename)?.to_owned();
        let relative_path = request
            .param(&n.relative_path)
            .unwrap_or(&filename)
            .to_owned();

        if allow_fusty
            && !request.is_test()
            && request.param(&n.total_size).is_none()
            && request.param(&n.chunk_number).is_none()
        {
            // fusty-flow.js: the whole file in one request, sizes unknown until the body is read.
            return Ok(ChunkInfo {
                identifier,
                filename,
                relative_path,
                index: 0,
                total_chunks: 1,
                chunk_size: None,
                current_chunk_size: None,
                total_size: None,
                is_test: false,
                number_base: 1,
                names: Arc::clone(&self.names),
                in_order: false,
            });
        }

        let number = required_u64(request, &n.chunk_number)?;
        let total_chunks = required_u64(request, &n.total_chunks)?;
        if number == 0 {
            return Err(Error::bad(
                &n.chunk_number,
                format!("0 is out of range 1..={total_chunks} (chunk numbers start at 1)"),
            ));
        }
        Ok(ChunkInfo {
            identifier,
            filename,
            relative_path,
            index: number - 1,
            total_chunks,
            chunk_size: Some(required_u64(request, &n.chunk_size)?),
            current_chunk_size: optional_u64(request, &n.current_chunk_size)?,
            total_size: Some(required_u64(request, &n.total_size)?),
            is_test: request.is_test(),
            number_base: 1,
            names: Arc::clone(&self.names),
            in_order: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Params, RawRequest, RequestKind};

    fn flow_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("flowChunkNumber", "1"),
            ("flowChunkSize", "1048576"),
            ("flowCurrentChunkSize", "10"),
            ("flowTotalSize", "100"),
            ("flowIdentifier", "13632-prettifyjs"),
            ("flowFilename", "prettify.js"),
            ("flowRelativePath", "home/prettify.js"),
            ("flowTotalChunks", "42"),
        ]
    }

    fn request(kind: RequestKind, pairs: &[(&str, &str)]) -> RawRequest {
        RawRequest::new(kind, pairs.iter().copied().collect::<Params>())
    }

    /// Port of flow-php-server RequestTest::testRequest_construct_withREQUEST and
    /// testRequest_construct_withCustomRequest: the typed getters return the parameters as
    /// numbers and strings. (Our chunk numbers are 0-based internally; `chunk_number()` is the
    /// widget's 1-based number.)
    #[test]
    fn typed_view_of_flow_parameters() {
        let req = request(RequestKind::Upload, &flow_params());
        let info = Flow::new().parse(&req).unwrap();
        assert_eq!(info.filename, "prettify.js");
        assert_eq!(info.total_size, Some(100));
        assert_eq!(info.identifier, "13632-prettifyjs");
        assert_eq!(info.relative_path, "home/prettify.js");
        assert_eq!(info.total_chunks, 42);
        assert_eq!(info.chunk_size, Some(1048576));
        assert_eq!(info.chunk_number(), 1);
        assert_eq!(info.index, 0);
        assert_eq!(info.current_chunk_size, Some(10));
        assert!(!info.is_test);
    }

    #[test]
    fn resumable_with_namespace_and_renamed_parameter() {
        let d = Resumable::with_namespace("ns_").rename(ResumableParam::ChunkNumber, "n");
        let req = request(
            RequestKind::Test,
            &[
                ("ns_n", "2"),
                ("ns_resumableChunkSize", "4"),
                ("ns_resumableCurrentChunkSize", "6"),
                ("ns_resumableTotalSize", "10"),
                ("ns_resumableIdentifier", "10-ab"),
                ("ns_resumableFilename", "ab"),
                ("ns_resumableTotalChunks", "2"),
            ],
        );
        assert!(d.detect(&req));
        assert_eq!(d.file_field(), "ns_file");
        let info = d.parse(&req).unwrap();
        assert_eq!((info.index, info.total_chunks, info.is_test), (1, 2, true));
        assert_eq!(
            info.relative_path, "ab",
            "relative path defaults to the name"
        );
        assert!(!Resumable::new().detect(&req));
    }

    #[test]
    fn malformed_fields_are_named() {
        let cases: &[(&str, Option<&str>)] = &[
            ("flowChunkNumber", Some("0")),
            ("flowChunkNumber", Some("-1")),
            ("flowChunkNumber", Some("1.5")),
            ("flowChunkNumber", Some("99999999999999999999999")),
            ("flowChunkNumber", None),
            ("flowTotalChunks", Some("x")),
            ("flowChunkSize", None),
            ("flowTotalSize", Some("")),
            ("flowCurrentChunkSize", Some("1e3")),
            ("flowIdentifier", None),
            ("flowFilename", None),
        ];
        for (field, value) in cases {
            let mut pairs = flow_params();
            pairs.retain(|(n, _)| n != field);
            if let Some(v) = value {
                pairs.push((field, v));
            }
            let err = Flow::new()
                .parse(&request(RequestKind::Upload, &pairs))
                .unwrap_err();
            assert!(
                matches!(&err, Error::BadRequest { field: f, .. } if f == field),
                "{field}={value:?}: {err}"
            );
        }
    }

    /// Port of flow-php-server FustyRequestTest::testFustyRequest_construct: a request without
    /// sizes is a one-chunk upload (its size is learnt from the body).
    #[test]
    fn fusty_flow_is_one_chunk() {
        let req = request(
            RequestKind::Upload,
            &[
                ("flowIdentifier", "13632-prettifyjs"),
                ("flowFilename", "prettify.js"),
                ("flowRelativePath", "home/prettify.js"),
            ],
        );
        let info = Flow::new().parse(&req).unwrap();
        assert_eq!(
            (info.index, info.total_chunks, info.chunk_number()),
            (0, 1, 1)
        );
        assert_eq!(info.total_size, None);
        assert_eq!(info.filename, "prettify.js");
        assert_eq!(info.relative_path, "home/prettify.js");
        // ... but a test GET without sizes is malformed.
        let test = request(
            RequestKind::Test,
            &[("flowIdentifier", "x"), ("flowFilename", "y")],
        );
        assert!(Flow::new().parse(&test).is_err());
    }
}
