//! The headline table: reads the `target/bench/*.json` that the other benches
//! wrote (footprint, login, tokens, apps, scale) and prints each figure beside the
//! limit it is compared to (measured in the same run, or the bound from issue
//! 9), the ratio, the target and ✓/✗; writes `target/bench/summary.json`.
//! Runs nothing itself: `just bench` runs every bench and then this one
//! (`cargo bench --bench summary`). Figures from a `--quick` run are marked
//! `*` and mean nothing beyond proving the harness works.

// A bench is a client: it reads the wall clock as one would.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::SystemTime;

use serde_json::{json, Value};

/// One line of the table.
struct Line {
    figure: String,
    value: Option<f64>,
    unit: &'static str,
    /// What the figure is compared to, as shown, and its number.
    limit: Option<(String, f64)>,
    target: Target,
    quick: bool,
    source: &'static str,
}

#[derive(Clone, Copy)]
enum Target {
    /// value / limit must be at least this.
    RatioAtLeast(f64),
    /// value must be at most the limit.
    AtMost,
    /// value must be at least the limit.
    AtLeast,
    /// Shown for context; issue 9 sets no target.
    None,
}

impl Line {
    fn ratio(&self) -> Option<f64> {
        match (self.value, &self.limit) {
            (Some(value), Some((_, limit))) if *limit > 0.0 => Some(value / limit),
            _ => None,
        }
    }

    fn pass(&self) -> Option<bool> {
        let ratio = self.ratio()?;
        match self.target {
            Target::RatioAtLeast(at_least) => Some(ratio >= at_least),
            Target::AtMost => Some(ratio <= 1.0),
            Target::AtLeast => Some(ratio >= 1.0),
            Target::None => None,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtLeast(at_least) => format!("ratio >= {at_least}"),
            Target::AtMost => "<= limit".into(),
            Target::AtLeast => ">= limit".into(),
            Target::None => "-".into(),
        }
    }
}

fn load(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(format!("target/bench/{name}.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn age(name: &str) -> String {
    let path = format!("target/bench/{name}.json");
    match std::fs::metadata(Path::new(&path)).and_then(|m| m.modified()) {
        Ok(modified) => {
            let seconds = SystemTime::now()
                .duration_since(modified)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{path}, written {} min ago", seconds / 60)
        }
        Err(_) => format!("{path}: missing (cargo bench --bench {name})"),
    }
}

fn number(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_f64)
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "/s" if value >= 100.0 => format!("{value:.0}/s"),
        "/s" => format!("{value:.1}/s"),
        "MiB" => format!("{value:.2} MiB"),
        "ms" => format!("{value:.1} ms"),
        _ => format!("{value:.2}{unit}"),
    }
}

fn main() {
    let footprint = load("footprint");
    let login = load("login");
    let tokens = load("tokens");
    let scale = load("scale");
    let apps = load("apps");
    let quick_of = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v["quick"].as_bool())
            .unwrap_or(false)
    };
    let mut lines = Vec::new();
    let mut line = |source: &'static str,
                    doc: &Option<Value>,
                    figure: String,
                    value: Option<f64>,
                    unit: &'static str,
                    limit: Option<(String, f64)>,
                    target: Target| {
        lines.push(Line {
            figure,
            value: if doc.is_some() { value } else { None },
            unit,
            limit,
            target,
            quick: quick_of(doc),
            source,
        });
    };

    // Password work against argon2id alone.
    let hashes = login
        .as_ref()
        .and_then(|l| number(l, &["hashes_per_second"]));
    let argon2_limit = hashes.map(|h| (format!("argon2id alone {h:.1}/s"), h));
    let from_login = |path: &[&str]| login.as_ref().and_then(|l| number(l, path));
    line(
        "login",
        &login,
        "logins/s over HTTP".into(),
        from_login(&["logins", "per_second"]),
        "/s",
        argon2_limit.clone(),
        Target::RatioAtLeast(0.9),
    );
    line(
        "login",
        &login,
        "logins with a TOTP challenge/s over HTTP".into(),
        from_login(&["mfa_logins", "per_second"]),
        "/s",
        argon2_limit.clone(),
        Target::None,
    );
    line(
        "login",
        &login,
        "registrations/s over HTTP".into(),
        from_login(&["registrations", "per_second"]),
        "/s",
        argon2_limit,
        Target::None,
    );

    // Tokens against signing, committing and fixed bounds.
    let commits = tokens
        .as_ref()
        .and_then(|t| number(t, &["durable_commits_per_second"]));
    let pat_reads = tokens
        .as_ref()
        .and_then(|t| number(t, &["pat_get_store_reads_per_second"]));
    for (alg, key) in [("RS256", "rs256"), ("EdDSA", "eddsa")] {
        let from_tokens = |path: &[&str]| {
            let mut full = vec![key];
            full.extend_from_slice(path);
            tokens.as_ref().and_then(|t| number(t, &full))
        };
        let signs = from_tokens(&["signs_per_second"]);
        let limit = match (signs, commits) {
            (Some(s), Some(c)) => Some((format!("min(signs {s:.0}, commits {c:.0})/s"), s.min(c))),
            _ => None,
        };
        line(
            "tokens",
            &tokens,
            format!("{alg}: refresh rotations/s over HTTP"),
            from_tokens(&["http", "refresh_rotations", "per_second"]),
            "/s",
            limit,
            Target::RatioAtLeast(0.8),
        );
        line(
            "tokens",
            &tokens,
            format!("{alg}: access-token GET/s"),
            from_tokens(&["http", "access_token_gets", "per_second"]),
            "/s",
            Some(("15,000/s (2 cores)".into(), 15_000.0)),
            Target::AtLeast,
        );
        line(
            "tokens",
            &tokens,
            format!("{alg}: PAT GET/s"),
            from_tokens(&["http", "pat_gets", "per_second"]),
            "/s",
            Some(("20,000/s (2 cores)".into(), 20_000.0)),
            Target::AtLeast,
        );
        let verifies = from_tokens(&["verifies_per_second"]);
        line(
            "tokens",
            &tokens,
            format!("{alg}: access-token GET/s vs verifying alone"),
            from_tokens(&["http", "access_token_gets", "per_second"]),
            "/s",
            verifies.map(|v| (format!("verifies alone {v:.0}/s"), v)),
            Target::None,
        );
        line(
            "tokens",
            &tokens,
            format!("{alg}: PAT GET/s vs its store reads alone"),
            from_tokens(&["http", "pat_gets", "per_second"]),
            "/s",
            pat_reads.map(|r| (format!("store reads alone {r:.0}/s"), r)),
            Target::None,
        );
        let floor = from_tokens(&["http", "healthz_gets", "per_second"]);
        line(
            "tokens",
            &tokens,
            format!("{alg}: JWKS GET/s"),
            from_tokens(&["http", "jwks_gets", "per_second"]),
            "/s",
            floor.map(|f| (format!("/healthz floor {f:.0}/s"), f)),
            Target::None,
        );
    }

    // Apps signing in through authd, and forward-auth.
    let from_apps = |path: &[&str]| apps.as_ref().and_then(|a| number(a, path));
    let app_limit = match (
        from_apps(&["rs256_signs_per_second"]),
        from_apps(&["durable_commits_per_second"]),
    ) {
        (Some(s), Some(c)) => Some((format!("min(signs {s:.0}, commits {c:.0})/s"), s.min(c))),
        _ => None,
    };
    line(
        "apps",
        &apps,
        "RS256: code exchanges/s (code -> tokens)".into(),
        from_apps(&["oidc", "code_exchanges", "per_second"]),
        "/s",
        app_limit,
        Target::RatioAtLeast(0.8),
    );
    line(
        "apps",
        &apps,
        "RS256: client_credentials tokens/s".into(),
        from_apps(&["oidc", "client_credentials", "per_second"]),
        "/s",
        from_apps(&["rs256_signs_per_second"]).map(|s| (format!("signs alone {s:.0}/s"), s)),
        Target::None,
    );
    line(
        "apps",
        &apps,
        "userinfo GET/s".into(),
        from_apps(&["oidc", "userinfo_gets", "per_second"]),
        "/s",
        Some(("20,000/s (2 cores)".into(), 20_000.0)),
        Target::AtLeast,
    );
    let floor = from_apps(&["forward_auth", "healthz_gets", "per_second"]);
    for (label, key) in [("cookie", "cookie_checks"), ("PAT", "pat_checks")] {
        line(
            "apps",
            &apps,
            format!("forward-auth checks/s ({label}) vs /healthz"),
            from_apps(&["forward_auth", key, "per_second"]),
            "/s",
            floor.map(|f| (format!("/healthz {f:.0}/s"), f)),
            Target::RatioAtLeast(0.7),
        );
        line(
            "apps",
            &apps,
            format!("forward-auth checks/s ({label})"),
            from_apps(&["forward_auth", key, "per_second"]),
            "/s",
            Some(("25,000/s (2 cores)".into(), 25_000.0)),
            Target::AtLeast,
        );
    }
    line(
        "apps",
        &apps,
        "forward-auth p99 during a login storm".into(),
        from_apps(&["forward_auth", "cookie_checks_during_login_storm", "p99_ms"]),
        "ms",
        Some(("10 ms".into(), 10.0)),
        Target::AtMost,
    );

    // Footprint against fixed bounds.
    let from_footprint = |path: &[&str]| footprint.as_ref().and_then(|f| number(f, path));
    let resident_binary = footprint
        .as_ref()
        .and_then(|f| f["resident"]["binary"].as_str())
        .unwrap_or("-")
        .to_owned();
    for (label, key) in [
        ("first start", "first_start"),
        ("after a registration and a login", "after_login"),
    ] {
        line(
            "footprint",
            &footprint,
            format!("idle RSS {label} ({resident_binary})"),
            from_footprint(&["resident", key, "rss_mib"]),
            "MiB",
            // The edge budget of the brief (issue 23).
            Some(("10 MiB".into(), 10.0)),
            Target::AtMost,
        );
    }
    // After load the RSS holds what redb cached of the pages it read and
    // wrote, up to `storage.cache_mib`: a cache, sized by config, not a
    // budget figure; its anonymous part is shown beside it.
    line(
        "footprint",
        &footprint,
        "idle RSS after mixed load (with redb's cache)".into(),
        from_footprint(&["resident", "after_load", "rss_mib"]),
        "MiB",
        from_footprint(&["resident", "after_load", "anonymous_mib"])
            .map(|a| (format!("anonymous {a:.1} MiB"), a)),
        Target::None,
    );
    line(
        "footprint",
        &footprint,
        "RSS per idle keep-alive connection".into(),
        from_footprint(&["resident", "idle_connections", "per_connection_kib"]),
        "KiB",
        None,
        Target::None,
    );
    line(
        "footprint",
        &footprint,
        "RSS per SSE audit subscriber".into(),
        from_footprint(&["resident", "sse_subscribers", "per_subscriber_kib"]),
        "KiB",
        None,
        Target::None,
    );
    line(
        "footprint",
        &footprint,
        "exec to first 200 /healthz (first start)".into(),
        from_footprint(&["startup_first_ms_median"]),
        "ms",
        Some(("100 ms".into(), 100.0)),
        Target::AtMost,
    );
    line(
        "footprint",
        &footprint,
        "exec to first JWKS with a key (first start)".into(),
        from_footprint(&["startup_first_signing_key_ms_median"]),
        "ms",
        from_footprint(&["rsa_keygen_ms_median"])
            .map(|k| (format!("RSA keygen alone {k:.0} ms"), k)),
        Target::None,
    );
    line(
        "footprint",
        &footprint,
        "exec to first 200 /healthz (existing data)".into(),
        from_footprint(&["startup_warm_ms_median"]),
        "ms",
        Some(("100 ms".into(), 100.0)),
        Target::AtMost,
    );
    let glibc_only = from_footprint(&["musl_binary_bytes"]).is_none();
    for (name, bytes) in [
        (
            if glibc_only {
                "stripped binary (glibc; musl not built)"
            } else {
                "static binary, x86_64"
            },
            from_footprint(&["musl_binary_bytes"]).or(from_footprint(&["binary_bytes"])),
        ),
        (
            "static binary, aarch64 (just release aarch64-unknown-linux-musl)",
            from_footprint(&["aarch64_binary_bytes"]),
        ),
    ] {
        line(
            "footprint",
            &footprint,
            name.into(),
            bytes.map(|b| b / 1_048_576.0),
            "MiB",
            Some(("15 MiB".into(), 15.0)),
            Target::AtMost,
        );
    }
    let audit_users = from_footprint(&["audit_database", "users"]).unwrap_or(0.0);
    let audit_events = from_footprint(&["audit_database", "events"]).unwrap_or(0.0);
    line(
        "footprint",
        &footprint,
        format!("database file, {audit_users:.0} users + {audit_events:.0} audit events"),
        from_footprint(&["audit_database", "bytes"]).map(|b| b / 1_048_576.0),
        "MiB",
        None,
        Target::None,
    );
    line(
        "footprint",
        &footprint,
        "audit query by user (limit 50), p99".into(),
        from_footprint(&["audit_database", "query_by_user", "p99_ms"]),
        "ms",
        None,
        Target::None,
    );
    line(
        "login",
        &login,
        "peak RSS through a burst of 1,000 logins".into(),
        from_login(&["burst", "peak_rss_mib"]),
        "MiB",
        None,
        Target::None,
    );
    line(
        "login",
        &login,
        "  beyond RSS before + hash_concurrency × memory_kib".into(),
        from_login(&["burst", "overhead_mib"]),
        "MiB",
        from_login(&["burst", "overhead_limit_mib"]).map(|l| (format!("{l:.0} MiB"), l)),
        Target::AtMost,
    );

    // Scale: the largest user count against 1,000.
    let sizes = scale
        .as_ref()
        .and_then(|s| s["sizes"].as_array().cloned())
        .unwrap_or_default();
    let (smallest, largest) = (sizes.first(), sizes.last());
    let users_of = |v: Option<&Value>| v.and_then(|v| v["users"].as_u64()).unwrap_or(0);
    for (key, what) in [
        ("logins", "logins/s (cheap argon2id)"),
        ("refresh_rotations", "refresh rotations/s"),
        ("pat_gets", "PAT GET/s"),
    ] {
        let at = |v: Option<&Value>| v.and_then(|v| number(v, &[key, "per_second"]));
        line(
            "scale",
            &scale,
            format!("{what} at {} users", users_of(largest)),
            at(largest),
            "/s",
            at(smallest).map(|s| (format!("at {} users {s:.0}/s", users_of(smallest)), s)),
            Target::RatioAtLeast(0.8),
        );
    }
    line(
        "scale",
        &scale,
        format!("first login after start at {} users", users_of(largest)),
        largest.and_then(|v| number(v, &["first_login_after_start_ms"])),
        "ms",
        None,
        Target::None,
    );
    line(
        "scale",
        &scale,
        format!("page cache warm after start at {} users", users_of(largest)),
        largest.and_then(|v| number(v, &["cache_warm_up_seconds"])),
        "s",
        None,
        Target::None,
    );
    line(
        "scale",
        &scale,
        format!("database file at {} users (+1 PAT each)", users_of(largest)),
        largest
            .and_then(|v| number(v, &["database_bytes"]))
            .map(|b| b / 1_048_576.0),
        "MiB",
        None,
        Target::None,
    );

    // The table.
    let any_quick = lines.iter().any(|l| l.quick);
    println!(
        "\n== summary{}",
        if any_quick {
            " (* = QUICK run: proves the harness, the figures mean nothing)"
        } else {
            ""
        }
    );
    println!(
        "{:<50} {:>13} {:>36} {:>7} {:>13}  ",
        "figure", "value", "limit (same run) / bound", "ratio", "target"
    );
    let mut rows = Vec::new();
    let (mut met, mut missed) = (0, 0);
    for l in &lines {
        let value = match l.value {
            Some(v) => format!(
                "{}{}",
                format_value(v, l.unit),
                if l.quick { "*" } else { "" }
            ),
            None => "missing".into(),
        };
        let ratio = l.ratio().map_or("-".into(), |r| format!("{r:.2}"));
        let status = match l.pass() {
            Some(true) => {
                met += 1;
                "✓"
            }
            Some(false) => {
                missed += 1;
                "✗"
            }
            None => "",
        };
        println!(
            "{:<50} {:>13} {:>36} {:>7} {:>13}  {status}",
            l.figure,
            value,
            l.limit.as_ref().map_or("-", |(text, _)| text.as_str()),
            ratio,
            l.target_text(),
        );
        rows.push(json!({
            "figure": l.figure,
            "source": l.source,
            "value": l.value,
            "unit": l.unit,
            "limit": l.limit.as_ref().map(|(text, number)| json!({"text": text, "value": number})),
            "ratio": l.ratio(),
            "target": l.target_text(),
            "met": l.pass(),
            "quick": l.quick,
        }));
    }
    println!("targets met: {met}, missed: {missed}");
    for name in ["footprint", "login", "tokens", "scale"] {
        println!("  from {}", age(name));
    }
    common::save(
        "summary",
        &json!({"quick": any_quick, "targets_met": met, "targets_missed": missed, "rows": rows}),
    );
}
