//! An axum [`Router`] to view and cancel jobs (feature `http`).

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::jobs::Jobs;
use crate::model::{Filter, Job, Page, Status};

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

/// An error answer: `{"error": "<message>"}` with its status.
#[derive(Debug)]
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let status = match error {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::IllegalTransition { .. } | Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, error.to_string())
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        let message = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseErrorAtKey { value, .. } | ErrorKind::ParseError { value, .. } => {
                    format!("{value:?} is not a job id (a UUID)")
                }
                _ => format!("not a job id (a UUID): {}", rejection.body_text()),
            },
            _ => format!("not a job id (a UUID): {}", rejection.body_text()),
        };
        Self(StatusCode::BAD_REQUEST, message)
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        let known: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        let message =
            format!("{}; use status ({}), name, cursor, limit (1 to 1000)", rejection.body_text(), known.join(", "));
        Self(StatusCode::BAD_REQUEST, message)
    }
}

async fn show(State(jobs): State<Jobs>, id: Result<Path<Uuid>, PathRejection>) -> Result<Json<Job>, Problem> {
    let Path(id) = id?;
    Ok(Json(jobs.get(id).await?))
}

async fn cancel(State(jobs): State<Jobs>, id: Result<Path<Uuid>, PathRejection>) -> Result<Json<Job>, Problem> {
    let Path(id) = id?;
    Ok(Json(jobs.cancel(id).await?))
}

/// The query of `GET /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<Status>,
    name: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(jobs): State<Jobs>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, Problem> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem(StatusCode::BAD_REQUEST, format!("limit {limit} is not a number from 1 to 1000")));
    }
    let mut filter = Filter::default();
    if let Some(status) = query.status {
        filter = filter.status(status);
    }
    if let Some(name) = query.name {
        filter = filter.name(name);
    }
    Ok(Json(jobs.list(filter, query.cursor, limit).await?))
}
