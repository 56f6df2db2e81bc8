//! Checks on what a plugin returns, before anything reaches the queue.
//!
//! A batch is accepted whole or refused whole: a plugin that returns one
//! malformed message gets its entire batch refused with the reason, so the
//! cursor does not advance past messages that were never stored.

use super::error::PluginError;
use super::limits::{CallLimits, MAX_CURSOR_BYTES, MAX_PROPERTIES, MAX_PROPERTY_BYTES};
use crate::model::{Message, MessageUpdate, WebhookOutcome};

fn check_message(m: &Message, limits: &CallLimits) -> Result<usize, PluginError> {
    let invalid = |what: String| Err(PluginError::InvalidOutput(what));
    if m.external_id.is_empty() {
        return invalid("a message has an empty external_id".into());
    }
    if m.thread_id.is_empty() {
        return invalid(format!(
            "message {:?} has an empty thread_id",
            m.external_id
        ));
    }
    if m.properties.len() > MAX_PROPERTIES {
        return invalid(format!(
            "message {:?} has {} properties, at most {MAX_PROPERTIES} are allowed",
            m.external_id,
            m.properties.len()
        ));
    }
    if let Some((k, _)) = m
        .properties
        .iter()
        .find(|(_, v)| v.len() > MAX_PROPERTY_BYTES)
    {
        return invalid(format!(
            "property {k:?} of message {:?} exceeds {MAX_PROPERTY_BYTES} bytes",
            m.external_id
        ));
    }
    let size = m.approx_size();
    if size > limits.max_message_bytes {
        return Err(PluginError::OutputLimit(format!(
            "message {:?} is about {size} bytes, over the cap of {} bytes per message",
            m.external_id, limits.max_message_bytes
        )));
    }
    Ok(size)
}

/// Validates messages and updates of one batch or webhook outcome.
pub fn check_messages(
    messages: &[Message],
    updates: &[MessageUpdate],
    limits: &CallLimits,
) -> Result<(), PluginError> {
    let count = messages.len() + updates.len();
    if count > limits.max_messages {
        return Err(PluginError::OutputLimit(format!(
            "{count} messages and updates in one result, over the cap of {}",
            limits.max_messages
        )));
    }
    let mut total = 0usize;
    for m in messages {
        total += check_message(m, limits)?;
    }
    for u in updates {
        match u {
            MessageUpdate::Edited(m) => total += check_message(m, limits)?,
            other if other.external_id().is_empty() => {
                return Err(PluginError::InvalidOutput(
                    "an update has an empty external_id".into(),
                ));
            }
            _ => total += 64,
        }
    }
    if total > limits.max_output_bytes {
        return Err(PluginError::OutputLimit(format!(
            "the result is about {total} bytes, over the cap of {} bytes",
            limits.max_output_bytes
        )));
    }
    Ok(())
}

pub fn check_cursor(cursor: Option<&str>) -> Result<(), PluginError> {
    match cursor {
        Some(c) if c.len() > MAX_CURSOR_BYTES => Err(PluginError::OutputLimit(format!(
            "next_cursor is {} bytes, over the cap of {MAX_CURSOR_BYTES}",
            c.len()
        ))),
        _ => Ok(()),
    }
}

pub fn check_webhook(outcome: &WebhookOutcome, limits: &CallLimits) -> Result<(), PluginError> {
    let status = outcome.response.status;
    if !(100..=599).contains(&status) {
        return Err(PluginError::InvalidOutput(format!(
            "webhook response status {status} is not an HTTP status"
        )));
    }
    if outcome.response.body.len() > limits.max_message_bytes {
        return Err(PluginError::OutputLimit(format!(
            "webhook response body of {} bytes, over the cap of {} bytes",
            outcome.response.body.len(),
            limits.max_message_bytes
        )));
    }
    check_messages(&outcome.messages, &outcome.updates, limits)
}
