//! Ctrl-C and SIGTERM turned into a flag from the demo's first moment: an interrupted
//! demo stops after its current step and still removes everything it created (the
//! default action would end the process with its namespaces, pins and agents left).

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::signal::unix::{SignalKind, signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers (before returning, so no signal is missed) and watches them on
/// a thread of their own.
pub fn watch() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                if !INTERRUPTED.swap(true, Ordering::Relaxed) {
                    println!("\ninterrupted: removing everything once the current step ends");
                }
            }
        })
    });
    Ok(())
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
