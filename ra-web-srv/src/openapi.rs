//! The OpenAPI 3.0 document `/openapi.json` serves, made from the route
//! table (each handler module's [`RouteDoc`]s), so it cannot list a route
//! the router lacks nor miss one it has. Request and response bodies are
//! described by the JSON schemas of the serde types the handlers read and
//! write ([`schema`]), so the document cannot drift from them either.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
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

/// The JSON schema of a body, made from its Rust type ([`schema`]).
pub type SchemaFn = fn() -> Value;

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
    /// The JSON request body, for POST routes.
    pub body: Option<SchemaFn>,
    /// The JSON body of the success (first 2xx) response, without the
    /// `nsm` every response carries; `None`: an object of no fixed shape.
    pub reply: Option<SchemaFn>,
    /// Other statuses answered with `reply` rather than an error.
    pub reply_also_on: &'static [u16],
    /// Statuses it answers with, and when.
    pub responses: &'static [(u16, &'static str)],
}

const OPENAPI_DOC: RouteDoc = RouteDoc {
    method: "get",
    path: "/openapi.json",
    summary: "this document",
    params: &[],
    body: None,
    reply: None,
    reply_also_on: &[],
    responses: &[(200, "OpenAPI 3.0")],
};

/// The OpenAPI 3.0 schema of `T`'s JSON (what serde reads or writes), with
/// every sub-schema inline.
pub fn schema<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::openapi3();
    settings.inline_subschemas = true;
    let generator = SchemaGenerator::new(settings);
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

/// `schema` with the `nsm` field every response carries (in each branch
/// of a schema that is one of several).
fn with_nsm(mut schema: Value) -> Value {
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get_mut(key).and_then(Value::as_array_mut) {
            for branch in branches.iter_mut() {
                *branch = with_nsm(branch.take());
            }
            return schema;
        }
    }
    schema["properties"]["nsm"] = json!({
        "type": "string",
        "enum": ["nitro", "development"],
        "description": "which NSM answered",
    });
    match schema["required"].as_array_mut() {
        Some(required) => required.push(json!("nsm")),
        None => schema["required"] = json!(["nsm"]),
    }
    schema
}

/// The body of every error response.
fn error_schema() -> Value {
    with_nsm(json!({
        "type": "object",
        "properties": {"error": {"type": "string", "description": "what went wrong"}},
        "required": ["error"],
    }))
}

/// The response of `doc` with `status`.
fn response(doc: &RouteDoc, status: u16, reply: Option<&Value>) -> Value {
    let schema = match reply {
        Some(reply) if (200..=299).contains(&status) || doc.reply_also_on.contains(&status) => {
            reply.clone()
        }
        Some(_) => error_schema(),
        None => json!({"type": "object"}),
    };
    if status == 200 && doc.params.iter().any(|p| p.name == "view") {
        json!({"application/json": {"schema": schema},
               "application/cbor": {"schema": {"type": "string", "format": "binary"}}})
    } else {
        json!({"application/json": {"schema": schema}})
    }
}

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
        let reply = doc.reply.map(|reply| with_nsm(reply()));
        let responses: Map<String, Value> = doc
            .responses
            .iter()
            .map(|(status, what)| {
                (
                    status.to_string(),
                    json!({"description": what, "content": response(doc, *status, reply.as_ref())}),
                )
            })
            .collect();
        let mut operation = json!({
            "summary": doc.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = doc.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": body()}},
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
