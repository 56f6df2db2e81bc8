//! webcare: a plugin host for social customer care.
//!
//! Channel connectors (Twitter/X, Facebook, forums, e-mail) are WebAssembly
//! components built against the WIT contract in `wit/`. This crate loads
//! them into a sandbox ([`runtime`]), grants each only the capabilities its
//! configuration names ([`capabilities`]), and turns what they bring in into
//! one normalised stream ([`model`]).

pub mod api;
pub mod capabilities;
pub mod care;
pub mod cli;
pub mod config;
pub mod demo;
pub mod inbox;
pub mod model;
pub mod queue;
pub mod runtime;
pub mod service;
pub mod stream;
pub mod triage;
