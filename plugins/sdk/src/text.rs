//! Turning channel markup into the plain text the contract's `message.text`
//! carries.

/// Converts an HTML fragment or document (a forum's cooked post, a feed
/// item's description, an HTML-only e-mail) into readable plain text:
/// tags dropped, entities decoded, block elements as line breaks, `<script>`
/// and `<style>` content left out. Uses `mail-parser`'s converter, so every
/// connector renders HTML the same way as the e-mail connector.
pub fn html_to_text(html: &str) -> String {
    let text = mail_parser::decoders::html::html_to_text(html);
    tidy(&text)
}

/// Trims each line's trailing spaces, collapses runs of blank lines to one
/// and trims the whole text.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn tags_and_entities_become_text() {
        let text = html_to_text(
            "<p>Hallo <b>team</b> &amp; co,</p><p>mijn bestelling &#8220;A-1&#8221; is kwijt 😡</p>",
        );
        assert!(text.contains("Hallo team & co,"), "{text:?}");
        assert!(
            text.contains("mijn bestelling “A-1” is kwijt 😡"),
            "{text:?}"
        );
        assert!(!text.contains('<'), "{text:?}");
    }

    #[test]
    fn blank_lines_collapse() {
        assert_eq!(super::tidy("a  \n\n\n\nb\n"), "a\n\nb");
    }
}
