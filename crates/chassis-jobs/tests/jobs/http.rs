//! The HTTP view.

use axum::body::Body;
use chassis_jobs::{Jobs, MemoryStore, NewJob, router};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn call(jobs: &Jobs, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = router(jobs.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn view_list_and_cancel_jobs() {
    let jobs = Jobs::new(MemoryStore::new());
    let job = jobs.create(NewJob::new("import", json!({"catalog": 42}))).await.unwrap();
    for _ in 0..3 {
        jobs.create(NewJob::new("export", json!({}))).await.unwrap();
    }

    let (status, body) = call(&jobs, "GET", &format!("/jobs/{}", job.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["name"].as_str(), body["status"].as_str()), (Some("import"), Some("pending")));
    assert_eq!(body["input"], json!({"catalog": 42}));

    let (status, body) = call(&jobs, "GET", &format!("/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("not found"));

    let (status, body) = call(&jobs, "GET", "/jobs/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not a job id"));

    let (status, body) = call(&jobs, "GET", "/jobs?name=export&limit=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2);
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (_, body) = call(&jobs, "GET", &format!("/jobs?name=export&limit=2&cursor={cursor}")).await;
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    assert!(body["next_cursor"].is_null());

    for bad in ["/jobs?status=done", "/jobs?limit=0", "/jobs?cursor=nope", "/jobs?colour=red"] {
        let (status, body) = call(&jobs, "GET", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string(), "{bad}");
    }

    let (status, body) = call(&jobs, "POST", &format!("/jobs/{}/cancel", job.id)).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let (status, body) = call(&jobs, "POST", &format!("/jobs/{}/cancel", job.id)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("cannot go from cancelled"));
    let (status, _) = call(&jobs, "GET", "/jobs?status=cancelled").await;
    assert_eq!(status, StatusCode::OK);
}
