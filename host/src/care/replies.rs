//! Saved replies and acknowledgement templates: `[brand.replies]`, text
//! with placeholders filled in when it is used.
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{name}` | the customer's display name (their handle if they have none) |
//! | `{handle}` | the customer's handle |
//! | `{agent}` | who answers (the token's name; `webcare` for automatic acknowledgements) |
//! | `{brand}` | the brand's display name |
//! | `{sla}` | the brand's first-response target, in words (`1 hour`, `30 minutes`) |
//!
//! `{{` and `}}` are literal braces. Any other `{…}` is a config error, so
//! a typo never reaches a customer.

use std::time::Duration;

/// The placeholders a reply may use.
pub const PLACEHOLDERS: &[&str] = &["name", "handle", "agent", "brand", "sla"];

/// What the placeholders become.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub name: &'a str,
    pub handle: &'a str,
    pub agent: &'a str,
    pub brand: &'a str,
    pub sla: Duration,
}

/// Checks a reply text: every `{…}` must be a known placeholder.
pub fn check(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("empty; write the reply's text".into());
    }
    walk(text, |part| match part {
        Part::Text(_) => Ok(()),
        Part::Placeholder(name) if PLACEHOLDERS.contains(&name) => Ok(()),
        Part::Placeholder(name) => Err(format!(
            "unknown placeholder {{{name}}}; use {} (or {{{{ and }}}} for braces)",
            PLACEHOLDERS
                .iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    })
}

/// Fills in the placeholders of a checked text.
pub fn render(text: &str, vars: &Vars<'_>) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let _ = walk(text, |part| {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Placeholder("name") => out.push_str(vars.name),
            Part::Placeholder("handle") => out.push_str(vars.handle),
            Part::Placeholder("agent") => out.push_str(vars.agent),
            Part::Placeholder("brand") => out.push_str(vars.brand),
            Part::Placeholder("sla") => out.push_str(&in_words(vars.sla)),
            // Unchecked text: leave unknown placeholders as they are.
            Part::Placeholder(other) => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        Ok::<(), String>(())
    });
    out
}

/// A duration as a customer reads it: `1 hour`, `2 hours 30 minutes`,
/// `45 minutes`, `2 days`.
pub fn in_words(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let unit = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(unit(days, "day", "days"));
    }
    if hours > 0 {
        parts.push(unit(hours, "hour", "hours"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(unit(mins, "minute", "minutes"));
    }
    parts.join(" ")
}

enum Part<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn walk<'a, E>(text: &'a str, mut each: impl FnMut(Part<'a>) -> Result<(), E>) -> Result<(), E>
where
    E: From<String>,
{
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("{{") {
            each(Part::Text("{"))?;
            rest = after;
        } else if let Some(after) = rest.strip_prefix("}}") {
            each(Part::Text("}"))?;
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let Some(end) = after.find('}') else {
                return Err(E::from(
                    "a `{` without its `}`; write {{ for a brace".into(),
                ));
            };
            each(Part::Placeholder(&after[..end]))?;
            rest = &after[end + 1..];
        } else {
            let next = rest.find(['{', '}']).unwrap_or(rest.len());
            let next = if next == 0 { 1 } else { next };
            each(Part::Text(&rest[..next]))?;
            rest = &rest[next..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled() {
        let vars = Vars {
            name: "Jan",
            handle: "@jan",
            agent: "ann",
            brand: "ACME",
            sla: Duration::from_secs(3600),
        };
        assert_eq!(
            render(
                "Thanks {name}, we are on it and answer within {sla}. {{ref}} – {agent}, {brand}",
                &vars
            ),
            "Thanks Jan, we are on it and answer within 1 hour. {ref} – ann, ACME"
        );
    }

    #[test]
    fn unknown_or_broken_placeholders_are_refused() {
        assert!(check("Hoi {name}!").is_ok());
        assert!(
            check("Hoi {naam}!")
                .unwrap_err()
                .contains("unknown placeholder {naam}")
        );
        assert!(check("Hoi {name").unwrap_err().contains("without its"));
        assert!(check("  ").is_err());
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(9000)), "2 hours 30 minutes");
        assert_eq!(in_words(Duration::from_secs(45 * 60)), "45 minutes");
        assert_eq!(in_words(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(in_words(Duration::ZERO), "0 minutes");
    }
}

/// A brand's replies and what their placeholders need from the brand.
#[derive(Debug, Clone, Default)]
pub struct BrandReplies {
    /// The brand's display name, for `{brand}`.
    pub brand_name: String,
    /// Name → text (checked).
    pub replies: std::collections::BTreeMap<String, String>,
}
