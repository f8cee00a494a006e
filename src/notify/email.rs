//! Notify, email channel: hands a rendered message to SMTP (lettre, with a timeout around
//! every send) or, with no SMTP configured, writes it as an `.eml` file to the outbox folder
//! (written under a temporary name and renamed, so a full disk leaves no partial file).

use std::path::PathBuf;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{EmailSettings, SmtpTls};

/// Why a send failed, and whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the .eml file: {0}")]
    File(#[from] std::io::Error),
    #[error("the send took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("the message cannot be sent: {0}")]
    Invalid(String),
}

impl SendError {
    /// Whether the channel itself failed (the relay unreachable or closing, TLS or
    /// authentication refused, a timeout, the outbox folder unwritable) rather than this
    /// message or its recipient: every message would fail alike, so no recipient is to blame.
    pub fn channel_down(&self) -> bool {
        match self {
            // A reply about this message or recipient is theirs, but for 421 (closing), 454
            // (TLS unavailable) and 530/535 (authentication); no reply at all (connection,
            // TLS, timeout) is the relay's.
            SendError::Smtp(e) => e
                .status()
                .is_none_or(|c| matches!(c.to_string().as_str(), "421" | "454" | "530" | "535")),
            SendError::File(_) | SendError::Timeout(_) => true,
            SendError::Invalid(_) => false,
        }
    }

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
    /// `.eml` files in this folder, one per Message-ID.
    Files {
        dir: PathBuf,
    },
}

impl Mailer {
    pub fn from_settings(email: &EmailSettings) -> Result<Mailer, SendError> {
        let Some(smtp) = &email.smtp else {
            std::fs::create_dir_all(&email.outbox_dir).map_err(|e| {
                SendError::Invalid(format!("cannot create {}: {e}", email.outbox_dir.display()))
            })?;
            return Ok(Mailer::Files { dir: email.outbox_dir.clone() });
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
            Mailer::Files { dir } => {
                let (dir, message) = (dir.clone(), message.to_vec());
                tokio::task::spawn_blocking(move || write_eml(&dir, &message))
                    .await
                    .map_err(|e| SendError::File(std::io::Error::other(e)))??;
                Ok(())
            }
        }
    }

    /// What [`Mailer::send`] goes to, for reports.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { .. } => "SMTP".into(),
            Mailer::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }
}

/// Writes `message` as `<Message-ID>.eml` in `dir`: to a temporary file first, synced, then
/// renamed over the final name. A failed write (a full disk) leaves no partial `.eml`, and
/// a digest sent again after a crash replaces its own file rather than adding a second.
fn write_eml(dir: &std::path::Path, message: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = file_name(message);
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(message)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // The write's error is the one to report; a leftover temporary file is named so
        // that no reader takes it for a message.
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    std::fs::rename(&tmp, dir.join(format!("{name}.eml")))
}

/// The file name of a message: its Message-ID, reduced to characters safe in a path; a
/// message without one gets a name from the time and a counter.
fn file_name(message: &[u8]) -> String {
    let headers = message.split(|b| *b == b'\n').take_while(|l| !l.trim_ascii().is_empty());
    let id = headers
        .filter_map(|l| std::str::from_utf8(l).ok())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id").then(|| value.trim().trim_matches(['<', '>']))
        })
        .map(|id| {
            id.chars()
                .map(|c| if c.is_ascii_alphanumeric() || "@.-_".contains(c) { c } else { '_' })
                .collect::<String>()
        })
        .filter(|id| !id.is_empty());
    id.unwrap_or_else(|| {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{}-{n}", chrono::Utc::now().timestamp_micros(), std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_written_whole_under_its_message_id_and_a_resend_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let msg = b"From: a@b.co\r\nMessage-ID: <digest.2026-02-16.x/y@cierre>\r\n\r\nHola\r\n";
        write_eml(dir.path(), msg).unwrap();
        write_eml(dir.path(), msg).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["digest.2026-02-16.x_y@cierre.eml"]);
        assert_eq!(std::fs::read(dir.path().join(&names[0])).unwrap(), msg);
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        // /dev/full refuses every write as a full disk does.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join(".m@x.eml.tmp")).unwrap();
        let err = write_eml(dir.path(), b"Message-ID: <m@x>\r\n\r\nbody\r\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
