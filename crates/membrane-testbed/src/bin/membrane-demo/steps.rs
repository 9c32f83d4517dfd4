//! Numbered steps with their duration, and bounded waits that show progress.

use std::io::Write;
use std::time::{Duration, Instant};

/// Numbered steps.
pub struct Steps {
    total: usize,
    current: usize,
}

impl Steps {
    /// `total` steps to come.
    pub fn new(total: usize) -> Steps {
        Steps { total, current: 0 }
    }

    /// Runs the next step, printing its number, what it does and how long it took.
    pub fn run<T>(
        &mut self,
        what: &str,
        step: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if crate::signals::interrupted() {
            anyhow::bail!("interrupted before: {what}");
        }
        self.current += 1;
        println!("\n[{}/{}] {what} ...", self.current, self.total);
        let started = Instant::now();
        let result = step()?;
        println!("      done in {:.1}s", started.elapsed().as_secs_f64());
        Ok(result)
    }
}

/// Polls `done` every `every` until it returns true or `limit` passes, printing a dot
/// per poll; false when the limit passed.
pub fn wait_for(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    print!("      ");
    loop {
        if done() {
            println!(" ready");
            return true;
        }
        if Instant::now() >= deadline {
            println!(" gave up after {limit:?}");
            return false;
        }
        print!(".");
        let _ = std::io::stdout().flush();
        std::thread::sleep(every);
    }
}
