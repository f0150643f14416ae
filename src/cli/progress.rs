//! Progress bars for the long runs (`status --live`, `renew --all`, `remind --all`), drawn with
//! indicatif (<https://docs.rs/indicatif>) on standard error.
//!
//! A bar is drawn only when a person is watching, and then the way cargo draws its own: one line
//! on standard error, rewritten in place and cleared when the run ends, so the report that follows
//! starts on a clean line. Nothing at all is drawn (not even a carriage return) when:
//! - standard output or standard error is not a terminal (a pipe, a file, cron, CI);
//! - the output is JSON (`--output json`), which scripts read;
//! - `NO_COLOR` is set to anything but empty (<https://no-color.org>): we read it, like the
//!   issue that asked for the bars, as "no decoration", not only "no colour";
//! - `TERM` is `dumb` (Emacs shells, some CI terminals), or `--verbose` logs go to the same
//!   standard error and would tear the bar;
//! - the run has fewer than two items;
//! - `remind` prints its reminders on stdout (the `stdout` channel).
//!
//! While a bar is drawn, log lines and notes go through [`suspend`]: printed above the bar, which
//! is drawn again under them. An admin certificate's password is asked for before the bar starts.

use hybrid_trust::progress::{Progress, Silent};
use std::io::IsTerminal as _;

/// The bar on screen now, if any: what else writes to the terminal during a run (log lines,
/// notes) goes through [`suspend`], so it lands above the bar instead of tearing it.
static SHOWN: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

fn shown() -> std::sync::MutexGuard<'static, Option<indicatif::ProgressBar>> {
    SHOWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` (which writes to the terminal) with the bar on screen, if any, taken away and
/// drawn again after.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    // Not under the lock: `f` may log, and logging comes back here.
    let bar = shown().clone();
    match bar {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

/// Whether a bar may be drawn, from the facts listed in the module docs.
fn watching(json: bool, verbose: u8) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    !json
        && verbose == 0
        && !no_color
        && !dumb
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

/// The progress display for this run: a bar when somebody watches, else [`Silent`].
pub fn for_run(json: bool, verbose: u8) -> Box<dyn Progress> {
    if watching(json, verbose) {
        Box::new(Bar(indicatif::ProgressBar::hidden()))
    } else {
        Box::new(Silent)
    }
}

/// An indicatif bar, hidden until the run says how many items it has.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&self, what: &str, total: usize) {
        if total < 2 {
            return;
        }
        let style =
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
        self.0.set_style(style);
        self.0.set_length(total as u64);
        self.0.set_message(what.to_string());
        self.0
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        *shown() = Some(self.0.clone());
        // Redrawn while a slow tenant holds every item back, so the clock still moves.
        self.0
            .enable_steady_tick(std::time::Duration::from_millis(200));
    }
    fn done(&self, _label: &str) {
        self.0.inc(1);
    }
    fn finish(&self) {
        *shown() = None;
        self.0.finish_and_clear();
    }
}

impl Drop for Bar {
    /// A run that ends early (an error) still leaves a clean line.
    fn drop(&mut self) {
        if !self.0.is_finished() {
            *shown() = None;
            self.0.finish_and_clear();
        }
    }
}
