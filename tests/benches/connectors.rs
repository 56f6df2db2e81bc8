//! Connector benchmarks (criterion): for each channel connector, messages
//! normalised per second from a recorded page or webhook batch, through the
//! `.wasm` in the real host and through the same code built natively, in one
//! run. Run with `RUST_BACKTRACE=0`:
//!
//! ```text
//! RUST_BACKTRACE=0 cargo bench -p webcare-tests --bench connectors
//! ```

use criterion::{criterion_group, criterion_main};

mod connectors {
    pub mod discourse;
    pub mod email;
    pub mod facebook;
    pub mod rss;
    pub mod twitter;
}

criterion_group!(
    benches,
    connectors::twitter::bench,
    connectors::facebook::bench,
    connectors::discourse::bench,
    connectors::rss::bench,
    connectors::email::bench,
);
criterion_main!(benches);
