use std::convert::Infallible;

use chassis_config::Loader;
use chassis_service::Service;
use chassis_testkit::{Error, TestService};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Settings {
    greeting: String,
}

fn loader() -> Loader {
    Loader::new("TESTKIT").no_dir().set("greeting", "hello")
}

async fn build(mut service: Service, settings: Settings) -> Result<Service, Infallible> {
    let greeting = settings.greeting;
    service.router(axum::Router::new().route(
        "/greet/{name}",
        axum::routing::get(move |axum::extract::Path(name): axum::extract::Path<String>| async move {
            tracing::info!(%name, "greeting");
            format!("{greeting} {name}")
        }),
    ));
    Ok(service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_answers_logs_counts_and_drains_cleanly() {
    let service = TestService::builder(loader())
        .name("greeter", "1.0.0")
        .set("greeting", "hi")
        .env("TESTKIT_GREETING", "from the test's env, below the override")
        .start(build)
        .await
        .unwrap();
    assert!(service.api_addr().ip().is_loopback() && service.admin_addr().ip().is_loopback());
    let response = service.api().get("/greet/ada").header("x-request-id", "kit-1").send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "hi ada");
    let line = service.wait_for_log(|l| l["message"] == "request" && l["request_id"] == "kit-1").await.unwrap();
    assert_eq!(line["service"], "greeter");
    assert_eq!(line["http.route"], "/greet/{name}");
    assert_eq!(service.logs().with("request_id", "kit-1").len(), 2, "the handler's line and the request line");
    let metrics = service.metrics().await.unwrap();
    let requests = metrics.counter(
        "http_server_request_duration_seconds_count",
        &[("http_route", "/greet/{name}"), ("http_response_status_code", "200")],
    );
    assert!(requests.is_some_and(|n| n >= 1.0), "{requests:?}");
    assert_eq!(service.admin().get("/readyz").send().await.unwrap().status(), 200);
    service.shutdown().await.unwrap();
}

#[derive(Debug, Deserialize)]
struct Package {
    pkg_name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_environment_does_not_leak_in() {
    // cargo sets CARGO_PKG_NAME for the test process: a loader on the process
    // environment reads it as `pkg_name`...
    let direct = Loader::new("CARGO").no_dir().extract::<Package>().unwrap();
    assert_eq!(direct.value().pkg_name, "chassis-testkit");
    // ...the test service's does not.
    let service = TestService::builder(Loader::new("CARGO").no_dir())
        .start(|service, _: Package| async move { Ok::<_, Infallible>(service) })
        .await;
    match service {
        Err(Error::Config(report)) => assert!(report.contains("pkg_name"), "{report}"),
        other => panic!("expected the missing pkg_name to be reported, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_ignores_shutdown_is_an_unclean_drain() {
    let service = TestService::builder(loader())
        .name("stubborn", "1.0.0")
        .set("service.shutdown_deadline_secs", 1)
        .start(|service, settings: Settings| async move {
            let mut service = build(service, settings).await?;
            service.spawn("stubborn", |_shutdown| std::future::pending());
            Ok::<_, Infallible>(service)
        })
        .await
        .unwrap();
    match service.shutdown().await {
        Err(Error::UncleanDrain(why)) => assert!(why.contains("components still running"), "{why}"),
        other => panic!("expected an unclean drain, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_error_and_a_bad_override_are_reported() {
    let failed = TestService::builder(loader())
        .start(|_service, _settings: Settings| async { Err::<Service, _>("no database") })
        .await;
    assert!(matches!(&failed, Err(Error::Build(e)) if e == "no database"), "{failed:?}");
    let bad = TestService::builder(loader()).set("service.drain_delay_secs", "soon").start(build).await;
    assert!(matches!(&bad, Err(Error::Config(report)) if report.contains("drain_delay_secs")), "{bad:?}");
}
