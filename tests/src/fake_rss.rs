//! A fake feed server: serves one RSS or Atom document at `/feed` with
//! `ETag` and `Last-Modified` validators and answers conditional GETs with
//! `304 Not Modified`, as web servers and Discourse's `/latest.rss` do.
//! Tests swap the document or make the server answer a canned response
//! between polls through [`FeedSite`].

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// An RSS 2.0 forum feed in the shape of Discourse's `/latest.rss`, written
/// for webcare (Dutch, Hebrew, emoji, CDATA, entities, an enclosure).
pub const FORUM_RSS: &str = include_str!("../fixtures/rss/forum_latest.rss");
/// An Atom 1.0 blog feed with an HTML entry, an enclosure and a threaded
/// XHTML comment, written for webcare.
pub const BLOG_ATOM: &str = include_str!("../fixtures/rss/blog.atom");

/// A canned answer: status, headers, body.
pub type Canned = (u16, Vec<(String, String)>, String);

/// What the feed server serves.
#[derive(Debug, Clone)]
pub struct FeedSite {
    /// The document.
    pub body: String,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its `ETag`, if the server sends one.
    pub etag: Option<String>,
    /// Its `Last-Modified`, if the server sends one.
    pub last_modified: Option<String>,
    /// A canned answer instead of the document.
    pub canned: Option<Canned>,
}

impl FeedSite {
    /// A site serving `body` as `content_type` with the given validators.
    pub fn new(
        body: &str,
        content_type: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Arc<Mutex<FeedSite>> {
        Arc::new(Mutex::new(FeedSite {
            body: body.to_owned(),
            content_type: content_type.to_owned(),
            etag: etag.map(str::to_owned),
            last_modified: last_modified.map(str::to_owned),
            canned: None,
        }))
    }
}

/// The server's routes: the feed at `/feed`.
pub fn router(site: Arc<Mutex<FeedSite>>) -> Router {
    Router::new().route("/feed", get(feed)).with_state(site)
}

async fn feed(State(site): State<Arc<Mutex<FeedSite>>>, headers: HeaderMap) -> Response {
    let site = site.lock().unwrap().clone();
    if let Some((status, extra, body)) = site.canned {
        let mut response = (StatusCode::from_u16(status).expect("status"), body).into_response();
        for (name, value) in extra {
            response.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        return response;
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    // RFC 9110 §13.1.3: If-None-Match wins over If-Modified-Since.
    let not_modified = match (header("if-none-match"), &site.etag) {
        (Some(given), Some(etag)) => given.split(',').any(|tag| tag.trim() == etag),
        (Some(_), None) => false,
        (None, _) => matches!(
            (header("if-modified-since"), &site.last_modified),
            (Some(given), Some(modified)) if given == modified
        ),
    };
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [("content-type", site.content_type.clone())],
            site.body.clone(),
        )
            .into_response()
    };
    if let Some(etag) = &site.etag {
        response
            .headers_mut()
            .insert("etag", etag.parse().expect("etag"));
    }
    if let Some(modified) = &site.last_modified {
        response
            .headers_mut()
            .insert("last-modified", modified.parse().expect("date"));
    }
    response
}
