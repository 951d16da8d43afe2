//! `Admin`: an extractor that admits a request carrying `Authorization: Bearer
//! <GOLIATH_ADMIN_TOKEN>` (compared in constant time). With no token configured every admin
//! route is refused: never open by default.

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use crate::app::AppState;

use super::error::ApiError;

/// Proof that the request holds the admin token; take it as a handler argument.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(check(req))
    }
}

fn check(req: &HttpRequest) -> Result<Admin, ApiError> {
    let expected = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.config.admin_token.clone());
    let Some(expected) = expected else {
        return Err(ApiError::unauthorized(
            "admin routes are disabled: set GOLIATH_ADMIN_TOKEN (or --admin-token) and send \
             `Authorization: Bearer <token>`",
        ));
    };
    let given = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(Admin)
    } else {
        Err(ApiError::unauthorized("missing or wrong bearer token"))
    }
}
