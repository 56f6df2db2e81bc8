//! The poll fallback's Graph responses: a page's feed
//! (`GET /{page-id}/feed`) and a post's comments (`GET /{post-id}/comments`),
//! normalised with the same mapping as webhook changes.
//!
//! Shapes from <https://developers.facebook.com/docs/graph-api/reference/page/feed/>
//! and <https://developers.facebook.com/docs/graph-api/reference/object/comments/>:
//!
//! ```json
//! {"data": [{"id": "...", "message": "...", "created_time": "2024-05-01T12:00:00+0000",
//!            "from": {"id": "...", "name": "..."}, "permalink_url": "..."}],
//!  "paging": {"cursors": {"before": "...", "after": "..."}, "next": "https://graph..."}}
//! ```

use serde::Deserialize;
use webcare_plugin::{Error, Message, MessageKind, Result};

use crate::ids::{GraphTime, Id};
use crate::public::Public;

/// The fields the poll asks for on feed posts.
pub const FEED_FIELDS: &str = "id,message,created_time,from{id,name},permalink_url,status_type";
/// The fields the poll asks for on comments.
pub const COMMENT_FIELDS: &str = "id,message,created_time,from{id,name},parent{id},permalink_url";

/// One page of a Graph edge, normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgePage {
    /// The posts or comments, in the order Graph sent them.
    pub messages: Vec<Message>,
    /// `paging.cursors.after` when Graph says there is a next page
    /// (`paging.next`), else `None`.
    pub after: Option<String>,
}

/// A Graph edge response.
#[derive(Deserialize)]
struct Edge {
    data: Vec<Node>,
    paging: Option<Paging>,
}

/// `paging` of an edge response.
#[derive(Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    next: Option<String>,
}

/// `paging.cursors`.
#[derive(Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// A post or a comment.
#[derive(Deserialize)]
struct Node {
    id: Id,
    #[serde(default)]
    message: String,
    created_time: GraphTime,
    from: Option<From>,
    parent: Option<Parent>,
    permalink_url: Option<String>,
    status_type: Option<String>,
}

/// `from` of a post or comment (absent without the right permission).
#[derive(Deserialize)]
struct From {
    id: Id,
    #[serde(default)]
    name: String,
}

/// `parent` of a reply to a comment.
#[derive(Deserialize)]
struct Parent {
    id: Id,
}

/// Normalises a page of `GET /{page-id}/feed`: every post is a `post` of
/// `page_id` (visitor posts inbound, the page's own outbound).
pub fn normalize_feed(body: &[u8], page_id: &str) -> Result<EdgePage> {
    let edge = parse(body, "feed")?;
    let after = next_after(edge.paging);
    let messages = edge
        .data
        .into_iter()
        .map(|node| {
            Public {
                page_id,
                own_page_id: page_id,
                kind: MessageKind::Post,
                item: node.status_type.as_deref().map_or("status", item_of),
                post_id: node.id.0,
                comment_id: None,
                parent_id: None,
                author: node.from.map(|from| (from.id.0, from.name)),
                text: node.message,
                created_at: node.created_time.0,
                permalink: node.permalink_url,
                attachments: Vec::new(),
            }
            .into_message()
        })
        .collect();
    Ok(EdgePage { messages, after })
}

/// Normalises a page of `GET /{post-id}/comments` of the post `post_id`.
/// A comment without `parent` answers the post.
pub fn normalize_comments(body: &[u8], page_id: &str, post_id: &str) -> Result<EdgePage> {
    let edge = parse(body, "comments")?;
    let after = next_after(edge.paging);
    let messages = edge
        .data
        .into_iter()
        .map(|node| {
            Public {
                page_id,
                own_page_id: page_id,
                kind: MessageKind::Comment,
                item: "comment",
                post_id: post_id.to_owned(),
                comment_id: Some(node.id.0),
                parent_id: Some(
                    node.parent
                        .map_or_else(|| post_id.to_owned(), |parent| parent.id.0),
                ),
                author: node.from.map(|from| (from.id.0, from.name)),
                text: node.message,
                created_at: node.created_time.0,
                permalink: node.permalink_url,
                attachments: Vec::new(),
            }
            .into_message()
        })
        .collect();
    Ok(EdgePage { messages, after })
}

/// Parses an edge response.
fn parse(body: &[u8], edge: &str) -> Result<Edge> {
    serde_json::from_slice(body).map_err(|error| {
        Error::invalid_input(format!("the Graph `{edge}` response is not valid: {error}"))
    })
}

/// The `after` cursor, only when Graph announces a next page.
fn next_after(paging: Option<Paging>) -> Option<String> {
    let paging = paging?;
    paging.next.as_ref()?;
    paging.cursors?.after
}

/// Graph's `status_type` as a webhook-style `item`.
fn item_of(status_type: &str) -> &'static str {
    match status_type {
        "added_photos" => "photo",
        "added_video" => "video",
        "shared_story" => "share",
        _ => "status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webcare_plugin::Direction;

    #[test]
    fn feed_pages_give_posts_and_the_next_cursor_only_with_next() {
        let body = r#"{"data":[
            {"id":"10_1","message":"Waar blijft mijn pakket?","created_time":"2026-11-20T08:00:00+0000",
             "from":{"id":"55","name":"Joost"},"permalink_url":"https://www.facebook.com/10/posts/1","status_type":"added_photos"},
            {"id":"10_2","created_time":"2026-11-20T07:00:00+0000","from":{"id":"10","name":"Acme"}}],
          "paging":{"cursors":{"before":"b","after":"a1"},"next":"https://graph.facebook.com/v21.0/10/feed?after=a1"}}"#;
        let page = normalize_feed(body.as_bytes(), "10").unwrap();
        assert_eq!(page.after.as_deref(), Some("a1"));
        let post = &page.messages[0];
        assert_eq!(
            (post.kind, post.direction),
            (MessageKind::Post, Direction::Inbound)
        );
        assert_eq!(post.created_at, 1_795_161_600_000);
        assert_eq!(post.property("item"), Some("photo"));
        assert_eq!(
            post.permalink.as_deref(),
            Some("https://www.facebook.com/10/posts/1")
        );
        assert_eq!(page.messages[1].direction, Direction::Outbound);
        assert_eq!(page.messages[1].text, "");
        assert_eq!(
            page.messages[1].permalink.as_deref(),
            Some("https://www.facebook.com/10_2")
        );

        let last = r#"{"data":[],"paging":{"cursors":{"before":"b","after":"a2"}}}"#;
        assert_eq!(normalize_feed(last.as_bytes(), "10").unwrap().after, None);
        assert_eq!(
            normalize_feed(br#"{"data":[]}"#, "10").unwrap(),
            EdgePage::default()
        );
    }

    #[test]
    fn comments_thread_under_their_post() {
        let body = r#"{"data":[
            {"id":"1_5","message":"שלום","created_time":"2026-11-20T09:00:00+0000"},
            {"id":"1_6","message":"Hoi","created_time":"2026-11-20T09:01:00+0000","parent":{"id":"1_5"},"from":{"id":"10","name":"Acme"}}]}"#;
        let page = normalize_comments(body.as_bytes(), "10", "10_1").unwrap();
        let [first, second] = &page.messages[..] else {
            panic!("two comments expected")
        };
        assert_eq!(first.thread_id, "10_1");
        assert_eq!(first.in_reply_to.as_deref(), Some("10_1"));
        assert_eq!(first.author.id, "");
        assert_eq!(first.text, "שלום");
        assert_eq!(second.in_reply_to.as_deref(), Some("1_5"));
        assert_eq!(second.direction, Direction::Outbound);
        assert_eq!(second.property("comment_id"), Some("1_6"));
    }

    #[test]
    fn malformed_pages_are_invalid_input() {
        for body in [
            "",
            "{}",
            r#"{"data":[{"id":"1"}]}"#,
            r#"{"data":[{"id":"1","created_time":"soon"}]}"#,
        ] {
            let error = normalize_feed(body.as_bytes(), "10").unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{body}");
        }
    }
}
