//! A WebAssembly component of the `wasi:cli/command` world, not of
//! `webcare:connector/channel-connector`.
//!
//! Built for `wasm32-wasip2`, a binary crate becomes a command component that
//! exports `wasi:cli/run`. The host's tests load it to prove that the host
//! refuses it with a clear "not a channel connector" error instead of failing
//! somewhere deeper.

fn main() {
    println!("hello from a component that is not a channel connector");
}
