//! Throwaway real mail servers on loopback for the e-mail connector's tests:
//! Dovecot (IMAP) and OpenSMTPD (SMTP), each in its own temporary
//! directory with its own config, users, maildirs and a test CA.
//!
//! - [`TestPki`]: a CA and a server certificate for `localhost` and
//!   `127.0.0.1`, made with `rcgen`; give [`TestPki::ca_pem`] to the host
//!   runtime as an extra root.
//! - [`Dovecot`]: `dovecot -F -c <conf>` with a passwd-file of users, one
//!   listener for plain IMAP and STARTTLS and one for implicit TLS, plus a
//!   small admin client ([`Dovecot::append`], [`Dovecot::recreate_mailbox`])
//!   that puts mail in place through the real IMAP server.
//! - [`Smtpd`]: `smtpd -d -f <conf>` accepting mail from loopback and
//!   delivering everything into one maildir the test reads back
//!   ([`Smtpd::wait_for_mail`]).
//!
//! Both servers are stopped when dropped (SIGTERM, then SIGKILL), so a
//! failing test never leaves one running. Both need root (they drop to
//! their own users: `dovecot`/`dovenull`, `opensmtpd`/`opensmtpq`; mail is
//! stored as `nobody`), as in CI and on the development machines.
//!
//! OpenSMTPD 6.8 as packaged by Debian 12 cannot do TLS as a server with
//! OpenSSL 3 (every handshake fails with "EVP lib", OpenSMTPD issues #1171
//! and #1239), and it only offers AUTH over TLS; so the SMTP server here
//! listens in plain text and relays for loopback without AUTH.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::fake_api::free_port;

/// How long a server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub use crate::test_pki::TestPki;

/// A server child process, stopped on drop: SIGTERM so it can take its
/// worker processes down with it, SIGKILL if it has not exited in time.
struct ServerProcess {
    child: Child,
    name: &'static str,
}

impl ServerProcess {
    fn spawn(name: &'static str, command: &mut Command, log: &Path) -> Self {
        let out = std::fs::File::create(log).expect("server log file");
        let err = out.try_clone().expect("server log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (is it installed?)"));
        ServerProcess { child, name }
    }

    /// Panics with the server's log if it has exited.
    fn check_alive(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited at start-up ({status}):\n{}",
                self.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `port` accepts connections or the server has died.
fn wait_for_port(port: u16, server: &mut ServerProcess, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        server.check_alive(log);
        assert!(
            Instant::now() < deadline,
            "{} did not listen on port {port} within {START_TIMEOUT:?}:\n{}",
            server.name,
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// uid and gid of `nobody`, who owns the stored mail.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"nobody") && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .unwrap_or((65534, 65534))
}

/// A temporary directory other users may traverse (the servers' workers
/// run as their own users).
fn server_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temporary directory");
    dir
}

/// Writes a file only root can read (keys, configs: the servers insist).
fn write_private(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write server file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A directory owned by `nobody`, for mail.
fn mail_dir(path: &Path) {
    std::fs::create_dir_all(path).expect("mail directory");
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown mail directory");
}

/// A running Dovecot with the users it was started with.
pub struct Dovecot {
    /// Plain IMAP, where STARTTLS is offered too.
    pub imap_port: u16,
    /// IMAP with implicit TLS.
    pub imaps_port: u16,
    users: Vec<(String, String)>,
    server: ServerProcess,
    dir: TempDir,
}

impl Dovecot {
    /// Starts Dovecot with `users` (address, password) and TLS from `pki`.
    pub fn start(users: &[(&str, &str)], pki: &TestPki) -> Dovecot {
        let dir = server_dir("webcare-dovecot-");
        let root = dir.path();
        let (uid, gid) = nobody();
        for sub in ["base", "state"] {
            std::fs::create_dir(root.join(sub)).expect("dovecot directory");
        }
        mail_dir(&root.join("mail"));
        write_private(&root.join("cert.pem"), &pki.cert_pem);
        write_private(&root.join("key.pem"), &pki.key_pem);
        let passwd: String = users
            .iter()
            .map(|(user, password)| {
                let home = root.join("mail").join(user);
                format!(
                    "{user}:{{PLAIN}}{password}:{uid}:{gid}::{}::\n",
                    home.display()
                )
            })
            .collect();
        std::fs::write(root.join("passwd"), passwd).expect("passwd file");

        let imap_port = free_port();
        let imaps_port = free_port();
        let root_text = root.display();
        let config = format!(
            r#"# Written by webcare's test harness; lives as long as one test.
protocols = imap
listen = 127.0.0.1
base_dir = {root_text}/base
state_dir = {root_text}/state
log_path = {root_text}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
# Loopback test server: plain-text logins are allowed without TLS so the
# connector's `none` mode can be tested; never do this on a real server.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
ssl = yes
ssl_cert = <{root_text}/cert.pem
ssl_key = <{root_text}/key.pem
ssl_min_protocol = TLSv1.2
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root_text}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root_text}/passwd
}}
namespace inbox {{
  inbox = yes
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#
        );
        let conf = root.join("dovecot.conf");
        std::fs::write(&conf, config).expect("dovecot.conf");
        let log = root.join("dovecot.out");
        let mut server = ServerProcess::spawn(
            "dovecot",
            Command::new("dovecot").arg("-F").arg("-c").arg(&conf),
            &log,
        );
        wait_for_port(imap_port, &mut server, &log);
        wait_for_port(imaps_port, &mut server, &log);
        Dovecot {
            imap_port,
            imaps_port,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            server,
            dir,
        }
    }

    /// Dovecot's own log (logins, errors), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Stores `raw` in `user`'s `mailbox` through IMAP `APPEND` and returns
    /// its UID.
    pub fn append(&self, user: &str, mailbox: &str, raw: &[u8]) -> u32 {
        let mut admin = self.admin(user);
        let done = admin.command_with_literal(&format!("APPEND \"{mailbox}\""), raw);
        // `OK [APPENDUID <validity> <uid>] Append completed.`
        done.split_whitespace()
            .nth(3)
            .and_then(|uid| uid.trim_end_matches(']').parse().ok())
            .unwrap_or_else(|| panic!("no APPENDUID in {done:?}"))
    }

    /// Deletes and re-creates `user`'s `mailbox` (not INBOX): the new one
    /// has a new `UIDVALIDITY`.
    pub fn recreate_mailbox(&self, user: &str, mailbox: &str) {
        let mut admin = self.admin(user);
        admin.command(&format!("DELETE \"{mailbox}\""));
        admin.command(&format!("CREATE \"{mailbox}\""));
    }

    /// Creates `user`'s `mailbox`.
    pub fn create_mailbox(&self, user: &str, mailbox: &str) {
        self.admin(user).command(&format!("CREATE \"{mailbox}\""));
    }

    /// The flags of every message in `user`'s `mailbox`, in UID order.
    pub fn flags(&self, user: &str, mailbox: &str) -> Vec<String> {
        let mut admin = self.admin(user);
        admin.command(&format!("EXAMINE \"{mailbox}\""));
        admin
            .untagged("FETCH 1:* (FLAGS)")
            .into_iter()
            .filter(|line| line.contains("FETCH"))
            .collect()
    }

    fn admin(&self, user: &str) -> AdminImap {
        let password = &self
            .users
            .iter()
            .find(|(u, _)| u == user)
            .unwrap_or_else(|| panic!("no Dovecot user {user}"))
            .1;
        let mut admin = AdminImap::connect(self.imap_port);
        admin.command(&format!("LOGIN \"{user}\" \"{password}\""));
        admin
    }
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("imap_port", &self.imap_port)
            .field("imaps_port", &self.imaps_port)
            .field("pid", &self.server.child.id())
            .finish()
    }
}

/// A blocking IMAP client for test set-up; panics on any failure.
struct AdminImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl AdminImap {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Dovecot");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut admin = AdminImap {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            writer: stream,
            tag: 0,
        };
        let greeting = admin.line();
        assert!(greeting.starts_with("* OK"), "Dovecot greeting: {greeting}");
        admin
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read from Dovecot");
        assert!(!line.is_empty(), "Dovecot closed the connection");
        line.trim_end().to_owned()
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Runs `command`; returns the tagged `OK` line, panics otherwise.
    fn command(&mut self, command: &str) -> String {
        self.run(command, None).0
    }

    /// Runs `command` and returns its untagged lines.
    fn untagged(&mut self, command: &str) -> Vec<String> {
        self.run(command, None).1
    }

    fn command_with_literal(&mut self, command: &str, literal: &[u8]) -> String {
        self.run(command, Some(literal)).0
    }

    fn run(&mut self, command: &str, literal: Option<&[u8]>) -> (String, Vec<String>) {
        let tag = self.next_tag();
        match literal {
            Some(bytes) => {
                write!(self.writer, "{tag} {command} {{{}}}\r\n", bytes.len()).expect("write");
                let go = self.line();
                assert!(go.starts_with('+'), "{command}: {go}");
                self.writer.write_all(bytes).expect("write literal");
                self.writer.write_all(b"\r\n").expect("write");
            }
            None => write!(self.writer, "{tag} {command}\r\n").expect("write"),
        }
        let mut untagged = Vec::new();
        loop {
            let line = self.line();
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{command}: {line}");
                return (rest.to_owned(), untagged);
            }
            untagged.push(line);
        }
    }
}

/// Serialises OpenSMTPD instances: they share a control socket
/// (`/var/run/smtpd.sock`) and a queue (`/var/spool/smtpd`) compiled into
/// the binary, so only one may run at a time on a machine.
static SMTPD_LOCK: Mutex<()> = Mutex::new(());

/// A running OpenSMTPD that delivers every mail from loopback into one
/// maildir.
pub struct Smtpd {
    /// The SMTP port (plain text; see the module docs for why).
    pub port: u16,
    server: ServerProcess,
    maildir: PathBuf,
    dir: TempDir,
    // Dropped last: the next test's server starts only after this one stopped.
    _turn: MutexGuard<'static, ()>,
}

impl Smtpd {
    /// Starts OpenSMTPD, waiting for any other test's instance to stop.
    pub fn start() -> Smtpd {
        let turn = SMTPD_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = server_dir("webcare-smtpd-");
        let root = dir.path();
        let maildir = root.join("received");
        mail_dir(&maildir);
        let port = free_port();
        let config = format!(
            r#"# Written by webcare's test harness; lives as long as one test.
table catchall {{ "@" = "nobody" }}
listen on 127.0.0.1 port {port} hostname localhost
action "received" maildir "{}" virtual <catchall>
match from src 127.0.0.1 for any action "received"
"#,
            maildir.display()
        );
        let conf = root.join("smtpd.conf");
        write_private(&conf, &config);
        let check = Command::new("smtpd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .output()
            .expect("run smtpd -n");
        assert!(
            check.status.success(),
            "smtpd.conf does not parse: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = root.join("smtpd.log");
        let mut server = ServerProcess::spawn(
            "smtpd",
            Command::new("smtpd").arg("-d").arg("-f").arg(&conf),
            &log,
        );
        wait_for_port(port, &mut server, &log);
        Smtpd {
            port,
            server,
            maildir,
            dir,
            _turn: turn,
        }
    }

    /// OpenSMTPD's log (sessions, deliveries), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Waits until `count` mails were delivered and returns them all, oldest
    /// first; panics with the server log after `timeout`.
    pub fn wait_for_mail(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
                .iter()
                .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
                .flatten()
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let modified = entry.metadata().ok()?.modified().ok()?;
                    Some((modified, entry.path()))
                })
                .collect();
            if files.len() >= count {
                files.sort();
                return files
                    .iter()
                    .map(|(_, path)| std::fs::read(path).expect("read delivered mail"))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails delivered within {timeout:?}; smtpd log:\n{}",
                files.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl std::fmt::Debug for Smtpd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtpd")
            .field("port", &self.port)
            .field("pid", &self.server.child.id())
            .finish()
    }
}
