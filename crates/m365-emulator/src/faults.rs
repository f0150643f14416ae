//! Fault injection: random faults from `--faults 429:0.1,503:0.05,reset:0.02,timeout:0.01`
//! (reproducible for a given `--seed`: the n-th request draws from `splitmix64(seed, n)`), and
//! scripted faults posted to the control API ("fail the next PATCH of a service principal with a
//! 503, once") for the fault-matrix tests.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 Too Many Requests with `Retry-After` (Graph's throttling shape).
    #[serde(rename = "429")]
    TooManyRequests,
    /// 503 Service Unavailable with `Retry-After`.
    #[serde(rename = "503")]
    Unavailable,
    /// The connection is dropped before any response.
    #[serde(rename = "reset")]
    Reset,
    /// The request is held until the client gives up (or `timeout_fault_secs`, then 504).
    #[serde(rename = "timeout")]
    Timeout,
    /// A 200 response whose JSON body is cut short.
    #[serde(rename = "malformed")]
    Malformed,
    /// 204 No Content without applying the request: what a client sees when another writer's
    /// PATCH lands right after its own (Graph has no ETag for keyCredentials).
    #[serde(rename = "lost-write")]
    LostWrite,
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "429" => Ok(FaultKind::TooManyRequests),
            "503" => Ok(FaultKind::Unavailable),
            "reset" => Ok(FaultKind::Reset),
            "timeout" => Ok(FaultKind::Timeout),
            "malformed" => Ok(FaultKind::Malformed),
            "lost-write" => Ok(FaultKind::LostWrite),
            other => Err(format!(
                "unknown fault kind {other:?}: use 429, 503, reset, timeout, malformed or lost-write"
            )),
        }
    }
}

impl FaultKind {
    /// Whether this fault can hit a request with `method`: a lost write is a PATCH's fault alone
    /// (docs/emulator.md); a GET or a token POST "answered 204 and applied nothing" is not a
    /// failure any real server shows, and it broke reads and sign-ins the fault was never meant
    /// for. Every other kind hits any method.
    pub fn applies_to(self, method: &str) -> bool {
        self != FaultKind::LostWrite || method.eq_ignore_ascii_case("PATCH")
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::TooManyRequests => "429",
            FaultKind::Unavailable => "503",
            FaultKind::Reset => "reset",
            FaultKind::Timeout => "timeout",
            FaultKind::Malformed => "malformed",
            FaultKind::LostWrite => "lost-write",
        })
    }
}

/// Random faults, each with a probability; the probabilities add up to at most 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    pub entries: Vec<(FaultKind, f64)>,
}

impl FromStr for FaultSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, p) = part
                .split_once(':')
                .ok_or_else(|| format!("fault {part:?} is not KIND:PROBABILITY, e.g. 429:0.1"))?;
            let kind: FaultKind = kind.trim().parse()?;
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("probability {p:?} of fault {kind} is not a number"))?;
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Err(format!(
                    "probability {p} of fault {kind} is not between 0 and 1"
                ));
            }
            if entries.iter().any(|(k, _)| *k == kind) {
                return Err(format!("fault {kind} is given twice"));
            }
            entries.push((kind, p));
        }
        let total: f64 = entries.iter().map(|(_, p)| p).sum();
        if total > 1.0 + 1e-9 {
            return Err(format!(
                "fault probabilities add up to {total}, more than 1"
            ));
        }
        Ok(FaultSpec { entries })
    }
}

impl FaultSpec {
    /// The fault (if any) for the request numbered `n` (method `method`), reproducibly for
    /// `seed`; a fault drawn that does not apply to the method ([`FaultKind::applies_to`]) is
    /// none.
    pub fn pick(&self, seed: u64, n: u64, method: &str) -> Option<FaultKind> {
        if self.entries.is_empty() {
            return None;
        }
        let draw = unit_interval(splitmix64(seed ^ splitmix64(n)));
        let mut acc = 0.0;
        for (kind, p) in &self.entries {
            acc += p;
            if draw < acc {
                return Some(*kind).filter(|k| k.applies_to(method));
            }
        }
        None
    }
}

/// A scripted fault: the first `times` requests matching `method` (if given) and whose path
/// contains `path_contains`, after `skip` matching requests have passed untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    pub kind: FaultKind,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: String,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub skip: u32,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.kind.applies_to(method)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }
}

/// Scripted rules in order; the first matching live rule fires.
#[derive(Debug, Default)]
pub struct FaultScript {
    rules: Vec<FaultRule>,
}

impl FaultScript {
    pub fn replace(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules;
    }
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }
    /// Consumes one firing of the first rule matching this request.
    pub fn take(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let idx = self
            .rules
            .iter()
            .position(|r| r.times > 0 && r.matches(method, path))?;
        let rule = &mut self.rules[idx];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.times -= 1;
        let kind = rule.kind;
        if rule.times == 0 {
            self.rules.remove(idx);
        }
        Some(kind)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let spec: FaultSpec = "429:0.1,503:0.05,reset:0.02,timeout:0.01".parse().unwrap();
        assert_eq!(spec.entries.len(), 4);
        assert_eq!(spec.entries[0], (FaultKind::TooManyRequests, 0.1));
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "429",
            "418:0.1",
            "429:x",
            "429:1.5",
            "429:0.6,503:0.6",
            "429:0.1,429:0.1",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn draws_are_reproducible_and_near_their_probability() {
        let spec: FaultSpec = "429:0.1,reset:0.05".parse().unwrap();
        let a: Vec<_> = (0..2000).map(|n| spec.pick(7, n, "GET")).collect();
        let b: Vec<_> = (0..2000).map(|n| spec.pick(7, n, "GET")).collect();
        assert_eq!(a, b);
        let c: Vec<_> = (0..2000).map(|n| spec.pick(8, n, "GET")).collect();
        assert_ne!(a, c, "a different seed gives a different sequence");
        let n429 = a
            .iter()
            .filter(|k| **k == Some(FaultKind::TooManyRequests))
            .count();
        let nreset = a.iter().filter(|k| **k == Some(FaultKind::Reset)).count();
        assert!((140..260).contains(&n429), "{n429} 429s in 2000 at p=0.1");
        assert!(
            (60..140).contains(&nreset),
            "{nreset} resets in 2000 at p=0.05"
        );
    }

    #[test]
    fn scripted_rules_skip_then_fire_the_given_number_of_times() {
        let mut s = FaultScript::default();
        s.replace(vec![FaultRule {
            kind: FaultKind::Unavailable,
            method: Some("PATCH".into()),
            path_contains: "/servicePrincipals".into(),
            times: 2,
            skip: 1,
        }]);
        assert_eq!(s.take("GET", "/graph/v1.0/servicePrincipals"), None);
        assert_eq!(s.take("PATCH", "/graph/v1.0/servicePrincipals/x"), None);
        assert_eq!(
            s.take("patch", "/graph/v1.0/servicePrincipals/x"),
            Some(FaultKind::Unavailable)
        );
        assert_eq!(
            s.take("PATCH", "/graph/v1.0/servicePrincipals/x"),
            Some(FaultKind::Unavailable)
        );
        assert_eq!(s.take("PATCH", "/graph/v1.0/servicePrincipals/x"), None);
        assert!(s.rules().is_empty());
    }

    /// Issue 24, item 8: a lost write hits a PATCH only, scripted (a rule without a method waits
    /// for the PATCH, the GET and the token POST pass and consume nothing) or random.
    #[test]
    fn a_lost_write_hits_only_a_patch() {
        let mut s = FaultScript::default();
        s.replace(vec![FaultRule {
            kind: FaultKind::LostWrite,
            method: None,
            path_contains: String::new(),
            times: 1,
            skip: 0,
        }]);
        assert_eq!(s.take("GET", "/graph/v1.0/servicePrincipals"), None);
        assert_eq!(s.take("POST", "/login/t/oauth2/v2.0/token"), None);
        assert_eq!(
            s.take("PATCH", "/graph/v1.0/servicePrincipals/x"),
            Some(FaultKind::LostWrite)
        );
        let spec: FaultSpec = "lost-write:1".parse().unwrap();
        for n in 0..50 {
            assert_eq!(spec.pick(3, n, "GET"), None);
            assert_eq!(spec.pick(3, n, "POST"), None);
            assert_eq!(spec.pick(3, n, "PATCH"), Some(FaultKind::LostWrite));
        }
    }
}
