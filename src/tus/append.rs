//! [`TusAppend`]: one append's body on its way to the store, the upload's lock held from the
//! first byte to the last. A body that ends is [`finish`](TusAppend::finish)ed; one that breaks
//! off (a lost connection, a takeover, a limit) is [`interrupted`](TusAppend::interrupted):
//! the bytes that arrived are kept, unless the request declared a checksum, which they can no
//! longer be checked against.

use std::fmt;
use std::time::SystemTime;

use super::checksum::Verifier;
use super::reply::TusReply;
use super::request::Protocol;
use super::state;
use crate::error::{Error, Limit, Result};
use crate::progress::ChunkProgress;
use crate::save::Uploads;
use crate::store::{PieceWriter, Recorded, Stored, UploadLock};
use crate::upload::Assembled;

/// The body of one tus append (a `PATCH`, or a creation request carrying the first bytes),
/// written to the store as it arrives. The upload's lock is held until it is finished or
/// dropped; dropped unfinished, nothing of it counts.
pub struct TusAppend {
    pub(crate) uploads: Uploads,
    pub(crate) protocol: Protocol,
    pub(crate) id: String,
    pub(crate) scope: String,
    pub(crate) mount: String,
    pub(crate) lock: UploadLock,
    pub(crate) stored: Stored,
    pub(crate) writer: Option<Box<dyn PieceWriter>>,
    /// Where this append starts.
    pub(crate) offset: u64,
    /// Most bytes it may add.
    pub(crate) room: u64,
    /// The limit `room` comes from, and where it ends, for [`Error::TooLarge`].
    pub(crate) limit_kind: Limit,
    pub(crate) end: u64,
    pub(crate) verifier: Option<Verifier>,
    /// The draft's `Upload-Complete` of this request.
    pub(crate) complete: Option<bool>,
    /// The new upload's `Location`, when this append is part of its creation.
    pub(crate) location: Option<String>,
    pub(crate) progress: Option<ChunkProgress>,
}

impl fmt::Debug for TusAppend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TusAppend")
            .field("id", &self.id)
            .field("offset", &self.offset)
            .field("written", &self.len())
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

/// Tells the holder of an upload's lock that another request asked for it
/// ([`Store::lock_taking_over`](crate::Store::lock_taking_over)); see
/// [`TusAppend::release_watch`].
#[derive(Debug, Clone)]
pub struct ReleaseWatch {
    uploads: Uploads,
    key: String,
}

impl ReleaseWatch {
    /// Whether another request asked for the upload (blocking, but brief: a look at the
    /// store). A storage failure counts as not asked.
    pub fn asked(&self) -> bool {
        self.uploads
            .store()
            .release_asked(&self.key)
            .unwrap_or(false)
    }
}

impl TusAppend {
    /// The upload's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.len())
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most bytes the body may still add (the upload's end, or the file size limit).
    pub fn room(&self) -> u64 {
        self.room - self.len()
    }

    /// A watch for requests to take the upload over: poll it while waiting for the body (a few
    /// times a second); when it says so, stop reading and call
    /// [`interrupted`](Self::interrupted) with [`Error::TakenOver`].
    pub fn release_watch(&self) -> ReleaseWatch {
        ReleaseWatch {
            uploads: self.uploads.clone(),
            key: self.lock.key().to_owned(),
        }
    }

    /// Appends the next bytes of the body. Blocking, but brief (a write to storage).
    ///
    /// # Errors
    /// [`Error::TooLarge`] once the body goes past the upload's end (or the file size limit):
    /// the bytes up to it are written, the rest refused; stop reading and call
    /// [`interrupted`](Self::interrupted) with the error. Storage failures.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let room = self.room();
        let fits = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if fits > 0 {
            let writer = self.writer.as_mut().expect("a live append has its writer");
            writer.write(&bytes[..fits])?;
            if let Some(v) = &mut self.verifier {
                v.update(&bytes[..fits]);
            }
            if let Some(progress) = &mut self.progress {
                progress.add(fits as u64);
            }
        }
        if fits < bytes.len() {
            return Err(Error::TooLarge {
                limit_kind: self.limit_kind,
                value: self
                    .offset
                    .saturating_add(self.len())
                    .saturating_add((bytes.len() - fits) as u64),
                limit: self.end,
            });
        }
        Ok(())
    }

    /// The body is complete: checks its checksum, records the bytes, publishes the file when
    /// the upload is complete, and answers (`204` with the new `Upload-Offset`; `201` with the
    /// `Location` for a creation request). Blocking.
    pub fn finish(self) -> TusReply {
        self.end(None)
    }

    /// The body broke off with `cause` (a lost connection, a takeover, a limit): keeps the
    /// bytes written, unless a checksum was declared (they can no longer be checked), then
    /// answers with `cause`. Blocking.
    pub fn interrupted(self, cause: Error) -> TusReply {
        self.end(Some(cause))
    }

    fn end(mut self, cause: Option<Error>) -> TusReply {
        let protocol = self.protocol;
        let written = self.len();
        let cause = cause.map(|e| match e {
            Error::TakenOver { identifier, .. } => Error::TakenOver {
                identifier,
                kept: if self.verifier.is_some() { 0 } else { written },
            },
            other => other,
        });
        match self.record(cause.is_some()) {
            Ok((offset, file)) => match cause {
                Some(cause) => {
                    let mut reply = TusReply::failed(protocol, cause);
                    self.describe(&mut reply, offset);
                    reply.with_assembled(file)
                }
                None => {
                    let status = if self.location.is_some() { 201 } else { 204 };
                    let mut reply = TusReply::new(protocol, status);
                    if let Some(location) = &self.location {
                        reply.set("Location", location.clone());
                    }
                    self.describe(&mut reply, offset);
                    reply.with_assembled(file)
                }
            },
            Err(e) => {
                // A checksum mismatch, an inconsistent length, a failed assembly: the upload
                // stays as recorded.
                let mut reply = TusReply::failed(protocol, e);
                let store = &self.uploads.store();
                if let Ok(tally) = store.tally(self.lock.key()) {
                    let offset = state::offset_of(&self.stored, tally);
                    self.describe(&mut reply, offset);
                }
                reply
            }
        }
    }

    /// Records the bytes (after the checksum, if any), declares the length the draft's
    /// `Upload-Complete: ?1` implies, publishes the file when complete. Returns the offset.
    fn record(&mut self, broken: bool) -> Result<(u64, Option<Assembled>)> {
        let uploads = self.uploads.clone();
        let store = uploads.store();
        let config = uploads.config();
        let key = self.lock.key().to_owned();
        let writer = self.writer.take().expect("a live append has its writer");
        if let Some(verifier) = self.verifier.take() {
            if broken {
                // Bytes that cannot be checked are dropped unrecorded: the offset stays.
                drop(writer);
                let tally = store.tally(&key)?;
                return Ok((state::offset_of(&self.stored, tally), None));
            }
            verifier.verify()?;
        }
        let mut tally = store.tally(&key)?;
        if !writer.is_empty() {
            tally = match writer.commit(&self.lock, &self.stored, config.sync_chunks)? {
                Recorded::Stored(tally) | Recorded::Same(tally) => tally,
                _ => {
                    return Err(Error::Restarted {
                        identifier: self.id.clone(),
                    });
                }
            };
        }
        uploads.progress().stored(&key, tally.bytes);
        self.progress.take();
        uploads
            .quotas()
            .set(store, config.limits(), &self.scope, &key, tally.bytes);
        let offset = tally.bytes;
        if self.complete == Some(true) && !broken {
            match self.stored.upload.total_size {
                None => self.stored = store.declare_size(&self.lock, offset)?,
                Some(size) if size != offset => {
                    return Err(Error::InconsistentLength {
                        identifier: self.id.clone(),
                        reason: format!(
                            "Upload-Complete: ?1 at offset {offset}, the upload's length is {size}"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        let file = state::complete_if_done(&uploads, &self.lock, &self.stored, tally)?;
        if file.is_some()
            && let Some(stored) = store.load(&key)?
        {
            self.stored = stored;
        }
        Ok((offset, file))
    }

    fn describe(&self, reply: &mut TusReply, offset: u64) {
        state::describe_state(
            &self.uploads,
            reply,
            self.protocol,
            &self.mount,
            &self.stored,
            offset,
            SystemTime::now(),
        );
    }
}
