//! TLS configs (ring provider only): the Web Server DAT's server config from PEM files, with
//! password-encrypted PKCS#8 keys decrypted here (every failure names its file), and the WebSocket
//! DAT's client config (webpki or a CA file's roots, or no verification when the user asks).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

/// The provider every TLS config in datpatch uses (keeps aws-lc out of the build).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8 with
/// `password`) and checks that they belong together.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
    password: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certificates(certificate)?;
    let key = read_private_key(private_key, password)?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key {} does not match the certificate {}",
                private_key.display(),
                certificate.display()
            ),
            other => format!(
                "TLS certificate {} / key {}: {other}",
                certificate.display(),
                private_key.display()
            ),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The WebSocket DAT's rustls client configuration (ring provider): roots from `ca_pem` (PEM
/// certificates) when given, else the built-in webpki roots; `verify_cert` false accepts any
/// certificate.
pub fn client_config(
    verify_cert: bool,
    ca_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    if !verify_cert {
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertificateVerification { provider }))
                .with_no_client_auth(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file: certificate not usable as a root: {e}"))?;
            }
            if roots.is_empty() {
                return Err("CA file holds no PEM certificate".to_string());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// Accepts any server certificate. Used only when the user turns Verify Certificate off (a
/// self-signed test server): the connection is encrypted but the server is not authenticated.
/// Handshake signatures are still checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct NoCertificateVerification {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

pub fn read_private_key(path: &Path, password: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path, "private key")?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        if password.is_empty() {
            return Err(format!(
                "private key {} is encrypted: set the Certificate Password",
                path.display()
            ));
        }
        let (_, document) = pkcs8::der::Document::from_pem(&text)
            .map_err(|e| format!("private key {}: {e}", path.display()))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|e| format!("private key {}: {e}", path.display()))?;
        let decrypted = encrypted.decrypt(password.as_bytes()).map_err(|_| {
            format!(
                "wrong certificate password for private key {}",
                path.display()
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            decrypted.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "private key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            path.display()
        ),
        other => format!("private key file {}: {other}", path.display()),
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    if path.as_os_str().is_empty() {
        return Err(format!("no {what} file set"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_rejects_a_ca_file_without_certificates() {
        assert!(client_config(true, Some(b"not pem")).is_err());
        assert!(client_config(true, None).is_ok());
        assert!(client_config(false, None).is_ok());
    }
}
