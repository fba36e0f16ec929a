//! What an `oidc` source's table in the config holds, and what makes it invalid.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The scopes asked for when the config names none: who the person is, and a refresh token.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "offline_access"];

/// How the person signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OidcMethod {
    /// The authorization code grant with PKCE, the browser sent back to credd on 127.0.0.1
    /// (RFC 8252).
    Browser,
    /// The device authorization grant (RFC 8628), where no browser can reach this machine.
    DeviceCode,
}

/// Which of the sign-in's tokens the source serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServedToken {
    /// The ID token (a JWT whose audience is the client): what gateways that trust the
    /// provider check.
    Id,
    /// The access token, for gateways that take the provider's access tokens (an Auth0 API,
    /// an Okta authorization server).
    Access,
}

/// A person's sign-in with an OpenID Provider (Okta, Entra ID, Auth0, Keycloak, Google...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    /// The provider's issuer URL (https); its `/.well-known/openid-configuration` says the rest.
    pub issuer: String,
    /// The public client registered for credd (no secret).
    pub client_id: String,
    /// `browser` (the default) or `device-code`.
    #[serde(default = "default_method")]
    pub method: OidcMethod,
    /// The scopes asked for; `openid` is always among them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `id` (the default) or `access`.
    #[serde(default = "default_token")]
    pub token: ServedToken,
    /// `browser`: a fixed port on 127.0.0.1 for the redirect, for providers that match the
    /// redirect URI exactly; any free port by default.
    #[serde(default)]
    pub redirect_port: Option<u16>,
    /// `browser`: the redirect URI's path.
    #[serde(default = "default_redirect_path")]
    pub redirect_path: String,
    /// Extra parameters for the authorization request (Auth0's `audience`, a `prompt`).
    #[serde(default)]
    pub authorization_params: std::collections::BTreeMap<String, String>,
    /// How long one upstream call may take.
    #[serde(
        default = "crate::sources::spec::default_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust for the provider, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// Keep the sign-in's refresh token in the OS secret store, so it survives a restart.
    #[serde(default)]
    pub persist: Option<crate::sources::spec::Persist>,
    /// Serve the token through the authenticating proxy too, as a gateway's.
    #[serde(default)]
    pub proxy: Option<crate::sources::spec::ProxySpec>,
}

fn default_method() -> OidcMethod {
    OidcMethod::Browser
}

fn default_token() -> ServedToken {
    ServedToken::Id
}

fn default_redirect_path() -> String {
    "/callback".into()
}

impl OidcSpec {
    /// The scopes asked for: the configured ones (or credd's defaults), `openid` first.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes = vec!["openid".to_string()];
        if self.scopes.is_empty() {
            scopes.extend(DEFAULT_SCOPES[1..].iter().map(|s| s.to_string()));
        } else {
            scopes.extend(self.scopes.iter().filter(|s| *s != "openid").cloned());
        }
        scopes
    }

    /// The issuer without a trailing slash, as the metadata URL is made from it.
    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// What is wrong with the table, for the config error.
    pub fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.issuer)
            .map_err(|_| format!("`issuer` `{}` is not a URL", self.issuer))?;
        if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`issuer` must be an https URL without a query or fragment, as OpenID Connect requires; `{}` is not",
                self.issuer
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err("`client_id` must name the client registered for credd".into());
        }
        if self
            .scopes
            .iter()
            .any(|s| s.trim().is_empty() || s.contains(' '))
        {
            return Err("a scope is empty or holds a space".into());
        }
        if !self.redirect_path.starts_with('/')
            || self
                .redirect_path
                .contains(|c: char| c == '?' || c == '#' || c.is_whitespace())
        {
            return Err("`redirect_path` must be a path such as `/callback`".into());
        }
        if self.redirect_port == Some(0) {
            return Err("`redirect_port` must not be 0; leave it out for any free port".into());
        }
        if self.redirect_port.is_some() && self.method != OidcMethod::Browser {
            return Err("`redirect_port` applies to `method = \"browser\"` only".into());
        }
        const OURS: [&str; 8] = [
            "client_id",
            "response_type",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ];
        if let Some(key) = self
            .authorization_params
            .keys()
            .find(|k| OURS.contains(&k.as_str()))
        {
            return Err(format!(
                "`authorization_params` cannot set `{key}`: credd sets it"
            ));
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be longer than zero".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<OidcSpec, String> {
        let text = format!("issuer = \"https://idp.example/\"\nclient_id = \"c\"\n{extra}");
        let spec: OidcSpec = toml::from_str(&text).map_err(|e| e.to_string())?;
        spec.check().map(|()| spec)
    }

    #[test]
    fn the_defaults_ask_for_an_id_token_with_a_refresh_token() {
        let spec = spec("").unwrap();
        assert_eq!(spec.scopes(), ["openid", "email", "offline_access"]);
        assert_eq!(spec.issuer(), "https://idp.example");
        assert_eq!(spec.method, OidcMethod::Browser);
        assert_eq!(spec.token, ServedToken::Id);
        // `openid` is always asked for, once.
        let spec = self::spec("scopes = [\"profile\", \"openid\"]").unwrap();
        assert_eq!(spec.scopes(), ["openid", "profile"]);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let bad = |text: &str, why: &str| {
            let err = match toml::from_str::<OidcSpec>(text) {
                Ok(spec) => spec.check().unwrap_err(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(why), "{text}: {err}");
        };
        bad(
            "issuer = \"http://idp.example\"\nclient_id = \"c\"",
            "https URL",
        );
        bad(
            "issuer = \"https://idp.example/?x=1\"\nclient_id = \"c\"",
            "without a query",
        );
        bad("issuer = \"idp\"\nclient_id = \"c\"", "not a URL");
        bad(
            "issuer = \"https://idp.example\"\nclient_id = \" \"",
            "client_id",
        );
        for (extra, why) in [
            ("scopes = [\"a b\"]", "holds a space"),
            ("redirect_path = \"callback\"", "redirect_path"),
            ("redirect_port = 0", "must not be 0"),
            ("method = \"device-code\"\nredirect_port = 8400", "browser"),
            (
                "authorization_params = { state = \"x\" }",
                "cannot set `state`",
            ),
            ("timeout = \"0s\"", "longer than zero"),
        ] {
            let text = format!("issuer = \"https://idp.example\"\nclient_id = \"c\"\n{extra}");
            bad(&text, why);
        }
    }
}
