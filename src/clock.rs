//! The one clock of the client: every "now" the library and the command line use comes from a
//! [`Clock`] (DESIGN.md, "One clock"). Production reads the system time; `--as-of` plans against a
//! fixed instant; tests and the simulation of years run on a fixed or shifted clock, and the
//! same code paths run. This is the only place anything reads the system time: the emulator's own
//! clock (`emulator::clock`, an adjustable offset) reads it through here too.

use chrono::{DateTime, TimeDelta, Utc};

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
}
