//! TLS to PostgreSQL, by rustls (the same stack as every other connection
//! of the host), for queues on another machine.
//!
//! The URL's `sslmode` decides, as operators know it from libpq:
//! * `sslmode=require`: TLS or no connection, and the server's certificate
//!   is **verified**: signed by a trusted root and naming the host of the
//!   URL (what libpq calls `verify-full`; webcare has no unverified TLS,
//!   which guards against nobody who can intercept the connection).
//!   Trusted roots are the PEM certificates of `[storage] ca_file` when
//!   given (a database's private CA: then only it is trusted), else the
//!   public WebPKI roots (managed databases with public certificates).
//! * `sslmode=disable`, `prefer` or none: plain TCP (a database on this
//!   machine or a private network). `prefer` cannot be told apart from no
//!   `sslmode` at all, and an opportunistic, unverified TLS is no
//!   protection, so it is not attempted.
//!
//! Client certificates are not supported yet: authenticate with a password
//! (SCRAM) over the verified TLS connection.

use std::path::Path;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StorageError;

/// How the queue's connections are made.
#[derive(Clone)]
pub enum PgTls {
    /// Plain TCP.
    Off,
    /// TLS with the server's certificate verified.
    Verified(MakeRustlsConnect),
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PgTls::Off => "PgTls::Off",
            PgTls::Verified(_) => "PgTls::Verified",
        })
    }
}

impl PgTls {
    /// The TLS that `config` (its `sslmode`) and `ca_file` ask for.
    pub fn for_config(config: &Config, ca_file: Option<&Path>) -> Result<Self, StorageError> {
        if config.get_ssl_mode() != SslMode::Require {
            return match ca_file {
                None => Ok(PgTls::Off),
                Some(path) => Err(StorageError::Unavailable(format!(
                    "storage.ca_file ({}) is set, but the URL does not ask for TLS; add \
                     ?sslmode=require to the URL",
                    path.display()
                ))),
            };
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    StorageError::Unavailable(format!(
                        "storage.ca_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| {
                        StorageError::Unavailable(format!(
                            "storage.ca_file: {} is not PEM: {e}",
                            path.display()
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        StorageError::Unavailable(format!(
                            "storage.ca_file: unusable certificate in {}: {e}",
                            path.display()
                        ))
                    })?;
                }
                if roots.is_empty() {
                    return Err(StorageError::Unavailable(format!(
                        "storage.ca_file: {} holds no certificate (expected PEM, \
                         -----BEGIN CERTIFICATE-----)",
                        path.display()
                    )));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StorageError::Unavailable(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(PgTls::Verified(MakeRustlsConnect::new(tls)))
    }

    /// A pool manager making connections this way.
    pub(super) fn manager(
        &self,
        config: Config,
        manager: deadpool_postgres::ManagerConfig,
    ) -> deadpool_postgres::Manager {
        match self {
            PgTls::Off => deadpool_postgres::Manager::from_config(config, NoTls, manager),
            PgTls::Verified(tls) => {
                deadpool_postgres::Manager::from_config(config, tls.clone(), manager)
            }
        }
    }

    /// One connection outside the pool; its I/O runs on a task of its own,
    /// which logs how the session ended (`what` names the session).
    pub(super) async fn connect(
        &self,
        config: &Config,
        what: &'static str,
    ) -> Result<Client, tokio_postgres::Error> {
        fn spawn<F>(connection: F, what: &'static str)
        where
            F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
        {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "{what} ended");
                }
            });
        }
        match self {
            PgTls::Off => {
                let (client, connection) = config.connect(NoTls).await?;
                spawn(connection, what);
                Ok(client)
            }
            PgTls::Verified(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                spawn(connection, what);
                Ok(client)
            }
        }
    }
}

/// Runs `LISTEN` on `client` and drives `connection`, forwarding the
/// payloads of its notifications into `sender`, until the session ends or
/// the receiver is dropped. The task owns the client: the session lives
/// exactly as long as someone reads. `listening` learns whether `LISTEN`
/// went through.
fn forward_notifications<S, T>(
    client: Client,
    mut connection: tokio_postgres::Connection<S, T>,
    listen: String,
    listening: tokio::sync::oneshot::Sender<Result<(), tokio_postgres::Error>>,
    sender: tokio::sync::mpsc::Sender<String>,
    what: &'static str,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let started = client.batch_execute(&listen);
        tokio::pin!(started);
        let mut listening = Some(listening);
        loop {
            tokio::select! {
                done = &mut started, if listening.is_some() => {
                    let failed = done.is_err();
                    if let Some(tell) = listening.take() {
                        let _ = tell.send(done);
                    }
                    if failed {
                        return;
                    }
                }
                message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(note))) => {
                        if sender.send(note.payload().to_string()).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "{what} ended");
                        return;
                    }
                    None => return,
                },
            }
        }
    });
}

impl PgTls {
    /// One connection outside the pool that runs `listen` (`LISTEN ...`)
    /// and forwards its notifications, payload by payload, into the
    /// returned receiver; the receiver closes when the session ends, and
    /// dropping it ends the session.
    pub(super) async fn connect_listening(
        &self,
        config: &Config,
        listen: &str,
        what: &'static str,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, tokio_postgres::Error> {
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        let (tell, listening) = tokio::sync::oneshot::channel();
        let listen = listen.to_string();
        match self {
            PgTls::Off => {
                let (client, connection) = config.connect(NoTls).await?;
                forward_notifications(client, connection, listen, tell, sender, what);
            }
            PgTls::Verified(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                forward_notifications(client, connection, listen, tell, sender, what);
            }
        }
        match listening.await {
            Ok(result) => result.map(|()| receiver),
            // The session ended before LISTEN answered: an empty, closed
            // receiver says so to the caller, who listens again.
            Err(_) => Ok(receiver),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        url.parse().expect("a valid URL")
    }

    #[test]
    fn sslmode_decides_and_a_ca_file_needs_require() {
        let plain = config("postgres://care@db.internal/queue");
        assert!(matches!(PgTls::for_config(&plain, None), Ok(PgTls::Off)));
        let disabled = config("postgres://care@db.internal/queue?sslmode=disable");
        assert!(matches!(PgTls::for_config(&disabled, None), Ok(PgTls::Off)));
        let required = config("postgres://care@db.internal/queue?sslmode=require");
        assert!(matches!(
            PgTls::for_config(&required, None),
            Ok(PgTls::Verified(_))
        ));

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let error = PgTls::for_config(&plain, Some(&ca))
            .unwrap_err()
            .to_string();
        assert!(error.contains("add ?sslmode=require"), "{error}");
        let error = PgTls::for_config(&required, Some(&ca))
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds no certificate"), "{error}");
        let error = PgTls::for_config(&required, Some(&dir.path().join("gone.pem")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read"), "{error}");
    }
}
