//! Where chunks live until their file is assembled.
//!
//! The embedded store is the local filesystem: one directory per upload under the temp dir,
//! named by the upload's storage key (a hash, never a client string):
//!
//! ```text
//! <temp dir>/
//!   .incoming/            bodies an adapter staged before knowing their upload
//!   <key>/
//!     lock                the per-upload lock (std File::lock, i.e. flock: holds across processes)
//!     meta.json           what the first chunk declared (scope, identifier, name, geometry)
//!     ledger              append-only record of stored chunks (O(1) completion checks)
//!     staging/.stage-*    chunk bodies being received (each locked by its writer)
//!     chunk.<index>       stored chunks, 0-based; present only once complete (rename)
//!     assembling.json     an assembly in progress: where its staging file is
//!     assembled.json      the marker: this upload was assembled, to this path
//! ```

pub(crate) mod ledger;
pub(crate) mod local;

pub(crate) use local::{LocalStore, Meta, StagedChunk, UploadDir};
