//! The bridge between a [`Connector`] and the generated component exports,
//! plus the panic hook that tells the host why a plugin aborted.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::PanicHookInfo;
use std::sync::Once;

use crate::bindings::exports::webcare::connector::connector::Guest;
use crate::bindings::webcare::connector::log;
use crate::{
    Action, ActionResult, ActionTarget, Batch, Connector, Error, PluginInfo, WebhookOutcome,
    WebhookRequest,
};

/// Implements the generated `Guest` trait for any [`Connector`]. Used by
/// [`export!`](crate::export); never named by connector code.
pub struct Adapter<C>(PhantomData<fn() -> C>);

impl<C: Connector> Guest for Adapter<C> {
    fn describe() -> PluginInfo {
        install_panic_hook();
        C::describe()
    }

    fn poll(cursor: Option<String>) -> Result<Batch, Error> {
        install_panic_hook();
        C::poll(cursor)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, Error> {
        install_panic_hook();
        C::handle_webhook(request)
    }

    fn perform(action: Action, target: ActionTarget) -> Result<ActionResult, Error> {
        install_panic_hook();
        C::perform(action, target)
    }
}

/// Installs [`report_panic`] as the panic hook, once per instance.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(report_panic)));
}

/// Reports a panic to the host (`log.report-panic`) and to stderr, which the
/// host also captures. The abort that follows becomes a trap on the host side.
fn report_panic(info: &PanicHookInfo<'_>) {
    let message = panic_message(info.payload());
    let location = info
        .location()
        .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()));
    log::report_panic(&message, location.as_deref());
    match &location {
        Some(location) => eprintln!("connector panicked at {location}: {message}"),
        None => eprintln!("connector panicked: {message}"),
    }
}

/// The text of a panic payload: the message of `panic!("...")` (a `&str` or a
/// `String`), or a placeholder for payloads of other types.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_message_reads_str_and_string_payloads() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("static text");
        assert_eq!(panic_message(payload.as_ref()), "static text");
        let payload: Box<dyn std::any::Any + Send> = Box::new(format!("formatted {}", 42));
        assert_eq!(panic_message(payload.as_ref()), "formatted 42");
        let payload: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(
            panic_message(payload.as_ref()),
            "panic with a non-string payload"
        );
    }
}
