//! What a client presents to the coordinator and what it trusts: the bearer token, the CA
//! certificate that signed the coordinator's (for `https://`), and the rule that a token never
//! travels in clear text to another machine.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::codegen::http::Uri;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::link::LinkError;

/// A CA certificate file, read and checked.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pem: Vec<u8>,
}

impl ClientTls {
    /// Reads the PEM file at `path`: at least one certificate, nothing unreadable.
    pub fn read(path: &Path) -> Result<ClientTls, LinkError> {
        let bad =
            |reason: String| LinkError::Setup(format!("--tls-ca {}: {reason}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
        if certificates.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        Ok(ClientTls { pem })
    }
}

/// How a client talks to the coordinator.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The bearer token every request carries.
    pub token: Option<String>,
    /// The CA that signed the coordinator's certificate; required for `https://` URLs.
    pub tls: Option<ClientTls>,
    /// Send the token in plain text to a coordinator on another machine (a network that is
    /// encrypted below, such as a service mesh).
    pub allow_plaintext: bool,
}

/// Whether `host` names this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Access {
    /// The endpoint for `url` under these rules: `https://` needs the CA, `http://` carries a
    /// token only to this machine unless plain text is allowed.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, LinkError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| LinkError::Setup(format!("`{url}` is not a URL: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| LinkError::Setup(format!("`{url}` names no host")))?;
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| LinkError::Setup(format!("`{url}`: {e}")))?;
        match (uri.scheme_str(), &self.tls) {
            (Some("https"), Some(tls)) => endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&tls.pem))
                        .domain_name(host.trim_start_matches('[').trim_end_matches(']')),
                )
                .map_err(|e| LinkError::Setup(format!("TLS for `{url}`: {e}"))),
            (Some("https"), None) => Err(LinkError::Setup(format!(
                "`{url}` is https: give the CA certificate that signed the coordinator's with --tls-ca"
            ))),
            (Some("http"), Some(_)) => Err(LinkError::Setup(format!(
                "--tls-ca is given but `{url}` is plain http: use https://"
            ))),
            (Some("http"), None) => {
                if self.token.is_some() && !self.allow_plaintext && !is_loopback_host(host) {
                    return Err(LinkError::Setup(format!(
                        "`{url}` is plain http to another machine and the token would travel in clear text: use https:// with --tls-ca (or --allow-plaintext on an encrypted network)"
                    )));
                }
                Ok(endpoint)
            }
            _ => Err(LinkError::Setup(format!(
                "`{url}`: the coordinator's URL starts with http:// or https://"
            ))),
        }
    }
}

/// A TLS handshake's refusal in an error's chain (the coordinator's certificate not signed by
/// the CA given, or not for its name), as text.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(
            tls @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::AlertReceived(_)
            | rustls::Error::NoCertificatesPresented),
        ) = tls
        {
            return Some(tls.to_string());
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.8.0.1",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "10.0.0.5",
            "0.0.0.0",
            "coordinator",
            "localhost.example",
            "::",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    fn access(token: bool, allow_plaintext: bool) -> Access {
        Access {
            token: token.then(|| "t".to_string()),
            tls: None,
            allow_plaintext,
        }
    }

    #[test]
    fn a_token_goes_in_clear_text_only_to_this_machine() {
        assert!(
            access(true, false)
                .endpoint("http://127.0.0.1:50051")
                .is_ok()
        );
        assert!(access(true, false).endpoint("http://localhost:1").is_ok());
        let refused = access(true, false)
            .endpoint("http://10.0.0.5:50051")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("clear text"), "{refused}");
        assert!(access(true, true).endpoint("http://10.0.0.5:50051").is_ok());
        assert!(
            access(false, false)
                .endpoint("http://10.0.0.5:50051")
                .is_ok()
        );
    }

    #[test]
    fn https_needs_a_ca_and_a_ca_needs_https() {
        let missing = access(true, false)
            .endpoint("https://coordinator:50051")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--tls-ca"), "{missing}");
        for url in ["ftp://host:1", "host:1", "http://"] {
            assert!(access(true, true).endpoint(url).is_err(), "{url}");
        }
    }

    #[test]
    fn ca_files_that_are_not_certificates_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        let error = ClientTls::read(&missing).unwrap_err().to_string();
        assert!(error.contains("absent.pem"), "{error}");
        for (name, text) in [
            ("empty.pem", ""),
            ("text.pem", "hello\n"),
            (
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            (
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            ),
        ] {
            let file = dir.path().join(name);
            std::fs::write(&file, text).unwrap();
            let error = ClientTls::read(&file).unwrap_err().to_string();
            assert!(error.contains(name), "{name}: {error}");
        }
    }
}
