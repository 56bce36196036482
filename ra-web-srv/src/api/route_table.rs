//! The routes of [`crate::api`], with the documentation `/openapi.json`
//! is made from.

use axum::routing::{MethodRouter, get, post};

use super::*;
use crate::openapi::{Param, RouteDoc, schema};

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

/// The routes of this module, with their documentation.
pub fn routes() -> Vec<(RouteDoc, MethodRouter<App>)> {
    vec![
        (
            RouteDoc {
                method: "get",
                path: "/health",
                summary: "liveness, version, record count, the NATS state and the TLS ingresses",
                params: &[],
                body: None,
                reply: Some(schema::<Health>),
                reply_also_on: &[],
                responses: &[(200, "alive")],
            },
            get(health),
        ),
        (
            RouteDoc {
                method: "post",
                path: "/generate",
                summary: "hash, prove and attest a file or directory in the background",
                params: &[],
                body: Some(schema::<GenerateBody>),
                reply: Some(schema::<Generated>),
                reply_also_on: &[],
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
            post(generate),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/ready/",
                summary: "200 when ready (one path, or everything incl. the NATS catch-up), 503 while pending, 422 failed",
                params: &[PATH_OPT],
                body: None,
                reply: Some(schema::<Ready>),
                reply_also_on: &[422, 503],
                responses: &[
                    (200, "ready"),
                    (404, "unknown path"),
                    (422, "failed"),
                    (503, "pending"),
                ],
            },
            get(ready),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/readiness/",
                summary: "a page of every path's state (or one path's) and a summary",
                params: &[PATH_OPT, PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<Readiness>),
                reply_also_on: &[],
                responses: &[(200, "states"), (404, "unknown path")],
            },
            get(readiness),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hash/",
                summary: "the SHA3-512 of a path",
                params: &[PATH],
                body: None,
                reply: Some(schema::<PathHash>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(hash),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/hashes/",
                summary: "every hash",
                params: &[PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<HashPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(hashes),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proof/",
                summary: "the VRF proof of a path's hash, with suite and public key",
                params: &[PATH],
                body: None,
                reply: Some(schema::<Proof>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(proof),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/proofs/",
                summary: "every proof",
                params: &[PREFIX, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<ProofPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(proofs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/doc/",
                summary: "the attestation document of a path (user_data binds path, hash, proof; public_key is the VRF key)",
                params: &[PATH, VIEW, NONCE],
                body: None,
                reply: Some(schema::<ShownDoc>),
                reply_also_on: &[],
                responses: LOOKUP,
            },
            get(doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/docs/",
                summary: "every document",
                params: &[PREFIX, VIEW, LIMIT, AFTER],
                body: None,
                reply: Some(schema::<DocPage>),
                reply_also_on: &[],
                responses: LIST,
            },
            get(docs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/tls_doc/",
                summary: "a document binding the SHA3-512 of the TLS certificate's SPKI",
                params: &[NONCE],
                body: None,
                reply: Some(schema::<TlsDoc>),
                reply_also_on: &[],
                responses: &[
                    (200, "document"),
                    (400, "bad nonce"),
                    (500, "the NSM failed"),
                ],
            },
            get(tls_doc),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pubkeys/",
                summary: "VRF public key and suite, TLS SPKI hash and certificate",
                params: &[],
                body: None,
                reply: Some(schema::<Pubkeys>),
                reply_also_on: &[],
                responses: &[(200, "keys")],
            },
            get(pubkeys),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/pcrs/",
                summary: "the enclave's PCRs 0-4 and 8",
                params: &[],
                body: None,
                reply: Some(schema::<Pcrs>),
                reply_also_on: &[],
                responses: PLAIN,
            },
            get(pcrs),
        ),
        (
            RouteDoc {
                method: "get",
                path: "/nsm_desc",
                summary: "the NSM's description (simulated: true in development)",
                params: &[],
                body: None,
                reply: None,
                reply_also_on: &[],
                responses: PLAIN,
            },
            get(nsm_desc),
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
                body: None,
                reply: Some(schema::<Random>),
                reply_also_on: &[],
                responses: &[
                    (200, "hex bytes"),
                    (400, "bad count"),
                    (500, "the NSM failed"),
                ],
            },
            get(rng_seq),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_help_states_the_limits_in_force() {
        assert!(LIMIT.description.contains(&format!(
            "1 to {MAX_LIST_LIMIT} (default {DEFAULT_LIST_LIMIT})"
        )));
    }
}
