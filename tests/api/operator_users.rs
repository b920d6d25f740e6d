//! Operator CRUD for orgs and users under `/v1`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{TestServer, GOOD_PASSWORD};

#[tokio::test]
async fn the_default_org_exists_from_the_first_start() {
    let server = TestServer::spawn_fast().await;
    let orgs: Value = server.operator_get("/v1/orgs").await;
    let items = orgs["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    let org = &items[0];
    assert_eq!(org["slug"], "default");
    assert_eq!(org["registration"], "open");
    assert_eq!(org["mfa_policy"], "optional");
    assert_eq!(org["password_policy"]["min_length"], 8);
    assert_eq!(org["password_policy"]["reject_common"], true);
    assert!(orgs.get("next_cursor").is_some());
}

#[tokio::test]
async fn orgs_are_created_read_by_id_or_slug_updated_and_deleted() {
    let server = TestServer::spawn_fast().await;
    let response = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "homelab", "name": "Home Lab", "registration": "approval", "mfa_policy": "required",
                   "password_policy": {"min_length": 12}, "max_sessions_per_user": 3}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let org: Value = response.json().await.expect("json");
    let id = org["id"].as_str().expect("id");
    assert!(id.starts_with("org_"));
    assert_eq!(org["password_policy"]["min_length"], 12);
    assert_eq!(
        org["password_policy"]["require_digit"], true,
        "unspecified keys keep defaults"
    );

    let by_slug: Value = server.operator_get("/v1/orgs/homelab").await;
    assert_eq!(by_slug["id"], org["id"]);
    let patched = server
        .operator_json(
            Method::PATCH,
            &format!("/v1/orgs/{id}"),
            json!({"name": "Lab", "registration": "closed"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.expect("json");
    assert_eq!(patched["name"], "Lab");
    assert_eq!(patched["registration"], "closed");
    assert_eq!(patched["mfa_policy"], "required");

    let duplicate = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "homelab", "name": "x"}),
        )
        .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    let bad = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "Bad Slug", "name": "x"}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown_key = server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "x", "name": "x", "colour": 1}),
        )
        .await;
    assert_eq!(unknown_key.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let deleted = server
        .operator(Method::DELETE, "/v1/orgs/homelab")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .operator(Method::GET, "/v1/orgs/homelab")
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        gone.text().await.expect("body"),
        r#"{"error":"org not found"}"#
    );
    let default = server
        .operator(Method::DELETE, "/v1/orgs/default")
        .send()
        .await
        .expect("delete");
    assert_eq!(default.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn users_are_created_with_roles_listed_per_org_disabled_and_deleted() {
    let server = TestServer::spawn_fast().await;
    server
        .operator_json(
            Method::POST,
            "/v1/orgs",
            json!({"slug": "ops", "name": "Ops"}),
        )
        .await;
    let response = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "Root@Example.com", "password": GOOD_PASSWORD, "name": "Root", "org": "ops", "role": "admin"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.expect("json");
    assert_eq!(user["email"], "root@example.com");
    assert_eq!(user["memberships"][0]["role"], "admin");
    let id = user["id"].as_str().expect("id");

    let weak = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "w@example.com", "password": "weak"}),
        )
        .await;
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);

    let listed: Value = server.operator_get("/v1/users?org=ops").await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1);
    let none: Value = server.operator_get("/v1/users?org=default").await;
    assert!(none["items"].as_array().expect("items").is_empty());

    let added = server
        .operator_json(
            Method::POST,
            &format!("/v1/users/{id}/memberships"),
            json!({"org": "default", "role": "auditor"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::OK);
    assert_eq!(
        added.json::<Value>().await.expect("json")["memberships"]
            .as_array()
            .expect("list")
            .len(),
        2
    );
    let login = server
        .login(json!({"email": "root@example.com", "password": GOOD_PASSWORD, "org": "default"}))
        .await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "a second membership allows login there"
    );

    let disabled = server
        .operator_json(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(
        disabled.json::<Value>().await.expect("json")["disabled"],
        true
    );
    let login = server
        .login(json!({"email": "root@example.com", "password": GOOD_PASSWORD, "org": "ops"}))
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);

    let removed = server
        .operator(
            Method::DELETE,
            &format!("/v1/users/{id}/memberships/default"),
        )
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), StatusCode::OK);
    let deleted = server
        .operator(Method::DELETE, &format!("/v1/users/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .operator(Method::GET, &format!("/v1/users/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = server
        .operator_json(
            Method::POST,
            "/v1/users",
            json!({"email": "root@example.com", "password": GOOD_PASSWORD, "org": "ops"}),
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CREATED,
        "the email is free again"
    );
}
