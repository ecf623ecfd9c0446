//! TLS for the Web Server DAT: a rustls server config (ring provider only) from PEM files, with
//! password-encrypted PKCS#8 keys decrypted here. Every failure names its file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
