//! The `socket` capability: outbound TCP to allow-listed `host:port`, with
//! TLS done by the host (rustls, WebPKI roots plus any extra roots the
//! operator trusts), for IMAP, SMTP and other non-HTTP protocols.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::AllowList;

/// Largest single read handed to a guest.
pub const MAX_READ_BYTES: u32 = 64 * 1024;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SocketError {
    #[error("refused by the allow-list: {0}")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("invalid state: {0}")]
    InvalidState(String),
}

/// The TLS set-up shared by every socket of the host.
#[derive(Clone)]
pub struct TlsSettings {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings")
    }
}

impl TlsSettings {
    /// WebPKI roots plus `extra_roots_pem` (PEM certificates the operator
    /// trusts in addition, e.g. a company mail server's private CA).
    pub fn new(extra_roots_pem: &[Vec<u8>]) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in extra_roots_pem {
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("bad PEM certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("unusable root certificate: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between states (during `start_tls`) or after a failure.
    Broken,
}

/// One open connection of a guest.
pub struct Connection {
    stream: Stream,
    host: String,
    timeout: Duration,
    tls: TlsSettings,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .finish()
    }
}

fn io_err(e: std::io::Error) -> SocketError {
    SocketError::Connection(e.to_string())
}

async fn with_timeout<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, SocketError>>,
) -> Result<T, SocketError> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| SocketError::Timeout)?
}

impl Connection {
    /// Connects to `host:port` if the allow-list grants it.
    pub async fn connect(
        allow: &AllowList,
        tls: &TlsSettings,
        host: &str,
        port: u16,
        implicit_tls: bool,
        timeout: Duration,
    ) -> Result<Connection, SocketError> {
        if !allow.allows_socket(host, port) {
            return Err(SocketError::Denied(format!("{host}:{port}")));
        }
        let host_only = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = with_timeout(timeout, async {
            TcpStream::connect((host_only, port)).await.map_err(io_err)
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            stream: Stream::Plain(tcp),
            host: host_only.to_string(),
            timeout,
            tls: tls.clone(),
        };
        if implicit_tls {
            conn.start_tls().await?;
        }
        Ok(conn)
    }

    /// Upgrades to TLS, verifying the certificate for the connected host.
    pub async fn start_tls(&mut self) -> Result<(), SocketError> {
        let tcp = match std::mem::replace(&mut self.stream, Stream::Broken) {
            Stream::Plain(tcp) => tcp,
            other => {
                let state = if matches!(other, Stream::Tls(_)) {
                    "already TLS"
                } else {
                    "closed"
                };
                self.stream = other;
                return Err(SocketError::InvalidState(format!(
                    "start-tls on a connection that is {state}"
                )));
            }
        };
        let name = ServerName::try_from(self.host.clone()).map_err(|e| {
            SocketError::Connection(format!("bad TLS server name {:?}: {e}", self.host))
        })?;
        let connector = self.tls.connector.clone();
        let tls = with_timeout(self.timeout, async {
            connector.connect(name, tcp).await.map_err(io_err)
        })
        .await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Reads up to `max` bytes (at most [`MAX_READ_BYTES`]); empty at EOF.
    pub async fn read(&mut self, max: u32) -> Result<Vec<u8>, SocketError> {
        let mut buf = vec![0u8; max.clamp(1, MAX_READ_BYTES) as usize];
        let timeout = self.timeout;
        let n = match &mut self.stream {
            Stream::Plain(s) => {
                with_timeout(timeout, async { s.read(&mut buf).await.map_err(io_err) }).await?
            }
            Stream::Tls(s) => {
                with_timeout(timeout, async { s.read(&mut buf).await.map_err(io_err) }).await?
            }
            Stream::Broken => return Err(SocketError::InvalidState("connection is closed".into())),
        };
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes all of `data`.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SocketError> {
        let timeout = self.timeout;
        match &mut self.stream {
            Stream::Plain(s) => {
                with_timeout(timeout, async { s.write_all(data).await.map_err(io_err) }).await
            }
            Stream::Tls(s) => {
                with_timeout(timeout, async {
                    s.write_all(data).await.map_err(io_err)?;
                    s.flush().await.map_err(io_err)
                })
                .await
            }
            Stream::Broken => Err(SocketError::InvalidState("connection is closed".into())),
        }
    }
}
