use std::time::Duration;

use chassis_testkit::{FakeUpstream, Reply};

#[tokio::test]
async fn scripts_run_in_turn_per_route_and_method_and_requests_are_recorded() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.route(
        "GET",
        "/quote",
        [Reply::status(503), Reply::status(429), Reply::json(200, &serde_json::json!({"cents": 7}))],
    );
    upstream.route("*", "/any", [Reply::status(204)]);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get(upstream.url("/quote")).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [503, 429, 200, 200]);
    let body: serde_json::Value = client.get(upstream.url("/quote")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["cents"], 7);
    assert_eq!(client.delete(upstream.url("/any")).send().await.unwrap().status(), 204);
    assert_eq!(client.post(upstream.url("/quote")).send().await.unwrap().status(), 404, "GET only");
    let sent = client.post(upstream.url("/any?x=1")).header("x-test", "yes").body("payload").send().await.unwrap();
    assert_eq!(sent.status(), 204);
    let last = upstream.received().pop().unwrap();
    assert_eq!((last.method.as_str(), last.path.as_str(), last.query.as_str()), ("POST", "/any", "x=1"));
    assert_eq!((last.header("X-Test"), last.body.as_slice()), (Some("yes"), b"payload".as_slice()));
    assert_eq!(upstream.hits("/quote"), 6);
}

#[tokio::test]
async fn a_reset_a_stall_and_a_delay() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.route("GET", "/reset", [Reply::reset()]);
    upstream.route("GET", "/stall", [Reply::status(200).body("0123456789").stall_after(4)]);
    upstream.route("GET", "/slow", [Reply::status(200).body("late").delay(Duration::from_secs(60))]);
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let reset = client.get(upstream.url("/reset")).send().await.unwrap_err();
    assert!(!reset.is_timeout(), "a reset is not a timeout: {reset:?}");
    // The head arrives; the body never ends.
    let stalled = client.get(upstream.url("/stall")).send().await.unwrap();
    assert_eq!(stalled.content_length(), Some(10));
    assert!(stalled.bytes().await.unwrap_err().is_timeout());
    assert!(client.get(upstream.url("/slow")).send().await.unwrap_err().is_timeout());
    assert_eq!(upstream.hits("/slow"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delay_follows_a_paused_clock() {
    let upstream = FakeUpstream::start().await.unwrap();
    upstream.route("GET", "/slow", [Reply::status(200).body("late").delay(Duration::from_secs(3600))]);
    // An hour's delay, on a paused clock that advances while the runtime idles.
    let response = reqwest::get(upstream.url("/slow")).await.unwrap();
    assert_eq!(response.text().await.unwrap(), "late");
}
