//! How each caller wants a credential printed. One function per format; each returns the whole
//! text or an error, so nothing reaches stdout unless all of it can.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use credd_proto::{Credential, CredentialSecret};
use serde_json::{Map, Value, json};

pub use crate::cli::Format;

/// The HTTP header a token goes in, for `headers` and `helper-json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `None`: `Authorization` for `headers`, no header for `helper-json`.
    pub name: Option<String>,
    pub prefix: String,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            name: None,
            prefix: "Bearer ".into(),
        }
    }
}

impl Header {
    /// The header's name and value for `token`, or why they cannot be sent.
    fn for_token(&self, name: &str, token: &str) -> Result<(String, String), String> {
        // RFC 9110 token characters; no line breaks in the value.
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !valid_name {
            return Err(format!("`{name}` is not an HTTP header name"));
        }
        // A header value is visible characters, spaces and tabs (RFC 9110): nothing that could
        // end the header or start another, from the prefix or from what an upstream issued.
        let value = format!("{}{token}", self.prefix);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(
                "the header's value would hold a control character (a line break, say); it was not printed"
                    .into(),
            );
        }
        Ok((name.to_string(), value))
    }
}

pub fn render(credential: &Credential, format: Format, header: &Header) -> Result<String, String> {
    let expiration = rfc3339(credential.expires_at);
    match (format, &credential.secret) {
        // Minted by the daemon (`credd get S --format bedrock-api-key`), then printed as a token.
        (Format::BedrockApiKey, _) => {
            Err("a Bedrock API key is asked of the daemon with its own request".into())
        }
        (Format::Headers | Format::HelperJson, CredentialSecret::Aws { .. }) => Err(format!(
            "source `{}` holds AWS credentials, which sign requests and go in no header; use --format aws, aws-process or env",
            credential.source
        )),
        (Format::Headers, CredentialSecret::Token { token }) => {
            let name = header.name.as_deref().unwrap_or("Authorization");
            let (name, value) = header.for_token(name, token.expose())?;
            Ok(format!("{}\n", json!({ name: value })))
        }
        (Format::HelperJson, CredentialSecret::Token { token }) => {
            let mut headers = Map::new();
            if let Some(name) = &header.name {
                let (name, value) = header.for_token(name, token.expose())?;
                headers.insert(name, json!(value));
            }
            Ok(format!(
                "{}\n",
                json!({ "token": token.expose(), "headers": headers })
            ))
        }
        (Format::Token, CredentialSecret::Token { token }) => Ok(format!("{}\n", token.expose())),
        (Format::Token, CredentialSecret::Aws { .. }) => Err(format!(
            "source `{}` holds AWS credentials, not a token; use --format aws, aws-process or env",
            credential.source
        )),
        (Format::Json, secret) => {
            let mut out = Map::new();
            out.insert("source".into(), json!(credential.source));
            out.insert("type".into(), json!(secret.type_name()));
            match secret {
                CredentialSecret::Token { token } => {
                    out.insert("token".into(), json!(token.expose()));
                }
                CredentialSecret::Aws { .. } => {
                    out.extend(aws_fields(secret).into_iter().flatten());
                }
            }
            out.insert("issued_at".into(), json!(rfc3339(credential.issued_at)));
            out.insert("expires_at".into(), json!(expiration));
            out.insert("metadata".into(), json!(credential.metadata));
            Ok(format!("{}\n", Value::Object(out)))
        }
        (Format::Aws | Format::AwsProcess, CredentialSecret::Token { .. }) => Err(format!(
            "source `{}` holds a token, not AWS credentials; use --format token or json",
            credential.source
        )),
        (Format::Aws, secret) => {
            let mut fields = aws_fields(secret).ok_or("not AWS")?;
            if !fields.contains_key("SessionToken") {
                return Err(format!(
                    "source `{}` holds long-term AWS keys without a SessionToken; Claude Code's awsCredentialExport rejects those (use an `aws` source, which turns them into session credentials)",
                    credential.source
                ));
            }
            fields.insert("Expiration".into(), json!(expiration));
            Ok(format!("{}\n", json!({ "Credentials": fields })))
        }
        (Format::AwsProcess, secret) => {
            let mut out = Map::new();
            out.insert("Version".into(), json!(1));
            out.extend(aws_fields(secret).ok_or("not AWS")?);
            out.insert("Expiration".into(), json!(expiration));
            Ok(format!("{}\n", Value::Object(out)))
        }
        (Format::Env, CredentialSecret::Token { token }) => Ok(format!(
            "export CREDD_TOKEN={}\nexport CREDD_TOKEN_EXPIRATION={}\n",
            shell_quote(token.expose()),
            shell_quote(&expiration)
        )),
        (
            Format::Env,
            CredentialSecret::Aws {
                access_key_id,
                secret_access_key,
                session_token,
            },
        ) => {
            let mut out = format!(
                "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\n",
                shell_quote(access_key_id),
                shell_quote(secret_access_key.expose())
            );
            if let Some(token) = session_token {
                out += &format!("export AWS_SESSION_TOKEN={}\n", shell_quote(token.expose()));
            }
            out += &format!(
                "export AWS_CREDENTIAL_EXPIRATION={}\n",
                shell_quote(&expiration)
            );
            Ok(out)
        }
    }
}

fn aws_fields(secret: &CredentialSecret) -> Option<Map<String, Value>> {
    let CredentialSecret::Aws {
        access_key_id,
        secret_access_key,
        session_token,
    } = secret
    else {
        return None;
    };
    let mut fields = Map::new();
    fields.insert("AccessKeyId".into(), json!(access_key_id));
    fields.insert("SecretAccessKey".into(), json!(secret_access_key.expose()));
    if let Some(token) = session_token {
        fields.insert("SessionToken".into(), json!(token.expose()));
    }
    Some(fields)
}

/// Unix seconds as RFC 3339 UTC, the form AWS and Claude Code parse.
pub fn rfc3339(unix_secs: i64) -> String {
    humantime::format_rfc3339_seconds(system_time(unix_secs)).to_string()
}

pub fn system_time(unix_secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_secs.max(0) as u64)
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// What Claude Code takes from an `apiKeyHelper`: at most this many characters.
pub const API_KEY_HELPER_MAX: usize = 16_384;

/// Why Claude Code would refuse `token` from its `apiKeyHelper`, if it would: more than
/// [`API_KEY_HELPER_MAX`] characters, or any that is not printable ASCII (whitespace
/// included). Said without the token.
pub fn api_key_helper_refusal(token: &str) -> Option<String> {
    if token.len() > API_KEY_HELPER_MAX {
        return Some(format!(
            "the token is {} characters long, and Claude Code takes at most {API_KEY_HELPER_MAX} from apiKeyHelper",
            token.len()
        ));
    }
    token
        .bytes()
        .position(|b| !b.is_ascii_graphic())
        .map(|at| format!("the token has a space, control or non-ASCII character at {at}, which Claude Code refuses from apiKeyHelper"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use credd_proto::Secret;

    fn aws(session: Option<&str>) -> Credential {
        Credential {
            source: "dev".into(),
            secret: CredentialSecret::Aws {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: Secret::new("secret"),
                session_token: session.map(Secret::new),
            },
            issued_at: 0,
            expires_at: 3600,
            metadata: Default::default(),
        }
    }

    fn token() -> Credential {
        Credential {
            source: "gw".into(),
            secret: CredentialSecret::Token {
                token: Secret::new("it's-a-token"),
            },
            issued_at: 0,
            expires_at: 3600,
            metadata: Default::default(),
        }
    }

    #[test]
    fn aws_export_shape_always_has_expiration() {
        let out: Value = serde_json::from_str(
            &render(&aws(Some("st")), Format::Aws, &Header::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(out["Credentials"]["AccessKeyId"], "AKIAEXAMPLE");
        assert_eq!(out["Credentials"]["SessionToken"], "st");
        assert_eq!(out["Credentials"]["Expiration"], "1970-01-01T01:00:00Z");
    }

    #[test]
    fn aws_export_refuses_long_term_keys() {
        assert!(
            render(&aws(None), Format::Aws, &Header::default())
                .unwrap_err()
                .contains("SessionToken")
        );
    }

    #[test]
    fn credential_process_shape_has_version_1() {
        let out: Value = serde_json::from_str(
            &render(&aws(Some("st")), Format::AwsProcess, &Header::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(out["Version"], 1);
        assert_eq!(out["Expiration"], "1970-01-01T01:00:00Z");
    }

    #[test]
    fn claude_codes_limits_on_a_helpers_token_are_told_without_the_token() {
        assert_eq!(api_key_helper_refusal("sk-ant-api03-abc_DEF-123"), None);
        assert_eq!(
            api_key_helper_refusal(&"a".repeat(API_KEY_HELPER_MAX)),
            None
        );
        let long = api_key_helper_refusal(&"s".repeat(API_KEY_HELPER_MAX + 1)).unwrap();
        assert!(long.contains("16385 characters"), "{long}");
        for bad in ["zqx zqx", "zqx\tzqx", "zqxé", "zqx\u{7f}"] {
            let said = api_key_helper_refusal(bad).unwrap();
            assert!(!said.contains("zqx"), "{said}");
        }
    }

    #[test]
    fn token_is_printed_alone() {
        assert_eq!(
            render(&token(), Format::Token, &Header::default()).unwrap(),
            "it's-a-token\n"
        );
        assert!(render(&token(), Format::Aws, &Header::default()).is_err());
        assert!(render(&aws(Some("st")), Format::Token, &Header::default()).is_err());
    }

    #[test]
    fn env_lines_are_quoted_for_the_shell() {
        let out = render(&token(), Format::Env, &Header::default()).unwrap();
        assert!(
            out.starts_with("export CREDD_TOKEN='it'\\''s-a-token'\n"),
            "{out}"
        );
    }

    #[test]
    fn headers_carry_the_token_where_asked() {
        let plain = Header::default();
        let out: Value =
            serde_json::from_str(&render(&token(), Format::Headers, &plain).unwrap()).unwrap();
        assert_eq!(out, json!({"Authorization": "Bearer it's-a-token"}));
        let api_key = Header {
            name: Some("x-api-key".into()),
            prefix: String::new(),
        };
        let out: Value =
            serde_json::from_str(&render(&token(), Format::Headers, &api_key).unwrap()).unwrap();
        assert_eq!(out, json!({"x-api-key": "it's-a-token"}));
        let out: Value =
            serde_json::from_str(&render(&token(), Format::HelperJson, &plain).unwrap()).unwrap();
        assert_eq!(out, json!({"token": "it's-a-token", "headers": {}}));
        let out: Value =
            serde_json::from_str(&render(&token(), Format::HelperJson, &api_key).unwrap()).unwrap();
        assert_eq!(out["headers"], json!({"x-api-key": "it's-a-token"}));
        for bad in ["", "Bad Header", "x:y", "a\nb"] {
            let header = Header {
                name: Some(bad.into()),
                prefix: String::new(),
            };
            assert!(
                render(&token(), Format::Headers, &header).is_err(),
                "{bad:?}"
            );
        }
        let split = Header {
            name: None,
            prefix: "Bearer\r\nX-Evil: 1 ".into(),
        };
        assert!(render(&token(), Format::Headers, &split).is_err());
        let mut issued = token();
        issued.secret = CredentialSecret::Token {
            token: credd_proto::Secret::new("tok\r\nX-Evil: 1"),
        };
        assert!(render(&issued, Format::Headers, &plain).is_err());
        assert!(render(&aws(Some("st")), Format::Headers, &plain).is_err());
    }
}
