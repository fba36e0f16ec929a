//! The subject token of an `external_account` file, from the source it names: a file, a URL
//! (text or JSON), or an executable run under Google's executable-sourced credentials contract
//! (opt-in, `GOOGLE_EXTERNAL_ACCOUNT_*` variables, JSON on stdout, optional output file).
//!
//! The token itself never appears in an error.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::adc::{CredentialSource, Executable, ExternalAccount};
use crate::sources::SourceError;

const DEFAULT_EXECUTABLE_TIMEOUT: Duration = Duration::from_secs(30);
const ALLOW_EXECUTABLES_ENV: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";

/// Reads the subject token. `allow_executables` is the config's opt-in; the environment's
/// `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1` is the other.
pub async fn fetch(
    http: &reqwest::Client,
    account: &ExternalAccount,
    allow_executables: bool,
    now: SystemTime,
) -> Result<String, SourceError> {
    let source = &account.credential_source;
    let token = if let Some(path) = &source.file {
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            SourceError::Upstream(format!(
                "cannot read the subject token file {}: {e}",
                path.display()
            ))
        })?;
        extract(
            source,
            &text,
            &format!("the subject token file {}", path.display()),
        )?
    } else if let Some(url) = &source.url {
        let mut request = http.get(url);
        for (name, value) in &source.headers {
            request = request.header(name, value);
        }
        let what = format!("the subject token URL {}", super::exchange::host(url));
        let reply = crate::sources::upstream::send(request, &what).await?;
        if !reply.is_success() {
            // Whatever it said, it is the upstream's failure: an identity provider's refusal
            // here is no OAuth grant of credd's.
            return Err(SourceError::Upstream(format!(
                "{what} answered HTTP {}",
                reply.status
            )));
        }
        extract(source, &reply.body, &what)?
    } else if let Some(executable) = &source.executable {
        let allowed =
            allow_executables || std::env::var(ALLOW_EXECUTABLES_ENV).is_ok_and(|v| v == "1");
        if !allowed {
            return Err(SourceError::Upstream(format!(
                "the credential file runs `{}`, which needs `allow_executables = true` in the source's config (or {ALLOW_EXECUTABLES_ENV}=1)",
                executable
                    .command
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
            )));
        }
        run_executable(account, executable, now).await?
    } else if source.environment_id.is_some() {
        return Err(SourceError::Upstream(
            "AWS-sourced external accounts are not supported; use an `aws` source or a file/URL/executable credential source".into(),
        ));
    } else {
        return Err(SourceError::Upstream(
            "the credential file's `credential_source` names no file, url or executable".into(),
        ));
    };
    if token.trim().is_empty() {
        return Err(SourceError::Upstream("the subject token is empty".into()));
    }
    Ok(token.trim().to_string())
}

/// The token in a file's or URL's text, by the source's `format` (text unless it says json).
fn extract(source: &CredentialSource, text: &str, what: &str) -> Result<String, SourceError> {
    match &source.format {
        Some(format) if format.kind == "json" => {
            let field = format
                .subject_token_field_name
                .as_deref()
                .unwrap_or("access_token");
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|_| SourceError::Upstream(format!("{what} is not JSON")))?;
            value
                .get(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| SourceError::Upstream(format!("{what} has no `{field}` field")))
        }
        _ => Ok(text.to_string()),
    }
}

/// The response of an executable, as Google documents it.
#[derive(Deserialize)]
struct ExecutableResponse {
    version: u32,
    success: bool,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    saml_response: Option<String>,
    #[serde(default)]
    expiration_time: Option<i64>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

async fn run_executable(
    account: &ExternalAccount,
    executable: &Executable,
    now: SystemTime,
) -> Result<String, SourceError> {
    let argv: Vec<String> = executable
        .command
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let program = argv.first().cloned().unwrap_or_default();
    // A still-valid response the executable cached in its output file saves running it.
    if let Some(path) = &executable.output_file
        && let Ok(text) = tokio::fs::read_to_string(path).await
        && let Ok(token) = read_response(&text, account, now, &program)
    {
        return Ok(token);
    }
    let mut env = vec![
        ("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", account.audience.clone()),
        (
            "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE",
            account.subject_token_type.clone(),
        ),
        ("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0".to_string()),
    ];
    if let Some(email) = account
        .service_account_impersonation_url
        .as_deref()
        .and_then(super::exchange::impersonated_account)
    {
        env.push((
            "GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL",
            email.to_string(),
        ));
    }
    if let Some(path) = &executable.output_file {
        env.push((
            "GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE",
            path.display().to_string(),
        ));
    }
    let timeout = executable
        .timeout_millis
        .map_or(DEFAULT_EXECUTABLE_TIMEOUT, Duration::from_millis);
    let finished = crate::process::run(&argv, &env, timeout)
        .await
        .map_err(|e| SourceError::Upstream(e.to_string()))?;
    let text = String::from_utf8_lossy(&finished.stdout);
    if !finished.status.success() {
        return Err(SourceError::Upstream(format!(
            "`{program}` failed ({})",
            finished.status
        )));
    }
    read_response(&text, account, now, &program)
}

fn read_response(
    text: &str,
    account: &ExternalAccount,
    now: SystemTime,
    program: &str,
) -> Result<String, SourceError> {
    let response: ExecutableResponse = serde_json::from_str(text.trim()).map_err(|_| {
        SourceError::Upstream(format!(
            "`{program}` did not print an executable-sourced credential response"
        ))
    })?;
    if response.version != 1 {
        return Err(SourceError::Upstream(format!(
            "`{program}` answered with response version {}; version 1 is understood",
            response.version
        )));
    }
    if !response.success {
        return Err(SourceError::Upstream(format!(
            "`{program}` reported failure: {} {}",
            response.code.unwrap_or_default(),
            response.message.unwrap_or_default()
        )));
    }
    if response
        .token_type
        .as_deref()
        .is_some_and(|t| t != account.subject_token_type)
    {
        return Err(SourceError::Upstream(format!(
            "`{program}` returned a token of another type than the file's subject_token_type"
        )));
    }
    if response
        .expiration_time
        .is_some_and(|exp| exp <= crate::clock::unix_secs(now))
    {
        return Err(SourceError::Upstream(format!(
            "`{program}` returned an expired subject token"
        )));
    }
    response.id_token.or(response.saml_response).ok_or_else(|| {
        SourceError::Upstream(format!("`{program}` returned no id_token or saml_response"))
    })
}
