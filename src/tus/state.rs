//! What every tus answer about an upload says (offset, length, metadata, expiry, the draft's
//! state headers), and the one step that publishes a complete upload.

use std::time::{Duration, SystemTime};

use super::headers;
use super::reply::TusReply;
use super::request::Protocol;
use crate::error::Result;
use crate::save::Uploads;
use crate::store::{Stored, Tally, UploadLock};
use crate::upload::{Assembled, Concat};

/// Publishes the upload (lock held) when all its bytes are there and it is a file of its
/// own (not a partial upload) not yet published: exactly once, through the same assembly
/// as the widgets' (destination, conflict policy, pre-process and `on_assembled` hooks).
pub(crate) fn complete_if_done(
    uploads: &Uploads,
    lock: &UploadLock,
    stored: &Stored,
    tally: Tally,
) -> Result<Option<Assembled>> {
    let done = stored.assembled.is_none()
        && stored.upload.concat != Concat::Partial
        && stored.upload.total_size == Some(tally.bytes);
    if !done {
        return Ok(None);
    }
    uploads.assemble(lock, stored, tally).map(Some)
}

/// The headers that describe an upload: `Upload-Offset`, `Upload-Length` (or
/// `Upload-Defer-Length`), `Upload-Metadata`, `Upload-Concat`, and for an unfinished
/// upload `Upload-Expires` (`last_activity` plus the expiry age); the draft's
/// `Upload-Complete` and `Upload-Limit`.
pub(crate) fn describe_state(
    uploads: &Uploads,
    reply: &mut TusReply,
    protocol: Protocol,
    mount: &str,
    stored: &Stored,
    offset: u64,
    last_activity: SystemTime,
) {
    let upload = &stored.upload;
    reply.set("Upload-Offset", offset.to_string());
    match upload.total_size {
        Some(size) => reply.set("Upload-Length", size.to_string()),
        None if protocol == Protocol::Tus => reply.set("Upload-Defer-Length", "1"),
        None => {}
    }
    if !upload.metadata.is_empty() {
        reply.set(
            "Upload-Metadata",
            headers::encode_metadata(&upload.metadata),
        );
    }
    match &upload.concat {
        Concat::Whole => {}
        Concat::Partial => reply.set("Upload-Concat", "partial"),
        Concat::Final(parts) => {
            // The parts as absolute paths under the mount.
            let urls: Vec<String> = parts.iter().map(|p| format!("{mount}{p}")).collect();
            reply.set("Upload-Concat", format!("final;{}", urls.join(" ")));
        }
    }
    let finished = stored.assembled.is_some() || upload.total_size == Some(offset);
    let expires = last_activity + uploads.config().expire_after();
    if !finished {
        reply.expires(expires);
    }
    if let Protocol::Ietf(_) = protocol {
        reply.set("Upload-Complete", if finished { "?1" } else { "?0" });
        reply.set(
            "Upload-Limit",
            upload_limit(uploads, (!finished).then_some(expires)),
        );
    }
}

/// The draft's `Upload-Limit`: `max-size` (the largest file), `max-age` (seconds the
/// upload has left, for an unfinished one).
pub(crate) fn upload_limit(uploads: &Uploads, expires: Option<SystemTime>) -> String {
    let mut limits = Vec::new();
    if let Some(max) = uploads.config().limits().max_file_size {
        limits.push(format!("max-size={max}"));
    }
    if let Some(at) = expires {
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        limits.push(format!("max-age={}", left.as_secs()));
    }
    if limits.is_empty() {
        limits.push("min-size=0".to_owned());
    }
    limits.join(", ")
}

/// The upload's offset: the bytes recorded, or its whole length once published (a
/// pre-process hook may have changed the published file's size).
pub(crate) fn offset_of(stored: &Stored, tally: Tally) -> u64 {
    match (&stored.assembled, stored.upload.total_size) {
        (Some(_), Some(size)) => size,
        _ => tally.bytes,
    }
}
