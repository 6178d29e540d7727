//! [`EtcdRegistry`]: etcd v3 through its JSON gRPC gateway.
//!
//! Each instance is a JSON [`Instance`] under `/<prefix>/<service>/<id>`,
//! attached to a lease of its TTL. Calls, per etcd's gateway documentation
//! (<https://etcd.io/docs/v3.4/dev-guide/api_grpc_gateway/>), with keys and
//! values base64-encoded and 64-bit integers as JSON strings:
//! `POST /v3/lease/grant {"TTL"}` → `{"ID"}`; `POST /v3/kv/put {"key","value","lease"}`;
//! `POST /v3/lease/keepalive {"ID"}` → `{"result":{"ID","TTL"}}` (no `TTL`: the
//! lease is gone); `POST /v3/lease/revoke {"ID"}` (deletes the key);
//! `POST /v3/kv/range {"key","range_end"}` → `{"header":{"revision"},"kvs":[…]}`;
//! `POST /v3/watch {"create_request":{"key","range_end","start_revision"}}` → a
//! stream of newline-delimited `{"result":{"events":[{"type","kv"}]}}`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::config::EtcdConfig;
use crate::error::{Error, Result};
use crate::instance::{Instance, Lease};
use crate::metrics;
use crate::registry::{Registry, Watch};

/// The most of an error body kept in [`Error::Backend`].
const MAX_BODY: usize = 1024;

/// A registry in etcd (v3.4 or later), over its JSON gateway and the
/// `reqwest` client the chassis already has (no protoc, no gRPC stack).
///
/// Endpoints are tried in turn, starting with the last one that answered.
///
/// ```no_run
/// # async fn example() -> chassis_discovery::Result<()> {
/// use chassis_discovery::{EtcdConfig, EtcdRegistry, Instance, Registry};
///
/// let registry = EtcdRegistry::new(&EtcdConfig::default())?; // http://127.0.0.1:2379, prefix "chassis"
/// let lease = registry.register(&Instance::new("inventory", "inv-1", "10.0.0.7:8080"), std::time::Duration::from_secs(10)).await?;
/// registry.keep_alive(&lease).await?; // every third of the TTL
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EtcdRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoints: Vec<String>,
    prefix: String,
    timeout: Duration,
    /// The endpoint that answered last.
    current: AtomicUsize,
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn unreachable(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unreachable(Box::new(error))
}

fn invalid(what: impl fmt::Display) -> Error {
    Error::InvalidAnswer(what.to_string())
}

/// An int64 the gateway sends as a string (or, from some versions, a number).
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The first key after every key that starts with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdRegistry {
    /// A registry at `config.endpoints` (`http://host:port`), under `config.prefix`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without endpoints, or with a prefix containing `/`
    /// at either end; [`Error::Unreachable`] when no HTTP client can be built.
    pub fn new(config: &EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::InvalidConfig { field: "etcd.endpoints", reason: "is empty".into() });
        }
        if config.prefix.is_empty() || config.prefix.starts_with('/') || config.prefix.ends_with('/') {
            return Err(Error::InvalidConfig {
                field: "etcd.prefix",
                reason: format!("`{}` must be non-empty, without a leading or trailing `/`", config.prefix),
            });
        }
        // No client-wide timeout: a watch lasts as long as it is followed.
        let http = reqwest::Client::builder().build().map_err(unreachable)?;
        let endpoints = config.endpoints.iter().map(|e| e.trim_end_matches('/').to_owned()).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoints,
                prefix: config.prefix.clone(),
                timeout: Duration::from_millis(config.request_timeout_ms),
                current: AtomicUsize::new(0),
            }),
        })
    }

    fn service_prefix(&self, service: &str) -> String {
        format!("/{}/{service}/", self.inner.prefix)
    }

    /// Sends `body` to `path` at the first endpoint that answers.
    async fn send(&self, path: &str, body: &Value, timeout: Option<Duration>) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(body).map_err(invalid)?;
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let at = (start + i) % n;
            let mut request = self.inner.http.post(format!("{}{path}", self.inner.endpoints[at])).body(body.clone());
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            match request.send().await {
                Ok(response) => {
                    self.inner.current.store(at, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last
            .map_or_else(|| Error::InvalidConfig { field: "etcd.endpoints", reason: "is empty".into() }, unreachable))
    }

    /// A unary call: the JSON answer, or the error etcd gave.
    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let response = self.send(path, &body, Some(self.inner.timeout)).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let mut body = String::from_utf8_lossy(&bytes).into_owned();
            body.truncate(body.floor_char_boundary_compat(MAX_BODY));
            return Err(Error::Backend { status: status.as_u16(), body });
        }
        serde_json::from_slice(&bytes).map_err(|e| invalid(format_args!("{path}: {e}")))
    }

    /// The instances under `service` and the revision they were read at.
    async fn range(&self, service: &str) -> Result<(BTreeMap<String, Instance>, i64)> {
        let prefix = self.service_prefix(service);
        let answer = self
            .call("/v3/kv/range", json!({"key": B64.encode(&prefix), "range_end": B64.encode(range_end(&prefix))}))
            .await?;
        let revision = answer.pointer("/header/revision").and_then(int).ok_or_else(|| invalid("range: no revision"))?;
        let mut instances = BTreeMap::new();
        for kv in answer.get("kvs").and_then(Value::as_array).into_iter().flatten() {
            if let Some((key, instance)) = decode_kv(kv) {
                instances.insert(key, instance);
            }
        }
        Ok((instances, revision))
    }
}

/// Reads a key-value of the gateway: its key, and its value as an [`Instance`]
/// (`None`, with a warning, when it is not one).
fn decode_kv(kv: &Value) -> Option<(String, Instance)> {
    let key = kv.get("key").and_then(Value::as_str).and_then(|k| B64.decode(k).ok())?;
    let key = String::from_utf8_lossy(&key).into_owned();
    let value = kv.get("value").and_then(Value::as_str).and_then(|v| B64.decode(v).ok()).unwrap_or_default();
    match serde_json::from_slice::<Instance>(&value) {
        Ok(instance) => Some((key, instance)),
        Err(error) => {
            tracing::warn!(%key, %error, "ignoring a value that is not an instance");
            None
        }
    }
}

/// `str::floor_char_boundary` is unstable: the largest char boundary ≤ `max`.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, max: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, max: usize) -> usize {
        (0..=max.min(self.len())).rev().find(|&i| self.is_char_boundary(i)).unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Registry for EtcdRegistry {
    async fn register(&self, instance: &Instance, ttl: Duration) -> Result<Lease> {
        // etcd's TTLs are whole seconds.
        let secs = ttl.as_secs().max(1) + u64::from(ttl.subsec_nanos() > 0);
        let grant = self.call("/v3/lease/grant", json!({"TTL": secs})).await?;
        let id = grant.get("ID").and_then(int).ok_or_else(|| invalid("lease/grant: no ID"))?;
        let key = format!("{}{}", self.service_prefix(&instance.service), instance.id);
        let value = serde_json::to_vec(instance).map_err(invalid)?;
        self.call("/v3/kv/put", json!({"key": B64.encode(key), "value": B64.encode(value), "lease": id.to_string()}))
            .await?;
        metrics::registered(&instance.service);
        Ok(Lease::new(&instance.service, &instance.id, id, Duration::from_secs(secs)))
    }

    async fn keep_alive(&self, lease: &Lease) -> Result<()> {
        let answer = self.call("/v3/lease/keepalive", json!({"ID": lease.id().to_string()})).await?;
        // A lease etcd no longer has comes back without a TTL.
        match answer.pointer("/result/TTL").and_then(int) {
            Some(ttl) if ttl > 0 => Ok(()),
            _ => Err(Error::LeaseGone { lease: lease.id() }),
        }
    }

    async fn deregister(&self, lease: &Lease) -> Result<()> {
        match self.call("/v3/lease/revoke", json!({"ID": lease.id().to_string()})).await {
            // gRPC NotFound: already gone (expired or revoked).
            Err(Error::Backend { body, .. }) if body.contains("lease not found") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn resolve(&self, service: &str) -> Result<Vec<Instance>> {
        Ok(sorted(&self.range(service).await?.0))
    }

    async fn watch(&self, service: &str) -> Result<Box<dyn Watch>> {
        Ok(Box::new(EtcdWatch {
            registry: self.clone(),
            service: service.to_owned(),
            instances: BTreeMap::new(),
            stream: None,
            buffer: Vec::new(),
        }))
    }
}

fn sorted(instances: &BTreeMap<String, Instance>) -> Vec<Instance> {
    let mut list: Vec<Instance> = instances.values().cloned().collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    list
}

/// A prefix watch: a range read, then `/v3/watch` from the next revision.
struct EtcdWatch {
    registry: EtcdRegistry,
    service: String,
    /// Key → instance, as of the last event.
    instances: BTreeMap<String, Instance>,
    stream: Option<reqwest::Response>,
    /// Bytes of a message not yet complete.
    buffer: Vec<u8>,
}

impl fmt::Debug for EtcdWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdWatch").field("service", &self.service).finish_non_exhaustive()
    }
}

impl EtcdWatch {
    /// Applies one watch message; whether the list changed.
    fn apply(&mut self, message: &Value) -> Result<bool> {
        if let Some(error) = message.get("error") {
            return Err(Error::Backend { status: 200, body: error.to_string() });
        }
        let result = message.get("result").ok_or_else(|| invalid("watch: no result"))?;
        if result.get("canceled").and_then(Value::as_bool) == Some(true) {
            // Compacted past our revision, or cancelled by the server: start over.
            return Err(Error::WatchEnded);
        }
        let mut changed = false;
        for event in result.get("events").and_then(Value::as_array).into_iter().flatten() {
            let Some(kv) = event.get("kv") else { continue };
            if event.get("type").and_then(Value::as_str) == Some("DELETE") {
                let key = kv.get("key").and_then(Value::as_str).and_then(|k| B64.decode(k).ok());
                if let Some(key) = key {
                    changed |= self.instances.remove(&String::from_utf8_lossy(&key).into_owned()).is_some();
                }
            } else if let Some((key, instance)) = decode_kv(kv) {
                changed |= self.instances.insert(key, instance.clone()).as_ref() != Some(&instance);
            }
        }
        Ok(changed)
    }
}

#[async_trait::async_trait]
impl Watch for EtcdWatch {
    async fn next(&mut self) -> Result<Vec<Instance>> {
        if self.stream.is_none() {
            let (instances, revision) = self.registry.range(&self.service).await?;
            let prefix = self.registry.service_prefix(&self.service);
            let create = json!({"create_request": {
                "key": B64.encode(&prefix),
                "range_end": B64.encode(range_end(&prefix)),
                "start_revision": (revision + 1).to_string(),
            }});
            let response = self.registry.send("/v3/watch", &create, None).await?;
            if !response.status().is_success() {
                return Err(Error::Backend { status: response.status().as_u16(), body: String::new() });
            }
            self.stream = Some(response);
            self.instances = instances;
            return Ok(sorted(&self.instances));
        }
        loop {
            let chunk = match self.stream.as_mut() {
                Some(stream) => stream.chunk().await.map_err(unreachable)?,
                None => return Err(Error::WatchEnded),
            };
            let Some(chunk) = chunk else {
                self.stream = None;
                return Err(Error::WatchEnded);
            };
            self.buffer.extend_from_slice(&chunk);
            let mut changed = false;
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let message: Value = serde_json::from_slice(&line).map_err(|e| invalid(format_args!("watch: {e}")))?;
                changed |= self.apply(&message)?;
            }
            if changed {
                return Ok(sorted(&self.instances));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_is_the_prefix_plus_one() {
        assert_eq!(range_end("/chassis/a/"), b"/chassis/a0");
        assert_eq!(range_end(""), [0]);
    }

    #[test]
    fn config_is_checked() {
        let mut config = EtcdConfig { prefix: "/x".into(), ..EtcdConfig::default() };
        assert!(matches!(EtcdRegistry::new(&config), Err(Error::InvalidConfig { field: "etcd.prefix", .. })));
        config.prefix = "x".into();
        config.endpoints.clear();
        assert!(matches!(EtcdRegistry::new(&config), Err(Error::InvalidConfig { field: "etcd.endpoints", .. })));
    }

    #[test]
    fn watch_messages_apply() {
        let registry = EtcdRegistry::new(&EtcdConfig::default()).unwrap();
        let mut watch =
            EtcdWatch { registry, service: "a".into(), instances: BTreeMap::new(), stream: None, buffer: Vec::new() };
        let value = B64.encode(br#"{"service":"a","id":"1","addr":"h:1"}"#);
        let put = json!({"result": {"events": [{"kv": {"key": B64.encode("/chassis/a/1"), "value": value}}]}});
        assert!(watch.apply(&put).unwrap());
        assert!(!watch.apply(&put).unwrap(), "the same value again is no change");
        let junk =
            json!({"result": {"events": [{"kv": {"key": B64.encode("/chassis/a/2"), "value": B64.encode("nope")}}]}});
        assert!(!watch.apply(&junk).unwrap());
        let delete = json!({"result": {"events": [{"type": "DELETE", "kv": {"key": B64.encode("/chassis/a/1")}}]}});
        assert!(watch.apply(&delete).unwrap());
        assert!(watch.instances.is_empty());
        assert!(matches!(watch.apply(&json!({"result": {"canceled": true}})), Err(Error::WatchEnded)));
        assert!(matches!(watch.apply(&json!({"error": {"code": 14}})), Err(Error::Backend { .. })));
    }
}
