//! Protocol dialects: each widget's parameter names and numbering, mapped onto one
//! [`ChunkInfo`].
//!
//! | concern | flow.js | resumable.js |
//! |---|---|---|
//! | upload key | `flowIdentifier` | `resumableIdentifier` |
//! | chunk number | `flowChunkNumber`, 1-based | `resumableChunkNumber`, 1-based |
//! | total chunks | `flowTotalChunks` | `resumableTotalChunks` |
//! | total size | `flowTotalSize` | `resumableTotalSize` |
//! | nominal chunk size | `flowChunkSize` | `resumableChunkSize` |
//! | this chunk's size | `flowCurrentChunkSize` | `resumableCurrentChunkSize` |
//! | file name | `flowFilename` | `resumableFilename` |
//! | relative path | `flowRelativePath` | `resumableRelativePath` |
//! | file part | `file` | `file` (with the `parameterNamespace` prefix) |
//!
//! [`Dialects`] holds the dialects a route accepts, in detection order: the first one whose
//! identifier parameter is present parses the request. [`Dialects::only`] forces one.

mod flow;

use std::fmt;
use std::sync::Arc;

use crate::chunk::ChunkInfo;
use crate::error::{Error, Result};
use crate::request::ChunkRequest;

pub use flow::{Flow, Resumable};

/// One widget's way of describing a chunk.
pub trait Dialect: fmt::Debug + Send + Sync {
    /// A short name, e.g. `"flow.js"`.
    fn name(&self) -> &'static str;

    /// Whether the request carries this dialect's parameters.
    fn detect(&self, request: &dyn ChunkRequest) -> bool;

    /// Builds the typed view of the request. Implementations check that parameters are present
    /// and well-formed; [`ChunkInfo::validate`] then checks their consistency and the limits.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming a missing or malformed parameter.
    fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo>;

    /// The name of the multipart field that carries the chunk's bytes.
    fn file_field(&self) -> &str;

    /// The name of the parameter holding the upload identifier (what a finalize request sends
    /// to name its upload).
    fn identifier_field(&self) -> &str;
}

/// The dialects one upload route accepts, in detection order.
#[derive(Clone)]
pub struct Dialects {
    list: Vec<Arc<dyn Dialect>>,
}

impl Default for Dialects {
    /// flow.js, then resumable.js.
    fn default() -> Dialects {
        Dialects::none().with(Flow::new()).with(Resumable::new())
    }
}

impl fmt::Debug for Dialects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|d| d.name()))
            .finish()
    }
}

impl Dialects {
    /// No dialect at all; add some with [`with`](Dialects::with).
    pub fn none() -> Dialects {
        Dialects { list: Vec::new() }
    }

    /// Only `dialect`: every request is parsed as it, without detection.
    pub fn only(dialect: impl Dialect + 'static) -> Dialects {
        Dialects::none().with(dialect)
    }

    /// Adds a dialect after the ones present.
    #[must_use]
    pub fn with(mut self, dialect: impl Dialect + 'static) -> Dialects {
        self.list.push(Arc::new(dialect));
        self
    }

    /// The dialects, in detection order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Dialect> {
        self.list.iter().map(|d| &**d)
    }

    /// The dialect that handles `request`: the only one if there is one, else the first that
    /// detects its parameters.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when no dialect recognises the request.
    pub fn select(&self, request: &dyn ChunkRequest) -> Result<&dyn Dialect> {
        if let [only] = self.list.as_slice() {
            return Ok(&**only);
        }
        self.iter().find(|d| d.detect(request)).ok_or_else(|| {
            let names: Vec<&str> = self.iter().map(|d| d.name()).collect();
            Error::bad(
                "parameters",
                format!(
                    "no upload protocol recognised (this endpoint speaks {})",
                    names.join(", ")
                ),
            )
        })
    }

    /// Parses `request` with the dialect that handles it.
    ///
    /// # Errors
    /// As [`select`](Dialects::select) and [`Dialect::parse`].
    pub fn parse(&self, request: &dyn ChunkRequest) -> Result<ChunkInfo> {
        self.select(request)?.parse(request)
    }

    /// The upload identifier a finalize ("done") request names, read with the dialect that
    /// handles it.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when no dialect recognises the request or the identifier is
    /// missing or empty.
    pub fn finalize_identifier<'r>(&self, request: &'r dyn ChunkRequest) -> Result<&'r str> {
        let field = self.select(request)?.identifier_field();
        let id = required(request, field)?;
        if id.is_empty() {
            return Err(Error::bad(field, "must not be empty"));
        }
        Ok(id)
    }

    /// Whether `name` is the file field of any dialect (adapters use it to pick the multipart
    /// part that holds the chunk).
    pub fn is_file_field(&self, name: &str) -> bool {
        self.iter().any(|d| d.file_field() == name)
    }
}

/// Reads a required text parameter.
pub(crate) fn required<'r>(request: &'r dyn ChunkRequest, name: &str) -> Result<&'r str> {
    request
        .param(name)
        .ok_or_else(|| Error::bad(name, "missing"))
}

/// Reads a required non-negative integer parameter.
pub(crate) fn required_u64(request: &dyn ChunkRequest, name: &str) -> Result<u64> {
    crate::chunk::parse_u64(name, required(request, name)?)
}

/// Reads an optional non-negative integer parameter.
pub(crate) fn optional_u64(request: &dyn ChunkRequest, name: &str) -> Result<Option<u64>> {
    request
        .param(name)
        .map(|v| crate::chunk::parse_u64(name, v))
        .transpose()
}
