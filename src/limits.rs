//! Size and count limits: what one file, one chunk and one scope may hold.

/// Size and count limits. `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file, in bytes (default: unlimited).
    pub max_file_size: Option<u64>,
    /// Largest chunk body, in bytes (default: 128 MiB). flow.js and resumable.js make the last
    /// chunk up to twice their chunk size, so allow for it.
    pub max_chunk_size: u64,
    /// Most chunks in one file (default: 1 000 000).
    pub max_chunks: u64,
    /// Most unfinished uploads one scope may have at once (default: unlimited).
    pub max_uploads_per_scope: Option<u64>,
    /// Most bytes one scope may have stored but not yet assembled (default: unlimited).
    pub max_pending_bytes_per_scope: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_size: None,
            max_chunk_size: 128 * 1024 * 1024,
            max_chunks: 1_000_000,
            max_uploads_per_scope: None,
            max_pending_bytes_per_scope: None,
        }
    }
}
