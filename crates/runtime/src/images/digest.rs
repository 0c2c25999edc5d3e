//! `sha256:<hex>` digests: the only algorithm the store accepts, checked
//! strictly because the hex part becomes a file name.

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// The hex part of a `sha256:` digest, or an error naming the bad digest.
pub(crate) fn hex_of(digest: &str) -> Result<&str, ImageError> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        ImageError::Invalid(format!(
            "unsupported digest {digest:?}: only sha256 is accepted"
        ))
    })?;
    let valid = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        Ok(hex)
    } else {
        Err(ImageError::Invalid(format!("malformed digest {digest:?}")))
    }
}

/// The digest of some bytes.
pub(crate) fn of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Incremental hashing for streamed blobs.
#[derive(Default)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> String {
        format!("sha256:{}", hex(&self.0.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test fixtures are built here
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish(), of(b"abc"));
    }

    #[test]
    fn digests_that_could_escape_the_blob_directory_are_refused() {
        assert!(hex_of("sha256:../../etc/passwd").is_err());
        assert!(hex_of("sha512:abcd").is_err());
        assert!(hex_of(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(hex_of(&of(b"x")).is_ok());
    }
}
