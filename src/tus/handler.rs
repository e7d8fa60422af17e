//! The tus state machine: what each method does to an upload, on the store, through the same
//! sequencing as the widgets (the upload's lock, the `on_create` hook, progress, quotas,
//! exactly-once assembly and publishing).
//!
//! | request | what it does |
//! |---|---|
//! | `OPTIONS` | the server's versions, extensions, limits, checksum algorithms |
//! | `POST` (mount) | creates an upload: `on_create`, then `201` with its `Location`; with a body, its first append; `Upload-Concat: final;...` makes it of partial uploads |
//! | `HEAD` (upload) | its offset, length, metadata, expiry (`Cache-Control: no-store`) |
//! | `PATCH` (upload) | appends at `Upload-Offset` (or `POST` with `X-HTTP-Method-Override: PATCH`) |
//! | `DELETE` (upload) | terminates it |
//!
//! Every request on an upload takes its lock with [`Store::lock_taking_over`]: a request whose
//! connection is gone (an append waiting for bytes that will never come) is asked to give the
//! upload up, keeps what it received, and the new request goes on.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::append::TusAppend;
use super::checksum::Verifier;
use super::headers::{self, Checksum, ConcatHeader};
use super::reply::TusReply;
use super::request::{Protocol, TusRequest};
use super::state;
use crate::error::{Error, Limit, Result};
use crate::save::Uploads;
use crate::store::{Activity, Piece, Stored, Tally, UploadLock};
use crate::upload::{Concat, UploadInfo};

/// The tus media type of an append's body.
pub(crate) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The IETF draft's media type of an append's body (interop version 6 on).
pub(crate) const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// Serves tus 1.0 and the IETF resumable-upload draft over [`Uploads`]: the same store, hooks,
/// limits, progress, quotas, expiry and conflict policy as the widgets. Cheap to clone.
///
/// [`begin`](Self::begin) handles everything before a request's body (call it on a thread that
/// may block: it does I/O and may wait for the upload's lock); a request with a body gets a
/// [`TusAppend`] to write it to. [`handle`](Self::handle) does both for a body that can be
/// read synchronously.
#[derive(Debug, Clone)]
pub struct Tus {
    uploads: Uploads,
}

/// What [`Tus::begin`] found.
#[derive(Debug)]
pub enum TusBegun {
    /// The request is answered without reading a body.
    Done(TusReply),
    /// The body is to be written to this append, then [`TusAppend::finish`]ed (or
    /// [`TusAppend::interrupted`] if it broke off).
    Receiving(Box<TusAppend>),
}

/// An upload's state with its lock held.
pub(crate) struct Held {
    pub(crate) lock: UploadLock,
    pub(crate) stored: Stored,
    pub(crate) tally: Tally,
    pub(crate) activity: Activity,
}

impl Tus {
    /// tus over these uploads.
    pub fn new(uploads: Uploads) -> Tus {
        Tus { uploads }
    }

    /// The uploads it serves.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// The extensions this server supports over its store (`Tus-Extension`): `creation`,
    /// `creation-with-upload`, `termination`, `checksum` and `expiration` always;
    /// `creation-defer-length` and `concatenation` when the store can
    /// ([`Capabilities`](crate::Capabilities)).
    pub fn extensions(&self) -> Vec<&'static str> {
        let capabilities = self.uploads.store().capabilities();
        let mut extensions = vec!["creation", "creation-with-upload"];
        if capabilities.declare_size {
            extensions.push("creation-defer-length");
        }
        extensions.extend(["termination", "checksum", "expiration"]);
        if capabilities.concatenate {
            extensions.push("concatenation");
        }
        extensions
    }

    /// Handles a request up to its body: answers it ([`TusBegun::Done`]), or returns the
    /// append its body goes to. Blocking: file I/O, and up to the configured lock timeout
    /// waiting for the upload's lock (whose holder is asked to give it up).
    pub fn begin(&self, request: &TusRequest) -> TusBegun {
        let method = match request.effective_method() {
            Ok(method) => method,
            Err(e) => return TusBegun::Done(TusReply::failed(Protocol::Tus, e)),
        };
        let protocol = match request.protocol(&method) {
            Ok(protocol) => protocol,
            Err(e) => return TusBegun::Done(TusReply::failed(Protocol::Tus, e)),
        };
        let result = match (method.as_str(), request.id()) {
            ("OPTIONS", _) => Ok(TusBegun::Done(self.options(protocol))),
            ("POST", None) => self.create(request, protocol),
            ("HEAD", Some(id)) => self.head(request, protocol, id).map(TusBegun::Done),
            ("PATCH", Some(id)) => self.patch(request, protocol, id),
            ("DELETE", Some(id)) => self.delete(request, protocol, id).map(TusBegun::Done),
            (_, Some(id)) if !headers::is_upload_id(id) => Err(Error::NotFound {
                identifier: id.to_owned(),
            }),
            (method, _) => Err(Error::MethodNotAllowed {
                method: method.to_owned(),
            }),
        };
        result.unwrap_or_else(|e| TusBegun::Done(TusReply::failed(protocol, e)))
    }

    /// [`begin`](Self::begin), then the body read from `body` and the append finished: for
    /// servers whose bodies can be read synchronously. A read error ends the body (what was
    /// read is kept, as for a broken connection); a request to take the upload over is noticed
    /// between reads.
    pub fn handle(&self, request: &TusRequest, body: &mut dyn std::io::Read) -> TusReply {
        let mut append = match self.begin(request) {
            TusBegun::Done(reply) => return reply,
            TusBegun::Receiving(append) => *append,
        };
        let watch = append.release_watch();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if watch.asked() {
                let identifier = append.id().to_owned();
                return append.interrupted(Error::TakenOver {
                    identifier,
                    kept: 0,
                });
            }
            let n = match body.read(&mut buf) {
                Ok(0) => return append.finish(),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return append
                        .interrupted(Error::bad("body", format!("could not be read: {e}")));
                }
            };
            if let Err(e) = append.write(&buf[..n]) {
                return append.interrupted(e);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The methods.

    fn options(&self, protocol: Protocol) -> TusReply {
        let config = self.uploads.config();
        let mut reply = TusReply::new(protocol, 204);
        reply.set("Tus-Version", super::request::TUS_VERSION);
        reply.set("Tus-Extension", self.extensions().join(","));
        reply.set("Tus-Checksum-Algorithm", Checksum::list());
        if let Some(max) = config.limits().max_file_size {
            reply.set("Tus-Max-Size", max.to_string());
        }
        if let Protocol::Ietf(_) = protocol {
            reply.set("Accept-Patch", PARTIAL_UPLOAD);
            reply.set("Upload-Limit", state::upload_limit(&self.uploads, None));
        }
        reply
    }

    fn create(&self, request: &TusRequest, protocol: Protocol) -> Result<TusBegun> {
        let concat = request
            .single("upload-concat")?
            .map(|v| headers::parse_concat(v, request.mount()))
            .transpose()?;
        let metadata = request
            .single("upload-metadata")?
            .map(headers::parse_metadata)
            .transpose()?
            .unwrap_or_default();
        if let Some(ConcatHeader::Final(parts)) = concat {
            if request.single("upload-length")?.is_some()
                || request.single("upload-defer-length")?.is_some()
            {
                return Err(Error::bad(
                    "Upload-Length",
                    "a final upload's length is its parts': it must not be sent",
                ));
            }
            return self
                .create_final(request, protocol, parts, metadata)
                .map(TusBegun::Done);
        }
        let length = request
            .single("upload-length")?
            .map(|v| headers::parse_offset("Upload-Length", v))
            .transpose()?;
        let deferred = request
            .single("upload-defer-length")?
            .map(headers::parse_defer_length)
            .transpose()?
            .is_some();
        let complete = self.upload_complete(request, protocol)?;
        match (length, deferred, protocol) {
            (Some(_), true, _) => {
                return Err(Error::bad(
                    "Upload-Defer-Length",
                    "sent with Upload-Length: one or the other",
                ));
            }
            (None, false, Protocol::Tus) => {
                return Err(Error::bad(
                    "Upload-Length",
                    "missing (or Upload-Defer-Length: 1)",
                ));
            }
            _ => {}
        }
        if length.is_none() && !self.uploads.store().capabilities().declare_size {
            return Err(Error::Unsupported {
                operation: "declare an upload's size after it started",
            });
        }
        let config = self.uploads.config();
        let limits = config.limits();
        if let (Some(len), Some(max)) = (length, limits.max_file_size)
            && len > max
        {
            return Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: len,
                limit: max,
            });
        }
        // A body: tus creation-with-upload, or a draft's creation carrying content.
        let has_body = request.has_body()?;
        let media = request
            .single("content-type")?
            .and_then(headers::media_type);
        let with_upload = match protocol {
            Protocol::Tus => {
                if media.as_deref() == Some(OFFSET_OCTET_STREAM) {
                    true
                } else if has_body {
                    return Err(Error::UnsupportedMediaType {
                        got: media,
                        expected: OFFSET_OCTET_STREAM,
                    });
                } else {
                    false
                }
            }
            Protocol::Ietf(_) => has_body || complete == Some(true),
        };
        let checksum = request
            .single("upload-checksum")?
            .map(headers::parse_checksum)
            .transpose()?;
        let concat = match concat {
            Some(ConcatHeader::Partial) => Concat::Partial,
            _ => Concat::Whole,
        };
        let id = random_id();
        let key = self.key(request.scope(), &id)?;
        let upload = describe(request.scope(), &id, &key, length, metadata, concat);
        let (store, quotas) = (self.uploads.store(), self.uploads.quotas());
        quotas.check(store, limits, request.scope(), &key, length.unwrap_or(0))?;
        let lock = store.lock(&key, config.lock_timeout())?;
        let stored = self.start_or_discard(&lock, &upload)?;
        let progress = self.uploads.progress();
        progress.observe(&key, &stored.upload, 0);
        quotas.set(store, limits, request.scope(), &key, 0);
        let location = format!("{}{id}", request.mount());
        let tally = Tally::default();
        if with_upload {
            let held = Held {
                lock,
                stored,
                tally,
                activity: Activity {
                    last_activity: SystemTime::now(),
                    live: false,
                    orphans_removed: 0,
                    bytes_freed: 0,
                },
            };
            return self
                .open_append(
                    request,
                    protocol,
                    held,
                    0,
                    checksum,
                    complete,
                    Some(location),
                )
                .map(|a| TusBegun::Receiving(Box::new(a)));
        }
        // Nothing to append: a 0-byte upload is complete as created.
        let file = state::complete_if_done(&self.uploads, &lock, &stored, tally)?;
        let mut reply = TusReply::new(protocol, 201);
        reply.set("Location", location);
        state::describe_state(
            &self.uploads,
            &mut reply,
            protocol,
            request.mount(),
            &stored,
            0,
            SystemTime::now(),
        );
        Ok(TusBegun::Done(reply.with_assembled(file)))
    }

    /// `Upload-Concat: final;...`: the upload is made of the partial uploads, at once, and
    /// published. Its id is derived from the parts' (which are secret), so the same final
    /// request sent again (its answer lost) finds the upload it made instead of a second file.
    fn create_final(
        &self,
        request: &TusRequest,
        protocol: Protocol,
        parts: Vec<String>,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<TusReply> {
        let store = self.uploads.store();
        if !store.capabilities().concatenate {
            return Err(Error::Unsupported {
                operation: "make an upload of other uploads",
            });
        }
        let config = self.uploads.config();
        let scope = request.scope();
        let id = final_id(&parts);
        let key = self.key(scope, &id)?;
        let location = format!("{}{id}", request.mount());
        let lock = store.lock_taking_over(&key, config.lock_timeout())?;
        if let Some(existing) = store.load(&key)? {
            if existing.assembled.is_some() {
                let mut reply = TusReply::new(protocol, 201);
                reply.set("Location", location);
                let size = existing.upload.total_size.unwrap_or(0);
                state::describe_state(
                    &self.uploads,
                    &mut reply,
                    protocol,
                    request.mount(),
                    &existing,
                    size,
                    SystemTime::now(),
                );
                return Ok(reply);
            }
            // Made half before a crash: made again.
            store.reset(&lock)?;
        }
        let not_a_part = |part: &str, why: &str| {
            Error::bad("Upload-Concat", format!("{}{part}: {why}", request.mount()))
        };
        // Lock the parts in key order (two finals never wait for each other in a circle).
        let mut keyed = Vec::with_capacity(parts.len());
        for (position, part) in parts.iter().enumerate() {
            let part_key = self
                .key(scope, part)
                .map_err(|_| not_a_part(part, "no such upload"))?;
            keyed.push((part_key, position));
        }
        keyed.sort();
        let mut held: Vec<Option<(UploadLock, Stored)>> = (0..parts.len()).map(|_| None).collect();
        for (part_key, position) in &keyed {
            let part = &parts[*position];
            if store.load(part_key)?.is_none() {
                return Err(not_a_part(part, "no such upload"));
            }
            let part_lock = store.lock_taking_over(part_key, config.lock_timeout())?;
            let stored = store
                .load(part_key)?
                .ok_or_else(|| not_a_part(part, "no such upload"))?;
            if stored.upload.concat != Concat::Partial {
                return Err(not_a_part(
                    part,
                    "not a partial upload (Upload-Concat: partial)",
                ));
            }
            let tally = store.tally(part_key)?;
            if stored.upload.total_size != Some(tally.bytes) {
                return Err(not_a_part(
                    part,
                    &format!(
                        "unfinished ({} of {} bytes)",
                        tally.bytes,
                        stored
                            .upload
                            .total_size
                            .map_or_else(|| "undeclared".to_owned(), |s| s.to_string())
                    ),
                ));
            }
            held[*position] = Some((part_lock, stored));
        }
        let held: Vec<(UploadLock, Stored)> =
            held.into_iter().map(|h| h.expect("locked")).collect();
        let total = held.iter().try_fold(0u64, |sum, (_, s)| {
            sum.checked_add(s.upload.total_size.unwrap_or(0))
                .ok_or_else(|| Error::bad("Upload-Concat", "the parts add up past u64::MAX"))
        })?;
        let limits = config.limits();
        if let Some(max) = limits.max_file_size
            && total > max
        {
            return Err(Error::TooLarge {
                limit_kind: Limit::FileSize,
                value: total,
                limit: max,
            });
        }
        let upload = describe(
            scope,
            &id,
            &key,
            Some(total),
            metadata,
            Concat::Final(parts),
        );
        let stored = self.start_or_discard(&lock, &upload)?;
        let progress = self.uploads.progress();
        progress.observe(&key, &stored.upload, 0);
        let refs: Vec<(&UploadLock, &Stored)> = held.iter().map(|(l, s)| (l, s)).collect();
        let tally = store.concatenate(&lock, &stored, &refs)?;
        progress.stored(&key, tally.bytes);
        let file = state::complete_if_done(&self.uploads, &lock, &stored, tally)?;
        // The parts count no more as unfinished uploads of the scope: the file is made.
        for (part_lock, _) in &held {
            self.uploads.forget(part_lock.key());
        }
        let mut reply = TusReply::new(protocol, 201);
        reply.set("Location", location);
        state::describe_state(
            &self.uploads,
            &mut reply,
            protocol,
            request.mount(),
            &stored,
            total,
            SystemTime::now(),
        );
        Ok(reply.with_assembled(file))
    }

    fn head(&self, request: &TusRequest, protocol: Protocol, id: &str) -> Result<TusReply> {
        let held = self.hold(request, id)?;
        let offset = state::offset_of(&held.stored, held.tally);
        // A complete upload that is not published yet (its assembly failed, or a crash came
        // first) is published now, or says why it cannot be.
        let file = state::complete_if_done(&self.uploads, &held.lock, &held.stored, held.tally)?;
        let stored = match &file {
            Some(_) => self
                .uploads
                .store()
                .load(held.lock.key())?
                .unwrap_or(held.stored),
            None => held.stored,
        };
        let mut reply = TusReply::new(protocol, if protocol == Protocol::Tus { 200 } else { 204 });
        reply.set("Cache-Control", "no-store");
        state::describe_state(
            &self.uploads,
            &mut reply,
            protocol,
            request.mount(),
            &stored,
            offset,
            held.activity.last_activity,
        );
        Ok(reply.with_assembled(file))
    }

    fn patch(&self, request: &TusRequest, protocol: Protocol, id: &str) -> Result<TusBegun> {
        let media = request
            .single("content-type")?
            .and_then(headers::media_type);
        let expected = match protocol {
            Protocol::Tus => Some(OFFSET_OCTET_STREAM),
            p if p.wants_partial_upload_type() => Some(PARTIAL_UPLOAD),
            _ => None,
        };
        if let Some(expected) = expected
            && media.as_deref() != Some(expected)
        {
            return Err(Error::UnsupportedMediaType {
                got: media,
                expected,
            });
        }
        let offset = request
            .single("upload-offset")?
            .ok_or_else(|| Error::missing("Upload-Offset"))
            .and_then(|v| headers::parse_offset("Upload-Offset", v))?;
        let length = request
            .single("upload-length")?
            .map(|v| headers::parse_offset("Upload-Length", v))
            .transpose()?;
        let checksum = request
            .single("upload-checksum")?
            .map(headers::parse_checksum)
            .transpose()?;
        let complete = self.upload_complete(request, protocol)?;
        let mut held = self.hold(request, id)?;
        if let Concat::Final(_) = held.stored.upload.concat {
            return Err(Error::Forbidden {
                identifier: id.to_owned(),
                reason: "a final upload is made of its partial uploads: nothing may be appended",
            });
        }
        let current = state::offset_of(&held.stored, held.tally);
        if offset != current {
            return Err(Error::OffsetMismatch {
                identifier: id.to_owned(),
                expected: current,
                provided: offset,
            });
        }
        if held.stored.assembled.is_some() {
            if request.has_body()? {
                return Err(Error::UploadComplete {
                    identifier: id.to_owned(),
                });
            }
            // An empty append to a finished upload changes nothing (a retried last request).
            let mut reply = TusReply::new(protocol, 204);
            state::describe_state(
                &self.uploads,
                &mut reply,
                protocol,
                request.mount(),
                &held.stored,
                current,
                SystemTime::now(),
            );
            return Ok(TusBegun::Done(reply));
        }
        if let Some(length) = length {
            match held.stored.upload.total_size {
                Some(size) if size != length => {
                    return Err(Error::InconsistentLength {
                        identifier: id.to_owned(),
                        reason: format!(
                            "Upload-Length {length}, the upload was created with {size}"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    if length < current {
                        return Err(Error::InconsistentLength {
                            identifier: id.to_owned(),
                            reason: format!(
                                "Upload-Length {length} is less than the {current} bytes stored"
                            ),
                        });
                    }
                    if let Some(max) = self.uploads.config().limits().max_file_size
                        && length > max
                    {
                        return Err(Error::TooLarge {
                            limit_kind: Limit::FileSize,
                            value: length,
                            limit: max,
                        });
                    }
                    held.stored = self.uploads.store().declare_size(&held.lock, length)?;
                }
            }
        }
        self.open_append(request, protocol, held, offset, checksum, complete, None)
            .map(|a| TusBegun::Receiving(Box::new(a)))
    }

    fn delete(&self, request: &TusRequest, protocol: Protocol, id: &str) -> Result<TusReply> {
        let held = self.hold(request, id)?;
        self.uploads.store().remove(&held.lock)?;
        self.uploads.forget(held.lock.key());
        Ok(TusReply::new(protocol, 204))
    }

    // -----------------------------------------------------------------------------------------
    // What the methods share.

    /// Starts `upload` (lock held) through the `on_create` hook; when the hook refuses it or the
    /// store cannot start it, nothing of it stays.
    fn start_or_discard(&self, lock: &UploadLock, upload: &UploadInfo) -> Result<Stored> {
        self.uploads.start_upload(lock, upload).inspect_err(|_| {
            let _ = self.uploads.store().remove(lock);
        })
    }

    /// The storage key of upload `id` of `scope`; an id that cannot be one is not found.
    fn key(&self, scope: &str, id: &str) -> Result<String> {
        let not_found = || Error::NotFound {
            identifier: id.to_owned(),
        };
        if !headers::is_upload_id(id) {
            return Err(not_found());
        }
        self.uploads.key(scope, id)
    }

    /// The upload `id` of the request's scope, its lock taken (its holder asked to give it
    /// up). An upload idle past the expiry age is removed now and answered `410`.
    fn hold(&self, request: &TusRequest, id: &str) -> Result<Held> {
        let not_found = || Error::NotFound {
            identifier: id.to_owned(),
        };
        let key = self.key(request.scope(), id)?;
        let store = self.uploads.store();
        // Nothing is created for an id that is not there (a guessed one, another scope's).
        if store.load(&key)?.is_none() {
            return Err(not_found());
        }
        let config = self.uploads.config();
        let lock = store.lock_taking_over(&key, config.lock_timeout())?;
        let stored = store.load(&key)?.ok_or_else(not_found)?;
        let activity = store.inspect(&lock)?;
        let idle = SystemTime::now()
            .duration_since(activity.last_activity)
            .unwrap_or_default();
        if idle > config.expire_after() {
            store.remove(&lock)?;
            self.uploads.forget(&key);
            return Err(Error::Expired {
                identifier: id.to_owned(),
            });
        }
        let tally = store.tally(&key)?;
        let progress = self.uploads.progress();
        if progress.wants(&key, &stored.upload) {
            progress.observe(&key, &stored.upload, tally.bytes);
        }
        Ok(Held {
            lock,
            stored,
            tally,
            activity,
        })
    }

    /// Opens the append of a request's body at `offset` (the upload's), its lock held.
    #[allow(clippy::too_many_arguments)]
    fn open_append(
        &self,
        request: &TusRequest,
        protocol: Protocol,
        held: Held,
        offset: u64,
        checksum: Option<headers::DeclaredChecksum>,
        complete: Option<bool>,
        location: Option<String>,
    ) -> Result<TusAppend> {
        let config = self.uploads.config();
        let limits = config.limits();
        let id = held.stored.upload.identifier.clone();
        if held.tally.present >= limits.max_chunks {
            return Err(Error::TooLarge {
                limit_kind: Limit::Chunks,
                value: held.tally.present + 1,
                limit: limits.max_chunks,
            });
        }
        let (room, limit_kind, end) = match held.stored.upload.total_size {
            Some(size) => (size - offset, Limit::UploadLength, size),
            None => match limits.max_file_size {
                Some(max) => (max.saturating_sub(offset), Limit::FileSize, max),
                None => (u64::MAX - offset, Limit::FileSize, u64::MAX),
            },
        };
        let declared = request.content_length()?;
        if let Some(len) = declared
            && len > room
        {
            return Err(Error::TooLarge {
                limit_kind,
                value: offset.saturating_add(len),
                limit: end,
            });
        }
        let store = self.uploads.store();
        self.uploads.quotas().check(
            store,
            limits,
            request.scope(),
            held.lock.key(),
            declared.unwrap_or(0),
        )?;
        let writer = store.open_piece(
            &held.lock,
            &held.stored,
            Piece {
                index: held.tally.present,
                offset,
                len: declared,
            },
        )?;
        let progress = Some(self.uploads.progress().chunk(held.lock.key(), false));
        Ok(TusAppend {
            uploads: self.uploads.clone(),
            protocol,
            id,
            scope: request.scope().to_owned(),
            mount: request.mount().to_owned(),
            lock: held.lock,
            stored: held.stored,
            writer: Some(writer),
            offset,
            room,
            limit_kind,
            end,
            verifier: checksum.map(Verifier::new),
            complete,
            location,
            progress,
        })
    }

    /// The draft's `Upload-Complete` (tus has none).
    fn upload_complete(&self, request: &TusRequest, protocol: Protocol) -> Result<Option<bool>> {
        match protocol {
            Protocol::Tus => Ok(None),
            Protocol::Ietf(_) => request
                .single("upload-complete")?
                .map(|v| headers::parse_boolean("Upload-Complete", v))
                .transpose(),
        }
    }
}

/// What a new tus upload declares.
fn describe(
    scope: &str,
    id: &str,
    key: &str,
    length: Option<u64>,
    metadata: std::collections::BTreeMap<String, String>,
    concat: Concat,
) -> UploadInfo {
    // tus-js-client and Uppy send the name as `filename` and `name`.
    let filename = ["filename", "name"]
        .iter()
        .find_map(|k| metadata.get(*k).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| id.to_owned());
    let relative_path = metadata
        .get("relativePath")
        .filter(|v| !v.is_empty() && *v != "null")
        .cloned()
        .unwrap_or_else(|| filename.clone());
    UploadInfo {
        scope: scope.to_owned(),
        identifier: id.to_owned(),
        key: key.to_owned(),
        filename,
        relative_path,
        total_size: length,
        total_chunks: u64::MAX,
        chunk_size: None,
        metadata,
        concat,
    }
}

/// A new upload id: 128 random bits, hex (unguessable: the URL is the upload's only name).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    hex::encode(bytes)
}

/// The id of the final upload made of `parts`: a hash of their ids (secret, random), so that
/// the same final request made twice names one upload.
fn final_id(parts: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tus final upload\n");
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_final_ids_derived() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert!(headers::is_upload_id(&a) && a.len() == 32);
        let parts = vec![a.clone(), b.clone()];
        assert_eq!(final_id(&parts), final_id(&parts.clone()));
        assert_ne!(final_id(&parts), final_id(&[b, a]));
        assert!(headers::is_upload_id(&final_id(&parts)));
    }

    #[test]
    fn descriptions_take_the_name_from_the_metadata() {
        let meta = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let d = describe(
            "s",
            "id1",
            "k",
            Some(3),
            meta(&[("name", "a.txt")]),
            Concat::Whole,
        );
        assert_eq!(
            (d.filename.as_str(), d.relative_path.as_str()),
            ("a.txt", "a.txt")
        );
        assert_eq!(d.total_chunks, u64::MAX);
        let d = describe(
            "s",
            "id1",
            "k",
            None,
            meta(&[
                ("filename", "b.txt"),
                ("name", "a.txt"),
                ("relativePath", "d/b.txt"),
            ]),
            Concat::Whole,
        );
        assert_eq!(
            (d.filename.as_str(), d.relative_path.as_str()),
            ("b.txt", "d/b.txt")
        );
        let d = describe("s", "id1", "k", None, meta(&[]), Concat::Partial);
        assert_eq!(d.filename, "id1");
    }
}
