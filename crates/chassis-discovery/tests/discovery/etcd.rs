//! The etcd backend against a real etcd, and the client over it with instances
//! that are real processes (this test binary, run again as a child).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chassis_discovery::{ClientConfig, Error, EtcdConfig, EtcdRegistry, Instance, Registry, Resolver};
use tokio_util::sync::CancellationToken;

use crate::support::Etcd;

fn registry(etcd: &Etcd, prefix: &str) -> EtcdRegistry {
    let mut config = EtcdConfig::default();
    config.endpoints = vec![etcd.endpoint()];
    config.prefix = prefix.into();
    EtcdRegistry::new(&config).unwrap()
}

fn ids(list: &[Instance]) -> Vec<&str> {
    list.iter().map(|i| i.id.as_str()).collect()
}

/// The watch's next list, within 10 s.
async fn next(watch: &mut Box<dyn chassis_discovery::Watch>) -> Vec<Instance> {
    tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("no change within 10 s").unwrap()
}

#[tokio::test]
async fn leases_keep_alive_expire_and_watches_see_it() {
    let etcd = Etcd::start().await;
    let registry = registry(&etcd, "contract");
    let ttl = Duration::from_secs(2);
    let a =
        registry.register(&Instance::new("inv", "a", "127.0.0.1:1").with_metadata("zone", "z1"), ttl).await.unwrap();
    let mut watch = registry.watch("inv").await.unwrap();
    let first = next(&mut watch).await;
    assert_eq!(ids(&first), ["a"]);
    assert_eq!(first[0].metadata["zone"], "z1");

    let b = registry.register(&Instance::new("inv", "b", "127.0.0.1:2"), ttl).await.unwrap();
    assert_eq!(ids(&next(&mut watch).await), ["a", "b"]);
    // Another service under the same prefix is not in this watch.
    registry.register(&Instance::new("inventory", "x", "127.0.0.1:3"), Duration::from_secs(60)).await.unwrap();

    // Keep `a` alive, not `b`: `b` expires with its lease.
    let started = Instant::now();
    let keeper = {
        let (registry, a) = (registry.clone(), a.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                registry.keep_alive(&a).await.unwrap();
            }
        })
    };
    assert_eq!(ids(&next(&mut watch).await), ["a"]);
    let expired_after = started.elapsed();
    assert!(expired_after < Duration::from_secs(4), "expired after {expired_after:?}");
    assert!(matches!(registry.keep_alive(&b).await, Err(Error::LeaseGone { .. })));
    keeper.abort();

    registry.deregister(&a).await.unwrap();
    assert!(next(&mut watch).await.is_empty());
    registry.deregister(&a).await.unwrap(); // already gone: fine
    assert!(registry.resolve("inv").await.unwrap().is_empty());
    assert_eq!(ids(&registry.resolve("inventory").await.unwrap()), ["x"]);
}

#[tokio::test]
async fn an_unreachable_etcd_is_an_error_not_a_hang() {
    let mut config = EtcdConfig::default();
    config.endpoints = vec![format!("http://127.0.0.1:{}", crate::support::free_port())];
    let registry = EtcdRegistry::new(&config).unwrap();
    assert!(matches!(registry.resolve("inv").await, Err(Error::Unreachable(_))));
    assert!(matches!(registry.watch("inv").await.unwrap().next().await, Err(Error::Unreachable(_))));
}

/// An instance process: this test binary run again with only
/// `etcd::instance_process`, configured by environment variables.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(etcd: &Etcd, id: &str, mode: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["etcd::instance_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CHASSIS_TEST_ETCD", etcd.endpoint())
            .env("CHASSIS_TEST_ID", id)
            .env("CHASSIS_TEST_MODE", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Blocking (off the runtime's workers) until the child prints READY, once registered.
        tokio::task::block_in_place(|| {
            loop {
                match lines.next() {
                    // libtest prints `test … ...` on the same line first.
                    Some(Ok(line)) if line.contains("READY ") => break,
                    Some(Ok(_)) => {}
                    other => panic!("instance {id} exited before it was ready: {other:?}"),
                }
            }
        });
        Self { child }
    }

    /// SIGKILL: no deregistration, the lease is left to expire.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child side of [`Process`]: serves `GET /hit` (its id, or a 500 in
/// mode `fail`), registers in etcd with a 2 s TTL, keeps the lease alive
/// (registering again if it was lost), until killed.
#[tokio::test]
#[ignore = "a helper: runs as a child process of the etcd tests"]
#[allow(clippy::disallowed_methods)] // the parent passes its settings in the environment
async fn instance_process() {
    let endpoint = std::env::var("CHASSIS_TEST_ETCD").unwrap();
    let id = std::env::var("CHASSIS_TEST_ID").unwrap();
    let fail = std::env::var("CHASSIS_TEST_MODE").is_ok_and(|m| m == "fail");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = id.clone();
    let app = axum::Router::new().route(
        "/hit",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                let status = if fail { http::StatusCode::INTERNAL_SERVER_ERROR } else { http::StatusCode::OK };
                (status, body)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = EtcdConfig::default();
    config.endpoints = vec![endpoint];
    let registry = EtcdRegistry::new(&config).unwrap();
    let instance = Instance::new("inventory", &id, addr.to_string());
    let ttl = Duration::from_secs(2);
    let mut lease = registry.register(&instance, ttl).await.unwrap();
    println!("READY {addr}");
    loop {
        tokio::time::sleep(ttl / 3).await;
        // Lost (expired while etcd was down): register again; etcd down: try again.
        if let Err(Error::LeaseGone { .. }) = registry.keep_alive(&lease).await {
            if let Ok(new) = registry.register(&instance, ttl).await {
                lease = new;
            }
        }
    }
}

async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if f().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not within {within:?}: {what}");
}

/// Sends `n` GETs from 3 callers at once; the answering ids (500s as `!id`)
/// and the number of failed calls.
async fn send(client: &reqwest_middleware::ClientWithMiddleware, n: usize) -> (HashMap<String, usize>, usize) {
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..3 {
        let client = client.clone();
        callers.spawn(async move {
            let mut seen = Vec::new();
            for _ in (caller..n).step_by(3) {
                seen.push(match client.get("http://inventory/hit").send().await {
                    Ok(r) if r.status().is_success() => Ok(r.text().await.unwrap()),
                    Ok(r) => Ok(format!("!{}", r.text().await.unwrap())),
                    Err(e) => Err(format!("{e:?}")),
                });
            }
            seen
        });
    }
    let (mut counts, mut failed) = (HashMap::new(), 0);
    while let Some(seen) = callers.join_next().await {
        for answer in seen.unwrap() {
            match answer {
                Ok(id) => *counts.entry(id).or_default() += 1,
                Err(e) => {
                    eprintln!("failed call: {e}");
                    failed += 1;
                }
            }
        }
    }
    (counts, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_load_survive_a_kill_a_500ing_peer_and_an_etcd_outage() {
    let mut etcd = Etcd::start().await;
    let mut procs: Vec<Process> = ["a", "b", "c"].iter().map(|id| Process::spawn(&etcd, id, "ok")).collect();

    let mut config = EtcdConfig::default();
    config.endpoints = vec![etcd.endpoint()];
    let mut client_config = ClientConfig::default();
    client_config.rewatch_ms = 100;
    let resolver = Resolver::new(Arc::new(EtcdRegistry::new(&config).unwrap()), client_config);
    let breakers = chassis_breaker::Breakers::new(chassis_breaker::Config::default()).unwrap();
    let client = chassis_discovery::client(resolver.clone(), breakers).unwrap();
    let shutdown = CancellationToken::new();
    let watches = tokio::spawn(resolver.clone().run(shutdown.clone()));
    assert_eq!(ids(&resolver.instances("inventory").await.unwrap()), ["a", "b", "c"]);

    // 300 requests: each instance gets its share, within ±20%.
    let (counts, failed) = send(&client, 300).await;
    assert_eq!(failed, 0);
    for id in ["a", "b", "c"] {
        assert!((80..=120).contains(&counts.get(id).copied().unwrap_or(0)), "{counts:?}");
    }

    // SIGKILL `b`: until its lease expires, requests that pick it cannot
    // connect and are retried elsewhere — no call fails.
    procs[1].kill();
    let mut failed_meanwhile = 0;
    let gone_after = eventually("b expires from the list", Duration::from_secs(5), async || {
        failed_meanwhile += send(&client, 30).await.1;
        resolver.instances("inventory").await.is_ok_and(|l| ids(&l) == ["a", "c"])
    })
    .await;
    assert_eq!(failed_meanwhile, 0, "idempotent calls to the killed instance are retried");
    assert!(gone_after <= Duration::from_secs(4), "gone after {gone_after:?} (TTL 2 s)");
    eprintln!("b gone from the list {gone_after:?} after SIGKILL");

    // `d` answers 500s: its breaker opens after 5 failures and it gets no more traffic.
    procs.push(Process::spawn(&etcd, "d", "fail"));
    eventually("d in the list", Duration::from_secs(3), async || {
        resolver.instances("inventory").await.is_ok_and(|l| l.len() == 3)
    })
    .await;
    let (counts, failed) = send(&client, 90).await;
    // Three callers at once: up to two more calls may be in flight when the fifth fails.
    assert_eq!(failed, 0);
    assert!((5..=7).contains(&counts.get("!d").copied().unwrap_or(0)), "{counts:?}");
    let (counts, _) = send(&client, 60).await;
    assert_eq!(counts.get("!d"), None, "{counts:?}");

    // etcd stops: the watch breaks, the last good list is kept.
    etcd.stop();
    eventually("the watch notices", Duration::from_secs(3), async || resolver.is_stale("inventory") == Some(true))
        .await;
    let (counts, failed) = send(&client, 60).await;
    assert_eq!(failed, 0);
    assert_eq!(counts.get("a").copied().unwrap_or(0) + counts.get("c").copied().unwrap_or(0), 60, "{counts:?}");

    // etcd is back: the watch resumes and sees a new instance.
    etcd.restart().await;
    eventually("the watch resumes", Duration::from_secs(10), async || resolver.is_stale("inventory") == Some(false))
        .await;
    procs.push(Process::spawn(&etcd, "e", "ok"));
    eventually("e in the list", Duration::from_secs(5), async || {
        resolver.instances("inventory").await.is_ok_and(|l| ids(&l).contains(&"e"))
    })
    .await;
    let (counts, failed) = send(&client, 60).await;
    assert_eq!(failed, 0);
    assert!(counts.get("e").copied().unwrap_or(0) >= 15, "{counts:?}");

    shutdown.cancel();
    watches.await.unwrap();
}
