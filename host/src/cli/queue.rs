//! `webcare queue ...`: look into the care queue.

use std::io::Write;

use crate::model::Direction;
use crate::queue::{CaseSummary, StoredMessage};

/// Prints cases as a table for people.
pub fn print_cases(cases: &[CaseSummary]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "{:>5} {:<10} {:<10} {:<9} {:>4} {:<20} {:<18} PREVIEW",
        "CASE", "BRAND", "CHANNEL", "STATUS", "MSGS", "LAST MESSAGE (UTC)", "AUTHOR"
    );
    for c in cases {
        let _ = writeln!(
            out,
            "{:>5} {:<10} {:<10} {:<9} {:>4} {:<20} {:<18} {}",
            c.id,
            c.brand,
            c.channel,
            c.status.as_str(),
            c.message_count,
            format_ms(c.last_message_at),
            format!("@{}", c.author),
            preview(&c.preview, 60),
        );
    }
    if cases.is_empty() {
        let _ = writeln!(out, "(no cases)");
    }
}

/// Prints messages as a table for people.
pub fn print_messages(messages: &[StoredMessage]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "{:>5} {:<10} {:<14} {:<3} {:<20} {:<18} TEXT",
        "CASE", "CONNECTOR", "KIND", "DIR", "CREATED (UTC)", "AUTHOR"
    );
    for stored in messages {
        let m = &stored.message;
        let mut flags = String::new();
        for (set, flag) in [
            (stored.edited, "[edited] "),
            (stored.deleted, "[deleted] "),
            (stored.hidden, "[hidden] "),
        ] {
            if set {
                flags.push_str(flag);
            }
        }
        let _ = writeln!(
            out,
            "{:>5} {:<10} {:<14} {:<3} {:<20} {:<18} {flags}{}",
            stored.case_id.map_or("-".to_string(), |c| c.to_string()),
            stored.connector,
            serde_json::to_value(m.kind)
                .ok()
                .and_then(|k| k.as_str().map(str::to_owned))
                .unwrap_or_default(),
            match m.direction {
                Direction::Inbound => "in",
                Direction::Outbound => "out",
            },
            format_ms(m.created_at),
            format!("@{}", m.author.handle),
            preview(&m.text, 60),
        );
    }
    if messages.is_empty() {
        let _ = writeln!(out, "(no messages)");
    }
}

/// `2026-11-24 08:12:09` (UTC).
fn format_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn preview(text: &str, max_chars: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max_chars {
        one_line
    } else {
        one_line.chars().take(max_chars - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_ms(1_795_166_100_000), "2026-11-20 09:15:00");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn previews_are_one_line_and_cut() {
        assert_eq!(preview("a\nb", 10), "a b");
        assert_eq!(preview("😡😡😡😡", 3), "😡😡…");
    }
}
