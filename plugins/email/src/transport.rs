//! The byte stream the IMAP and SMTP clients speak over.
//!
//! In the component it is the host's socket ([`webcare_plugin::socket`]);
//! in native unit tests it is a [`Script`] that replays a recorded server
//! transcript and records what the client wrote, so both protocol clients
//! are tested without a network.

use webcare_plugin::socket::{Connection, TlsMode};
use webcare_plugin::{Error, Result};

/// A line-oriented, bidirectional byte stream.
pub trait Transport {
    /// One line without its CRLF; `None` when the peer closed the connection.
    fn read_line(&mut self) -> Result<Option<String>>;
    /// Exactly `len` bytes (an IMAP literal).
    fn read_exact(&mut self, len: usize) -> Result<Vec<u8>>;
    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    /// Upgrades the stream to TLS (STARTTLS).
    fn start_tls(&mut self) -> Result<()>;
}

impl Transport for Connection {
    fn read_line(&mut self) -> Result<Option<String>> {
        Connection::read_line(self)
    }

    fn read_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        Connection::read_exact(self, len)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        Connection::write_all(self, data)
    }

    fn start_tls(&mut self) -> Result<()> {
        Connection::start_tls(self)
    }
}

/// How a connection is secured, from the `imap_security` and
/// `smtp_security` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connect, then the protocol's STARTTLS before anything secret.
    StartTls,
    /// No TLS at all: only for servers on loopback (tests, local relays).
    None,
}

impl Security {
    /// Parses a setting value; `setting` names the key in errors.
    pub fn parse(setting: &str, value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "tls" => Ok(Self::Tls),
            "starttls" => Ok(Self::StartTls),
            "none" => Ok(Self::None),
            other => Err(Error::invalid_input(format!(
                "setting `{setting}` = `{other}` is not one of `tls`, `starttls`, `none`"
            ))),
        }
    }

    /// Refuses `none` for anything but a loopback host: credentials and
    /// customer mail must never cross a network in clear text.
    pub fn check_host(self, setting: &str, host: &str) -> Result<()> {
        if self == Self::None && !is_loopback(host) {
            return Err(Error::invalid_input(format!(
                "setting `{setting}` = `none` is only allowed for a loopback host, not `{host}`; use `tls` or `starttls`"
            )));
        }
        Ok(())
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Opens a connection to `host:port`, with TLS from the start for
/// [`Security::Tls`] (STARTTLS is up to the protocol client).
pub fn connect(host: &str, port: u16, security: Security) -> Result<Connection> {
    let tls = match security {
        Security::Tls => TlsMode::Implicit,
        Security::StartTls | Security::None => TlsMode::None,
    };
    Connection::connect(host, port, tls, None)
}

/// A recorded server transcript for unit tests: serves `input` to the
/// client and keeps everything the client writes in `written`.
#[cfg(test)]
#[derive(Default)]
pub struct Script {
    input: std::collections::VecDeque<u8>,
    /// Everything the client wrote, in order.
    pub written: Vec<u8>,
    /// How often the client asked for TLS.
    pub tls_upgrades: usize,
}

#[cfg(test)]
impl Script {
    /// A transcript whose server side is `input`.
    pub fn new(input: &[u8]) -> Self {
        Self {
            input: input.iter().copied().collect(),
            ..Self::default()
        }
    }

    /// What the client wrote, as text.
    pub fn written_text(&self) -> String {
        String::from_utf8_lossy(&self.written).into_owned()
    }
}

#[cfg(test)]
impl Transport for Script {
    fn read_line(&mut self) -> Result<Option<String>> {
        if self.input.is_empty() {
            return Ok(None);
        }
        let mut line = Vec::new();
        while let Some(byte) = self.input.pop_front() {
            if byte == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            line.push(byte);
        }
        Err(Error::transient("script ended mid-line"))
    }

    fn read_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        if self.input.len() < len {
            return Err(Error::transient("script ended mid-literal"));
        }
        Ok(self.input.drain(..len).collect())
    }

    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.written.extend_from_slice(data);
        Ok(())
    }

    fn start_tls(&mut self) -> Result<()> {
        self.tls_upgrades += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_values_and_loopback_rule() {
        assert_eq!(Security::parse("s", " TLS ").unwrap(), Security::Tls);
        assert_eq!(
            Security::parse("s", "starttls").unwrap(),
            Security::StartTls
        );
        assert!(Security::parse("s", "ssl").is_err());
        assert!(Security::None.check_host("s", "127.0.0.1").is_ok());
        assert!(Security::None.check_host("s", "localhost").is_ok());
        assert!(Security::None.check_host("s", "[::1]").is_ok());
        let error = Security::None
            .check_host("imap_security", "imap.example.com")
            .unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)), "{error}");
        assert!(Security::Tls.check_host("s", "imap.example.com").is_ok());
    }
}
