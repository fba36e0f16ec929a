//! A real OpenID Provider for the `oidc` tests: `oidc-provider` from npm (a certified
//! implementation, tests/peers/oidc_provider.mjs) over HTTPS with a CA made for the test, and a
//! person who signs in on its pages (tests/peers/oidc_person.py): with an HTTP client, or in
//! headless Chromium over WebDriver.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::peers::{TestCa, free_port, venv_bin};

/// The public client credd signs in as.
pub const CLIENT_ID: &str = "credd-cli";

/// How the provider is set up: lifetimes in seconds, and a fixed redirect URI if any.
#[derive(Debug, Clone)]
pub struct Options {
    pub id_token_ttl: u64,
    pub access_token_ttl: u64,
    pub refresh_token_ttl: u64,
    pub fixed_redirect: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            id_token_ttl: 3600,
            access_token_ttl: 3600,
            refresh_token_ttl: 86400,
            fixed_redirect: None,
        }
    }
}

/// `oidc-provider` on 127.0.0.1, stopped when dropped.
pub struct OidcProvider {
    pub port: u16,
    pub ca: TestCa,
    events: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl OidcProvider {
    pub fn start(dir: &Path, options: &Options) -> Self {
        let ca = TestCa::create(dir);
        let port = free_port();
        let mut command = Command::new("node");
        command
            .args([
                "--input-type=module",
                "-e",
                include_str!("../peers/oidc_provider.mjs"),
            ])
            .current_dir(crate::peers_dir())
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CERT", &ca.server_pem)
            .env("OIDC_KEY", &ca.server_key)
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_ID_TOKEN_TTL", options.id_token_ttl.to_string())
            .env(
                "OIDC_ACCESS_TOKEN_TTL",
                options.access_token_ttl.to_string(),
            )
            .env(
                "OIDC_REFRESH_TOKEN_TTL",
                options.refresh_token_ttl.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(fixed) = &options.fixed_redirect {
            command.env("OIDC_FIXED_REDIRECT", fixed);
        }
        let mut child = command.spawn().expect("start oidc-provider with node");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            ready.trim(),
            "ready",
            "oidc-provider did not start; run the README's test command to install it"
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let noted = events.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                noted.lock().unwrap().push(line);
            }
        });
        OidcProvider {
            port,
            ca,
            events,
            child,
        }
    }

    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Every grant and authorization the provider made or refused, in order.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// How many `grant_type` grants it made.
    pub fn grants(&self, grant_type: &str) -> usize {
        let line = format!("grant.success {grant_type}");
        self.events().iter().filter(|e| **e == line).count()
    }

    /// The config table of an `oidc` source named `name` signing in here, with `extra` lines.
    pub fn source_table(&self, name: &str, extra: &str) -> String {
        format!(
            "[sources.{name}]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nca_bundle = \"{}\"\n{extra}",
            self.issuer(),
            self.ca.ca_pem.display()
        )
    }

    /// A browser whose person signs in here: see [`person_browser`].
    pub fn person_browser(&self, dir: &Path, login: &str, how: &[&str]) -> (PathBuf, String) {
        person_browser(dir, &self.ca.ca_pem, login, how)
    }

    /// The provider's keys (its JWKS document), as an account's IAM trusts them.
    pub fn jwks(&self) -> String {
        self.person(&["--fetch", &format!("{}/jwks", self.issuer())])
    }

    /// Runs the person's script with `args` to completion: its stdout.
    pub fn person(&self, args: &[&str]) -> String {
        let out = Command::new(venv_bin("python"))
            .arg(person_script())
            .args(args)
            .env("REQUESTS_CA_BUNDLE", &self.ca.ca_pem)
            .stdin(Stdio::null())
            .output()
            .expect("run the person's script");
        assert!(
            out.status.success(),
            "the person could not sign in: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A browser opener (`xdg-open` first on the returned PATH) that notes each page it is asked
/// to open in `opened` and has the person sign in there as `login`, with `how` (`--chromium`,
/// `--stop-at-redirect`, `--follow`, or nothing for an HTTP client), trusting `ca_pem`, and
/// writing what they saw to `person.log`, both in `dir`.
pub fn person_browser(dir: &Path, ca_pem: &Path, login: &str, how: &[&str]) -> (PathBuf, String) {
    let bin = dir.join("person-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = dir.join("opened");
    let script = format!(
        "#!/bin/sh\necho \"$1\" >> '{opened}'\nREQUESTS_CA_BUNDLE='{ca}' '{python}' '{person}' --login '{login}' {how} \"$1\" >> '{log}' 2>&1 &\n",
        opened = opened.display(),
        ca = ca_pem.display(),
        python = venv_bin("python").display(),
        person = person_script().display(),
        how = how.join(" "),
        log = dir.join("person.log").display(),
    );
    std::fs::write(bin.join("xdg-open"), script).unwrap();
    crate::world::make_executable(&bin.join("xdg-open"));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (opened, path)
}

/// Why a relying party (STS, Google's STS) refuses an ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotAJwt,
    /// No provider is trusted for its `iss`.
    UnknownIssuer(String),
    /// None of the provider's keys has its `kid`.
    NoKey,
    Expired,
    WrongAudience,
    Invalid(String),
}

/// Checks `token` as a relying party that trusts `providers` (issuer -> the client id its
/// tokens must be for, and the provider's keys) does: a known issuer, a signature by one of its
/// keys, `aud`, `iss` and `exp`.
pub fn verify_id_token(
    token: &str,
    providers: &std::collections::HashMap<String, (String, jsonwebtoken::jwk::JwkSet)>,
) -> Result<serde_json::Value, Refusal> {
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| Refusal::NotAJwt)?;
    let issuer = claims["iss"].as_str().unwrap_or_default();
    let (client_id, keys) = providers
        .get(issuer)
        .ok_or_else(|| Refusal::UnknownIssuer(issuer.to_string()))?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::NotAJwt)?;
    let jwk = keys
        .keys
        .iter()
        .find(|k| k.common.key_id == header.kid)
        .ok_or(Refusal::NoKey)?;
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Refusal::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidAudience => Refusal::WrongAudience,
            _ => Refusal::Invalid(e.to_string()),
        })
}

fn person_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/oidc_person.py")
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
