//! The actix-web layer only: routes, request parsing and error mapping. Domain modules never
//! import actix-web; handlers call them through `AppState`.

pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod ui;
pub mod webhooks;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Extractors' own errors answer in the same JSON shape as every other error.
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        error::ApiError::bad_request("invalid_query", format!("the query string is invalid: {e}"))
            .into()
    }))
    .app_data(
        web::FormConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| {
                error::ApiError::bad_request("invalid_form", format!("the form is invalid: {e}"))
                    .into()
            }),
    )
    .app_data(web::PathConfig::default().error_handler(|e, _| {
        error::ApiError::bad_request("invalid_path", format!("the path is invalid: {e}")).into()
    }));
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics)
        .service(webhooks::pagerduty)
        .service(webhooks::jira)
        .configure(admin::configure)
        .configure(ui::configure)
        .default_service(web::to(not_found));
}

async fn not_found(
    req: actix_web::HttpRequest,
) -> Result<actix_web::HttpResponse, error::ApiError> {
    Err(error::ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
