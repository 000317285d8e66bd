//! Who is calling: the bearer token in a call's `authorization` metadata,
//! checked once per call by an interceptor, and read by handlers.

pub use foodfast_auth::{TokenKey, Tokens};
use foodfast_domain::access::Principal;
use tonic::{Request, Status};

use crate::error::ApiError;

/// Why the call's bearer token was refused. A call that needs a caller is
/// answered with it (`crate::policy`); a public one goes on anonymous, so
/// that an app attaching its expired token to every call can still refresh
/// it or sign in again.
#[derive(Clone)]
pub struct RefusedToken(pub Status);

/// The tonic interceptor: a request with a valid token carries its
/// [`Principal`]; one with a bad token carries the [`RefusedToken`].
pub fn interceptor(tokens: Tokens) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let Some(value) = request.metadata().get("authorization") else { return Ok(request) };
        let verified = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))
            .and_then(|value| foodfast_auth::bearer(value).map_err(Status::unauthenticated))
            .and_then(|token| tokens.verify(token).map_err(|refused| Status::from(ApiError::from(refused))));
        match verified {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
            }
            Err(refused) => {
                request.extensions_mut().insert(RefusedToken(refused));
            }
        }
        Ok(request)
    }
}

/// The caller of a request that requires one.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .copied()
        .ok_or_else(|| Status::unauthenticated("this call needs a bearer token in the `authorization` metadata"))
}
