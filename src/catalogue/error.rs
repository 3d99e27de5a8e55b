//! What goes wrong serving a request, and the HTTP status each kind of failure gets.
//!
//! Owns the mapping from the catalogue's failures (its database, its recording storage, its
//! own code) to a status a client can act on: 503 when the database or the storage cannot be
//! reached (try again), 502 when the object store answered with an error, 404 for a row that
//! is not there, 409 for one that already is, 500 for the rest. The detail goes to the log;
//! the client gets one line that gives nothing of the system away.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The object store answered a request with an error status.
#[derive(Debug, thiserror::Error)]
#[error("S3 {what}: {code}: {text}")]
pub struct StoreAnswered {
    pub what: String,
    pub code: u16,
    pub text: String,
}

/// A failure serving a request.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct Failure {
    status: StatusCode,
    detail: String,
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A failure of the catalogue's own (500).
    pub fn internal(detail: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: detail.into(),
        }
    }

    /// The same failure, never blamed on the client: what an agent's upload meets in the
    /// catalogue's own state (a row missing or already there) is the catalogue's problem, and
    /// a 4xx would make the agent set the call aside instead of sending it again.
    pub fn server_side(self) -> Failure {
        if self.status.is_client_error() {
            Failure::internal(self.detail)
        } else {
            self
        }
    }

    fn of_io(e: &std::io::Error) -> Option<StatusCode> {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::BrokenPipe => Some(StatusCode::SERVICE_UNAVAILABLE),
            _ => None,
        }
    }

    fn of_sqlx(e: &sqlx::Error) -> StatusCode {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            sqlx::Error::Io(io) => Self::of_io(io).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            sqlx::Error::RowNotFound => StatusCode::NOT_FOUND,
            sqlx::Error::Database(db) if db.is_unique_violation() => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn of_reqwest(e: &reqwest::Error) -> StatusCode {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_GATEWAY
        }
    }

    /// The line the client reads.
    fn public_text(&self) -> &'static str {
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "the catalogue cannot reach its database or its recording storage just now: try again shortly"
            }
            StatusCode::BAD_GATEWAY => "the recording storage refused the catalogue's request",
            StatusCode::NOT_FOUND => "not found",
            StatusCode::CONFLICT => "that already exists",
            _ => "internal error",
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure {
            status: Self::of_sqlx(&e),
            detail: format!("database: {e}"),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            status: Self::of_io(&e).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: e.to_string(),
        }
    }
}

impl From<super::people::PasswordError> for Failure {
    fn from(e: super::people::PasswordError) -> Failure {
        match e {
            super::people::PasswordError::Database(e) => e.into(),
            other => Failure::internal(other.to_string()),
        }
    }
}

impl From<String> for Failure {
    fn from(detail: String) -> Failure {
        Failure::internal(detail)
    }
}

impl From<&str> for Failure {
    fn from(detail: &str) -> Failure {
        Failure::internal(detail)
    }
}

/// An error with a chain of causes (storage, layouts, exports): the first cause that says
/// what failed decides the status.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        let status = e
            .chain()
            .find_map(|cause| {
                if let Some(s) = cause.downcast_ref::<sqlx::Error>() {
                    Some(Self::of_sqlx(s))
                } else if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
                    Some(Self::of_reqwest(r))
                } else if cause.downcast_ref::<StoreAnswered>().is_some() {
                    Some(StatusCode::BAD_GATEWAY)
                } else if let Some(f) = cause.downcast_ref::<Failure>() {
                    Some(f.status)
                } else {
                    cause.downcast_ref::<std::io::Error>().and_then(Self::of_io)
                }
            })
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure {
            status,
            detail: format!("{e:#}"),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "catalogue: {}", self.detail);
        } else {
            tracing::info!(status = self.status.as_u16(), "catalogue: {}", self.detail);
        }
        let mut r = (self.status, format!("{}\n", self.public_text())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        r
    }
}

/// The response for a failure: its status, one line for the client, the detail logged.
pub fn fail(e: impl Into<Failure>) -> Response {
    e.into().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_gets_its_status() {
        let status = |f: Failure| f.status();
        assert_eq!(
            status(sqlx::Error::PoolTimedOut.into()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(sqlx::Error::PoolClosed.into()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(sqlx::Error::RowNotFound.into()),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(sqlx::Error::Protocol("x".into()).into()),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            status(anyhow::Error::new(refused).context("GET seg").into()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let answered = StoreAnswered {
            what: "GET k".into(),
            code: 500,
            text: String::new(),
        };
        assert_eq!(
            status(anyhow::Error::new(answered).into()),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            status(anyhow::anyhow!("a bug").into()),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status("a bug".into()), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_client_reads_one_line_that_names_nothing_inside() {
        let f = Failure::from(anyhow::anyhow!("open /var/lib/callvault/blobs/x: denied"));
        let text = f.public_text();
        assert_eq!(text, "internal error");
        let r = fail(sqlx::Error::PoolTimedOut);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[axum::http::header::RETRY_AFTER], "5");
    }
}
