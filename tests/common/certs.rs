//! Throwaway certificates for the relay's own HTTPS.

/// A CA and a certificate for 127.0.0.1 that it signed.
pub struct Certs {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn certs() -> Certs {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own: with rcgen's default for both, OpenSSL takes the leaf for
    // self-signed (its subject is its issuer).
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "relayapi test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Certs {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes the certificate and key into `dir` and returns the relay's TLS setting for them,
/// and the CA's file (for a client's `SSL_CERT_FILE`).
pub fn relay_tls(
    dir: &std::path::Path,
    certs: &Certs,
) -> (
    std::sync::Arc<relayapi::server::tls::ReloadableCert>,
    std::path::PathBuf,
) {
    let (cert, key, ca) = (
        dir.join("tls-cert.pem"),
        dir.join("tls-key.pem"),
        dir.join("tls-ca.pem"),
    );
    std::fs::write(&cert, &certs.cert_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    relayapi::server::install_crypto_provider();
    let tls = relayapi::server::tls::ReloadableCert::load(&cert, &key).expect("a good certificate");
    (tls, ca)
}
