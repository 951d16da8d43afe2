//! The one error type handlers return: a status, a stable snake_case code and a message,
//! sent as `{"error":{"code","message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::decision::DecisionError;
use crate::ingest::IngestError;
use crate::learner::LearnerError;
use crate::roster::RosterError;
use crate::signature::SignatureError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            message,
        )
    }
    /// A 500 whose details go to the log, not to the caller.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        log::error!("{context}: {err}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{context} failed; see the server log"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header(("Retry-After", "5"));
        }
        // A body refused before it was read whole: close the connection rather than read and
        // buffer the rest of it for a keep-alive that would only carry more of the same.
        if matches!(self.code, "body_too_large" | "body_timeout" | "busy") {
            resp.force_close();
        }
        resp.json(serde_json::json!({"error": {"code": self.code, "message": self.message}}))
    }
}

/// Whether an error's text says the database could not be reached or went away (libpq and
/// PostgreSQL word it so: a restart, a shutdown, a lost socket).
pub fn database_unreachable(text: &str) -> bool {
    const SIGNS: [&str; 12] = [
        "server closed the connection",
        "terminating connection",
        "could not connect",
        "connection refused",
        "the database system is",
        "no connection to the server",
        "connection reset",
        "broken pipe",
        "could not receive data",
        "could not send data",
        "connection to server",
        "ssl syscall",
    ];
    let text = text.to_ascii_lowercase();
    SIGNS.iter().any(|s| text.contains(s))
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => ApiError::not_found("no such record"),
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => ApiError::unavailable("the database connection was lost; retry shortly"),
            Error::DatabaseError(_, ref info) if database_unreachable(info.message()) => {
                log::warn!("database unavailable: {}", info.message());
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            // Still contended after the retries (a serialization failure, a deadlock, inputs
            // that kept changing under the intake): the request is sound, so the caller is
            // asked to come back.
            ref other
                if crate::db::is_transient(other) || crate::batch::is_inputs_changed(other) =>
            {
                log::warn!("still contended after retries: {other}");
                ApiError::unavailable("the database is busy with conflicting work; retry shortly")
            }
            other => ApiError::internal("database query", other),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        log::warn!("database unavailable: {e}");
        ApiError::unavailable("the database is unavailable; retry shortly")
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let msg = e.to_string();
        match e {
            IngestError::MalformedJson(_) => ApiError::bad_request("malformed_json", msg),
            IngestError::V2NotSupported => ApiError::bad_request("v2_not_supported", msg),
            IngestError::MissingField(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "missing_field", msg)
            }
            IngestError::DuplicateKey(_) => ApiError::bad_request("duplicate_key", msg),
            IngestError::InvalidField { .. }
            | IngestError::HoldsNul(_)
            | IngestError::TooLong { .. } => ApiError::unprocessable(msg),
            IngestError::Signature(s) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                match s {
                    SignatureError::Missing => "missing_signature",
                    SignatureError::Malformed | SignatureError::Mismatch => "invalid_signature",
                },
                msg,
            ),
            IngestError::NoSecret(..) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "webhook_secret_not_configured",
                msg,
            ),
            IngestError::Db(db) => ApiError::from(db),
            IngestError::Unavailable(_) => {
                log::warn!("{msg}");
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            IngestError::Decision(ref text) if database_unreachable(text) => {
                log::warn!("{msg}");
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            IngestError::Decision(_) => ApiError::internal("deciding the new work item", msg),
            // Concurrent batches kept taking what this one needed: it is sound, ask again.
            IngestError::Rerun { .. } => {
                log::warn!("{msg}");
                ApiError::unavailable("conflicting deliveries are being stored; retry shortly")
            }
        }
    }
}

impl From<crate::db::json::BodyJsonError> for ApiError {
    fn from(e: crate::db::json::BodyJsonError) -> Self {
        use crate::db::json::BodyJsonError;
        let code = match e {
            BodyJsonError::Malformed(_) => "malformed_json",
            BodyJsonError::DuplicateKey(_) => "duplicate_key",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<RosterError> for ApiError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::Invalid { .. } => ApiError::unprocessable(e.to_string()),
            RosterError::Db(db) => db.into(),
        }
    }
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::UnknownWorkItem(_) => ApiError::not_found(e.to_string()),
            DecisionError::BadStoredInput(_) => ApiError::internal("replaying the decision", e),
            DecisionError::Db(db) => db.into(),
        }
    }
}

impl From<LearnerError> for ApiError {
    fn from(e: LearnerError) -> Self {
        match e {
            LearnerError::UnknownWorkItem(_) => ApiError::not_found(e.to_string()),
            LearnerError::UnknownHuman(_) => {
                ApiError::unprocessable(format!("field `human_id`: {e}"))
            }
            LearnerError::Resolved(_) => {
                ApiError::new(StatusCode::CONFLICT, "work_item_resolved", e.to_string())
            }
            LearnerError::OverCapacity { .. } => {
                ApiError::new(StatusCode::CONFLICT, "over_capacity", e.to_string())
            }
            LearnerError::Db(db) => db.into(),
        }
    }
}

/// PagerDuty's REST API failed while serving an admin request: 503 when it may pass (the
/// caller retries), 502 when PagerDuty refused.
impl From<crate::pagerduty::PagerDutyError> for ApiError {
    fn from(e: crate::pagerduty::PagerDutyError) -> Self {
        use crate::pagerduty::PagerDutyError;
        match e {
            PagerDutyError::Transient { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "pagerduty_unavailable",
                e.to_string(),
            ),
            PagerDutyError::Permanent { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "pagerduty_refused", e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error};

    fn db_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_string()))
    }

    /// What `goliath_refuse(reason)` raises: the reason as the constraint name.
    #[derive(Debug)]
    struct Refusal(&'static str);

    impl diesel::result::DatabaseErrorInformation for Refusal {
        fn message(&self) -> &str {
            "goliath: refused"
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            Some(self.0)
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    #[test]
    fn a_lost_database_or_lasting_contention_is_a_503_never_a_500() {
        for e in [
            db_error(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db_error(
                DatabaseErrorKind::Unknown,
                "server closed the connection unexpectedly",
            ),
            db_error(DatabaseErrorKind::ClosedConnection, "closed"),
            db_error(
                DatabaseErrorKind::SerializationFailure,
                "new assignments would take someone past max_active",
            ),
            Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(Refusal("decision_inputs_changed")),
            ),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE, "{api}");
            assert!(api.error_response().headers().contains_key("retry-after"));
        }
        let other = ApiError::from(db_error(DatabaseErrorKind::Unknown, "syntax error"));
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
        let rerun = ApiError::from(IngestError::Rerun {
            taken: vec![],
            existing: vec![],
        });
        assert_eq!(rerun.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
