//! HTML to plain text, working around named entities in the Wasm build.
//!
//! `webcare_plugin::text::html_to_text` decodes named entities (`&amp;`)
//! through a table whose hashing differs between the 64-bit machine that
//! builds it and 32-bit Wasm, so inside the component named entities stay
//! as they are, while numeric ones (`&#38;`) decode everywhere. Until the
//! SDK fixes that, the common named entities are rewritten as numeric ones
//! first.

use std::borrow::Cow;

/// Named entities rewritten to numeric ones: the XML five, spacing and
/// punctuation forum software emits, and the accented letters of Dutch,
/// French and German text.
const ENTITIES: &[(&str, u32)] = &[
    ("amp", 38),
    ("lt", 60),
    ("gt", 62),
    ("quot", 34),
    ("apos", 39),
    ("nbsp", 160),
    ("shy", 173),
    ("zwj", 8205),
    ("zwnj", 8204),
    ("hellip", 8230),
    ("mdash", 8212),
    ("ndash", 8211),
    ("lsquo", 8216),
    ("rsquo", 8217),
    ("ldquo", 8220),
    ("rdquo", 8221),
    ("laquo", 171),
    ("raquo", 187),
    ("bull", 8226),
    ("middot", 183),
    ("deg", 176),
    ("times", 215),
    ("euro", 8364),
    ("pound", 163),
    ("copy", 169),
    ("reg", 174),
    ("trade", 8482),
    ("aacute", 225),
    ("agrave", 224),
    ("auml", 228),
    ("ccedil", 231),
    ("eacute", 233),
    ("egrave", 232),
    ("ecirc", 234),
    ("euml", 235),
    ("iacute", 237),
    ("iuml", 239),
    ("oacute", 243),
    ("ouml", 246),
    ("uacute", 250),
    ("uuml", 252),
    ("szlig", 223),
];

/// Converts an HTML fragment into plain text (see
/// [`webcare_plugin::text::html_to_text`]), decoding named entities the
/// same way natively and in Wasm.
pub fn html_to_text(html: &str) -> String {
    webcare_plugin::text::html_to_text(&numeric_entities(html))
}

/// `html` with the named entities of [`ENTITIES`] written as numeric ones.
fn numeric_entities(html: &str) -> Cow<'_, str> {
    if !html.contains('&') {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let named = after.find(';').filter(|&end| end <= 8).and_then(|end| {
            let name = &after[..end];
            ENTITIES
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, code)| (end, *code))
        });
        match named {
            Some((end, code)) => {
                out.push_str(&format!("&#{code};"));
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_entities_become_numeric() {
        assert_eq!(
            numeric_entities("a &amp; b &lt;c&gt; caf&eacute; &unknown; & x"),
            "a &#38; b &#60;c&#62; caf&#233; &unknown; & x"
        );
        assert!(matches!(numeric_entities("no entities"), Cow::Borrowed(_)));
        assert_eq!(
            html_to_text("<p>Wi&#8209;Fi &amp; meer &hellip; 😀</p>"),
            "Wi\u{2011}Fi & meer … 😀"
        );
    }
}
