//! Page posts and comments as messages: the mapping shared by webhook
//! changes (`entry[].changes[]`) and the poll fallback (`/feed`,
//! `/{post-id}/comments`), so both paths give the same message for the same
//! comment and the host's deduplication holds across them.

use webcare_plugin::{Attachment, Author, Direction, Message, MessageKind};

/// Where Facebook serves a post or a comment for people.
const WEB: &str = "https://www.facebook.com";

/// What Graph told us about one post or comment.
pub(crate) struct Public<'a> {
    /// The page the post or comment lives on (the webhook entry's id or the
    /// configured page).
    pub page_id: &'a str,
    /// The configured page id too: comments by either are the brand's own.
    pub own_page_id: &'a str,
    /// `post`, `comment`, `mention`.
    pub kind: MessageKind,
    /// Graph's `item` (`status`, `photo`, `comment`, ...).
    pub item: &'a str,
    /// The post's id (`{page-id}_{post-id}`).
    pub post_id: String,
    /// The comment's id, for comments.
    pub comment_id: Option<String>,
    /// What the comment answers: a comment id, or the post id.
    pub parent_id: Option<String>,
    /// Author id and name, when Graph says.
    pub author: Option<(String, String)>,
    pub text: String,
    pub created_at: i64,
    /// `permalink_url` when Graph gave one.
    pub permalink: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl Public<'_> {
    /// The message's external id: the comment id for comments, else the post id.
    pub fn external_id(&self) -> &str {
        self.comment_id.as_deref().unwrap_or(&self.post_id)
    }

    /// Normalises into a message.
    ///
    /// - thread: the post; `in-reply-to`: the parent comment or the post
    ///   (comments only).
    /// - outbound when the page itself wrote it; everything on the page's
    ///   feed or naming the page is addressed to the brand.
    /// - properties: `page_id`, `post_id`, `comment_id`, `parent_id`, `item`.
    pub fn into_message(self) -> Message {
        let external_id = self.external_id().to_owned();
        let permalink = self.permalink.clone().or_else(|| {
            Some(match &self.comment_id {
                Some(comment_id) => format!("{WEB}/{}?comment_id={comment_id}", self.post_id),
                None => format!("{WEB}/{}", self.post_id),
            })
        });
        let (author_id, author_name) = self.author.unwrap_or_default();
        let outbound =
            !author_id.is_empty() && (author_id == self.page_id || author_id == self.own_page_id);
        let author = Author {
            display_name: author_name,
            profile_url: outbound.then(|| format!("{WEB}/{author_id}")),
            // Facebook has no public @-handles: the stable id stands in.
            ..Author::new(author_id.clone(), author_id)
        };
        let in_reply_to = if self.comment_id.is_some() {
            self.parent_id
                .clone()
                .or_else(|| Some(self.post_id.clone()))
        } else {
            None
        };
        let mut properties = vec![
            ("page_id".to_owned(), self.page_id.to_owned()),
            ("post_id".to_owned(), self.post_id.clone()),
            ("item".to_owned(), self.item.to_owned()),
        ];
        if let Some(comment_id) = &self.comment_id {
            properties.push(("comment_id".to_owned(), comment_id.clone()));
        }
        if let Some(parent_id) = &self.parent_id {
            properties.push(("parent_id".to_owned(), parent_id.clone()));
        }
        Message {
            in_reply_to,
            direction: if outbound {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            addressed_to_brand: true,
            permalink,
            attachments: self.attachments,
            properties,
            ..Message::new(
                external_id,
                self.post_id,
                self.kind,
                author,
                self.text,
                self.created_at,
            )
        }
    }
}
