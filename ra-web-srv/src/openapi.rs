//! The OpenAPI 3.0 document `/openapi.json` serves, made from the route
//! table (each handler module's [`RouteDoc`]s), so it cannot list a route
//! the router lacks nor miss one it has.

use serde_json::{Map, Value, json};

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

const OPENAPI_DOC: RouteDoc = RouteDoc {
    method: "get",
    path: "/openapi.json",
    summary: "this document",
    params: &[],
    body: &[],
    responses: &[(200, "OpenAPI 3.0")],
};

/// The OpenAPI 3.0 document of `routes` (and of itself).
pub fn document(routes: &[RouteDoc]) -> Value {
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
