//! Every route, with the documentation `/openapi.json` is made from: the
//! router and the OpenAPI document come from the same table, so neither
//! can list a route the other lacks.

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};

use crate::api;
use crate::app::App;

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Whether it must be given.
    pub required: bool,
    /// What it means.
    pub description: &'static str,
}

/// One route's documentation.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path (a trailing-slash route also answers without the slash).
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Query parameters.
    pub params: &'static [Param],
    /// JSON body fields (`name: description`), for POST routes.
    pub body: &'static [Param],
    /// Statuses it answers with, and when.
    pub responses: &'static [(u16, &'static str)],
}

const PATH: Param = Param {
    name: "path",
    required: true,
    description: "absolute path of a file or directory",
};
const PATH_OPT: Param = Param {
    name: "path",
    required: false,
    description: "one path instead of all",
};
const PREFIX: Param = Param {
    name: "prefix",
    required: false,
    description: "only paths starting with this",
};
const LIMIT: Param = Param {
    name: "limit",
    required: false,
    description: "items in this page: 1 to 10000 (default 1000)",
};
const AFTER: Param = Param {
    name: "after",
    required: false,
    description: "only paths sorted after this one: the `next` of the previous page (null on the last page)",
};
const VIEW: Param = Param {
    name: "view",
    required: false,
    description: "hex (default), json_hex, json_str, att_doc (raw COSE, application/cbor; /doc/ only), pcrs",
};
const NONCE: Param = Param {
    name: "nonce",
    required: false,
    description: "hex, 1 to 64 bytes: a fresh document carrying this nonce (not stored)",
};

const LOOKUP: &[(u16, &str)] = &[
    (200, "found"),
    (400, "bad path or parameter"),
    (403, "path outside the roots (`..`)"),
    (404, "nothing for this path"),
    (422, "the job for this path failed"),
    (503, "still being made"),
];
const LIST: &[(u16, &str)] = &[
    (
        200,
        "one page of the list, in path order: count, the items, next",
    ),
    (400, "bad parameter"),
];
const PLAIN: &[(u16, &str)] = &[(200, "ok"), (500, "the NSM failed")];

/// The API routes (without the verification ones).
pub fn api_routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    vec![
        (
            RouteDoc {
                method: "get",
                path: "/health",
                summary: "liveness, version, record count, the NATS state and the TLS ingresses",
                params: &[],
                body: &[],
                responses: &[(200, "alive")],
            },
            get(api::health),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/generate",
                summary: "hash, prove and attest a file or directory in the background",
                params: &[],
                body: &[Param {
                    name: "path",
                    required: true,
                    description: "absolute path under a --root-dir",
                }],
                responses: &[
                    (202, "accepted; poll /ready/?path="),
                    (400, "malformed JSON or path"),
                    (403, "outside the roots"),
                    (404, "no such file"),
                    (413, "body too large"),
                    (415, "not JSON"),
                    (422, "wrong fields"),
                ],
            },
            post(api::generate),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/ready/",
                summary: "200 when ready (one path, or everything incl. the NATS catch-up), 503 while pending, 422 failed",
                params: &[PATH_OPT],
                body: &[],
                responses: &[
                    (200, "ready"),
                    (404, "unknown path"),
                    (422, "failed"),
                    (503, "pending"),
                ],
            },
            get(api::ready),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/readiness/",
                summary: "a page of every path's state (or one path's) and a summary",
                params: &[PATH_OPT, PREFIX, LIMIT, AFTER],
                body: &[],
                responses: &[(200, "states"), (404, "unknown path")],
            },
            get(api::readiness),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hash/",
                summary: "the SHA3-512 of a path",
                params: &[PATH],
                body: &[],
                responses: LOOKUP,
            },
            get(api::hash),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hashes/",
                summary: "every hash",
                params: &[PREFIX, LIMIT, AFTER],
                body: &[],
                responses: LIST,
            },
            get(api::hashes),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proof/",
                summary: "the VRF proof of a path's hash, with suite and public key",
                params: &[PATH],
                body: &[],
                responses: LOOKUP,
            },
            get(api::proof),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proofs/",
                summary: "every proof",
                params: &[PREFIX, LIMIT, AFTER],
                body: &[],
                responses: LIST,
            },
            get(api::proofs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/doc/",
                summary: "the attestation document of a path (user_data binds path, hash, proof; public_key is the VRF key)",
                params: &[PATH, VIEW, NONCE],
                body: &[],
                responses: LOOKUP,
            },
            get(api::doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/docs/",
                summary: "every document",
                params: &[PREFIX, VIEW, LIMIT, AFTER],
                body: &[],
                responses: LIST,
            },
            get(api::docs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/tls_doc/",
                summary: "a document binding the SHA3-512 of the TLS certificate's SPKI",
                params: &[NONCE],
                body: &[],
                responses: &[
                    (200, "document"),
                    (400, "bad nonce"),
                    (500, "the NSM failed"),
                ],
            },
            get(api::tls_doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pubkeys/",
                summary: "VRF public key and suite, TLS SPKI hash and certificate",
                params: &[],
                body: &[],
                responses: &[(200, "keys")],
            },
            get(api::pubkeys),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pcrs/",
                summary: "the enclave's PCRs 0-4 and 8",
                params: &[],
                body: &[],
                responses: PLAIN,
            },
            get(api::pcrs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/nsm_desc",
                summary: "the NSM's description (simulated: true in development)",
                params: &[],
                body: &[],
                responses: PLAIN,
            },
            get(api::nsm_desc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/rng_seq",
                summary: "random bytes from the NSM",
                params: &[Param {
                    name: "count",
                    required: false,
                    description: "1 to 4096, default 32",
                }],
                body: &[],
                responses: &[
                    (200, "hex bytes"),
                    (400, "bad count"),
                    (500, "the NSM failed"),
                ],
            },
            get(api::rng_seq),
        ),
    ]
}

/// The router of `routes`, plus `/openapi.json` and the JSON fallbacks.
pub fn router(routes: Vec<(RouteDoc, MethodRouter<App>)>, app: App) -> Router {
    let docs: Vec<RouteDoc> = routes.iter().map(|(doc, _)| *doc).collect();
    let openapi = openapi(&docs);
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

const OPENAPI_DOC: RouteDoc = RouteDoc {
    method: "get",
    path: "/openapi.json",
    summary: "this document",
    params: &[],
    body: &[],
    responses: &[(200, "OpenAPI 3.0")],
};

/// The OpenAPI 3.0 document of `routes` (and of itself).
pub fn openapi(routes: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for doc in routes.iter().chain(std::iter::once(&OPENAPI_DOC)) {
        let parameters: Vec<Value> = doc
            .params
            .iter()
            .map(|p| {
                json!({"name": p.name, "in": "query", "required": p.required,
                       "description": p.description, "schema": {"type": "string"}})
            })
            .collect();
        let responses: Map<String, Value> = doc
            .responses
            .iter()
            .map(|(status, what)| {
                let content = if *status == 200 && doc.params.iter().any(|p| p.name == "view") {
                    json!({"application/json": {"schema": {"type": "object"}},
                           "application/cbor": {"schema": {"type": "string", "format": "binary"}}})
                } else {
                    json!({"application/json": {"schema": {"type": "object"}}})
                };
                (
                    status.to_string(),
                    json!({"description": what, "content": content}),
                )
            })
            .collect();
        let mut operation = json!({
            "summary": doc.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if !doc.body.is_empty() {
            let properties: Map<String, Value> = doc
                .body
                .iter()
                .map(|p| {
                    (
                        p.name.to_string(),
                        json!({"type": "string", "description": p.description}),
                    )
                })
                .collect();
            let required: Vec<&str> = doc
                .body
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name)
                .collect();
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {
                    "type": "object", "properties": properties, "required": required,
                    "additionalProperties": false}}}
            });
        }
        let entry = paths
            .entry(doc.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[doc.method] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ra-web-srv",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Remote attestation of files: SHA3-512, ECVRF proofs and NSM attestation documents. Every JSON response carries \"nsm\": \"nitro\" or \"development\"; errors are {\"error\", \"nsm\"}.",
        },
        "paths": paths,
    })
}

/// Every route of the server.
pub fn all_routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    let mut routes = api_routes();
    routes.extend(crate::verify_api::routes());
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};

    #[test]
    fn the_limit_help_states_the_limits_in_force() {
        assert!(LIMIT.description.contains(&format!(
            "1 to {MAX_LIST_LIMIT} (default {DEFAULT_LIST_LIMIT})"
        )));
    }
}
