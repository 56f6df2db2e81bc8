//! A small SMTP submission client (RFC 5321, RFC 3207 STARTTLS, RFC 4954
//! AUTH PLAIN/LOGIN), hand-written for sending one reply per session:
//! greeting, `EHLO`, `STARTTLS`, `AUTH`, `MAIL FROM`, `RCPT TO`, `DATA`
//! with dot-stuffing, `QUIT`; multi-line replies are read whole.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use webcare_plugin::{Error, Result};

use crate::transport::Transport;

/// One SMTP reply: its code and its text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of every line, without code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// `code text`, the lines joined, for error details.
    fn describe(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

/// What the server's `EHLO` reply offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `STARTTLS` is offered.
    pub starttls: bool,
    /// SASL mechanisms offered with `AUTH` (upper case).
    pub auth: Vec<String>,
}

impl Extensions {
    fn from_ehlo(reply: &Reply) -> Self {
        let mut extensions = Self::default();
        // The first line is the server's greeting name, not an extension.
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => extensions.starttls = true,
                Some("AUTH") => extensions.auth.extend(words.map(str::to_ascii_uppercase)),
                _ => {}
            }
        }
        extensions
    }
}

/// An SMTP session over a [`Transport`].
pub struct Client<T: Transport> {
    transport: T,
    /// Our name for `EHLO`.
    helo_name: String,
    extensions: Extensions,
}

impl<T: Transport> Client<T> {
    /// Reads the `220` greeting and says `EHLO helo_name`.
    pub fn start(mut transport: T, helo_name: &str) -> Result<Self> {
        let greeting = read_reply(&mut transport)?;
        if greeting.code != 220 {
            return Err(failure("greeting", &greeting));
        }
        let mut client = Self {
            transport,
            helo_name: helo_name.to_owned(),
            extensions: Extensions::default(),
        };
        client.ehlo()?;
        Ok(client)
    }

    /// The transport, e.g. to inspect a test script.
    #[cfg(test)]
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// `STARTTLS`, the handshake, and `EHLO` again (RFC 3207: what the
    /// server said before TLS must be forgotten).
    pub fn start_tls(&mut self) -> Result<()> {
        if !self.extensions.starttls {
            return Err(Error::not_allowed(
                "SMTP server does not offer STARTTLS; use `smtp_security` = `tls` or a server that does",
            ));
        }
        let reply = self.command("STARTTLS")?;
        if reply.code != 220 {
            return Err(failure("STARTTLS", &reply));
        }
        self.transport.start_tls()?;
        self.ehlo()
    }

    /// Authenticates with PLAIN (preferred) or LOGIN if the server offers
    /// either; returns `false` without sending anything if it offers
    /// neither (a relay that trusts the connection). `535` and other
    /// `5xx` answers are unauthorized, `454` and other `4xx` transient.
    pub fn authenticate(&mut self, user: &str, password: &str) -> Result<bool> {
        let offers = |name: &str| self.extensions.auth.iter().any(|m| m == name);
        let reply = if offers("PLAIN") {
            let token = BASE64.encode(format!("\0{user}\0{password}"));
            self.command(&format!("AUTH PLAIN {token}"))?
        } else if offers("LOGIN") {
            let challenge = self.command("AUTH LOGIN")?;
            if challenge.code != 334 {
                return Err(auth_failure(&challenge));
            }
            let challenge = self.command(&BASE64.encode(user))?;
            if challenge.code != 334 {
                return Err(auth_failure(&challenge));
            }
            self.command(&BASE64.encode(password))?
        } else {
            return Ok(false);
        };
        if reply.code != 235 {
            return Err(auth_failure(&reply));
        }
        Ok(true)
    }

    /// Sends one message: `MAIL FROM`, `RCPT TO` for each recipient,
    /// `DATA` with the dot-stuffed `message`.
    pub fn send(&mut self, from: &str, recipients: &[String], message: &[u8]) -> Result<()> {
        let reply = self.command(&format!("MAIL FROM:<{from}>"))?;
        expect(&reply, "MAIL FROM")?;
        for recipient in recipients {
            let reply = self.command(&format!("RCPT TO:<{recipient}>"))?;
            expect(&reply, &format!("RCPT TO:<{recipient}>"))?;
        }
        let reply = self.command("DATA")?;
        if reply.code != 354 {
            return Err(failure("DATA", &reply));
        }
        self.transport.write_all(&dot_stuff(message))?;
        let reply = read_reply(&mut self.transport)?;
        expect(&reply, "the message")
    }

    /// `QUIT`; errors are ignored (the message is accepted by then).
    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }

    fn ehlo(&mut self) -> Result<()> {
        let reply = self.command(&format!("EHLO {}", self.helo_name))?;
        if reply.code != 250 {
            return Err(failure("EHLO", &reply));
        }
        self.extensions = Extensions::from_ehlo(&reply);
        Ok(())
    }

    fn command(&mut self, line: &str) -> Result<Reply> {
        self.transport.write_all(format!("{line}\r\n").as_bytes())?;
        read_reply(&mut self.transport)
    }
}

/// Reads one reply: `250-first`, `250-more`, `250 last`.
pub fn read_reply(transport: &mut impl Transport) -> Result<Reply> {
    let mut lines = Vec::new();
    loop {
        let line = transport
            .read_line()?
            .ok_or_else(|| Error::transient("SMTP server closed the connection"))?;
        let code = line
            .get(..3)
            .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "malformed SMTP reply line: {}",
                    line.chars().take(200).collect::<String>()
                ))
            })?;
        let separator = line.as_bytes().get(3).copied();
        lines.push(line.get(4..).unwrap_or("").to_owned());
        if separator != Some(b'-') {
            return Ok(Reply { code, lines });
        }
    }
}

/// A positive reply or the error for `what`.
fn expect(reply: &Reply, what: &str) -> Result<()> {
    if reply.is_positive() {
        Ok(())
    } else {
        Err(failure(what, reply))
    }
}

/// `4xx` is a passing fault (greylisting, full queue); `5xx` is the
/// server's rule against this message (rejected recipient, too large).
fn failure(what: &str, reply: &Reply) -> Error {
    let detail = format!("SMTP server refused {what}: {}", reply.describe());
    if (400..500).contains(&reply.code) {
        Error::transient(detail)
    } else if reply.code == 530 {
        Error::unauthorized(detail)
    } else {
        Error::not_allowed(detail)
    }
}

/// AUTH answers: `4xx` transient, anything else unauthorized.
fn auth_failure(reply: &Reply) -> Error {
    let detail = format!("SMTP authentication refused: {}", reply.describe());
    if (400..500).contains(&reply.code) {
        Error::transient(detail)
    } else {
        Error::unauthorized(detail)
    }
}

/// The DATA payload: CRLF line endings, a `.` doubled at the start of a
/// line (RFC 5321 4.5.2) and the `.` line that ends it.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    let mut previous = 0_u8;
    for &byte in message {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Script;

    const EHLO: &str = "250-localhost Hello acme.test [127.0.0.1], pleased to meet you\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n";

    #[test]
    fn a_recorded_submission_sends_one_mail() {
        let server = format!(
            "220 localhost ESMTP OpenSMTPD\r\n{EHLO}220 2.0.0 Ready to start TLS\r\n{EHLO}235 2.0.0 Authentication succeeded\r\n250 2.0.0 Ok\r\n250 2.1.5 Destination address valid\r\n354 Enter mail, end with \".\"\r\n250 2.0.0 56556bf5 Message accepted\r\n221 2.0.0 Bye\r\n"
        );
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        client.start_tls().unwrap();
        assert!(client.authenticate("care@acme.test", "s3cret").unwrap());
        client
            .send(
                "care@acme.test",
                &["jan@example.test".into()],
                b"Subject: x\r\n\r\n.hidden\nline\r\n",
            )
            .unwrap();
        client.quit();
    }

    #[test]
    fn commands_and_dot_stuffing_on_the_wire() {
        let server = format!(
            "220 hi\r\n{EHLO}235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"
        );
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        client.authenticate("care@acme.test", "s3cret").unwrap();
        client
            .send(
                "care@acme.test",
                &["jan@example.test".into()],
                b"A\n.b\r\n..c",
            )
            .unwrap();
        client.quit();
        // (The script is consumed by `quit`; check the stuffing directly.)
        assert_eq!(dot_stuff(b"A\n.b\r\n..c"), b"A\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n.\r\n");
    }

    #[test]
    fn auth_plain_and_login_encodings() {
        let server = format!("220 hi\r\n{EHLO}235 ok\r\n");
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        client.authenticate("u", "p").unwrap();
        let written = client.into_transport().written_text();
        assert!(written.contains("AUTH PLAIN AHUAcA==\r\n"), "{written}");

        let ehlo_login = "250-mx\r\n250 AUTH LOGIN\r\n";
        let server =
            format!("220 hi\r\n{ehlo_login}334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n");
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        client.authenticate("u", "p").unwrap();
        let written = client.into_transport().written_text();
        assert!(
            written.ends_with("AUTH LOGIN\r\ndQ==\r\ncA==\r\n"),
            "{written}"
        );
    }

    #[test]
    fn no_auth_offered_means_no_auth_sent() {
        let server = "220 hi\r\n250-mx\r\n250 8BITMIME\r\n";
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        assert!(!client.authenticate("u", "p").unwrap());
        assert!(matches!(client.start_tls(), Err(Error::NotAllowed(_))));
    }

    #[test]
    fn replies_map_to_error_cases() {
        let server = format!("220 hi\r\n{EHLO}535 5.7.8 Authentication credentials invalid\r\n");
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        assert!(matches!(
            client.authenticate("u", "bad"),
            Err(Error::Unauthorized(_))
        ));
        let server = format!("220 hi\r\n{EHLO}250 ok\r\n451 4.7.1 Greylisted, try later\r\n");
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        assert!(matches!(
            client.send("a@b", &["c@d".into()], b"x"),
            Err(Error::Transient(_))
        ));
        let server = format!("220 hi\r\n{EHLO}250 ok\r\n550 Invalid recipient\r\n");
        let mut client = Client::start(Script::new(server.as_bytes()), "acme.test").unwrap();
        let error = client.send("a@b", &["c@d".into()], b"x").unwrap_err();
        assert!(matches!(&error, Error::NotAllowed(d) if d.contains("550 Invalid recipient")));
        assert!(matches!(
            Client::start(Script::new(b"554 no service\r\n"), "x").err(),
            Some(Error::NotAllowed(_))
        ));
        assert!(matches!(
            Client::start(Script::new(b"421 busy\r\n"), "x").err(),
            Some(Error::Transient(_))
        ));
        assert!(matches!(
            Client::start(Script::new(b"hello\r\n"), "x").err(),
            Some(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn multi_line_replies_are_read_whole() {
        let mut script = Script::new(EHLO.as_bytes());
        let reply = read_reply(&mut script).unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines.len(), 5);
        let extensions = Extensions::from_ehlo(&reply);
        assert!(extensions.starttls);
        assert_eq!(extensions.auth, vec!["PLAIN", "LOGIN"]);
    }
}
