//! Refuses, before any handler runs, a request whose path or query holds a NUL character
//! (`%00`): PostgreSQL text cannot hold one, so it would otherwise fail in the database.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use super::error::ApiError;

/// Where a NUL character sits in the request line: `path`, or the query parameter's name.
fn nul_in(path: &str, query: &str) -> Option<String> {
    let has_nul = |s: &str| s.contains("%00") || s.contains('\0');
    if has_nul(path) {
        return Some("path".into());
    }
    query.split('&').find(|pair| has_nul(pair)).map(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        format!("query parameter `{}`", name.replace("%00", "\\u0000"))
    })
}

pub async fn refuse_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(at) = nul_in(req.uri().path(), req.query_string()) {
        let refused = ApiError::bad_request(
            "invalid_field",
            format!("the {at} holds a NUL character (%00), which cannot be stored"),
        )
        .error_response();
        return Ok(req.into_response(refused).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_in_the_path_or_names_the_parameter() {
        assert_eq!(nul_in("/admin/humans/%00", "").as_deref(), Some("path"));
        assert_eq!(
            nul_in("/admin/work-items", "limit=5&service=a%00b").as_deref(),
            Some("query parameter `service`")
        );
        assert_eq!(nul_in("/admin/work-items", "service=api"), None);
    }
}
