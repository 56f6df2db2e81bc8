//! Triage
pub mod sentiment;
