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
