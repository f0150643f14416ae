//! The emulator's clock: a time source plus an adjustable offset, so tests can skew the "server"
//! time (AADSTS700024) without touching the machine's clock. The source is the system time, read
//! through the one [`crate::clock::Clock`] (a leaf module with no client logic, shared like the
//! atomic-write helper), so `Utc::now()` appears in one place; an in-process test may make it a
//! simulated time it shares with the library ([`Clock::follow`]), so waits on either side move
//! both.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
    /// The time source, when it is not the system time (set once).
    source: Arc<OnceLock<crate::clock::Clock>>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed));
        match self.source.get() {
            Some(c) => {
                let t = c.now();
                t.checked_add_signed(offset).unwrap_or(t)
            }
            None => crate::clock::Clock::Shifted(offset).now(),
        }
    }
    pub fn set_offset_secs(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
    /// Takes its time from `source` (e.g. a [`crate::clock::SimTime`] shared with the client
    /// under test) instead of the system time, from now on. Once: `false` if a source was set.
    pub fn follow(&self, source: crate::clock::Clock) -> bool {
        self.source.set(source).is_ok()
    }
}
