//! Config errors an operator can act on: each names the file, the line and
//! the key, and says what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, as the operator named it.
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Where in the file: a dotted path such as `brand[1].connector[0].id`,
    /// or, once the ids are known, `brand "acme" connector "feed": poll_interval`.
    /// Empty for problems of the file as a whole (unreadable, bad syntax).
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Orders by line so the operator can fix the file top to bottom;
    /// problems without a line (of the file as a whole) come first.
    pub(super) fn sorted(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by(|a, b| (a.line, &a.key).cmp(&(b.line, &b.key)));
        errors.dedup();
        ConfigErrors(errors)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Turns byte offsets (what toml's spans are) into 1-based line numbers.
#[derive(Debug, Clone)]
pub(super) struct Lines {
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl Lines {
    pub(super) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { starts }
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines() {
        let lines = Lines::new("a\nbc\n\nd");
        assert_eq!(
            [0, 1, 2, 4, 5, 6].map(|o| lines.line(o)),
            [1, 1, 2, 2, 3, 4]
        );
    }

    #[test]
    fn display_names_file_line_and_key() {
        let e = ConfigError {
            file: "webcare.toml".into(),
            line: Some(12),
            key: r#"brand "acme" connector "feed": poll_interval"#.into(),
            message: r#""5x" is not a duration (use e.g. 30s, 5m)"#.into(),
        };
        assert_eq!(
            e.to_string(),
            r#"webcare.toml:12: brand "acme" connector "feed": poll_interval: "5x" is not a duration (use e.g. 30s, 5m)"#
        );
        let whole = ConfigError {
            line: None,
            key: String::new(),
            message: "cannot read".into(),
            ..e.clone()
        };
        assert_eq!(whole.to_string(), "webcare.toml: cannot read");
        let errors = ConfigErrors(vec![whole, e]);
        assert_eq!(errors.to_string().lines().count(), 2);
    }
}
