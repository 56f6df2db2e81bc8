//! A forum's RSS 2.0 feed with an `ETag` and `Last-Modified`, answering a
//! conditional GET with `304 Not Modified`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const ETAG: &str = "\"reisforum-luchtvaart-5521\"";
const LAST_MODIFIED: &str = "Tue, 24 Nov 2026 08:45:00 GMT";

pub fn router() -> Router {
    Router::new().route("/{brand}/community.rss", get(handle))
}

async fn handle(Path(brand): Path<String>, headers: HeaderMap) -> Response {
    if brand != "globex" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == ETAG.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml; charset=utf-8"),
            (header::ETAG, ETAG),
            (header::LAST_MODIFIED, LAST_MODIFIED),
        ],
        include_str!("../../../../examples/demo/rss/globex-community.rss"),
    )
        .into_response()
}
