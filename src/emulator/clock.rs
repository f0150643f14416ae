//! The emulator's clock: the system time plus an adjustable offset, so tests can skew the
//! "server" time (AADSTS700024) without touching the machine's clock. The system time itself is
//! read through the one [`crate::clock::Clock`] (a leaf module with no client logic, shared like
//! the atomic-write helper), so `Utc::now()` appears in one place.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        crate::clock::Clock::Shifted(TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed)))
            .now()
    }
    pub fn set_offset_secs(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
    pub fn offset_secs(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
}
