//! The one clock of the client: every "now" the library and the command line use comes from a
//! [`Clock`] (docs/design.md, "One clock"). Production reads the system time; `--as-of` plans against a
//! fixed instant; tests and the simulation of years run on a fixed, shifted or simulated clock,
//! and the same code paths run. This is the only place anything reads the system time: the
//! emulator's own clock (`emulator::clock`, an adjustable offset) reads it through here too.
//!
//! Waits go through the clock too ([`Clock::sleep`]): on a [`SimTime`] a wait moves simulated
//! time on at once, so a model-based test plays years of renewals in seconds with the waits the
//! library really makes (docs/design.md, "A suite that waits in simulated time").

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Simulated time: an instant that moves only when told to, or when someone waits on it. Shared
/// (by `&'static` reference, so [`Clock`] stays `Copy`) between the library and the in-process
/// emulator of a test.
#[derive(Debug)]
pub struct SimTime {
    micros: AtomicI64,
}

impl SimTime {
    /// Simulated time starting at `t`, for the rest of the process (a test's world).
    pub fn leak(t: DateTime<Utc>) -> &'static SimTime {
        Box::leak(Box::new(SimTime {
            micros: AtomicI64::new(t.timestamp_micros()),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Sets the simulated instant (a test's clock jump, forwards or back).
    pub fn set(&self, t: DateTime<Utc>) {
        self.micros.store(t.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves simulated time on by `d` (what a wait of `d` does).
    pub fn advance(&self, d: Duration) {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(us))
            });
    }
}

/// Two simulated clocks are the same clock when they share their time.
impl PartialEq for SimTime {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for SimTime {}

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system time.
    #[default]
    System,
    /// Always this instant (`--as-of`, unit tests).
    Fixed(DateTime<Utc>),
    /// The system time moved by an offset (simulated months and years that still pass in real
    /// time, for protocols that wait).
    Shifted(TimeDelta),
    /// Simulated time ([`SimTime`]): moved by the test, and by every wait.
    Simulated(&'static SimTime),
}

impl Clock {
    /// The current instant on this clock. A shift that would leave chrono's range saturates at
    /// the system time (an offset that large is a bug in a test, not a date to act on).
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Shifted(d) => {
                let t = Clock::System.now();
                t.checked_add_signed(*d).unwrap_or(t)
            }
            Clock::Simulated(s) => s.now(),
        }
    }

    /// Waits `d` on this clock: in real time, except on simulated time, which moves on by `d`
    /// at once (and the task yields, so others may run as they would during a wait).
    pub async fn sleep(&self, d: Duration) {
        match self {
            Clock::Simulated(s) => {
                s.advance(d);
                tokio::task::yield_now().await;
            }
            _ => tokio::time::sleep(d).await,
        }
    }

    /// The clock for protocol time (an assertion's `iat`, a token's expiry, a wait): a fixed
    /// clock plans, but messages to a server carry the time that is running, so `--as-of` gives
    /// the system time here; a shifted clock stays shifted (a simulation's servers run shifted).
    pub fn running(&self) -> Clock {
        match self {
            Clock::Fixed(_) => Clock::System,
            c => *c,
        }
    }

    /// Whether this clock follows the system time (time passes while the program waits).
    pub fn is_running(&self) -> bool {
        !matches!(self, Clock::Fixed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn fixed_shifted_and_system() {
        let t = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(Clock::Fixed(t).now(), t);
        assert!(!Clock::Fixed(t).is_running());
        assert_eq!(Clock::Fixed(t).running(), Clock::System);
        assert_eq!(
            Clock::Shifted(TimeDelta::days(1)).running(),
            Clock::Shifted(TimeDelta::days(1))
        );
        let year = TimeDelta::days(365);
        let shifted = Clock::Shifted(year).now();
        let system = Clock::System.now();
        assert!((shifted - system - year).num_seconds().abs() < 5);
        assert!(
            Clock::Shifted(TimeDelta::MAX).now() <= Clock::System.now() + TimeDelta::seconds(5)
        );
    }

    #[tokio::test]
    async fn simulated_time_moves_when_waited_on() {
        let t = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        let sim = SimTime::leak(t);
        let c = Clock::Simulated(sim);
        assert_eq!(c.now(), t);
        assert!(c.is_running());
        assert_eq!(c.running(), c);
        let started = std::time::Instant::now();
        c.sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now(), t + TimeDelta::hours(1));
        assert!(started.elapsed() < Duration::from_secs(60));
        sim.set(t);
        assert_eq!(c.now(), t);
        assert_ne!(c, Clock::Simulated(SimTime::leak(t)));
    }
}
