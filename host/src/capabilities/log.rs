//! The `log` capability and the guest's stdout/stderr, both into `tracing`.
//!
//! Every line is tagged with brand and connector, scrubbed of the
//! connector's secrets, cut at [`MAX_LINE_BYTES`] and throttled at
//! [`MAX_LINES_PER_CALL`] per call, so a chatty or hostile plugin cannot
//! flood the host's log or leak a credential through it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::ConnectorId;

/// Longest line kept; the rest is cut and marked.
pub const MAX_LINE_BYTES: usize = 4096;
/// Lines per call before further lines are dropped (and counted).
pub const MAX_LINES_PER_CALL: u32 = 256;

/// Log target of everything a guest writes.
pub const GUEST_TARGET: &str = "webcare::guest";

/// Replaces known secret values with `[redacted]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Arc<[String]>,
}

impl Redactor {
    /// Values shorter than 4 bytes are not redacted: they would mangle
    /// ordinary text and are no real credential.
    pub fn new<'a>(values: impl Iterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> = values
            .filter(|v| v.len() >= 4)
            .map(str::to_string)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets: secrets.into(),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a guest line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Log,
    Stdout,
    Stderr,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Log => "log",
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Default)]
struct Throttle {
    lines: u32,
    dropped: u64,
    /// Incomplete stdout/stderr lines, waiting for their newline.
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

/// One connector instance's log: shared between the `log` import and the
/// WASI stdout/stderr streams of the same store.
#[derive(Debug, Clone)]
pub struct GuestLog {
    id: Arc<ConnectorId>,
    redactor: Redactor,
    throttle: Arc<Mutex<Throttle>>,
}

fn cut(text: &str) -> (&str, bool) {
    if text.len() <= MAX_LINE_BYTES {
        return (text, false);
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

impl GuestLog {
    pub fn new(id: Arc<ConnectorId>, redactor: Redactor) -> Self {
        GuestLog {
            id,
            redactor,
            throttle: Arc::default(),
        }
    }

    /// Starts a new call: resets the throttle. Returns how many lines the
    /// previous call dropped, after logging that number.
    pub fn begin_call(&self) {
        let dropped = {
            let mut t = self.throttle.lock().expect("log lock poisoned");
            t.lines = 0;
            std::mem::take(&mut t.dropped)
        };
        self.report_dropped(dropped);
    }

    /// Ends a call: flushes partial output lines and reports drops.
    pub fn end_call(&self) {
        let (out, err, dropped) = {
            let mut t = self.throttle.lock().expect("log lock poisoned");
            (
                std::mem::take(&mut t.partial_stdout),
                std::mem::take(&mut t.partial_stderr),
                std::mem::take(&mut t.dropped),
            )
        };
        for (bytes, source, level) in [
            (out, Source::Stdout, Level::Info),
            (err, Source::Stderr, Level::Warn),
        ] {
            if !bytes.is_empty() {
                self.line(level, source, &String::from_utf8_lossy(&bytes));
            }
        }
        self.report_dropped(dropped);
    }

    fn report_dropped(&self, dropped: u64) {
        if dropped > 0 {
            tracing::warn!(
                target: GUEST_TARGET,
                brand = %self.id.brand,
                connector = %self.id.connector,
                dropped,
                "plugin wrote more than {MAX_LINES_PER_CALL} log lines in one call; the rest were dropped"
            );
        }
    }

    /// Logs one line from the guest (throttled, cut, redacted).
    pub fn line(&self, level: Level, source: Source, text: &str) {
        {
            let mut t = self.throttle.lock().expect("log lock poisoned");
            if t.lines >= MAX_LINES_PER_CALL {
                t.dropped += 1;
                return;
            }
            t.lines += 1;
        }
        let (text, was_cut) = cut(text);
        let text = self.redactor.redact(text);
        let suffix = if was_cut { " [cut]" } else { "" };
        let (brand, connector, stream) = (&self.id.brand, &self.id.connector, source.as_str());
        match level {
            Level::Trace => {
                tracing::trace!(target: GUEST_TARGET, %brand, %connector, stream, "{text}{suffix}")
            }
            Level::Debug => {
                tracing::debug!(target: GUEST_TARGET, %brand, %connector, stream, "{text}{suffix}")
            }
            Level::Info => {
                tracing::info!(target: GUEST_TARGET, %brand, %connector, stream, "{text}{suffix}")
            }
            Level::Warn => {
                tracing::warn!(target: GUEST_TARGET, %brand, %connector, stream, "{text}{suffix}")
            }
            Level::Error => {
                tracing::error!(target: GUEST_TARGET, %brand, %connector, stream, "{text}{suffix}")
            }
        }
    }

    /// Takes raw stdout/stderr bytes, emits each complete line.
    fn write_stream(&self, source: Source, bytes: &[u8]) {
        let level = if source == Source::Stderr {
            Level::Warn
        } else {
            Level::Info
        };
        let mut lines = Vec::new();
        {
            let mut t = self.throttle.lock().expect("log lock poisoned");
            if t.lines >= MAX_LINES_PER_CALL {
                // Count whole lines dropped; don't buffer what will never show.
                t.dropped += bytes.iter().filter(|b| **b == b'\n').count() as u64;
                return;
            }
            let partial = if source == Source::Stderr {
                &mut t.partial_stderr
            } else {
                &mut t.partial_stdout
            };
            partial.extend_from_slice(bytes);
            while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=pos).collect();
                lines.push(line);
            }
            // A line without newline larger than the cap is emitted in pieces.
            if partial.len() > MAX_LINE_BYTES {
                lines.push(std::mem::take(partial));
            }
        }
        for line in lines {
            let text = String::from_utf8_lossy(&line);
            self.line(level, source, text.trim_end_matches(['\n', '\r']));
        }
    }

    /// A WASI output stream (stdout or stderr) that writes into this log.
    pub fn stream(&self, source: Source) -> GuestOutput {
        GuestOutput {
            log: self.clone(),
            source,
        }
    }
}

/// A guest's stdout or stderr. Always accepts writes (a plugin must never
/// fail because it printed); what exceeds the throttle is dropped.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    log: GuestLog,
    source: Source,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only p3 guests use this path; webcare links WASI p2 only.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.log.write_stream(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first_and_skips_tiny_values() {
        let r = Redactor::new(["abc", "token-1234", "token-1234-extended"].into_iter());
        assert_eq!(
            r.redact("a token-1234-extended and token-1234 abc"),
            "a [redacted] and [redacted] abc"
        );
    }

    #[test]
    fn cut_respects_char_boundaries() {
        let s = "é".repeat(MAX_LINE_BYTES);
        let (c, was_cut) = cut(&s);
        assert!(was_cut);
        assert!(c.len() <= MAX_LINE_BYTES);
    }

    #[test]
    fn throttle_counts_dropped_lines() {
        let log = GuestLog::new(
            Arc::new(ConnectorId {
                brand: "b".into(),
                connector: "c".into(),
            }),
            Redactor::default(),
        );
        log.begin_call();
        let mut out = log.stream(Source::Stdout);
        for _ in 0..(MAX_LINES_PER_CALL + 10) {
            out.write(Bytes::from_static(b"hello\n")).unwrap();
        }
        assert_eq!(log.throttle.lock().unwrap().dropped, 10);
        log.end_call();
        assert_eq!(log.throttle.lock().unwrap().dropped, 0);
    }
}
