//! What every layer says about an upload: its description ([`UploadInfo`]), where an assembled
//! file is ([`Location`]) and the assembled file itself ([`Assembled`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Facts about an upload, as its first request declared them: given to the destination
/// callback and the hooks, kept by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    /// The caller's scope.
    pub scope: String,
    /// The client's upload identifier.
    pub identifier: String,
    /// The storage key (the hash-name callback's result).
    pub key: String,
    /// The file name as the client sent it.
    pub filename: String,
    /// The relative path as the client sent it.
    pub relative_path: String,
    /// The file's size, when declared.
    pub total_size: Option<u64>,
    /// Number of chunks (for offset-based protocols such as tus, `u64::MAX`: pieces are
    /// appends, as many as it takes).
    pub total_chunks: u64,
    /// Nominal chunk size, when the widget declares it.
    pub chunk_size: Option<u64>,
    /// The client's metadata beyond the name (tus `Upload-Metadata`; empty for the widgets).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Whether the upload is a part of another one, or made of others (tus concatenation);
    /// [`Concat::Whole`] for everything else.
    #[serde(default, skip_serializing_if = "Concat::is_whole")]
    pub concat: Concat,
}

/// How an upload takes part in concatenation (the tus `concatenation` extension:
/// tus-js-client's `parallelUploads` sends a file as several partial uploads, then one final
/// upload naming them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Concat {
    /// An upload of its own: published when complete.
    #[default]
    Whole,
    /// A part of a file: never published itself; a final upload is made of it.
    Partial,
    /// Made of these partial uploads (their ids, in order); published when made.
    Final(Vec<String>),
}

impl Concat {
    /// Whether this is [`Concat::Whole`].
    pub fn is_whole(&self) -> bool {
        matches!(self, Concat::Whole)
    }
}

/// Where an assembled file is: a path on a filesystem, or a key in an object store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Location {
    /// A file on a filesystem.
    Path(PathBuf),
    /// An object in a bucket, by its key.
    Object(String),
}

impl Location {
    /// The path, for a file on a filesystem.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::Path(path) => Some(path),
            Location::Object(_) => None,
        }
    }

    /// The last component of the path or key: the name a client may be told.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Path(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Location::Object(key) => key.rsplit('/').next().map(str::to_owned),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(path) => path.display().fmt(f),
            Location::Object(key) => f.write_str(key),
        }
    }
}

/// A file assembled from its pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assembled {
    /// Where the file is (the published name, which the conflict policy may have changed).
    pub location: Location,
    /// Its size in bytes.
    pub size: u64,
    /// The upload it came from.
    pub upload: UploadInfo,
    /// When the upload's first chunk arrived (Unix milliseconds).
    pub started_ms: u64,
    /// When the file was assembled (Unix milliseconds).
    pub assembled_ms: u64,
}

impl Assembled {
    /// The file's path, when it is on a filesystem (the local store).
    pub fn path(&self) -> Option<&Path> {
        self.location.as_path()
    }

    /// How long the upload took, first chunk to assembled file, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.assembled_ms.saturating_sub(self.started_ms)
    }
}
