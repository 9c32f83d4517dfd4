//! The message of a failing test, repeated after the logs the test bed prints while it
//! unwinds: CI shows the end of a failure's output, and the agent logs would otherwise
//! push the assertion that failed out of it.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that runs the default one and then keeps
/// the panic's message and place for [`message`].
pub fn remember_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_string());
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{text}{place}")));
        }));
    });
}

/// The message of the panic this thread is unwinding from, if the hook saw it.
pub fn message() -> Option<String> {
    MESSAGE.with(|m| m.borrow().clone())
}
