//! Outbound TCP for protocols that are not HTTP (IMAP, SMTP), through the
//! host. Only `host:port` pairs on the connector's allow-list can be
//! reached; TLS is done by the host, from the first byte
//! ([`TlsMode::Implicit`]) or later with [`Connection::start_tls`].
//!
//! ```no_run
//! # fn main() -> webcare_plugin::Result<()> {
//! use webcare_plugin::socket::{Connection, TlsMode};
//!
//! let mut imap = Connection::connect("imap.example.com", 993, TlsMode::Implicit, Some(10_000))?;
//! let greeting = imap.read_line()?;
//! imap.write_all(b"a1 CAPABILITY\r\n")?;
//! while let Some(line) = imap.read_line()? {
//!     if line.starts_with("a1 ") {
//!         break;
//!     }
//! }
//! # let _ = greeting;
//! # Ok(())
//! # }
//! ```

use crate::bindings::webcare::connector::socket as host;
use crate::{Error, Result};

pub use host::TlsMode;

/// The most the host returns from one read.
const READ_CHUNK_BYTES: u32 = 64 * 1024;
/// The longest line [`Connection::read_line`] accepts, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// An open connection with a read buffer. Dropping it closes it.
pub struct Connection {
    inner: host::Connection,
    /// `host:port`, for error details.
    peer: String,
    /// Bytes read from the peer but not yet handed out.
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `host:port`. `timeout_ms` bounds the connect and every
    /// later read or write; `None` uses the connector's limit.
    pub fn connect(host: &str, port: u16, tls: TlsMode, timeout_ms: Option<u32>) -> Result<Self> {
        let peer = format!("{host}:{port}");
        let inner = host::connect(host, port, tls, timeout_ms)
            .map_err(|error| socket_error(&peer, error))?;
        Ok(Self {
            inner,
            peer,
            buffer: Vec::new(),
        })
    }

    /// Reads up to `max_bytes` (buffered bytes first, else waiting for at
    /// least one byte from the peer). An empty result means the peer closed
    /// the connection.
    pub fn read(&mut self, max_bytes: usize) -> Result<Vec<u8>> {
        if self.buffer.is_empty() {
            self.fill()?;
        }
        let take = max_bytes.min(self.buffer.len());
        Ok(self.buffer.drain(..take).collect())
    }

    /// Reads exactly `len` bytes (an IMAP literal, an SMTP chunk); a peer
    /// that closes before is [`Error::Transient`].
    pub fn read_exact(&mut self, len: usize) -> Result<Vec<u8>> {
        while self.buffer.len() < len {
            if self.fill()? == 0 {
                return Err(self.closed_early());
            }
        }
        Ok(self.buffer.drain(..len).collect())
    }

    /// Reads one line and returns it without its line ending. Lines end in
    /// CRLF; a bare LF is accepted too. Invalid UTF-8 becomes `U+FFFD` (use
    /// [`read_exact`](Self::read_exact) for binary data). `None` when the
    /// peer closed the connection between lines; a connection closed in the
    /// middle of a line is [`Error::Transient`], a line longer than
    /// [`MAX_LINE_BYTES`] is [`Error::InvalidInput`].
    pub fn read_line(&mut self) -> Result<Option<String>> {
        let mut searched = 0;
        loop {
            if let Some(line) = take_line(&mut self.buffer, searched) {
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buffer.len() > MAX_LINE_BYTES {
                return Err(Error::invalid_input(format!(
                    "{} sent a line longer than {MAX_LINE_BYTES} bytes",
                    self.peer
                )));
            }
            searched = self.buffer.len();
            if self.fill()? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(self.closed_early())
                };
            }
        }
    }

    /// Writes all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.inner
            .write(data)
            .map_err(|error| socket_error(&self.peer, error))
    }

    /// Upgrades a plain connection to TLS (STARTTLS), verifying the peer's
    /// certificate for the host name given to [`connect`](Self::connect).
    ///
    /// Refused with [`Error::InvalidInput`] while unread plaintext is
    /// buffered: bytes the peer sent before the handshake must not be taken
    /// for protected ones (the STARTTLS command-injection attack).
    pub fn start_tls(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            return Err(Error::invalid_input(format!(
                "{} sent {} bytes of plaintext before the TLS handshake",
                self.peer,
                self.buffer.len()
            )));
        }
        self.inner
            .start_tls()
            .map_err(|error| socket_error(&self.peer, error))
    }

    /// Reads one chunk from the peer into the buffer; returns its length
    /// (0 when the peer closed the connection).
    fn fill(&mut self) -> Result<usize> {
        let chunk = self
            .inner
            .read(READ_CHUNK_BYTES)
            .map_err(|error| socket_error(&self.peer, error))?;
        self.buffer.extend_from_slice(&chunk);
        Ok(chunk.len())
    }

    /// The error for a peer that closed in the middle of a line or a read.
    fn closed_early(&self) -> Error {
        Error::transient(format!("{} closed the connection mid-message", self.peer))
    }
}

/// Removes the first line from `buffer` and returns it without `\r\n` or
/// `\n`; `None` if no complete line is buffered. The first `searched` bytes
/// are known to hold no line feed.
fn take_line(buffer: &mut Vec<u8>, searched: usize) -> Option<Vec<u8>> {
    let end = searched
        + buffer
            .get(searched..)?
            .iter()
            .position(|&byte| byte == b'\n')?;
    let mut line: Vec<u8> = buffer.drain(..=end).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}

/// Maps a socket failure reported by the host for `peer`.
fn socket_error(peer: &str, error: host::SocketError) -> Error {
    match error {
        host::SocketError::Denied(target) => Error::not_allowed(format!(
            "{target} is not on this connector's allow-list of sockets"
        )),
        host::SocketError::Timeout => Error::transient(format!("{peer} timed out")),
        host::SocketError::Connection(reason) => {
            Error::transient(format!("connection to {peer} failed: {reason}"))
        }
        host::SocketError::InvalidState(reason) => {
            Error::invalid_input(format!("connection to {peer} cannot do that now: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_crlf_and_lf() {
        let mut buffer = b"* OK ready\r\nsecond\nthird".to_vec();
        assert_eq!(take_line(&mut buffer, 0).unwrap(), b"* OK ready");
        assert_eq!(take_line(&mut buffer, 0).unwrap(), b"second");
        assert_eq!(take_line(&mut buffer, 0), None);
        assert_eq!(buffer, b"third");
        buffer.extend_from_slice(b"\r\n");
        assert_eq!(take_line(&mut buffer, 5).unwrap(), b"third");
        assert!(buffer.is_empty());
        assert_eq!(take_line(&mut buffer, 3), None);
    }

    #[test]
    fn empty_lines_and_lone_carriage_returns_survive() {
        let mut buffer = b"\r\na\rb\r\n".to_vec();
        assert_eq!(take_line(&mut buffer, 0).unwrap(), b"");
        assert_eq!(take_line(&mut buffer, 0).unwrap(), b"a\rb");
    }

    #[test]
    fn socket_failures_map_by_kind() {
        let denied = socket_error("a:1", host::SocketError::Denied("evil.test:25".into()));
        assert!(matches!(denied, Error::NotAllowed(detail) if detail.starts_with("evil.test:25")));
        assert!(matches!(
            socket_error("a:1", host::SocketError::Timeout),
            Error::Transient(_)
        ));
        assert!(matches!(
            socket_error("a:1", host::SocketError::InvalidState("twice".into())),
            Error::InvalidInput(_)
        ));
    }
}
