//! The router, assembled from the routes each handler module owns
//! ([`api::routes`], [`verify_api::routes`]), plus `/openapi.json` made
//! from the same table and the JSON fallbacks.

use axum::Router;
use axum::routing::{MethodRouter, get};

use crate::app::App;
use crate::openapi::{self, RouteDoc};
use crate::{api, verify_api};

/// The router of `routes`, plus `/openapi.json` and the JSON fallbacks.
pub fn router(routes: Vec<(RouteDoc, MethodRouter<App>)>, app: App) -> Router {
    let docs: Vec<RouteDoc> = routes.iter().map(|(doc, _)| *doc).collect();
    let openapi = openapi::document(&docs);
    let mut router = Router::new();
    for (doc, method_router) in routes {
        if let Some(bare) = doc.path.strip_suffix('/') {
            router = router.route(bare, method_router.clone());
        }
        router = router.route(doc.path, method_router);
    }
    router
        .route(
            "/openapi.json",
            get(move || std::future::ready(axum::Json(openapi.clone()))),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(app)
}

/// Every route of the server.
pub fn all_routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    let mut routes = api::routes();
    routes.extend(verify_api::routes());
    routes
}
