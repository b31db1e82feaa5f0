//! Every inbound format's handler starts from a [`Ctx`] taken straight from the request (its
//! id, the caller's key, the client's address and headers), so no handler repeats the list of
//! what a request's context is made of.
//!
//! Must not import a format's handler (`api::chat`, `api::messages`).

use super::Ctx;
use crate::api::AppState;
use crate::api::auth::CallerKey;
use crate::api::request_id::{self, RequestId};
use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use std::convert::Infallible;
use std::net::SocketAddr;

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Infallible> {
        // The id layer runs before every API route; an id made here keeps a route mounted
        // without it answerable rather than failing.
        let request_id = match parts.extensions.get::<RequestId>() {
            Some(RequestId(id)) => id.clone(),
            None => request_id::assign(&parts.headers),
        };
        let key = parts.extensions.get::<CallerKey>().cloned();
        let mut ctx = Ctx::start(state, request_id, key, parts.headers.clone());
        ctx.peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(p)| *p);
        Ok(ctx)
    }
}
