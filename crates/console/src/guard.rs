//! Who may talk to the console: the Host and Origin checks (a web page in the user's
//! browser must not drive it, by CSRF or DNS rebinding) and the token beyond loopback.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::routes::Shared;

/// The cookie that carries the token after `/login?token=..`.
pub const COOKIE: &str = "jitnode_console";

/// Whether a console bound at `addr` must demand a token: anything but a loopback address
/// (`0.0.0.0` and `::` listen on every interface, so they count as beyond loopback).
pub fn needs_token(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// 32 random hex digits (128 bits).
pub fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host part of a Host header value (`name`, `1.2.3.4`, `[::1]`), without the port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// A Host the console answers to: `localhost` or an IP literal. A DNS name could be an
/// attacker's, re-pointed at this machine (DNS rebinding).
fn host_allowed(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_string());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// The middleware in front of every route.
pub async fn check(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "a Host header is required");
    };
    if !host_allowed(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the console answers to localhost or an IP address only",
        );
    }
    // A browser names the page that sent a request; only the console's own pages may.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{host}");
        if origin.to_str().ok() != Some(own.as_str()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "requests from other sites are refused",
            );
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site")
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "requests from other sites are refused",
        );
    }
    // A form post from another site cannot set this content type without a preflight,
    // which the console never grants.
    if req.method() == Method::POST
        && !headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST bodies must be application/json",
        );
    }
    let path = req.uri().path();
    // Liveness carries nothing; probes may not hold the token.
    if path == "/healthz" {
        return next.run(req).await;
    }
    if let Some(token) = &state.token {
        if path == "/login" {
            return login(&req, token);
        }
        if !presented_token(req.headers()).is_some_and(|t| same(&t, token)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this console needs its token (printed at start): open the login URL, or send Authorization: Bearer <token>",
            );
        }
    }
    next.run(req).await
}

/// `/login?token=..`: sets the cookie and opens the console.
fn login(req: &Request, token: &str) -> Response {
    let given = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="));
    if !given.is_some_and(|t| same(t, token)) {
        return refuse(StatusCode::UNAUTHORIZED, "wrong or missing token");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
            ),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_counts_as_beyond_loopback() {
        assert!(needs_token(&"0.0.0.0:80".parse().unwrap()));
        assert!(needs_token(&"[::]:80".parse().unwrap()));
        assert!(needs_token(&"192.0.2.1:80".parse().unwrap()));
        assert!(!needs_token(&"127.0.0.1:80".parse().unwrap()));
        assert!(!needs_token(&"127.0.0.2:80".parse().unwrap()));
        assert!(!needs_token(&"[::1]:80".parse().unwrap()));
    }

    #[test]
    fn dns_names_are_refused_as_hosts() {
        assert!(host_allowed("localhost:8080"));
        assert!(host_allowed("127.0.0.1:8080"));
        assert!(host_allowed("[::1]:8080"));
        assert!(host_allowed("192.0.2.7"));
        assert!(!host_allowed("evil.example:8080"));
        assert!(!host_allowed("localhost.evil.example"));
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..31]));
    }
}
