//! A crash point, for tests that play `kill -9` of the client in process: armed with `k`, the
//! k-th request from then on (control requests aside) is applied or not, as asked, and then never
//! answered, so the client hangs there as a killed process would have stopped; the test sees the
//! point reached ([`CrashPoint::wait_fired`]) and drops the command's future (its file locks are
//! released on drop, as on a process's death). Reproducible: the point is a request count, not a
//! time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct CrashPoint {
    /// (requests to let through first, whether the crashing request is applied).
    armed: Mutex<Option<(u64, bool)>>,
    fired: AtomicBool,
    notify: Notify,
}

impl CrashPoint {
    /// The `k`-th request from now (1-based) crashes; `apply`: it is carried out before the hang
    /// (the answer is lost), else it is not.
    pub fn arm(&self, k: u64, apply: bool) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some((k.saturating_sub(1), apply));
        self.fired.store(false, Ordering::SeqCst);
    }

    /// No crash (a command that made fewer than `k` requests finished).
    pub fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether the armed point was reached.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Waits until the armed point is reached.
    pub async fn wait_fired(&self) {
        loop {
            let n = self.notify.notified();
            if self.fired() {
                return;
            }
            n.await;
        }
    }

    /// Counts a request: `Some(apply)` when this one is the crash.
    pub fn hit(&self) -> Option<bool> {
        let mut a = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        match a.as_mut() {
            None => None,
            Some((0, apply)) => {
                let apply = *apply;
                *a = None;
                Some(apply)
            }
            Some((n, _)) => {
                *n -= 1;
                None
            }
        }
    }

    /// The crash: `applied` (the request carried out, when asked) runs to its end, its answer is
    /// dropped, and the request is never answered.
    pub async fn crash<F: std::future::Future>(
        &self,
        applied: Option<F>,
    ) -> std::convert::Infallible {
        if let Some(f) = applied {
            drop(f.await);
        }
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        std::future::pending().await
    }
}
