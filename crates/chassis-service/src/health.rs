//! Health checks: async, each with a timeout, so a hung dependency makes
//! readiness fail instead of hanging the endpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;

/// A check: `Err` fails it; `Ok(Some(note))` passes it with a note.
type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send>> + Send + Sync>;

/// A registered check: its name, its function, and whether it only informs
/// (a detail never fails readiness).
#[derive(Clone)]
struct Registered {
    name: String,
    check: CheckFn,
    informs: bool,
}

/// The lifecycle: starting → ready → draining → stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Phase {
    /// Starting: not ready yet.
    Starting,
    /// Serving.
    Ready,
    /// A shutdown began: readiness fails, work drains.
    Draining,
    /// Done.
    Stopped,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Ready,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
    }
}

/// The service's phase and readiness checks; shared with the admin server.
#[derive(Clone, Default)]
pub struct Health {
    phase: Arc<AtomicU8>,
    checks: Arc<std::sync::Mutex<Vec<Registered>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("phase", &self.phase()).finish_non_exhaustive()
    }
}

/// One check's result in the `/readyz` body:
/// `{"ok": true}`, `{"ok": false, "error": "…"}`, or, for a
/// [detail](Health::detail) with something to say, `{"ok": true, "warning": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Whether it passed.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Passed, but degraded: what an operator should know (from a
    /// [detail](Health::detail)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Ready to serve.
    pub ready: bool,
    /// The lifecycle phase.
    pub phase: Phase,
    /// Each check, by name.
    pub checks: BTreeMap<String, CheckResult>,
}

impl Health {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, ..Self::default() }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let code = match phase {
            Phase::Starting => 0,
            Phase::Ready => 1,
            Phase::Draining => 2,
            Phase::Stopped => 3,
        };
        self.phase.store(code, Ordering::Release);
        tracing::info!(phase = ?phase, "service phase");
    }

    /// Registers a readiness check. It fails when it returns `Err`, or takes
    /// longer than the configured check timeout.
    pub fn check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || {
            let running = check();
            Box::pin(async move { running.await.map(|()| None) })
        });
        self.register(Registered { name: name.into(), check, informs: false });
    }

    /// Registers a readiness *detail*: shown in `/readyz` under `name`, never
    /// failing readiness. `Some(warning)` reports a degraded state an operator
    /// should see (`{"ok": true, "warning": "…"}`) — a service that keeps
    /// working on a last known state, say; `None` reports `{"ok": true}`. A
    /// detail that takes longer than the check timeout is reported as a
    /// warning too.
    pub fn detail<F, Fut>(&self, name: impl Into<String>, detail: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || {
            let running = detail();
            Box::pin(async move { Ok(running.await) })
        });
        self.register(Registered { name: name.into(), check, informs: true });
    }

    fn register(&self, check: Registered) {
        self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(check);
    }

    /// Runs every check at once (each bounded by the timeout).
    pub async fn readiness(&self) -> Readiness {
        let phase = self.phase();
        let checks: Vec<Registered> = self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let timeout = self.timeout;
        let mut running = tokio::task::JoinSet::new();
        for Registered { name, check, informs } in checks {
            running.spawn(async move {
                let result = match tokio::time::timeout(timeout, check()).await {
                    Ok(Ok(warning)) => CheckResult { ok: true, error: None, warning },
                    Ok(Err(error)) => CheckResult { ok: false, error: Some(error), warning: None },
                    Err(_) => {
                        let late = format!("no answer within {} ms", timeout.as_millis());
                        if informs {
                            CheckResult { ok: true, error: None, warning: Some(late) }
                        } else {
                            CheckResult { ok: false, error: Some(late), warning: None }
                        }
                    }
                };
                (name, result)
            });
        }
        let mut results = BTreeMap::new();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((name, result)) => {
                    results.insert(name, result);
                }
                Err(e) => {
                    results.insert(
                        format!("check-{}", results.len()),
                        CheckResult { ok: false, error: Some(e.to_string()), warning: None },
                    );
                }
            }
        }
        let ready = phase == Phase::Ready && results.values().all(|r| r.ok);
        Readiness { ready, phase, checks: results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_detail_informs_and_never_fails_readiness() {
        let health = Health::new(Duration::from_millis(200));
        health.set_phase(Phase::Ready);
        health.detail("cache", || async { Some("serving the last list".to_owned()) });
        health.detail("quiet", || async { None });
        health.detail("slow", std::future::pending);
        let readiness = health.readiness().await;
        assert!(readiness.ready);
        let warning = |name: &str| readiness.checks[name].warning.clone();
        assert_eq!(warning("cache").as_deref(), Some("serving the last list"));
        assert_eq!(readiness.checks["quiet"], CheckResult { ok: true, error: None, warning: None });
        assert_eq!(warning("slow").as_deref(), Some("no answer within 200 ms"));
        assert!(readiness.checks.values().all(|c| c.ok && c.error.is_none()));

        // A check that hangs the same way fails readiness.
        health.check("db", std::future::pending);
        let readiness = health.readiness().await;
        assert!(!readiness.ready);
        assert_eq!(readiness.checks["db"].error.as_deref(), Some("no answer within 200 ms"));
    }
}
