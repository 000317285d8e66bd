//! Who is calling: the bearer token in a call's `authorization` metadata,
//! checked once per call by an interceptor, and read by handlers.

pub use foodfast_auth::{TokenKey, Tokens};
use foodfast_domain::access::Principal;
use tonic::{Request, Status};

use crate::error::ApiError;

/// The tonic interceptor: a request without a token goes on anonymous; a
/// request with a bad one stops here with `UNAUTHENTICATED`.
pub fn interceptor(tokens: Tokens) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let Some(value) = request.metadata().get("authorization") else { return Ok(request) };
        let value = value.to_str().map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = foodfast_auth::bearer(value).map_err(Status::unauthenticated)?;
        let principal = tokens.verify(token).map_err(|refused| Status::from(ApiError::from(refused)))?;
        request.extensions_mut().insert(principal);
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
