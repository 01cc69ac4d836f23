//! The OpenAPI 3.1 document, from one route table. A test requests every route in it to prove
//! the router serves exactly these paths with exactly these authentication rules.

use axum::Json;
use serde_json::{json, Value};

/// A documented route.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path, `{id}` for parameters.
    pub path: &'static str,
    /// Roles that may call it; empty: no token needed; `["any"]`: any user.
    pub roles: &'static [&'static str],
    /// What it does.
    pub summary: &'static str,
    /// Request body schema name, if any.
    pub body: Option<&'static str>,
}

const ANY: &[&str] = &["any"];
const APPROVERS: &[&str] = &["approver", "expert", "security", "break_glass"];
/// A request body of raw bytes rather than JSON.
const BINARY: &str = "Binary";

/// Every route the API serves.
pub const ROUTES: &[Route] = &[
    Route { method: "get", path: "/healthz", roles: &[], summary: "Liveness", body: None },
    Route {
        method: "get",
        path: "/readyz",
        roles: &[],
        summary: "Readiness: database and broker up (503 naming which is down)",
        body: None,
    },
    Route { method: "get", path: "/openapi.json", roles: &[], summary: "This document", body: None },
    Route { method: "get", path: "/metrics", roles: ANY, summary: "Prometheus metrics", body: None },
    Route { method: "get", path: "/api/me", roles: ANY, summary: "The caller", body: None },
    Route { method: "post", path: "/api/proposals", roles: &["requester"], summary: "Propose", body: Some("Spec") },
    Route {
        method: "get",
        path: "/api/proposals",
        roles: ANY,
        summary: "Recent proposals (?state=&limit=)",
        body: None,
    },
    Route { method: "get", path: "/api/proposals/{id}", roles: ANY, summary: "The approval card", body: None },
    Route {
        method: "post",
        path: "/api/proposals/{id}/decisions",
        roles: APPROVERS,
        summary: "Approve or reject with a signature over the manifest digest",
        body: Some("DecisionRequest"),
    },
    Route {
        method: "post",
        path: "/api/proposals/{id}/revisions",
        roles: &["requester", "approver", "expert", "security", "break_glass"],
        summary: "Edit: a new revision, re-tiered",
        body: Some("Spec"),
    },
    Route {
        method: "get",
        path: "/api/proposals/{id}/rollout",
        roles: ANY,
        summary: "Rollout status per wave",
        body: None,
    },
    Route {
        method: "post",
        path: "/api/proposals/{id}/rollout/resume",
        roles: &["approver", "expert"],
        summary: "Resume a rollout paused by a breach (never by its requester)",
        body: Some("Reason"),
    },
    Route {
        method: "post",
        path: "/api/proposals/{id}/rollout/abort",
        roles: ANY,
        summary: "Abort a rollout: revert commands to every device that took it",
        body: Some("Reason"),
    },
    Route {
        method: "post",
        path: "/api/explain",
        roles: ANY,
        summary: "How a spec would be tiered",
        body: Some("Spec"),
    },
    Route {
        method: "get",
        path: "/api/queue",
        roles: ANY,
        summary: "The caller's queues, per pool and kind",
        body: None,
    },
    Route { method: "get", path: "/api/devices", roles: ANY, summary: "Enrolled devices", body: None },
    Route {
        method: "post",
        path: "/api/devices",
        roles: &["admin"],
        summary: "Enrol a device: its broker login (password shown once) and the TrustRoot to provision",
        body: Some("Device"),
    },
    Route {
        method: "post",
        path: "/api/artifacts",
        roles: &["admin", "requester"],
        summary: "Upload a firmware image (raw bytes); stored under its SHA-256",
        body: Some(BINARY),
    },
    Route { method: "get", path: "/api/artifacts", roles: ANY, summary: "Stored firmware images", body: None },
    Route { method: "get", path: "/api/users", roles: &["admin"], summary: "Users (never tokens)", body: None },
    Route { method: "get", path: "/api/trust-root", roles: ANY, summary: "The TrustRoot devices hold", body: None },
    Route { method: "get", path: "/api/policy", roles: ANY, summary: "The policy in force", body: None },
    Route { method: "get", path: "/api/audit", roles: ANY, summary: "Audit entries (?proposal=&limit=)", body: None },
    Route { method: "get", path: "/api/audit/verify", roles: ANY, summary: "Verify the audit chain", body: None },
    Route { method: "get", path: "/api/metrics", roles: ANY, summary: "Approval metrics", body: None },
    Route { method: "get", path: "/api/tasks", roles: ANY, summary: "Open post-review tasks", body: None },
];

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(build())
}

/// Builds the document.
pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "responses": {
                "200": { "description": "Success" },
                "400": { "description": "Malformed request", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "401": { "description": "Missing or unknown token" },
                "403": { "description": "Role, separation of duties or pool" },
                "404": { "description": "Not found" },
                "409": { "description": "State conflict" },
                "422": { "description": "Invalid proposal, cohort or signature" }
            }
        });
        if !r.roles.is_empty() {
            op["security"] = json!([{ "bearer": [] }]);
            op["x-airlock-roles"] = json!(r.roles);
        }
        if r.path.contains("{id}") {
            op["parameters"] =
                json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }]);
        }
        if let Some(b) = r.body {
            let media = if b == BINARY { "application/octet-stream" } else { "application/json" };
            op["requestBody"] = json!({ "required": true, "content": { media: { "schema": { "$ref": format!("#/components/schemas/{b}") } } } });
        }
        if r.body == Some(BINARY) {
            op["responses"]["413"] = json!({ "description": "Larger than the server's limit" });
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Airlock controller", "version": env!("CARGO_PKG_VERSION"), "description": "See docs/api.md." },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Spec": { "type": "object", "description": "A proposal: kind, title, reason, cohort selector, firmware or config, rollout, rollback, security, break_glass, lifetime (controller/src/workflow/spec.rs)" },
                "DecisionRequest": {
                    "type": "object",
                    "required": ["revision", "decision", "signature", "reason"],
                    "properties": {
                        "revision": { "type": "integer" },
                        "decision": { "enum": ["Approve", "Reject"] },
                        "signature": { "type": "string", "description": "hex Ed25519 over the approval statement" },
                        "reason": { "type": "string" },
                        "card_ms": { "type": "integer" },
                        "diff_opened": { "type": "boolean" }
                    }
                },
                "Reason": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } },
                "Device": { "type": "object", "required": ["id", "public_key", "hardware", "region", "environment", "firmware", "tags", "enrolled_at"] },
                "Binary": { "type": "string", "contentMediaType": "application/octet-stream" }
            }
        }
    })
}
