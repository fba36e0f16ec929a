//! `credd doctor`: checks everything between a caller and its credentials, one verdict per line
//! with the fix: the daemon, the config, each source, each endpoint, the Claude Code settings
//! that use credd, and the proxy settings upstream calls will see.

use std::path::{Path, PathBuf};

use credd_proto::{
    CREDD_VERSION, CredentialSecret, PROTOCOL_VERSION, Request, Response, SourceStatus,
};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub verdict: Verdict,
    pub what: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(
    verdict: Verdict,
    what: impl Into<String>,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        verdict,
        what: what.into(),
        detail: detail.into(),
        fix,
    }
}

type Ask<'a> = &'a dyn Fn(Request) -> Result<Response, crate::Failure>;

/// What a source holds, as far as the settings checks care.
struct SourceFacts {
    name: String,
    is_aws: Option<bool>,
    lifetime_secs: Option<i64>,
}

pub fn run(ask: Ask<'_>, now: i64) -> Vec<Check> {
    let mut checks = Vec::new();
    let status = match ask(Request::Hello) {
        Ok(Response::Hello(info)) => {
            if info.protocol == PROTOCOL_VERSION && info.daemon_version == CREDD_VERSION {
                checks.push(check(
                    Verdict::Ok,
                    "daemon",
                    format!(
                        "credd-daemon {} (pid {}) answers",
                        info.daemon_version, info.pid
                    ),
                    None,
                ));
            } else {
                checks.push(check(
                    Verdict::Fail,
                    "daemon",
                    format!("credd-daemon {} (protocol {}) answers, but this credd is {CREDD_VERSION} (protocol {PROTOCOL_VERSION})", info.daemon_version, info.protocol),
                    Some("run `credd stop`; the next call starts the matching daemon".into()),
                ));
            }
            match ask(Request::Status) {
                Ok(Response::Status(status)) => Some(status),
                // A daemon that answers but cannot say how its sources are is not healthy.
                answer => {
                    checks.push(failed_to_answer(
                        answer,
                        "status",
                        "status cannot be read: ",
                        "see the daemon log; `credd stop` and the next call restart it",
                    ));
                    None
                }
            }
        }
        answer => {
            checks.push(failed_to_answer(
                answer,
                "daemon",
                "",
                "start it with `credd status`, or see the daemon log beside its socket",
            ));
            None
        }
    };
    let mut facts = Vec::new();
    let mut proxies = Vec::new();
    if let Some(status) = &status {
        checks.push(match &status.config_error {
            None => check(
                Verdict::Ok,
                "config",
                format!(
                    "{} is valid ({} sources)",
                    status.config_path,
                    status
                        .sources
                        .iter()
                        .filter(|s| s.audience.is_none())
                        .count()
                ),
                None,
            ),
            Some(e) => check(
                Verdict::Fail,
                "config",
                e.clone(),
                Some("fix the file; the previous config stays in force until then".into()),
            ),
        });
        for source in &status.sources {
            let fact = source_check(ask, source, now, &mut checks);
            // What Claude Code's settings name is the source itself.
            if source.audience.is_none() {
                facts.push(fact);
            }
            for endpoint in &source.endpoints {
                checks.push(endpoint_check(&source.name, endpoint));
                if endpoint.kind == "proxy-port" {
                    proxies.push((source.name.clone(), endpoint.clone()));
                    if let Some(warning) = crate::local_users::port_warning(&endpoint.url) {
                        checks.push(check(
                            Verdict::Warn,
                            format!("endpoint proxy-port of {}", source.name),
                            warning,
                            Some("drop `port` from the source's proxy table, and run `credd setup claude-code SOURCE --via proxy` without --tcp".into()),
                        ));
                    }
                }
            }
        }
    }
    // Every settings file Claude Code would read here, read once for the checks across them.
    let cwd = std::env::current_dir().ok();
    let settings = crate::claude_env::settings_by_precedence(cwd.as_deref());
    // Without the daemon's sources, every source the settings name would look undefined.
    if status.is_some() {
        settings_checks(&facts, &proxies, &mut checks);
        overriding_checks(&settings, &mut checks);
    }
    provider_checks(status.as_ref(), &settings, &mut checks);
    proxy_checks(&mut checks);
    checks
}

fn source_check(
    ask: Ask<'_>,
    source: &SourceStatus,
    now: i64,
    checks: &mut Vec<Check>,
) -> SourceFacts {
    let name = source.name.as_str();
    let what = format!("source {}", source.label());
    let request = Request::Get {
        source: name.to_string(),
        min_valid_secs: Some(0),
        caller: None,
        audience: source.audience.clone(),
    };
    match ask(request) {
        Ok(Response::Credential(c)) => {
            let left = c.expires_at - now;
            checks.push(check(
                Verdict::Ok,
                what,
                format!("has a credential valid for {}m more", left / 60),
                None,
            ));
            SourceFacts {
                name: name.to_string(),
                is_aws: Some(matches!(c.secret, CredentialSecret::Aws { .. })),
                lifetime_secs: Some(c.expires_at - c.issued_at),
            }
        }
        Ok(_) => SourceFacts {
            name: name.into(),
            is_aws: None,
            lifetime_secs: None,
        },
        Err(crate::Failure { exit, message }) => {
            let fix = if exit == crate::Exit::NeedsLogin {
                format!("run `credd login {name}`")
            } else {
                "see `credd status` for its last error".into()
            };
            checks.push(check(Verdict::Fail, what, message, Some(fix)));
            SourceFacts {
                name: name.into(),
                is_aws: None,
                lifetime_secs: None,
            }
        }
    }
}

fn endpoint_check(source: &str, endpoint: &credd_proto::EndpointStatus) -> Check {
    let what = format!("endpoint {} of {source}", endpoint.kind);
    if let Some(error) = &endpoint.error {
        return check(
            Verdict::Fail,
            what,
            error.clone(),
            Some("free the port or set another `port` in the config; if another user holds it, report it to whoever runs this machine".into()),
        );
    }
    match crate::endpoint_probe::probe(endpoint) {
        Ok(detail) => check(Verdict::Ok, what, detail, None),
        Err(detail) => check(
            Verdict::Fail,
            what,
            detail,
            Some("see the daemon log; `credd stop` and retry restarts it".into()),
        ),
    }
}

/// The Claude Code settings files that apply here: the user's, then this directory's project.
fn settings_files() -> Vec<PathBuf> {
    crate::claude_env::settings_files(std::env::current_dir().ok().as_deref())
}

/// A variable Claude Code takes before credd's settings, each named with where it is set.
fn overriding_checks(settings: &[(PathBuf, Value)], checks: &mut Vec<Check>) {
    for o in crate::claude_env::overrides(settings) {
        checks.push(check(
            Verdict::Warn,
            "claude code settings",
            format!("{}, set in {}, wins over {}", o.name, o.place, o.over),
            Some(format!("unset {} there", o.name)),
        ));
    }
}

/// What the provider Claude Code would use here needs besides a credential: Claude Platform on
/// AWS its workspace, Claude on Google Cloud its project and workspace (unless a base URL
/// names the whole place); and a route on credd's proxy socket that speaks that provider.
fn provider_checks(
    status: Option<&credd_proto::StatusReport>,
    settings: &[(PathBuf, Value)],
    checks: &mut Vec<Check>,
) {
    use credd_proto::claude_code as cc;
    let value = |name: &str| crate::claude_env::value_of(name, settings);
    let Some(provider) = cc::PROVIDERS
        .into_iter()
        .find(|p| value(p.selection).is_some())
    else {
        return;
    };
    let skipped = value(provider.skip_auth).is_some();
    let base_url = value(provider.base_url);
    let missing: Vec<&str> = match provider {
        cc::ANTHROPIC_AWS if !skipped => ["ANTHROPIC_AWS_WORKSPACE_ID"]
            .into_iter()
            .filter(|v| value(v).is_none())
            .collect(),
        cc::ANTHROPIC_GOOGLE_CLOUD if base_url.is_none() => {
            let mut missing = Vec::new();
            if value("ANTHROPIC_GOOGLE_CLOUD_PROJECT").is_none()
                && value("GOOGLE_CLOUD_PROJECT").is_none()
            {
                missing.push("ANTHROPIC_GOOGLE_CLOUD_PROJECT");
            }
            if value("ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID").is_none() {
                missing.push("ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID");
            }
            missing
        }
        _ => Vec::new(),
    };
    for name in missing {
        checks.push(check(
            Verdict::Fail,
            "claude code settings",
            format!(
                "{} is chosen, but {name} is not set: Claude Code cannot reach it",
                provider.title
            ),
            Some(format!(
                "run `credd setup claude-code SOURCE --provider {} --workspace ID`",
                provider.name
            )),
        ));
    }
    let Some(source) = base_url
        .as_deref()
        .and_then(credd_proto::proxy_route::source_of_url)
    else {
        return;
    };
    let route = status.and_then(|status| {
        status
            .sources
            .iter()
            .find(|s| s.name == source)?
            .endpoints
            .iter()
            .find(|e| e.kind == "proxy")
    });
    let speaks = route.and_then(|route| {
        cc::PROVIDERS
            .into_iter()
            .find(|p| route.env.contains(&format!("{}=1", p.selection)))
    });
    match (route, speaks) {
        (Some(_), Some(speaks)) if speaks == provider => {}
        (None, _) if status.is_none() => {}
        (route, speaks) => checks.push(check(
            Verdict::Fail,
            "claude code settings",
            format!(
                "{} sends Claude Code's {} requests to the proxy route of `{source}`, which {}",
                provider.base_url,
                provider.title,
                match (route, speaks) {
                    (None, _) => "the config does not define".to_string(),
                    (Some(_), Some(other)) => format!("speaks {}", other.title),
                    (Some(_), None) => "is a gateway's".to_string(),
                }
            ),
            Some(format!(
                "set `provider = \"{}\"` in the proxy table of `{source}`, or run `credd setup claude-code {source} --via proxy` again",
                provider.name
            )),
        )),
    }
}

/// `SOURCE` and `--format` of a `credd get SOURCE ...` command line, if it is one.
fn credd_get(command: &str) -> Option<(String, Option<String>)> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "get")?;
    if at == 0 || !words[at - 1].ends_with("credd") {
        return None;
    }
    let source = words.get(at + 1)?.to_string();
    let format = words
        .iter()
        .position(|w| *w == "--format" || *w == "-f")
        .and_then(|i| words.get(i + 1))
        .map(|f| f.to_string());
    Some((source, format))
}

/// The caller secret Claude Code's `ANTHROPIC_CUSTOM_HEADERS` sends to a credd proxy.
fn proxy_secret_sent(settings_env: &Value) -> Option<&str> {
    settings_env["ANTHROPIC_CUSTOM_HEADERS"]
        .as_str()?
        .lines()
        .find_map(crate::claude_env::proxy_secret_in)
}

/// `host:port` of an `http://` URL.
fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// The base URL a settings file's `env` sends Claude Code's model requests to, if it names one.
fn base_url_in(settings_env: &Value) -> Option<&str> {
    credd_proto::claude_code::BASE_URLS
        .iter()
        .find_map(|key| settings_env[key].as_str())
}

/// A route on the proxy socket in a settings file works only when the environment Claude
/// Code starts in names the socket: warned about when this shell's does not.
fn socket_route_check(settings_env: &Value, shown: &str) -> Option<Check> {
    let base = base_url_in(settings_env)
        .filter(|base| credd_proto::proxy_route::source_of_url(base).is_some())?;
    let socket = credd_proto::paths::proxy_socket(&credd_proto::paths::socket_path());
    let named = std::env::var_os("ANTHROPIC_UNIX_SOCKET");
    if named.as_deref() == Some(socket.as_os_str()) {
        return None;
    }
    Some(check(
        Verdict::Warn,
        "claude code settings",
        format!(
            "{shown} sends Claude Code to {base} on credd's proxy socket, but this shell's ANTHROPIC_UNIX_SOCKET is {}, not {}: Claude Code started from here cannot reach the proxy",
            named.map_or("unset".to_string(), |n| n.to_string_lossy().into_owned()),
            socket.display()
        ),
        Some("add `eval \"$(credd env)\"` to your shell's profile (credd setup claude-code SOURCE --via proxy --shell-profile bash does)".into()),
    ))
}

/// Whether the caller secret a settings file sends is the one the proxy it points at takes.
/// Off Linux the proxy makes a new one on every start, and everywhere after another user held
/// its port: settings written before then are refused.
fn proxy_settings_check(
    settings_env: &Value,
    shown: &str,
    proxies: &[(String, credd_proto::EndpointStatus)],
) -> Option<Check> {
    let sent = proxy_secret_sent(settings_env)?;
    let base = base_url_in(settings_env)?;
    let Some((source, proxy)) = proxies
        .iter()
        .find(|(_, proxy)| authority(&proxy.url) == authority(base))
    else {
        return Some(check(
            Verdict::Fail,
            "claude code settings",
            format!(
                "{shown} sends a credd caller secret to {base}, where no credd proxy of the config listens"
            ),
            Some(
                "run `credd setup claude-code SOURCE --via proxy`: the proxy listens on a Unix socket now, and a port only where its table names one (then add --tcp); until then whoever takes that port gets Claude Code's prompts"
                    .into(),
            ),
        ));
    };
    let current = proxy
        .secret_file
        .as_deref()
        .and_then(|file| std::fs::read_to_string(file).ok());
    if current.is_some_and(|current| current.trim() == sent) {
        return None;
    }
    Some(check(
        Verdict::Fail,
        "claude code settings",
        format!(
            "the caller secret in {shown} is not the one the proxy of `{source}` takes now (it is made anew after another user held its port, and on every start where the system cannot tell who connects): Claude Code's requests are refused"
        ),
        Some(format!(
            "run `credd setup claude-code {source} --via proxy --tcp` again"
        )),
    ))
}

fn settings_checks(
    facts: &[SourceFacts],
    proxies: &[(String, credd_proto::EndpointStatus)],
    checks: &mut Vec<Check>,
) {
    for file in settings_files() {
        let shown = file.display().to_string();
        let settings: Value = match std::fs::read_to_string(&file).map(|t| serde_json::from_str(&t))
        {
            Ok(Ok(v)) => v,
            _ => {
                checks.push(check(
                    Verdict::Fail,
                    "claude code settings",
                    format!("{shown} is not valid JSON"),
                    Some("fix it; Claude Code ignores it as it is".into()),
                ));
                continue;
            }
        };
        let env_ttl = settings["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"]
            .as_str()
            .map(str::to_string)
            .or_else(|| std::env::var("CLAUDE_CODE_API_KEY_HELPER_TTL_MS").ok())
            .and_then(|v| v.parse::<i64>().ok());
        let mut problems = 0;
        for (key, wants_aws) in [("apiKeyHelper", false), ("awsCredentialExport", true)] {
            let Some((source, _format)) = settings[key].as_str().and_then(credd_get) else {
                continue;
            };
            let Some(fact) = facts.iter().find(|f| f.name == source) else {
                checks.push(check(Verdict::Fail, "claude code settings", format!("{key} in {shown} asks for source `{source}`, which the config does not define"), Some(format!("add [sources.{source}] or run `credd setup claude-code SOURCE`"))));
                problems += 1;
                continue;
            };
            if fact.is_aws.is_some_and(|aws| aws != wants_aws) {
                let holds = if wants_aws {
                    "a token, not AWS credentials"
                } else {
                    "AWS credentials, not a token"
                };
                checks.push(check(Verdict::Fail, "claude code settings", format!("{key} in {shown} points at `{source}`, which holds {holds}"), Some(format!("point {key} at a source of the right kind (`credd setup claude-code SOURCE`)"))));
                problems += 1;
            }
            if key == "apiKeyHelper"
                && let (Some(ttl_ms), Some(lifetime)) = (env_ttl, fact.lifetime_secs)
                && ttl_ms / 1000 > lifetime
            {
                checks.push(check(Verdict::Fail, "claude code settings", format!("CLAUDE_CODE_API_KEY_HELPER_TTL_MS is {}s, longer than the {}s that tokens of `{source}` live: Claude Code would send expired tokens", ttl_ms / 1000, lifetime), Some("lower it, or let `credd setup claude-code` set it".into())));
                problems += 1;
            }
        }
        if settings["awsAuthRefresh"].is_string() && default_aws_chain_configured() {
            checks.push(check(Verdict::Warn, "claude code settings", format!("awsAuthRefresh in {shown} will never run: the default AWS credential chain already has credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE or a [default] profile), and Claude Code runs it only when that chain fails"), Some("remove those credentials, or drop awsAuthRefresh".into())));
            problems += 1;
        }
        if settings["env"]["GCE_METADATA_HOST"].is_string()
            && let Some(file) = crate::claude_env::adc_file_ahead_of_metadata(&settings["env"])
        {
            checks.push(check(Verdict::Warn, "claude code settings", format!("Claude Code on Vertex AI reads {} itself (Google's libraries try it before the metadata server), so credd's endpoint in {shown} is never asked", file.display()), Some("move that file where only credd reads it and name it in the source's `credentials_file`".into())));
            problems += 1;
        }
        if let Some(stale) = proxy_settings_check(&settings["env"], &shown, proxies) {
            checks.push(stale);
            problems += 1;
        }
        if let Some(unset) = socket_route_check(&settings["env"], &shown) {
            checks.push(unset);
            problems += 1;
        }
        if problems == 0 {
            checks.push(check(
                Verdict::Ok,
                "claude code settings",
                format!("{shown} agrees with the config"),
                None,
            ));
        }
    }
}

fn default_aws_chain_configured() -> bool {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() || std::env::var_os("AWS_PROFILE").is_some()
    {
        return true;
    }
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    credentials
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|text| text.lines().any(|l| l.trim() == "[default]"))
}

fn proxy_checks(checks: &mut Vec<Check>) {
    let vars: Vec<String> = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "AWS_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
    ]
    .iter()
    .filter_map(|k| {
        std::env::var(k)
            .ok()
            .map(|v| format!("{k}={}", hide_userinfo(&v)))
    })
    .collect();
    let detail = if vars.is_empty() {
        "no proxy or CA bundle variables are set in this shell".to_string()
    } else {
        format!(
            "in this shell: {} (the daemon uses the environment it was started with)",
            vars.join(", ")
        )
    };
    checks.push(check(Verdict::Ok, "proxy", detail, None));
}

/// `http://user:pass@host:3128` -> `http://***@host:3128`.
fn hide_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        out += &format!("{mark} {}: {}\n", c.what, c.detail);
        if let Some(fix) = &c.fix {
            out += &format!("     fix: {fix}\n");
        }
    }
    out
}

/// The failed check `what` for a request the daemon did not answer as asked: its error, or
/// that the answer was of the wrong kind, after `lead`.
fn failed_to_answer(
    answer: Result<Response, crate::Failure>,
    what: &str,
    lead: &str,
    fix: &str,
) -> Check {
    let why = match answer {
        Err(failure) => failure.message,
        Ok(_) => "the daemon gave an unexpected answer".into(),
    };
    check(
        Verdict::Fail,
        what,
        format!("{lead}{why}"),
        Some(fix.into()),
    )
}

/// `credd doctor`: the checks, as text or JSON; when one fails the report is printed and the
/// exit code says so.
pub fn command(json: bool) -> Result<String, crate::Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let checks = run(&|request| crate::ask(request, true), now);
    let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&checks).expect("checks serialize")
        )
    } else {
        render(&checks)
    };
    if failed {
        // The report is the answer; the exit code says something needs fixing.
        print!("{text}");
        // Exit 1, as for any failure that is not the caller's.
        return Err(crate::Failure::new(
            crate::Exit::Upstream,
            "some checks failed; see the fixes above",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_credd_get_commands() {
        assert_eq!(
            credd_get("/usr/bin/credd get gw"),
            Some(("gw".into(), None))
        );
        assert_eq!(
            credd_get("/home/u/.cargo/bin/credd get dev --format aws"),
            Some(("dev".into(), Some("aws".into())))
        );
        assert_eq!(credd_get("op read op://x"), None);
    }

    #[test]
    fn proxy_passwords_are_hidden() {
        assert_eq!(
            hide_userinfo("http://me:hunter2@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(hide_userinfo("http://proxy:3128"), "http://proxy:3128");
    }
}
