//! [`TusReply`]: the whole answer to a tus request (status, headers, body), decided here so that
//! adapters only copy it into their framework's response.

use std::time::SystemTime;

use serde_json::json;

use super::request::{Protocol, TUS_VERSION};
use crate::error::Error;
use crate::upload::Assembled;

/// The IETF draft's problem types (RFC 9457 documents with these `type`s).
const PROBLEM_TYPES: &str = "https://iana.org/assignments/http-problem-types";

/// What to send back for one tus request. Adapters send [`status`](Self::status), every
/// [`headers`](Self::headers) entry and the [`body`](Self::body), and add nothing of their own.
#[derive(Debug)]
pub struct TusReply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    error: Option<Error>,
    assembled: Option<Box<Assembled>>,
}

impl TusReply {
    /// A reply of `status` carrying the protocol's version header (`Tus-Resumable`, or the
    /// draft's `Upload-Draft-Interop-Version`).
    pub(crate) fn new(protocol: Protocol, status: u16) -> TusReply {
        let mut reply = TusReply {
            status,
            headers: Vec::new(),
            body: String::new(),
            error: None,
            assembled: None,
        };
        match protocol {
            Protocol::Tus => reply.set("Tus-Resumable", TUS_VERSION),
            Protocol::Ietf(v) => reply.set("Upload-Draft-Interop-Version", v.to_string()),
        }
        reply
    }

    /// The reply to a failed request: the error's status, its message (a problem document for
    /// the draft's problem types), `Retry-After` where it has one, and for a `412` the
    /// versions this server speaks.
    pub(crate) fn failed(protocol: Protocol, error: Error) -> TusReply {
        let mut reply = TusReply::new(protocol, error.status());
        if let Some(seconds) = error.retry_after() {
            reply.set("Retry-After", seconds.to_string());
        }
        match &error {
            Error::UnsupportedVersion { .. } => reply.set("Tus-Version", TUS_VERSION),
            Error::OffsetMismatch { expected, .. } => {
                reply.set("Upload-Offset", expected.to_string())
            }
            Error::MethodNotAllowed { .. } => {
                reply.set("Allow", "OPTIONS, POST, HEAD, PATCH, DELETE")
            }
            _ => {}
        }
        let problem = match (&error, protocol) {
            (
                Error::OffsetMismatch {
                    expected, provided, ..
                },
                Protocol::Ietf(_),
            ) => Some(json!({
                "type": format!("{PROBLEM_TYPES}#mismatching-upload-offset"),
                "title": "offset from request does not match offset of resource",
                "expected-offset": expected,
                "provided-offset": provided,
            })),
            (Error::UploadComplete { .. }, Protocol::Ietf(_)) => Some(json!({
                "type": format!("{PROBLEM_TYPES}#completed-upload"),
                "title": "upload is already completed",
            })),
            (Error::InconsistentLength { reason, .. }, Protocol::Ietf(_)) => Some(json!({
                "type": format!("{PROBLEM_TYPES}#inconsistent-upload-length"),
                "title": "inconsistent length values for upload",
                "detail": reason,
            })),
            _ => None,
        };
        match problem {
            Some(problem) => {
                reply.set("Content-Type", "application/problem+json");
                reply.body = problem.to_string();
            }
            None if reply.status != 204 => {
                reply.set("Content-Type", "text/plain; charset=utf-8");
                reply.body = error.client_message();
            }
            None => {}
        }
        reply.error = Some(error);
        reply
    }

    /// Sets header `name` (replacing an earlier value).
    pub(crate) fn set(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.headers.push((name, value)),
        }
    }

    /// Sets `Upload-Expires` to `at` (an HTTP date).
    pub(crate) fn expires(&mut self, at: SystemTime) {
        self.set("Upload-Expires", httpdate::fmt_http_date(at));
    }

    pub(crate) fn with_assembled(mut self, file: Option<Assembled>) -> TusReply {
        self.assembled = file.map(Box::new);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers, `Content-Type` included when there is a body.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The value of response header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body (empty for most tus answers).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Why the request failed, when it did (for logs: [`Error::client_message`] is what the
    /// body says).
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The file this request published, when it completed an upload.
    pub fn assembled(&self) -> Option<&Assembled> {
        self.assembled.as_deref()
    }

    /// Status, headers and body, for building a response.
    pub fn into_parts(self) -> (u16, Vec<(&'static str, String)>, String) {
        (self.status, self.headers, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_headers_follow_the_protocol() {
        let tus = TusReply::new(Protocol::Tus, 204);
        assert_eq!(tus.header("tus-resumable"), Some("1.0.0"));
        let ietf = TusReply::new(Protocol::Ietf(6), 204);
        assert_eq!(ietf.header("Upload-Draft-Interop-Version"), Some("6"));
        assert_eq!(ietf.header("Tus-Resumable"), None);
    }

    #[test]
    fn offset_mismatch_is_a_problem_document_in_the_draft() {
        let error = || Error::OffsetMismatch {
            identifier: "a".into(),
            expected: 10,
            provided: 3,
        };
        let r = TusReply::failed(Protocol::Ietf(6), error());
        assert_eq!(r.status(), 409);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let v: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(v["expected-offset"], 10);
        assert_eq!(v["provided-offset"], 3);
        assert!(
            v["type"]
                .as_str()
                .unwrap()
                .ends_with("#mismatching-upload-offset")
        );
        let tus = TusReply::failed(Protocol::Tus, error());
        assert_eq!(tus.header("upload-offset"), Some("10"));
        assert_eq!(
            tus.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }

    #[test]
    fn errors_map_to_tus_statuses() {
        let cases = [
            (
                Error::UnsupportedVersion {
                    header: "Tus-Resumable",
                    value: None,
                    supported: "1.0.0",
                },
                412,
            ),
            (
                Error::ChecksumMismatch {
                    algorithm: "sha1",
                    expected: "x".into(),
                    actual: "y".into(),
                    received: 1,
                },
                460,
            ),
            (
                Error::Expired {
                    identifier: "a".into(),
                },
                410,
            ),
            (
                Error::UnsupportedMediaType {
                    got: None,
                    expected: "application/offset+octet-stream",
                },
                415,
            ),
        ];
        for (error, status) in cases {
            let r = TusReply::failed(Protocol::Tus, error);
            assert_eq!(r.status(), status);
            assert!(r.error().is_some());
        }
        let r = TusReply::failed(
            Protocol::Tus,
            Error::UnsupportedVersion {
                header: "Tus-Resumable",
                value: Some("0.2".into()),
                supported: "1.0.0",
            },
        );
        assert_eq!(r.header("Tus-Version"), Some("1.0.0"));
        let busy = TusReply::failed(Protocol::Tus, Error::Busy { retry_after: 2 });
        assert_eq!(busy.header("Retry-After"), Some("2"));
    }
}
