//! Health checks: async, each with a timeout, so a hung dependency makes
//! readiness fail instead of hanging the endpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;

type CheckFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

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
    checks: Arc<std::sync::Mutex<Vec<(String, CheckFn)>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("phase", &self.phase()).finish_non_exhaustive()
    }
}

/// One check's result in the `/readyz` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Whether it passed.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((name.into(), check));
    }

    /// Runs every check at once (each bounded by the timeout).
    pub async fn readiness(&self) -> Readiness {
        let phase = self.phase();
        let checks: Vec<(String, CheckFn)> =
            self.checks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let timeout = self.timeout;
        let mut running = tokio::task::JoinSet::new();
        for (name, check) in checks {
            running.spawn(async move {
                let result = match tokio::time::timeout(timeout, check()).await {
                    Ok(Ok(())) => CheckResult { ok: true, error: None },
                    Ok(Err(error)) => CheckResult { ok: false, error: Some(error) },
                    Err(_) => {
                        CheckResult { ok: false, error: Some(format!("no answer within {} ms", timeout.as_millis())) }
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
                        CheckResult { ok: false, error: Some(e.to_string()) },
                    );
                }
            }
        }
        let ready = phase == Phase::Ready && results.values().all(|r| r.ok);
        Readiness { ready, phase, checks: results }
    }
}
