//! Notify, email channel: hands a rendered message to SMTP (lettre, with a timeout around
//! every send) or, with no SMTP configured, writes it as an `.eml` file to the outbox folder.

use std::path::PathBuf;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{EmailSettings, SmtpTls};

/// Why a send failed, and whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the .eml file: {0}")]
    File(#[from] lettre::transport::file::Error),
    #[error("the send took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("the message cannot be sent: {0}")]
    Invalid(String),
}

impl SendError {
    pub fn retryable(&self) -> bool {
        match self {
            // 5xx replies (mailbox unknown, message refused) will not change by retrying.
            SendError::Smtp(e) => !e.is_permanent(),
            SendError::File(_) | SendError::Timeout(_) => true,
            SendError::Invalid(_) => false,
        }
    }
}

/// Where emails go.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        timeout: std::time::Duration,
    },
    /// `.eml` files in this folder.
    Files {
        dir: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
}

impl Mailer {
    pub fn from_settings(email: &EmailSettings) -> Result<Mailer, SendError> {
        let Some(smtp) = &email.smtp else {
            std::fs::create_dir_all(&email.outbox_dir).map_err(|e| {
                SendError::Invalid(format!("cannot create {}: {e}", email.outbox_dir.display()))
            })?;
            return Ok(Mailer::Files {
                dir: email.outbox_dir.clone(),
                transport: AsyncFileTransport::new(&email.outbox_dir),
            });
        };
        crate::tls::install_crypto_provider();
        let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls, SendError> {
            let mut params = TlsParameters::builder(smtp.host.clone());
            if let Some(pem) = &smtp.ca_pem {
                params = params.add_root_certificate(Certificate::from_pem(pem)?);
            }
            Ok(wrap(params.build_rustls()?))
        };
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => tls(Tls::Required)?,
            SmtpTls::Implicit => tls(Tls::Wrapper)?,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder
                .credentials(Credentials::new(user.clone(), password.expose_secret().to_string()));
        }
        Ok(Mailer::Smtp { transport: builder.build(), timeout: smtp.timeout })
    }

    /// Sends one formatted message to the envelope's recipients.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        match self {
            Mailer::Smtp { transport, timeout } => {
                // lettre's own timeout covers the connection only: bound the whole send.
                tokio::time::timeout(*timeout * 2, transport.send_raw(envelope, message))
                    .await
                    .map_err(|_| SendError::Timeout(*timeout * 2))??;
                Ok(())
            }
            Mailer::Files { transport, .. } => {
                transport.send_raw(envelope, message).await?;
                Ok(())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { .. } => "SMTP".into(),
            Mailer::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }
}
