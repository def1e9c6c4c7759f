//! The coordinator's side of TLS: its certificate chain and key, read and checked, and the rule
//! that a token is never accepted in clear text from another machine.

use std::net::SocketAddr;
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Identity, ServerTlsConfig};

use crate::error::CoordinatorError;

/// A certificate chain and its key, read and checked.
#[derive(Clone, Debug)]
pub struct ServerTls {
    certificate: Vec<u8>,
    key: Vec<u8>,
}

fn bad(flag: &str, path: &Path, reason: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Tls(format!("{flag} {}: {reason}", path.display()))
}

impl ServerTls {
    /// Reads the PEM files: at least one certificate, and one private key.
    pub fn read(certificate: &Path, key: &Path) -> Result<ServerTls, CoordinatorError> {
        let cert_pem = std::fs::read(certificate).map_err(|e| bad("--tls-cert", certificate, e))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("--tls-cert", certificate, format!("not PEM ({e})")))?;
        if chain.is_empty() {
            return Err(bad("--tls-cert", certificate, "holds no PEM certificate"));
        }
        let key_pem = std::fs::read(key).map_err(|e| bad("--tls-key", key, e))?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| bad("--tls-key", key, format!("no PEM private key ({e})")))?;
        Ok(ServerTls {
            certificate: cert_pem,
            key: key_pem,
        })
    }

    pub fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.certificate, &self.key))
    }
}

/// Who may call the coordinator and how its connections are protected.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// The bearer token every call must carry (none: any caller).
    pub token: Option<String>,
    pub tls: Option<ServerTls>,
    /// Take the token in plain text on an address other machines reach.
    pub allow_plaintext: bool,
}

impl Security {
    /// Whether serving on `address` keeps the token off the network in clear text.
    pub fn check(&self, address: SocketAddr) -> Result<(), CoordinatorError> {
        check_plaintext(
            address,
            self.token.is_some(),
            self.tls.is_some(),
            self.allow_plaintext,
        )
    }
}

/// Refuses to take a token in plain text on an address other machines reach, unless the
/// operator allowed it (a network encrypted below, such as a service mesh).
fn check_plaintext(
    address: SocketAddr,
    token: bool,
    tls: bool,
    allow_plaintext: bool,
) -> Result<(), CoordinatorError> {
    if token && !tls && !allow_plaintext && !address.ip().is_loopback() {
        return Err(CoordinatorError::Tls(format!(
            "--listen {address} reaches other machines and the token would travel in clear text: give --tls-cert and --tls-key (or --allow-plaintext on an encrypted network)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_with_a_token_only_on_loopback() {
        let local: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let v6: SocketAddr = "[::1]:50051".parse().unwrap();
        assert!(check_plaintext(local, true, false, false).is_ok());
        assert!(check_plaintext(v6, true, false, false).is_ok());
        assert!(check_plaintext(any, true, false, false).is_err());
        assert!(check_plaintext(any, true, true, false).is_ok());
        assert!(check_plaintext(any, true, false, true).is_ok());
        assert!(check_plaintext(any, false, false, false).is_ok());
    }

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "hello").unwrap();
        let absent = dir.path().join("absent.pem");
        for (cert, key, needle) in [(&absent, &text, "absent.pem"), (&text, &text, "--tls-cert")] {
            let error = ServerTls::read(cert, key).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
