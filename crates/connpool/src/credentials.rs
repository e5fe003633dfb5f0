//! Credentials asked for on every connect, so that a password or a token can rotate without
//! rebuilding the pool (rotated secrets, cloud IAM tokens), and secrets that never print.
//!
//! ```
//! use connpool::{Credentials, Secret};
//!
//! // Any `Fn() -> impl Future<Output = Result<Credentials, BoxError>>` is a provider.
//! let provider = || async {
//!     let token = std::env::var("DB_TOKEN").unwrap_or_default(); // or a vault, an IAM call...
//!     Ok::<_, connpool::BoxError>(Credentials::password(Secret::new(token)).user("app"))
//! };
//! # fn takes(_: impl connpool::CredentialProvider) {}
//! # takes(provider);
//! assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::hooks::BoxError;

/// A secret string: its `Debug` and `Display` print `***`; [`expose`](Self::expose) reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the code that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a [`CredentialProvider`] hands a manager for one connect: a user (optional: keep the
/// configured one) and a password or token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The user to connect as; `None` keeps the one in the manager's configuration.
    pub user: Option<String>,
    /// The password or token.
    pub password: Secret,
}

impl Credentials {
    /// A password (or token) for the configured user.
    pub fn password(password: Secret) -> Self {
        Self { user: None, password }
    }

    /// Connects as `user`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// The future a [`CredentialProvider`] returns.
pub type CredentialsFuture<'a> = Pin<Box<dyn Future<Output = Result<Credentials, BoxError>> + Send + 'a>>;

/// Consulted by a manager before every connect. Implemented for every
/// `Fn() -> impl Future<Output = Result<Credentials, BoxError>> + Send`.
pub trait CredentialProvider: Send + Sync + 'static {
    /// The credentials for the next connect.
    fn credentials(&self) -> CredentialsFuture<'_>;
}

impl<F, Fut> CredentialProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credentials, BoxError>> + Send + 'static,
{
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self())
    }
}

/// `url` with its password replaced by `***`, for logs and messages:
/// `postgres://app:s3cret@db:5432/x` reads `postgres://app:***@db:5432/x`, and a key-value
/// connection string's `password=s3cret` reads `password=***`. Anything without credentials comes
/// back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return redact_key_values(url) };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    let userinfo = &rest[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        // `redis://:password@host` style, or a bare token.
        None if userinfo.is_empty() => String::new(),
        None => "***".to_string(),
    };
    format!("{}{redacted}{}", &url[..scheme_end], &rest[at..])
}

/// `password=...` in a key-value connection string (`host=db password=x`), quoted or not.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password") {
        let after = rest[i + "password".len()..].trim_start();
        let Some(value) = after.strip_prefix('=') else {
            out.push_str(&rest[..i + "password".len()]);
            rest = &rest[i + "password".len()..];
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |j| j + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str(&rest[..i]);
        out.push_str("password=***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_and_keep_the_rest() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/x?sslmode=require",
                "postgres://app:***@db:5432/x?sslmode=require",
            ),
            ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
            ("rediss://default:p@ss@host", "rediss://default:***@host"),
            ("https://token@api.example.com/v1", "https://***@api.example.com/v1"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("host=db user=app", "host=db user=app"),
            ("host=db password=s3cret user=app", "host=db password=*** user=app"),
            ("host=db password = 'a b' dbname=x", "host=db password=*** dbname=x"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }
}
