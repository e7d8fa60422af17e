//! Helpers shared by the integration tests: flow.js requests for a file, deterministic data.
#![allow(dead_code)]

use std::ops::Range;
use std::path::Path;

use chunked_upload::{ChunkBody, Config, ConfigBuilder, Params, RawRequest, RequestKind, Uploads};

/// A file as flow.js would split it.
#[derive(Debug, Clone)]
pub struct FlowFile {
    pub identifier: String,
    pub name: String,
    pub data: Vec<u8>,
    pub chunk_size: u64,
    /// flow.js `forceChunkSize`: last chunk is the remainder instead of up to 2x.
    pub force_chunk_size: bool,
}

impl FlowFile {
    pub fn new(name: &str, data: Vec<u8>, chunk_size: u64) -> FlowFile {
        FlowFile {
            identifier: format!(
                "{}-{}",
                data.len(),
                name.replace(|c: char| !c.is_ascii_alphanumeric(), "")
            ),
            name: name.to_owned(),
            data,
            chunk_size,
            force_chunk_size: false,
        }
    }

    pub fn total_chunks(&self) -> u64 {
        let size = self.data.len() as u64;
        let n = if self.force_chunk_size {
            size.div_ceil(self.chunk_size)
        } else {
            size / self.chunk_size
        };
        n.max(1)
    }

    /// Byte range of 1-based chunk `number`.
    pub fn range(&self, number: u64) -> Range<usize> {
        let size = self.data.len() as u64;
        let start = (number - 1) * self.chunk_size;
        let mut end = (number * self.chunk_size).min(size);
        if number == self.total_chunks() {
            end = size;
        }
        start as usize..end as usize
    }

    pub fn params(&self, number: u64) -> Params {
        let r = self.range(number);
        [
            ("flowChunkNumber", number.to_string()),
            ("flowChunkSize", self.chunk_size.to_string()),
            ("flowCurrentChunkSize", (r.end - r.start).to_string()),
            ("flowTotalSize", self.data.len().to_string()),
            ("flowIdentifier", self.identifier.clone()),
            ("flowFilename", self.name.clone()),
            ("flowRelativePath", self.name.clone()),
            ("flowTotalChunks", self.total_chunks().to_string()),
        ]
        .into_iter()
        .collect()
    }

    pub fn upload(&self, number: u64, scope: &str) -> RawRequest {
        let r = self.range(number);
        RawRequest::new(RequestKind::Upload, self.params(number))
            .with_scope(scope)
            .with_body(ChunkBody::bytes(self.data[r].to_vec()))
    }

    pub fn test(&self, number: u64, scope: &str) -> RawRequest {
        RawRequest::new(RequestKind::Test, self.params(number)).with_scope(scope)
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small deterministic generator for shuffles.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A config with chunks in `dir/chunks` and files in `dir/files`.
pub fn config(dir: &Path) -> ConfigBuilder {
    Config::builder(dir.join("chunks"), dir.join("files"))
}

pub fn uploads(dir: &Path) -> Uploads {
    Uploads::new(config(dir).build()).unwrap()
}

/// Names of the regular, visible files in `dir`.
pub fn visible_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every entry (files and directories, hidden too) below `dir`, relative, sorted.
pub fn all_entries(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
