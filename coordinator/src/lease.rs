//! Lease ids: 128 random bits handed to the worker that takes a job, and the only form in which
//! the coordinator keeps them (in memory and in its journal): a digest that does not grant them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Separates lease digests from any other SHA-256 of the same bytes.
const DOMAIN: &[u8] = b"slsg lease v1\0";

/// A new lease id: 128 bits from the operating system's generator, in hex.
pub fn new_lease_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(slsg::data::hex(&bytes))
}

/// What the coordinator stores of a lease id: its SHA-256 (with a domain prefix). Anyone may
/// read the journal; a lease is proved only by the id whose digest this is, and 128 random bits
/// cannot be found from their digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseDigest(String);

impl LeaseDigest {
    pub fn of(lease_id: &str) -> LeaseDigest {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(lease_id.as_bytes());
        LeaseDigest(slsg::data::hex(&hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_not_the_id_and_only_its_id_matches_it() {
        let id = new_lease_id().unwrap();
        assert_eq!(id.len(), 32);
        let digest = LeaseDigest::of(&id);
        assert_eq!(digest, LeaseDigest::of(&id));
        assert_ne!(digest.0, id);
        assert!(!digest.0.contains(&id));
        assert_ne!(
            digest,
            LeaseDigest::of(&digest.0),
            "the digest does not grant the lease"
        );
        assert_ne!(new_lease_id().unwrap(), id);
    }
}
