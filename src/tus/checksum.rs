//! The running digest of a tus append's body (the `checksum` extension), computed as the bytes
//! are written, compared when the body ends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::headers::{Checksum, DeclaredChecksum};
use crate::error::{Error, Result};

/// A digest being computed.
#[derive(Debug, Clone)]
enum State {
    Sha1(Sha1),
    Md5(Md5),
    Sha256(Sha256),
}

/// The digest of the bytes seen so far, to be compared with what the request declared.
#[derive(Debug, Clone)]
pub(crate) struct Verifier {
    declared: DeclaredChecksum,
    state: State,
    received: u64,
}

impl Verifier {
    pub(crate) fn new(declared: DeclaredChecksum) -> Verifier {
        let state = match declared.algorithm {
            Checksum::Sha1 => State::Sha1(Sha1::new()),
            Checksum::Md5 => State::Md5(Md5::new()),
            Checksum::Sha256 => State::Sha256(Sha256::new()),
        };
        Verifier {
            declared,
            state,
            received: 0,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        match &mut self.state {
            State::Sha1(h) => h.update(bytes),
            State::Md5(h) => h.update(bytes),
            State::Sha256(h) => h.update(bytes),
        }
    }

    /// Whether the bytes seen have the declared digest.
    ///
    /// # Errors
    /// [`Error::ChecksumMismatch`] when not.
    pub(crate) fn verify(self) -> Result<()> {
        let actual = match self.state {
            State::Sha1(h) => h.finalize().to_vec(),
            State::Md5(h) => h.finalize().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
        };
        if actual == self.declared.digest {
            return Ok(());
        }
        Err(Error::ChecksumMismatch {
            algorithm: self.declared.algorithm.name(),
            expected: STANDARD.encode(&self.declared.digest),
            actual: STANDARD.encode(actual),
            received: self.received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tus::headers::parse_checksum;

    fn verifier(header: &str) -> Verifier {
        Verifier::new(parse_checksum(header.as_bytes()).unwrap())
    }

    #[test]
    fn every_algorithm_verifies_split_bodies() {
        for header in [
            "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=",
            "md5 XUFAKrxLKna5cZ2REBfFkg==",
            "sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
        ] {
            // "hello", fed at every split point.
            for split in 0..=5 {
                let mut v = verifier(header);
                v.update(&b"hello"[..split]);
                v.update(&b"hello"[split..]);
                v.verify().unwrap();
            }
            let mut wrong = verifier(header);
            wrong.update(b"hellO");
            assert!(matches!(
                wrong.verify(),
                Err(Error::ChecksumMismatch { received: 5, .. })
            ));
        }
    }
}
