//! An axum [`Router`] to view and cancel jobs (feature `http`).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::jobs::Jobs;
use crate::model::{Filter, Status};

/// `GET /jobs/{id}`, `GET /jobs?status=&name=&cursor=&limit=`,
/// `POST /jobs/{id}/cancel`: JSON bodies; 404 for an unknown id, 409 for an
/// illegal transition, 400 with a message for bad input.
pub fn router(jobs: Jobs) -> Router {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/cancel", post(cancel))
        .with_state(jobs)
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::IllegalTransition { .. } | Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, &error.to_string())
}

fn parse_id(id: &str) -> Result<Uuid, Box<Response>> {
    Uuid::parse_str(id)
        .map_err(|_| Box::new(problem(StatusCode::BAD_REQUEST, &format!("{id:?} is not a job id (a UUID)"))))
}

async fn show(State(jobs): State<Jobs>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match jobs.get(id).await {
        Ok(job) => axum::Json(job).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn cancel(State(jobs): State<Jobs>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match jobs.cancel(id).await {
        Ok(job) => axum::Json(job).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn list(State(jobs): State<Jobs>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut filter = Filter::default();
    let mut cursor = None;
    let mut limit = 50;
    for (key, value) in query {
        match key.as_str() {
            "status" => match Status::parse(&value) {
                Ok(status) => filter = filter.status(status),
                Err(_) => {
                    let known: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    let message = format!("status {value:?} is not one of {}", known.join(", "));
                    return problem(StatusCode::BAD_REQUEST, &message);
                }
            },
            "name" => filter = filter.name(value),
            "cursor" => cursor = Some(value),
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        &format!("limit {value:?} is not a number from 1 to 1000"),
                    );
                }
            },
            other => {
                let message = format!("unknown query parameter {other:?}; use status, name, cursor, limit");
                return problem(StatusCode::BAD_REQUEST, &message);
            }
        }
    }
    match jobs.list(filter, cursor, limit).await {
        Ok(page) => axum::Json(page).into_response(),
        Err(e) => error_response(&e),
    }
}
