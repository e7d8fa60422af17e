//! Exactly-once assembly, as the core sequences it: with the upload's lock held and every piece
//! recorded, ask the store to assemble and publish the file (it writes the marker that makes
//! every later request answer "assembled" without assembling again), then describe the result.
//!
//! What assembly does with the bytes is the store's: the local store publishes its data file by
//! a no-clobber link after an fsync, without copying a byte.

use crate::config::Config;
use crate::error::Result;
use crate::store::{Assembly, Marker, Store, Stored, Tally, UploadLock};
use crate::upload::Assembled;

/// Assembles `stored` (lock held, complete per `tally`, not assembled yet).
pub(crate) fn assemble(
    store: &dyn Store,
    config: &Config,
    lock: &UploadLock,
    stored: &Stored,
    tally: Tally,
) -> Result<Assembled> {
    let destination = config.destination(&stored.upload);
    let plan = Assembly {
        destination: &destination,
        conflict: config.conflict,
        preprocess: config.preprocess.as_deref(),
        keep_pieces: !config.delete_chunks_on_save,
        tally,
    };
    let marker = store.assemble(lock, stored, &plan)?;
    Ok(assembled(stored, marker))
}

/// The assembled file an upload's marker describes.
pub(crate) fn assembled(stored: &Stored, marker: Marker) -> Assembled {
    Assembled {
        location: marker.location,
        size: marker.size,
        upload: stored.upload.clone(),
        started_ms: stored.created_ms,
        assembled_ms: marker.assembled_ms,
    }
}
