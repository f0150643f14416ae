//! The emulator's clock: a time source plus an adjustable offset, so tests can skew the "server"
//! time (AADSTS700024) without touching the machine's clock. The source is the system time, read
//! here and nowhere else in the emulator; an in-process test may give it another source
//! ([`Clock::follow`], e.g. the simulated time the client under test runs on), so waits on the
//! client's side move the server's time too. The emulator shares no code with the client: the
//! source is a plain function, not the client's clock type.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

/// Where the emulator's time comes from when it is not the system time.
pub type TimeSource = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
    /// The time source, when it is not the system time (set once).
    source: Arc<OnceLock<TimeSource>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("offset_secs", &self.offset_secs())
            .field("follows", &self.source.get().is_some())
            .finish()
    }
}

/// The system time: the one place the emulator reads it.
pub fn system_now() -> DateTime<Utc> {
    Utc::now()
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed));
        let t = match self.source.get() {
            Some(source) => source(),
            None => system_now(),
        };
        t.checked_add_signed(offset).unwrap_or(t)
    }
    pub fn set_offset_secs(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
    /// Takes its time from `source` instead of the system time, from now on. Once: `false` if a
    /// source was set.
    pub fn follow(&self, source: TimeSource) -> bool {
        self.source.set(source).is_ok()
    }
}
