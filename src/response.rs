//! The framework-neutral answer to a request: status, JSON body, `Retry-After`. Adapters turn a
//! [`Reply`] into their response type and add nothing of their own.

use serde_json::json;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::save::{Outcome, Uploads};

/// What to send back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status ([`Error::status`] for errors, 200 for outcomes).
    pub status: u16,
    /// The body: JSON, or empty for `204 No Content`.
    pub body: String,
    /// Seconds for a `Retry-After` header, if any.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// The reply to a handled request.
    ///
    /// Outcomes are `200` with `{"success": true, "status": ...}` (Fine Uploader needs the
    /// `success` member); an assembled file reports only its final file name and size, never the
    /// server's path. Errors carry `{"success": false, "error": message, "preventRetry": bool}`
    /// (the message is [`Error::client_message`]: no server path), except `204 No Content`,
    /// whose body is empty.
    pub fn from_result(result: &Result<Outcome>) -> Reply {
        match result {
            Ok(outcome) => Reply::outcome(outcome),
            Err(error) => Reply::error(error),
        }
    }

    /// The reply to a successful request.
    pub fn outcome(outcome: &Outcome) -> Reply {
        let body = match outcome {
            Outcome::ChunkPresent { chunk } => {
                json!({"success": true, "status": "chunk_present", "chunk": chunk})
            }
            Outcome::ChunkStored {
                chunk,
                chunks_present,
                total_chunks,
            } => json!({
                "success": true,
                "status": "chunk_stored",
                "chunk": chunk,
                "chunks_present": chunks_present,
                "total_chunks": total_chunks,
            }),
            Outcome::Assembled { file, fresh } => json!({
                "success": true,
                "status": "assembled",
                "fresh": fresh,
                "file": {
                    "name": file.location.file_name(),
                    "size": file.size,
                },
            }),
        };
        Reply {
            status: 200,
            body: body.to_string(),
            retry_after: None,
        }
    }

    /// The reply to a failed request.
    pub fn error(error: &Error) -> Reply {
        let status = error.status();
        let body = if status == 204 {
            String::new()
        } else {
            json!({
                "success": false,
                "error": error.client_message(),
                "preventRetry": !error.is_retryable(),
            })
            .to_string()
        };
        Reply {
            status,
            body,
            retry_after: error.retry_after(),
        }
    }

    /// The reply to a progress query of `scope`: every upload of the scope as a JSON array
    /// when `identifier` is `None`, else that one upload (`404` when the scope has no such
    /// upload: an unknown or foreign identifier is never reported as "starting").
    pub fn progress(uploads: &Uploads, scope: &str, identifier: Option<&str>) -> Reply {
        let monitor = uploads.progress();
        let body = match identifier {
            None => serde_json::to_string(&monitor.report_scope(scope)),
            Some(id) => match monitor.report(scope, id) {
                Some(progress) => serde_json::to_string(&progress),
                None => {
                    return Reply::error(&Error::NotFound {
                        identifier: id.to_owned(),
                    });
                }
            },
        };
        Reply {
            status: 200,
            body: body.expect("progress serializes"),
            retry_after: None,
        }
    }

    /// One progress entry as JSON, for a server-sent event's `data`.
    pub fn progress_event(progress: &Progress) -> String {
        serde_json::to_string(progress).expect("progress serializes")
    }

    /// The `Content-Type` of the body, if it has one.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.body.is_empty()).then_some("application/json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_content_has_an_empty_body() {
        let r = Reply::error(&Error::NoContent {
            chunk: 1,
            identifier: "x".into(),
        });
        assert_eq!(
            (r.status, r.body.as_str(), r.content_type()),
            (204, "", None)
        );
    }

    #[test]
    fn errors_are_json_with_success_false() {
        let r = Reply::error(&Error::bad("flowChunkNumber", "missing"));
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["error"], "flowChunkNumber: missing");
        assert_eq!(v["preventRetry"], true);
        let busy = Reply::error(&Error::Busy { retry_after: 3 });
        assert_eq!((busy.status, busy.retry_after), (503, Some(3)));
    }
}
