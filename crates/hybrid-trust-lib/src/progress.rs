//! Progress of a long run as the library sees it: how many items there are and which is done.
//!
//! The library counts; it never draws. The command line decides whether anything is shown (a bar
//! on a terminal, nothing in a pipe, with `--output json` or with `NO_COLOR`: see
//! `cli::progress`). Runs that go through many tenants (`status --live`, `renew --all`,
//! `remind --all`) take a `&dyn Progress` and call it from whichever task finishes an item, so an
//! implementation must be `Sync` and cheap.

/// Told about a run's items as they finish. Every method has a do-nothing default.
pub trait Progress: Sync {
    /// The run has `total` items; `what` says what they are ("reading tenants").
    fn start(&self, _what: &str, _total: usize) {}
    /// One more item is done; `label` names it (a tenant's domain, a channel).
    fn done(&self, _label: &str) {}
    /// The run is over, whether it succeeded or not.
    fn finish(&self) {}
}

/// Shows nothing: for tests, pipes and JSON output.
pub struct Silent;

impl Progress for Silent {}

/// Counts what it is told, for tests of the runs that report progress.
#[derive(Default)]
pub struct Counter {
    pub total: std::sync::atomic::AtomicUsize,
    pub done: std::sync::atomic::AtomicUsize,
    pub finished: std::sync::atomic::AtomicBool,
}

impl Progress for Counter {
    fn start(&self, _what: &str, total: usize) {
        self.total
            .store(total, std::sync::atomic::Ordering::Relaxed);
    }
    fn done(&self, _label: &str) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
