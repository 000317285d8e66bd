//! Accounts on real PostgreSQL and Redis: register, sign in, refresh,
//! sign out, throttling, profiles and admin-created accounts.

mod common;

use common::TestServer;
use foodfast_api::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

fn email() -> String {
    format!("Ana.{}@Example.test", Uuid::new_v4().simple())
}

fn registration(email: &str) -> pb::RegisterRequest {
    pb::RegisterRequest {
        email: email.into(),
        phone: "+33612345678".into(),
        password: "correct horse battery".into(),
        display_name: "Ana B.".into(),
    }
}

#[tokio::test]
async fn register_sign_in_refresh_and_sign_out() {
    let server = TestServer::start().await;
    let mut anonymous = server.accounts(None);
    let email = email();
    let registered = anonymous.register(registration(&email)).await.unwrap().into_inner();
    let profile = registered.profile.unwrap();
    assert_eq!(profile.email, email.to_lowercase(), "emails are stored lower-cased");
    assert_eq!(profile.role(), pb::Role::Customer);
    let tokens = registered.tokens.unwrap();

    // The access token is a real bearer token.
    let me = server.accounts_as(&tokens.access_token).get_profile(pb::GetProfileRequest {}).await.unwrap();
    assert_eq!(me.into_inner().profile.unwrap().account_id, profile.account_id);

    let again = anonymous.register(registration(&email.to_uppercase())).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");

    let login = |password: &str| pb::LoginRequest { email: email.clone(), password: password.into() };
    let signed_in = anonymous.login(login("correct horse battery")).await.unwrap().into_inner();
    let session = signed_in.tokens.unwrap();
    assert_ne!(session.refresh_token, tokens.refresh_token, "each sign-in is its own session");

    // Refresh rotates: the new token works, the used one never again.
    let refresh = |token: &str| pb::RefreshTokenRequest { refresh_token: token.into() };
    let rotated = anonymous.refresh_token(refresh(&session.refresh_token)).await.unwrap().into_inner().tokens.unwrap();
    server.accounts_as(&rotated.access_token).get_profile(pb::GetProfileRequest {}).await.unwrap();
    // A retry moments later (its answer was lost, or another tab) is refused, and harms nobody.
    let retried = anonymous.refresh_token(refresh(&session.refresh_token)).await.unwrap_err();
    assert_eq!(retried.code(), Code::Unauthenticated);
    let rotated = anonymous.refresh_token(refresh(&rotated.refresh_token)).await.unwrap().into_inner().tokens.unwrap();
    // Later, the old token back means someone else holds a copy: every session ends.
    let client = server.stores.postgres.client().await.unwrap();
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = revoked_at - INTERVAL '1 minute' WHERE replaced_by IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    let reused = anonymous.refresh_token(refresh(&session.refresh_token)).await.unwrap_err();
    assert_eq!(reused.code(), Code::Unauthenticated);
    let stolen_copy = anonymous.refresh_token(refresh(&rotated.refresh_token)).await.unwrap_err();
    assert_eq!(stolen_copy.code(), Code::Unauthenticated, "reusing a rotated token revokes the whole account");
    let other_session = anonymous.refresh_token(refresh(&tokens.refresh_token)).await.unwrap_err();
    assert_eq!(other_session.code(), Code::Unauthenticated, "...every session of it");

    // Sign out: one session, or all.
    let first = anonymous.login(login("correct horse battery")).await.unwrap().into_inner().tokens.unwrap();
    let second = anonymous.login(login("correct horse battery")).await.unwrap().into_inner().tokens.unwrap();
    anonymous
        .logout(pb::LogoutRequest { refresh_token: first.refresh_token.clone(), all_sessions: false })
        .await
        .unwrap();
    assert_eq!(anonymous.refresh_token(refresh(&first.refresh_token)).await.unwrap_err().code(), Code::Unauthenticated);
    let still = anonymous.refresh_token(refresh(&second.refresh_token)).await.unwrap().into_inner().tokens.unwrap();
    // A dead token (rotated, or found in an old backup) signs nobody out: `still` goes on below.
    let dead = anonymous.logout(pb::LogoutRequest { refresh_token: second.refresh_token.clone(), all_sessions: true });
    assert_eq!(dead.await.unwrap_err().code(), Code::Unauthenticated);
    anonymous
        .logout(pb::LogoutRequest { refresh_token: still.refresh_token.clone(), all_sessions: true })
        .await
        .unwrap();
    assert_eq!(anonymous.refresh_token(refresh(&still.refresh_token)).await.unwrap_err().code(), Code::Unauthenticated);
    let unknown = anonymous.logout(pb::LogoutRequest { refresh_token: "rt_nope".into(), all_sessions: false }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn guesses_sent_all_at_once_are_throttled_like_guesses_in_turn() {
    let server = TestServer::start_with(|config| config.auth.login_throttle.max_failures = 3).await;
    let anonymous = server.accounts(None);
    let email = email();
    anonymous.clone().register(registration(&email)).await.unwrap();
    let guesses = (0..12).map(|i| {
        let (mut client, email) = (anonymous.clone(), email.clone());
        async move { client.login(pb::LoginRequest { email, password: format!("guess number {i}") }).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::Unauthenticated)).count();
    let throttled =
        answers.iter().filter(|answer| matches!(answer, Err(s) if s.code() == Code::ResourceExhausted)).count();
    assert_eq!((checked, throttled), (3, 9), "only 3 passwords were checked");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer_until_throttled() {
    let server = TestServer::start_with(|config| config.auth.login_throttle.max_failures = 3).await;
    let mut anonymous = server.accounts(None);
    let email = email();
    anonymous.register(registration(&email)).await.unwrap();

    let wrong = anonymous.login(pb::LoginRequest { email: email.clone(), password: "not the password".into() }).await;
    // Unique: Redis (and its throttle counts) is shared by every test run.
    let nobody = anonymous.login(pb::LoginRequest { email: self::email(), password: "x".into() }).await;
    let (wrong, nobody) = (wrong.unwrap_err(), nobody.unwrap_err());
    assert_eq!((wrong.code(), wrong.message()), (nobody.code(), nobody.message()));
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let reason = wrong.get_error_details().error_info().map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("ERROR_REASON_INVALID_CREDENTIALS"));

    for _ in 0..2 {
        let _ = anonymous.login(pb::LoginRequest { email: email.clone(), password: "still wrong".into() }).await;
    }
    let throttled =
        anonymous.login(pb::LoginRequest { email: email.clone(), password: "correct horse battery".into() }).await;
    let throttled = throttled.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "even the right password waits: {throttled:?}");
    let retry = throttled.get_error_details().retry_info().and_then(|retry| retry.retry_delay).expect("a RetryInfo");
    assert!(retry.as_secs() > 60, "{retry:?}");
    let other = email.replace("Ana.", "Bob.");
    anonymous.register(registration(&other)).await.unwrap();
    anonymous
        .login(pb::LoginRequest { email: other, password: "correct horse battery".into() })
        .await
        .expect("another email is not throttled");
}

#[tokio::test]
async fn bad_fields_are_named_and_passwords_never_echoed() {
    let server = TestServer::start().await;
    let mut anonymous = server.accounts(None);
    for (request, field) in [
        (pb::RegisterRequest { email: "ana".into(), ..registration("x@example.test") }, "email"),
        (pb::RegisterRequest { password: "short-pw".into(), ..registration(&email()) }, "password"),
        (pb::RegisterRequest { display_name: " ".into(), ..registration(&email()) }, "display_name"),
        (pb::RegisterRequest { phone: "0612".into(), ..registration(&email()) }, "phone"),
    ] {
        let err = anonymous.register(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        let violations = err.get_error_details().bad_request().cloned().unwrap().field_violations;
        assert_eq!(violations[0].field, field);
        assert!(!err.message().contains("short-pw"), "{err:?}");
    }
}

#[tokio::test]
async fn profiles_change_by_mask_and_admins_create_the_other_roles() {
    let server = TestServer::start().await;
    let mut anonymous = server.accounts(None);
    let registered = anonymous.register(registration(&email())).await.unwrap().into_inner();
    let mut me = server.accounts_as(&registered.tokens.unwrap().access_token);

    let home = pb::Address {
        location: Some(pb::LatLng { lat: 48.86, lng: 2.35 }),
        formatted: "3 Rue du Test".into(),
        instructions: "code 1234".into(),
    };
    let updated = me
        .update_profile(pb::UpdateProfileRequest {
            display_name: "Ana C.".into(),
            default_address: Some(home.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!((updated.display_name.as_str(), updated.phone.as_str()), ("Ana C.", "+33612345678"));
    assert_eq!(updated.default_address.unwrap().formatted, home.formatted);
    let cleared = me
        .update_profile(pb::UpdateProfileRequest {
            update_mask: Some(prost_types::FieldMask { paths: vec!["phone".into()] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!((cleared.phone.as_str(), cleared.display_name.as_str()), ("", "Ana C."), "a masked empty field clears");
    let bad_mask = me
        .update_profile(pb::UpdateProfileRequest {
            update_mask: Some(prost_types::FieldMask { paths: vec!["email".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_mask.code(), Code::InvalidArgument);

    let driver = pb::CreateAccountRequest {
        email: email(),
        password: "a driver's password".into(),
        display_name: "Dan D.".into(),
        role: pb::Role::Driver.into(),
        ..Default::default()
    };
    assert_eq!(me.create_account(driver.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let admin = server.admin().await;
    let mut admin = server.accounts(Some(&admin));
    let created = admin.create_account(driver.clone()).await.unwrap().into_inner().profile.unwrap();
    assert_eq!(created.role(), pb::Role::Driver);
    let users = foodfast_store::users::Users::new(server.stores.postgres.clone());
    let as_driver = users.driver(created.account_id.parse().unwrap()).await.unwrap().expect("a driver row");
    assert_eq!(as_driver.capacity, 1);
    let twice = admin.create_account(driver.clone()).await.unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");
    let signed_in = anonymous
        .login(pb::LoginRequest { email: driver.email.clone(), password: driver.password.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.profile.unwrap().role(), pb::Role::Driver);
    let staff_without_restaurant =
        pb::CreateAccountRequest { email: email(), role: pb::Role::RestaurantStaff.into(), ..driver.clone() };
    let err = admin.create_account(staff_without_restaurant).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A role number from a newer contract is named, not taken for a missing role.
    let newer_role = pb::CreateAccountRequest { email: email(), role: 42, ..driver.clone() };
    let err = admin.create_account(newer_role).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("role has no value 42"), "{err:?}");
}

#[tokio::test]
async fn tampered_expired_and_retired_key_tokens_are_refused_and_a_previous_key_still_verifies() {
    use foodfast_auth::{TokenKey, Tokens};
    use foodfast_domain::access::{Principal, Role};

    const NEW_KEY: &str = "new:a-newer-signing-key-that-is-long-enough";
    // The server signs with the new key and still accepts the previous one (rotation).
    let server =
        TestServer::start_with(|config| config.auth.keys = vec![NEW_KEY.into(), common::TEST_KEY.into()]).await;
    let customer = server.customer().await;
    let mut real = server.accounts(Some(&customer));
    real.get_profile(pb::GetProfileRequest {}).await.expect("a token from Login");

    let previous = Tokens::new(&[TokenKey::parse(common::TEST_KEY).unwrap()]);
    let principal = Principal { user_id: customer.user_id, role: Role::Customer, restaurant_id: None };
    let old_token = previous.mint(&principal, std::time::Duration::from_secs(60)).unwrap();
    server.accounts_as(&old_token).get_profile(pb::GetProfileRequest {}).await.expect("the previous key verifies");

    let at = old_token.rfind('.').unwrap() + 1;
    let flipped = if &old_token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &old_token[..at], &old_token[at + 1..]);
    let retired = Tokens::new(&[TokenKey::parse("gone:a-retired-signing-key-that-is-long-enough").unwrap()])
        .mint(&principal, std::time::Duration::from_secs(60))
        .unwrap();
    let expired = previous.mint(&principal, std::time::Duration::ZERO).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // past the 5 s leeway
    for (token, why) in [(tampered, "signature"), (retired, "not accepted"), (expired.clone(), "expired")] {
        let err = server.accounts_as(&token).get_profile(pb::GetProfileRequest {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{why}");
        assert!(err.message().contains(why), "{why}: {err:?}");
        // Only an expired token is worth refreshing; the others need a new sign-in.
        let reason = err.get_error_details().error_info().map(|info| info.reason.clone());
        let expected = (why == "expired").then_some("ERROR_REASON_TOKEN_EXPIRED");
        assert_eq!(reason.as_deref(), expected, "{why}");
    }

    // An app that attaches its expired token to every call can still refresh it, or sign in.
    let email = email();
    let registered = server.accounts(None).register(registration(&email)).await.unwrap().into_inner();
    let mut with_expired = server.accounts_as(&expired);
    let refresh = pb::RefreshTokenRequest { refresh_token: registered.tokens.unwrap().refresh_token };
    let refreshed = with_expired.refresh_token(refresh).await.expect("public calls ignore a refused token");
    assert!(!refreshed.into_inner().tokens.unwrap().access_token.is_empty());
    let login = pb::LoginRequest { email, password: "correct horse battery".into() };
    with_expired.login(login).await.expect("public calls ignore a refused token");
}

#[tokio::test]
async fn sign_ins_past_the_hashing_queue_are_told_to_come_back() {
    // One hash at a time, and no patience: concurrent registrations cannot all wait their turn.
    let server = TestServer::start_with(|config| {
        config.auth.max_concurrent_hashes = 1;
        config.auth.max_hash_wait = std::time::Duration::from_millis(1);
    })
    .await;
    let calls = (0..6).map(|_| {
        let mut client = server.accounts(None);
        async move { client.register(registration(&email())).await }
    });
    let outcomes = futures::future::join_all(calls).await;
    let refused: Vec<_> = outcomes.iter().filter_map(|outcome| outcome.as_ref().err()).collect();
    assert!(refused.len() < outcomes.len(), "the first in line is served");
    assert!(!refused.is_empty(), "the others do not queue forever");
    for status in refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("retry"), "{status:?}");
        assert!(status.get_error_details().retry_info().is_some(), "{status:?}");
    }
}
