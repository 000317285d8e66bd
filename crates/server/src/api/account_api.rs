//! `AccountService`: registration, sign-in, token refresh and sign-out, the
//! caller's own profile, and accounts created by admins. Passwords are
//! hashed on the blocking pool, a few at a time; failed sign-ins are
//! throttled per email.

use std::sync::Arc;
use std::time::Duration;

use foodfast_api::v1 as pb;
use foodfast_api::v1::account_service_server::AccountService;
use foodfast_auth::{Tokens, password, refresh};
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::account;
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::throttle::LoginThrottle;
use foodfast_store::users::{Account, NewUser, ProfileUpdate};
use tokio::sync::{Semaphore, SemaphorePermit};
use tonic::{Request, Response, Status};

use super::App;
use crate::auth::principal;
use crate::config::AuthConfig;
use crate::convert;
use crate::error::ApiError;

/// The city of a driver account until ops set one (pings file it by zone anyway).
const DEFAULT_DRIVER_CITY: &str = "unzoned";

/// What sign-in needs besides the stores.
#[derive(Clone)]
pub struct Accounts {
    pub tokens: Tokens,
    pub config: Arc<AuthConfig>,
    pub throttle: LoginThrottle,
    /// Bounds the argon2id hashes running at once (memory and CPU).
    pub hashing: Arc<Semaphore>,
}

impl Accounts {
    /// A turn to hash, waiting at most `auth.max_hash_wait`: past it the
    /// caller is told to come back, instead of joining an endless queue.
    async fn hashing_turn(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        match tokio::time::timeout(self.config.max_hash_wait, self.hashing.acquire()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(ApiError::QueueFull {
                message: "too many sign-ins at once; retry shortly".into(),
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _turn = self.hashing_turn().await?;
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|err| ApiError::Internal(err.to_string()))
    }

    /// Checks `password` against the account (or spends the same time when
    /// there is none).
    async fn password_matches(&self, account: Option<&Account>, password: String) -> Result<bool, ApiError> {
        let _turn = self.hashing_turn().await?;
        let stored = account.map(|account| account.password_hash.clone());
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&stored, &password),
            None => {
                password::verify_nothing(&password);
                false
            }
        })
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))
    }
}

pub struct AccountApi {
    app: App,
}

impl AccountApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    fn accounts(&self) -> &Accounts {
        &self.app.accounts
    }

    /// A new access token and a new refresh token for `account`.
    async fn sign_in(&self, account: &Account) -> Result<pb::AuthTokens, ApiError> {
        let config = &self.accounts().config;
        let (refresh_token, refresh_hash) = refresh::generate();
        let refresh_expires_at =
            self.app.users.issue_refresh_token(account.id, &refresh_hash, config.refresh_token_ttl).await?;
        let mut tokens = self.access_token(account)?;
        tokens.refresh_token = refresh_token;
        tokens.refresh_token_expires_at = Some(convert::timestamp(refresh_expires_at));
        Ok(tokens)
    }

    fn access_token(&self, account: &Account) -> Result<pb::AuthTokens, ApiError> {
        let ttl = self.accounts().config.access_token_ttl;
        let principal = Principal { user_id: account.id, role: account.role, restaurant_id: account.restaurant_id };
        let access_token = self.accounts().tokens.mint(&principal, ttl).map_err(ApiError::Internal)?;
        Ok(pb::AuthTokens {
            access_token,
            access_token_expires_at: Some(convert::timestamp(chrono::Utc::now() + ttl)),
            ..Default::default()
        })
    }

    /// Validates a new account's fields and creates it.
    async fn create(&self, fields: NewAccount<'_>) -> Result<Account, ApiError> {
        let email = account::email("email", fields.email)?;
        account::password("password", fields.password)?;
        let name = account::display_name("display_name", fields.display_name)?;
        let phone = account::phone("phone", fields.phone)?;
        let password_hash = self.accounts().hash_password(fields.password.to_string()).await?;
        let user = NewUser {
            email: &email,
            phone: phone.as_deref(),
            name: &name,
            role: fields.role,
            password_hash: &password_hash,
            restaurant_id: fields.restaurant_id,
        };
        let id = match fields.role {
            // Home city, vehicle and capacity are not part of the account: ops set them later.
            Role::Driver => self.app.users.create_driver(&user, DEFAULT_DRIVER_CITY, "", 1).await?,
            _ => self.app.users.create(&user).await?,
        };
        self.app.users.account(id).await?.ok_or_else(|| ApiError::Internal(format!("account {id} vanished")))
    }

    async fn own_account(&self, caller: &Principal) -> Result<Account, ApiError> {
        // A token outliving its account (deleted by an admin) is not a caller any more.
        self.app
            .users
            .account(caller.user_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("your account no longer exists".into()))
    }
}

struct NewAccount<'a> {
    email: &'a str,
    password: &'a str,
    display_name: &'a str,
    phone: &'a str,
    role: Role,
    restaurant_id: Option<uuid::Uuid>,
}

/// Throttling keys are a hash of the email: Redis holds no personal data.
fn throttle_key(email: &str) -> String {
    refresh::hash(email)
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    /// Anyone; creates a customer and signs it in. A taken email is `ALREADY_EXISTS`.
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let request = request.into_inner();
        let account = self
            .create(NewAccount {
                email: &request.email,
                password: &request.password,
                display_name: &request.display_name,
                phone: &request.phone,
                role: Role::Customer,
                restaurant_id: None,
            })
            .await?;
        let tokens = self.sign_in(&account).await?;
        Ok(Response::new(pb::RegisterResponse {
            profile: Some(convert::account_profile(&account)),
            tokens: Some(tokens),
        }))
    }

    /// Anyone. A wrong email or password is the same `UNAUTHENTICATED`;
    /// after `auth.login_throttle.max_failures` attempts without a success
    /// (counted before the password is checked, so concurrent guesses count
    /// too) the email waits (`RESOURCE_EXHAUSTED` with a RetryInfo).
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let request = request.into_inner();
        let email = account::email("email", &request.email).map_err(ApiError::from)?;
        let accounts = self.accounts();
        let key = throttle_key(&email);
        match accounts.throttle.attempt(&key).await {
            Ok(Some(retry_after)) => {
                return Err(ApiError::RateLimited { what: "too many failed sign-ins", retry_after }.into());
            }
            Ok(None) => {}
            // Sign-in stays open without Redis; only the throttle is lost for a while.
            Err(err) => tracing::warn!(error = %foodfast_store::Chain(&err), "login throttle unavailable"),
        }
        let account = self.app.users.account_by_email(&email).await.map_err(ApiError::from)?;
        if !accounts.password_matches(account.as_ref(), request.password).await? {
            return Err(ApiError::InvalidCredentials.into());
        }
        let account = account.expect("a password matched an account");
        if let Err(err) = accounts.throttle.succeeded(&key).await {
            tracing::warn!(error = %foodfast_store::Chain(&err), "login throttle unavailable");
        }
        let tokens = self.sign_in(&account).await?;
        Ok(Response::new(pb::LoginResponse { profile: Some(convert::account_profile(&account)), tokens: Some(tokens) }))
    }

    /// Anyone holding a live refresh token; it is used up (rotated). A
    /// revoked, expired, unknown or reused one is `UNAUTHENTICATED` (reuse
    /// also signs the account out everywhere).
    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let request = request.into_inner();
        if request.refresh_token.is_empty() {
            return Err(ApiError::from(FieldError::new("refresh_token", "is required")).into());
        }
        let (new_token, new_hash) = refresh::generate();
        let ttl = self.accounts().config.refresh_token_ttl;
        let (user_id, expires_at) = self
            .app
            .users
            .rotate_refresh_token(&refresh::hash(&request.refresh_token), &new_hash, ttl)
            .await
            .map_err(ApiError::from)?
            .map_err(ApiError::from)?;
        // The account was deleted since: the session is over.
        let account = self
            .app
            .users
            .account(user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::RefreshRefused(foodfast_store::users::RefreshRefused::Revoked))?;
        let mut tokens = self.access_token(&account)?;
        tokens.refresh_token = new_token;
        tokens.refresh_token_expires_at = Some(convert::timestamp(expires_at));
        Ok(Response::new(pb::RefreshTokenResponse { tokens: Some(tokens) }))
    }

    /// Anyone holding the refresh token. Access tokens already issued stay
    /// valid until they expire.
    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let request = request.into_inner();
        if request.refresh_token.is_empty() {
            return Err(ApiError::from(FieldError::new("refresh_token", "is required")).into());
        }
        let hash = refresh::hash(&request.refresh_token);
        if !self.app.users.revoke_refresh_token(&hash, request.all_sessions).await.map_err(ApiError::from)? {
            return Err(ApiError::RefreshRefused(foodfast_store::users::RefreshRefused::Unknown).into());
        }
        Ok(Response::new(pb::LogoutResponse {}))
    }

    /// Any authenticated caller, about itself.
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let caller = principal(&request)?;
        let account = self.own_account(&caller).await?;
        Ok(Response::new(pb::GetProfileResponse { profile: Some(convert::account_profile(&account)) }))
    }

    /// Any authenticated caller, about itself: the fields in `update_mask`
    /// (empty mask: every non-empty field).
    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let paths: Vec<String> = request.update_mask.map(|mask| mask.paths).unwrap_or_default();
        for path in &paths {
            if !["display_name", "phone", "default_address"].contains(&path.as_str()) {
                let message = format!("{path:?} is not a field you can change (display_name, phone, default_address)");
                return Err(ApiError::from(FieldError::new("update_mask", message)).into());
            }
        }
        let changes = |field: &str, set: bool| if paths.is_empty() { set } else { paths.iter().any(|p| p == field) };
        let current = self.own_account(&caller).await?;
        let mut update = ProfileUpdate {
            name: current.name.clone(),
            phone: current.phone.clone(),
            default_address: current.default_address.clone(),
        };
        if changes("display_name", !request.display_name.is_empty()) {
            update.name = account::display_name("display_name", &request.display_name).map_err(ApiError::from)?;
        }
        if changes("phone", !request.phone.is_empty()) {
            update.phone = account::phone("phone", &request.phone).map_err(ApiError::from)?;
        }
        if changes("default_address", request.default_address.is_some()) {
            update.default_address = match &request.default_address {
                Some(address) => {
                    Some(convert::parse_address("default_address", Some(address)).map_err(ApiError::from)?)
                }
                None => None,
            };
        }
        let account = self
            .app
            .users
            .update_profile(caller.user_id, &update)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("your account no longer exists".into()))?;
        Ok(Response::new(pb::UpdateProfileResponse { profile: Some(convert::account_profile(&account)) }))
    }

    /// Admins only: any role; staff must name an existing restaurant.
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let caller = principal(&request)?;
        if caller.role != Role::Admin {
            return Err(ApiError::PermissionDenied("only admins create accounts".into()).into());
        }
        let request = request.into_inner();
        let role = convert::parse_role("role", request.role).map_err(ApiError::from)?;
        let restaurant_id = match (role, request.restaurant_id.as_str()) {
            (Role::RestaurantStaff, id) => {
                let id = parse_uuid("restaurant_id", id).map_err(ApiError::from)?;
                self.app.restaurant(id).await?;
                Some(id)
            }
            (_, "") => None,
            (_, _) => {
                let message = "must be empty unless the role is ROLE_RESTAURANT_STAFF";
                return Err(ApiError::from(FieldError::new("restaurant_id", message)).into());
            }
        };
        let account = self
            .create(NewAccount {
                email: &request.email,
                password: &request.password,
                display_name: &request.display_name,
                phone: &request.phone,
                role,
                restaurant_id,
            })
            .await?;
        Ok(Response::new(pb::CreateAccountResponse { profile: Some(convert::account_profile(&account)) }))
    }
}
