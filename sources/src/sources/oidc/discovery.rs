//! The provider's metadata (OpenID Connect Discovery 1.0): where its endpoints and keys are,
//! read from `ISSUER/.well-known/openid-configuration`, and its signing keys (the JWKS),
//! fetched again when a token names a key credd has not seen (the provider rotated them).

use std::sync::Mutex;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

use crate::sources::SourceError;
use crate::sources::oauth::Endpoints;
use crate::sources::upstream;

/// What credd uses of the provider's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// Where a refresh token is revoked (RFC 7009), at `credd logout`.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

impl Metadata {
    /// The token endpoints, for the grants.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            host: origin(&self.token_endpoint),
            token: self.token_endpoint.clone(),
            device_authorization: self.device_authorization_endpoint.clone(),
        }
    }

    /// What is wrong with the metadata `issuer` published: it must name itself exactly as
    /// configured (Discovery 4.3, so that one provider cannot speak for another), and send
    /// credd only to https endpoints.
    fn check(&self, issuer: &str) -> Result<(), SourceError> {
        if self.issuer.trim_end_matches('/') != issuer {
            return Err(SourceError::Upstream(format!(
                "{issuer}'s metadata names another issuer, `{}`; set `issuer` to the provider's own",
                self.issuer
            )));
        }
        for (what, url) in [
            ("authorization_endpoint", Some(&self.authorization_endpoint)),
            ("token_endpoint", Some(&self.token_endpoint)),
            ("jwks_uri", Some(&self.jwks_uri)),
            (
                "device_authorization_endpoint",
                self.device_authorization_endpoint.as_ref(),
            ),
            ("revocation_endpoint", self.revocation_endpoint.as_ref()),
        ] {
            if let Some(url) = url
                && !url.starts_with("https://")
            {
                return Err(SourceError::Upstream(format!(
                    "{issuer}'s metadata gives an `{what}` that is not https"
                )));
            }
        }
        Ok(())
    }
}

/// The provider's metadata and keys as fetched so far.
#[derive(Default)]
pub struct Provider {
    metadata: Mutex<Option<Metadata>>,
    keys: Mutex<Option<JwkSet>>,
}

impl Provider {
    /// The metadata, fetched once and kept until [`Provider::forget`].
    pub async fn metadata(
        &self,
        http: &reqwest::Client,
        issuer: &str,
    ) -> Result<Metadata, SourceError> {
        if let Some(known) = self
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(known);
        }
        let url = format!("{issuer}/.well-known/openid-configuration");
        let reply = upstream::send(http.get(&url), issuer).await?;
        if !reply.is_success() {
            return Err(SourceError::Upstream(format!(
                "{issuer} answered HTTP {} for its OpenID configuration; is `issuer` right?",
                reply.status
            )));
        }
        let metadata: Metadata = serde_json::from_str(&reply.body).map_err(|e| {
            SourceError::Upstream(format!(
                "{issuer}'s OpenID configuration cannot be read: {e}"
            ))
        })?;
        metadata.check(issuer)?;
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata.clone());
        Ok(metadata)
    }

    /// Forgets the metadata and keys: the next sign-in reads them again.
    pub fn forget(&self) {
        *self.metadata.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The key `kid` names (or the only one, when a token names none), fetching the key set
    /// when it is not known yet or does not hold that key.
    pub async fn key(
        &self,
        http: &reqwest::Client,
        metadata: &Metadata,
        kid: Option<&str>,
    ) -> Result<Jwk, SourceError> {
        let known = self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(key) = known.as_ref().and_then(|keys| find(keys, kid)) {
            return Ok(key);
        }
        let host = origin(&metadata.jwks_uri);
        let reply = upstream::send(http.get(&metadata.jwks_uri), &host).await?;
        if !reply.is_success() {
            return Err(SourceError::Upstream(format!(
                "{host} answered HTTP {} for the provider's keys",
                reply.status
            )));
        }
        let keys: JwkSet = serde_json::from_str(&reply.body).map_err(|e| {
            SourceError::Upstream(format!("the provider's keys cannot be read: {e}"))
        })?;
        let key = find(&keys, kid);
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some(keys);
        key.ok_or_else(|| {
            SourceError::Upstream(match kid {
                Some(kid) => format!(
                    "an ID token was signed with key `{kid}`, which is not among the provider's keys"
                ),
                None => "an ID token names no key, and the provider has several".to_string(),
            })
        })
    }
}

/// The signing key `kid` names in `keys`; without a `kid`, the one key there is.
fn find(keys: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    let signing = |k: &&Jwk| {
        k.common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature)
    };
    match kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(signing)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => match keys.keys.iter().filter(signing).collect::<Vec<_>>()[..] {
            [only] => Some(only.clone()),
            _ => None,
        },
    }
}

/// `https://host:port` of a URL, for messages.
pub fn origin(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An RSA public key as a JWK, named `kid` (the numbers are RFC 7517's example key).
    fn jwk(kid: &str) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        })
    }

    /// A JWKS endpoint on 127.0.0.1 answering with `sets` in turn (the last one after that);
    /// returns its URL and how many times it was asked.
    async fn jwks_endpoint(
        sets: Vec<serde_json::Value>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = sets[n.min(sets.len() - 1)].to_string();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, asked)
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once_and_a_key_nobody_published_is_refused() {
        let (jwks_uri, asked) = jwks_endpoint(vec![
            serde_json::json!({ "keys": [jwk("old")] }),
            serde_json::json!({ "keys": [jwk("old"), jwk("new")] }),
        ])
        .await;
        let metadata = Metadata {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: "https://idp.example/token".into(),
            jwks_uri,
            device_authorization_endpoint: None,
            revocation_endpoint: None,
        };
        let http = crate::net::oauth_http_client(None, std::time::Duration::from_secs(5)).unwrap();
        let provider = Provider::default();
        let count = || asked.load(std::sync::atomic::Ordering::SeqCst);
        let key = provider.key(&http, &metadata, Some("old")).await.unwrap();
        assert_eq!(key.common.key_id.as_deref(), Some("old"));
        // Known: no fetch.
        provider.key(&http, &metadata, Some("old")).await.unwrap();
        assert_eq!(count(), 1);
        // The provider rotated: the new key is fetched, once.
        let key = provider.key(&http, &metadata, Some("new")).await.unwrap();
        assert_eq!(key.common.key_id.as_deref(), Some("new"));
        provider.key(&http, &metadata, Some("new")).await.unwrap();
        assert_eq!(count(), 2);
        // A key the provider never published.
        let error = provider
            .key(&http, &metadata, Some("forged"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("not among the provider's keys"),
            "{error}"
        );
        // Without a `kid`, only a lone key will do.
        assert!(provider.key(&http, &metadata, None).await.is_err());
    }
}
