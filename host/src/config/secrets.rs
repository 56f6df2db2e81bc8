//! Secrets by reference: a config file names where a credential lives (an
//! environment variable or a file), never the credential itself, so the file
//! can be reviewed, versioned and shared without leaking anything.

use std::path::PathBuf;

use crate::capabilities::Secret;

/// Where a secret's value is read from when a connector starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `{ env = "NAME" }`: the value of an environment variable of the host.
    Env(String),
    /// `{ file = "path" }`: a file's content without its trailing line
    /// break; the path is absolute (resolved against the config's directory).
    File(PathBuf),
}

/// A secret reference that does not resolve. The message never contains
/// the value (there is none to show, or it is not wanted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set; export it before starting webcare")]
    EnvUnset(String),
    #[error("environment variable {0} is not valid UTF-8; re-export it as text")]
    EnvNotUnicode(String),
    #[error("environment variable {0} is empty; set it to the credential")]
    EnvEmpty(String),
    #[error("cannot read secret file {}: {reason}; create it or fix the path", .path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("secret file {} is empty; write the credential into it", .0.display())]
    FileEmpty(PathBuf),
}

impl SecretRef {
    /// Reads the value from the host's environment or the file system.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_with(&|name| std::env::var(name))
    }

    /// [`SecretRef::resolve`] with the environment given, so tests do not
    /// have to change the process's environment.
    pub(super) fn resolve_with(&self, env: &EnvLookup) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match env(name) {
                Ok(value) if value.is_empty() => Err(SecretError::EnvEmpty(name.clone())),
                Ok(value) => Ok(Secret::new(value)),
                Err(std::env::VarError::NotPresent) => Err(SecretError::EnvUnset(name.clone())),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode(name.clone()))
                }
            },
            SecretRef::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| SecretError::FileUnreadable {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                // Editors and `echo` end the file with a line break that is
                // not part of the credential.
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(SecretError::FileEmpty(path.clone()));
                }
                Ok(Secret::new(value))
            }
        }
    }
}

/// How a secret's environment variable is looked up: `std::env::var` in
/// production, a table in tests.
pub(super) type EnvLookup = dyn Fn(&str) -> Result<String, std::env::VarError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::env::VarError;

    #[test]
    fn env_and_file_references_resolve_without_showing_values() {
        let env = |name: &str| match name {
            "TOKEN" => Ok("s3cret".to_string()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        };
        let token = SecretRef::Env("TOKEN".into()).resolve_with(&env).unwrap();
        assert_eq!(token.expose(), "s3cret");
        assert_eq!(
            SecretRef::Env("NOPE".into()).resolve_with(&env),
            Err(SecretError::EnvUnset("NOPE".into()))
        );
        assert_eq!(
            SecretRef::Env("EMPTY".into()).resolve_with(&env),
            Err(SecretError::EnvEmpty("EMPTY".into()))
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\r\n").unwrap();
        assert_eq!(
            SecretRef::File(file.clone()).resolve().unwrap().expose(),
            "from-file"
        );
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(
            SecretRef::File(file.clone()).resolve(),
            Err(SecretError::FileEmpty(file))
        );
        let missing = SecretRef::File(dir.path().join("missing")).resolve();
        assert!(matches!(missing, Err(SecretError::FileUnreadable { .. })));
    }
}
