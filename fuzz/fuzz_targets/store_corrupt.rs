//! A corrupted `authd.redb`: a real file (a server that registered a user,
//! signed them in and rotated a refresh token, then stopped cleanly) with
//! bytes flipped, overwritten or cut off where the fuzzer says, opened with
//! `authd::store::Store::open` and read the way start-up and requests read
//! it (schema, counts, the page-cache warm-up, signing keys, users, audit,
//! a sweep, a write), and first as `authd backup` and `authd restore` read
//! a closed file (`inspect_backup`). Every step may fail with an error;
//! none may panic.
//!
//! redb 4.6 panicked on some corrupted files (`unreachable!()` in
//! `tree_store/btree_cursor.rs`, reached from `Database::create` when two
//! bytes of the allocator state were flipped, and seven more places:
//! docs/fuzzing.md). This target found that; the store's open now verifies
//! every page first, and a panic anywhere, redb included, is a crash again.
//!
//! Input: byte 0 and 1..4 say whether and where to cut the file; then
//! 4-byte edits: a 24-bit offset (modulo the file's length) and a byte to
//! XOR there.
#![no_main]

use std::sync::OnceLock;

use authd::store::{AuditQuery, Queries, Store, StoreError, Sweep};
use authd_fuzz::{json_post, InProcess, GOOD_PASSWORD};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

struct Fixture {
    template: Vec<u8>,
    dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let server = InProcess::start("");
        server.register("store@example.com");
        let login = server.send(json_post(
            "/login",
            &serde_json::json!({"email": "store@example.com", "password": GOOD_PASSWORD}),
        ));
        let refresh = login
            .json()
            .and_then(|body| body["refresh_token"].as_str().map(str::to_owned))
            .expect("a refresh token");
        let rotated = server.send(
            axum::http::Request::post("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(format!(
                    "grant_type=refresh_token&refresh_token={refresh}"
                )))
                .expect("request"),
        );
        assert_eq!(rotated.status, 200, "refresh");
        Fixture {
            template: server.into_database_bytes(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    })
}

fn read_everything(store: &Store) -> Result<(), StoreError> {
    store.schema_version()?;
    store.counts()?;
    store.warm_cache(|| true)?;
    store.read(|txn| {
        txn.active_signing_kid()?;
        txn.signing_keys()?;
        for user in txn.users(None, None, 100)? {
            txn.sessions_of_user(&user.id)?;
            txn.mfa_factors(&user.id)?;
            txn.webauthn_credentials(&user.id)?;
            for membership in &user.memberships {
                txn.org(&membership.org_id)?;
                txn.user_id_by_email(&membership.org_id, &user.email)?;
            }
        }
        txn.orgs(None, 100)?;
        txn.audit(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })?;
        txn.approvals()?;
        txn.providers()?;
        txn.oauth_clients(None, 100)?;
        Ok::<_, StoreError>(())
    })?;
    store.sweep(Sweep::ExpiredRefreshTokens, NOW + 86_400 * 365, 100)?;
    store.write(|txn| txn.request_file_rewrite())?;
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let mut file = fixture.template.clone();
    let (cut, edits) = match data {
        [flag, a, b, c, rest @ ..] if flag % 4 == 0 => {
            let at = u32::from_be_bytes([0, *a, *b, *c]) as usize;
            (Some(at % (file.len() + 1)), rest)
        }
        [_, _, _, _, rest @ ..] => (None, rest),
        _ => return,
    };
    for edit in edits.chunks_exact(4) {
        let at = u32::from_be_bytes([0, edit[0], edit[1], edit[2]]) as usize % file.len();
        file[at] ^= edit[3];
    }
    if let Some(cut) = cut {
        file.truncate(cut);
    }
    let path = fixture.dir.path().join("authd.redb");
    std::fs::write(&path, &file).expect("write the corrupted file");
    // `authd backup` and `authd restore` open a closed file their own way;
    // the check may repair what it opens, so the store gets a fresh copy.
    let _ = authd::store::inspect_backup(&path);
    std::fs::write(&path, &file).expect("write the corrupted file again");
    if let Ok((store, _report)) = Store::open(&path, 1 << 20, NOW) {
        let _ = read_everything(&store);
    }
});
