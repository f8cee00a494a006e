//! TLS: the one cryptography provider (ring) every HTTPS and SMTPS connection uses.

/// Installs ring as the process-wide rustls provider, once; later calls do nothing.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none()
        && rustls::crypto::ring::default_provider().install_default().is_err()
    {
        // Another thread installed one first: that is all we need.
        tracing::debug!("a rustls crypto provider was already installed");
    }
}
