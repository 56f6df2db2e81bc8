//! Which network destinations a connector may reach.
//!
//! Entries, as an operator writes them:
//!
//! | entry                     | grants                                              |
//! |---------------------------|-----------------------------------------------------|
//! | `api.x.com`               | HTTPS to `api.x.com:443`                            |
//! | `api.x.com:8443`          | HTTPS to port 8443, and TCP (socket) to port 8443   |
//! | `https://api.x.com`       | HTTPS to `api.x.com:443`                            |
//! | `http://127.0.0.1:8080`   | plain HTTP to that host and port — only when said   |
//! | `*.example.com`           | HTTPS to any subdomain (not `example.com` itself)   |
//! | `tcp://imap.example:993`  | TCP (socket capability) only                        |
//!
//! Plain HTTP is never implied: an entry grants `http://` only when it is
//! written with that scheme. Sockets need an explicit port. Host names are
//! compared case-insensitively, without a trailing dot. Every outbound path —
//! the first request, each redirect, each socket connect — asks this list.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    /// Written without a scheme: HTTPS, plus TCP when a port is given.
    Unspecified,
    Https,
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: any host that ends with `.suffix`.
    Subdomains(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    scheme: Scheme,
    host: HostPattern,
    port: Option<u16>,
    original: String,
}

/// A parsed allow-list. Empty means: nothing may be reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid allow-list entry {entry:?}: {reason}")]
pub struct AllowListError {
    pub entry: String,
    pub reason: String,
}

/// Lower-case, trailing dot removed, IPv6 brackets removed.
fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl AllowList {
    /// Parses entries in the forms listed in the module docs.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        entries
            .iter()
            .map(|e| Self::parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(|rules| AllowList { rules })
    }

    fn parse_entry(entry: &str) -> Result<Rule, AllowListError> {
        let err = |reason: &str| AllowListError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            return Err(err("empty entry"));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some(("https", rest)) => (Scheme::Https, rest),
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("tcp", rest)) => (Scheme::Tcp, rest),
            Some((other, _)) => {
                return Err(err(&format!(
                    "unknown scheme {other:?}; use https://, http:// or tcp://"
                )));
            }
            None => (Scheme::Unspecified, trimmed),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(err(
                "give a host and optional port only, no path, query or user",
            ));
        }
        // IPv6 literal: [::1]:8080
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or_else(|| err("unclosed '[' in IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(err("unexpected text after IPv6 address")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| err("port must be a number from 1 to 65535"))
            })
            .transpose()?;
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(err("a wildcard must look like *.example.com"));
            }
            HostPattern::Subdomains(normalise_host(suffix))
        } else if host.contains('*') {
            return Err(err("'*' is only allowed as the first label: *.example.com"));
        } else {
            HostPattern::Exact(normalise_host(&host))
        };
        if scheme == Scheme::Tcp && port.is_none() {
            return Err(err("tcp:// entries need a port"));
        }
        Ok(Rule {
            scheme,
            host,
            port,
            original: trimmed.to_string(),
        })
    }

    /// Adds entries to an existing list.
    pub fn extend(&mut self, other: AllowList) {
        self.rules.extend(other.rules);
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The entries as written.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.original.as_str())
    }

    fn host_matches(pattern: &HostPattern, host: &str) -> bool {
        let host = normalise_host(host);
        match pattern {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }

    /// May an HTTP(S) request go to this URL?
    pub fn allows_url(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        match url.scheme() {
            "https" => self.rules.iter().any(|r| {
                matches!(r.scheme, Scheme::Https | Scheme::Unspecified)
                    && r.port.unwrap_or(443) == port
                    && Self::host_matches(&r.host, host)
            }),
            "http" => self.rules.iter().any(|r| {
                r.scheme == Scheme::Http
                    && r.port.unwrap_or(80) == port
                    && Self::host_matches(&r.host, host)
            }),
            _ => false,
        }
    }

    /// May a socket connect to `host:port`?
    pub fn allows_socket(&self, host: &str, port: u16) -> bool {
        self.rules.iter().any(|r| {
            matches!(r.scheme, Scheme::Tcp | Scheme::Unspecified)
                && r.port == Some(port)
                && Self::host_matches(&r.host, host)
        })
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("(empty)");
        }
        let entries: Vec<_> = self.entries().collect();
        f.write_str(&entries.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }
    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn bare_host_grants_https_443_only() {
        let l = list(&["api.x.com"]);
        assert!(l.allows_url(&url("https://api.x.com/2/tweets")));
        assert!(l.allows_url(&url("https://API.X.com./2/tweets")));
        assert!(!l.allows_url(&url("http://api.x.com/2/tweets")));
        assert!(!l.allows_url(&url("https://api.x.com:8443/")));
        assert!(!l.allows_url(&url("https://evil.api.x.com/")));
        assert!(!l.allows_url(&url("https://api.x.com.evil.net/")));
        assert!(!l.allows_socket("api.x.com", 443));
    }

    #[test]
    fn plain_http_needs_the_scheme_written() {
        let l = list(&["127.0.0.1:8080"]);
        assert!(!l.allows_url(&url("http://127.0.0.1:8080/")));
        assert!(l.allows_url(&url("https://127.0.0.1:8080/")));
        assert!(l.allows_socket("127.0.0.1", 8080));
        let l = list(&["http://127.0.0.1:8080"]);
        assert!(l.allows_url(&url("http://127.0.0.1:8080/feed")));
        assert!(!l.allows_url(&url("http://127.0.0.1:8081/feed")));
        assert!(!l.allows_url(&url("https://127.0.0.1:8080/feed")));
        assert!(!l.allows_socket("127.0.0.1", 8080));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let l = list(&["*.example.com"]);
        assert!(l.allows_url(&url("https://forum.example.com/")));
        assert!(l.allows_url(&url("https://a.b.example.com/")));
        assert!(!l.allows_url(&url("https://example.com/")));
        assert!(!l.allows_url(&url("https://badexample.com/")));
    }

    #[test]
    fn sockets_need_a_port_and_tcp_entries_are_socket_only() {
        let l = list(&["tcp://imap.example.com:993", "[::1]:143"]);
        assert!(l.allows_socket("imap.example.com", 993));
        assert!(!l.allows_socket("imap.example.com", 143));
        assert!(!l.allows_url(&url("https://imap.example.com:993/")));
        assert!(l.allows_socket("::1", 143));
        assert!(l.allows_socket("[::1]", 143));
    }

    #[test]
    fn other_schemes_and_userinfo_are_refused() {
        let l = list(&["api.x.com"]);
        assert!(!l.allows_url(&url("ftp://api.x.com/")));
        assert!(!l.allows_url(&url("file:///etc/passwd")));
        assert!(AllowList::default().is_empty());
        assert!(!AllowList::default().allows_url(&url("https://api.x.com/")));
    }

    #[test]
    fn bad_entries_say_why() {
        for (entry, why) in [
            ("", "empty"),
            ("ftp://x.com", "unknown scheme"),
            ("x.com/path", "no path"),
            ("x.com:0", "port"),
            ("x.com:99999", "port"),
            ("a.*.com", "first label"),
            ("tcp://x.com", "need a port"),
            ("user@x.com", "no path, query or user"),
        ] {
            let e = AllowList::parse(&[entry]).unwrap_err();
            assert!(e.to_string().contains(why), "{entry}: {e}");
        }
    }
}
