//! The config file: named sources, each with a `kind` and that kind's settings.
//!
//! ```toml
//! [sources.gateway]
//! kind = "exec"
//! command = ["op", "read", "op://team/litellm/key"]   # argv, no shell
//! ttl = "1h"        # used when the output carries no expiry
//! timeout = "30s"
//! ```
//!
//! Parsing never half-applies: a file either yields a whole [`Config`] or a [`ConfigError`] that
//! names the file, line and column, and the caller keeps the config it had.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::source_name::SourceName;
pub use crate::sources::SourceSpec;
pub use crate::sources::aws::AwsSpec;
pub use crate::sources::entra::{ENTRA_DEFAULT_SCOPE, EntraMethod, EntraSpec};
pub use crate::sources::exec::ExecSpec;
pub use crate::sources::gcp::{GCP_DEFAULT_SCOPE, GcpSpec};
pub use crate::sources::spec::{
    EndpointSpec, Persist, ProxyAuth, ProxySpec, SendAs, check_upstream,
};

/// Environment variable that overrides the config path.
pub const CONFIG_ENV: &str = "CREDD_CONFIG";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Desktop notifications when a source needs the person (see `notify`); on by default.
    #[serde(default = "enabled")]
    pub notifications: bool,
    #[serde(default)]
    pub sources: BTreeMap<SourceName, SourceSpec>,
    /// Scoped views of the daemon for containers and remotes (see `forwards`).
    #[serde(default)]
    pub forwards: BTreeMap<SourceName, ForwardSpec>,
    /// Remote MCP servers served through the proxy with a source's token (see
    /// `endpoints::proxy`).
    #[serde(default)]
    pub mcp: BTreeMap<SourceName, McpSpec>,
}

/// An `[mcp.NAME]` table: a remote MCP server (streamable HTTP) that Claude Code reaches on
/// a port of this machine, each request with the source's current token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// The source whose token goes with each request, as `Authorization: Bearer`.
    pub source: SourceName,
    /// The server's MCP endpoint (`https://mcp.example.com/mcp`): only that path is served.
    pub url: String,
    /// The port on 127.0.0.1; by default one derived from the server's name.
    #[serde(default)]
    pub port: Option<u16>,
    /// How long either side may stay silent (an event stream, between its events).
    #[serde(
        default = "crate::sources::spec::default_proxy_timeout",
        deserialize_with = "crate::sources::spec::duration"
    )]
    pub timeout: std::time::Duration,
}

/// A `[forwards.NAME]` table: which sources the forward's sockets serve, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSpec {
    /// The sources it serves; every other is refused on its sockets.
    pub sources: Vec<SourceName>,
    /// Users besides this one whose processes it serves: a rootful container's root (0), or a
    /// devcontainer user whose uid is not this user's. Nobody else, whatever the mount.
    #[serde(default)]
    pub allow_uids: Vec<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            notifications: true,
            sources: BTreeMap::new(),
            forwards: BTreeMap::new(),
            mcp: BTreeMap::new(),
        }
    }
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The config path: `CREDD_CONFIG`, else `credd/config.toml` in the user's config directory.
pub fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    directories::ProjectDirs::from("", "", "credd")
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("credd.toml"))
}

/// Reads the config file. A missing file is an empty config: the daemon runs and says which
/// file to write when a source is asked for.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(ConfigError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        ConfigError {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let config: Config = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        at(offset, e.message().trim().to_string())
    })?;
    for (name, spec) in &config.sources {
        let table = text.find(&format!("[sources.{name}]")).unwrap_or(0);
        spec.check()
            .map_err(|problem| at(table, format!("source `{name}`: {problem}")))?;
        if let Some(other) = spec.signs_in_with() {
            match config.sources.get(other) {
                Some(SourceSpec::Oidc(oidc))
                    if oidc.token == crate::sources::oidc::ServedToken::Id => {}
                Some(SourceSpec::Oidc(_)) => {
                    return Err(at(
                        table,
                        format!(
                            "source `{name}`: it signs in with `{other}`, which serves its access token; the exchange takes an ID token (`token = \"id\"`)"
                        ),
                    ));
                }
                Some(found) => {
                    return Err(at(
                        table,
                        format!(
                            "source `{name}`: it signs in with `{other}`, a source of kind `{}`, not `oidc`",
                            found.kind()
                        ),
                    ));
                }
                None => {
                    return Err(at(
                        table,
                        format!(
                            "source `{name}`: it signs in with `{other}`, which the config does not define"
                        ),
                    ));
                }
            }
        }
    }
    for (name, mcp) in &config.mcp {
        let table = text.find(&format!("[mcp.{name}]")).unwrap_or(0);
        let refuse = |problem: String| Err(at(table, format!("mcp server `{name}`: {problem}")));
        // `credd get NAME` takes either; one name must not mean both.
        if config.sources.contains_key(name) {
            return refuse(format!(
                "a source is named `{name}` too; give the server a name of its own"
            ));
        }
        match config.sources.get(&mcp.source) {
            None => {
                return refuse(format!(
                    "its source `{}` is not defined in the config",
                    mcp.source
                ));
            }
            Some(SourceSpec::Aws(_)) => {
                return refuse(format!(
                    "its source `{}` holds AWS credentials; an MCP server takes a token",
                    mcp.source
                ));
            }
            Some(_) => {}
        }
        if let Err(problem) = crate::sources::spec::check_upstream(&mcp.url, "`url`") {
            return refuse(problem);
        }
        if mcp.timeout.is_zero() {
            return refuse("`timeout` must be longer than zero".into());
        }
    }
    for (name, forward) in &config.forwards {
        let table = text.find(&format!("[forwards.{name}]")).unwrap_or(0);
        if name.starts_with('.') {
            return Err(at(
                table,
                format!(
                    "forward `{name}`: a forward's name names its directory, and may not start with `.`"
                ),
            ));
        }
        if forward.sources.is_empty() {
            return Err(at(
                table,
                format!("forward `{name}` serves no sources: list them in `sources`"),
            ));
        }
        if let Some(missing) = forward
            .sources
            .iter()
            .find(|s| !config.sources.contains_key(&***s))
        {
            return Err(at(
                table,
                format!(
                    "forward `{name}` names source `{missing}`, which the config does not define"
                ),
            ));
        }
        // An ID token that assumes a role (or a workforce identity) would let the other side
        // take that role itself, whatever the forward serves.
        if let Some((stood_on, by)) = forward.sources.iter().find_map(|served| {
            config
                .sources
                .iter()
                .find(|(_, spec)| spec.signs_in_with() == Some(&**served))
                .map(|(by, _)| (served, by))
        }) {
            return Err(at(
                table,
                format!(
                    "forward `{name}` serves `{stood_on}`, whose ID token `{by}` signs in with: the other side could use it for `{by}` too; serve `{by}` instead, or give the gateway a sign-in of its own (another client_id)"
                ),
            ));
        }
    }
    Ok(config)
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::spec::default_proxy_timeout;
    use std::time::Duration;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("config.toml"), text)
    }

    #[test]
    fn reads_an_exec_source() {
        let c = parse_str(
            r#"
[sources.gateway]
kind = "exec"
command = ["op", "read", "op://team/litellm/key"]
ttl = "1h"
timeout = "30s"
"#,
        )
        .unwrap();
        let SourceSpec::Exec(e) = &c.sources["gateway"] else {
            panic!("not an exec source")
        };
        assert_eq!(e.command[0], "op");
        assert_eq!(e.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_str("[sources.gateway]\nkind = \"exec\"\ncommand = [\"a\"\n").unwrap_err();
        assert_eq!(err.path, Path::new("config.toml"));
        assert!(err.line >= 3, "{err}");
        assert!(err.to_string().starts_with("config.toml:"), "{err}");
    }

    #[test]
    fn bad_durations_and_unknown_kinds_are_explained() {
        let err = parse_str("[sources.g]\nkind = \"exec\"\ncommand = [\"a\"]\nttl = \"soon\"\n")
            .unwrap_err();
        assert!(err.message.contains("not a duration"), "{err}");
        let err = parse_str("[sources.g]\nkind = \"carrier-pigeon\"\n").unwrap_err();
        assert!(err.message.contains("carrier-pigeon"), "{err}");
    }

    #[test]
    fn empty_command_is_refused_at_its_table() {
        let err = parse_str("\n\n[sources.g]\nkind = \"exec\"\ncommand = []\n").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
    }

    #[test]
    fn an_empty_mfa_process_is_refused() {
        let err = parse_str("[sources.a]\nkind = \"aws\"\nprofile = \"p\"\nmfa_process = []\n")
            .unwrap_err();
        assert!(
            err.message.contains("`mfa_process` must name a program"),
            "{err}"
        );
        let ok = parse_str(
            "[sources.a]\nkind = \"aws\"\nprofile = \"p\"\nmfa_process = [\"ykman\", \"oath\"]\n",
        )
        .unwrap();
        let SourceSpec::Aws(aws) = &ok.sources["a"] else {
            panic!("not an aws source")
        };
        assert_eq!(aws.mfa_process.as_deref().map(<[String]>::len), Some(2));
    }

    #[test]
    fn a_source_name_that_could_not_be_a_route_is_refused_at_its_table() {
        let err =
            parse_str("\n[sources.\"a b\"]\nkind = \"exec\"\ncommand = [\"a\"]\n").unwrap_err();
        assert!(
            err.message
                .contains("source name `a b` may use only letters, digits"),
            "{err}"
        );
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn a_forward_serves_only_sources_the_config_defines() {
        let base = "[sources.g]\nkind = \"exec\"\ncommand = [\"a\"]\n";
        let c = parse_str(&format!(
            "{base}[forwards.dev]\nsources = [\"g\"]\nallow_uids = [0]\n"
        ))
        .unwrap();
        assert_eq!(c.forwards["dev"].allow_uids, [0]);
        let err = parse_str(&format!("{base}\n[forwards.dev]\nsources = [\"h\"]\n")).unwrap_err();
        assert!(err.message.contains("source `h`"), "{err}");
        assert_eq!(err.line, 5, "{err}");
        let err = parse_str(&format!("{base}[forwards.\"..\"]\nsources = [\"g\"]\n")).unwrap_err();
        assert!(err.message.contains("may not start with `.`"), "{err}");
        let err = parse_str(&format!("{base}[forwards.dev]\nsources = []\n")).unwrap_err();
        assert!(err.message.contains("serves no sources"), "{err}");
        let err = parse_str(&format!("{base}[forwards.\"a/b\"]\nsources = [\"g\"]\n")).unwrap_err();
        assert!(err.message.contains("a/b"), "{err}");
    }

    #[test]
    fn a_source_signs_in_only_with_an_oidc_source_serving_its_id_token_and_not_through_a_forward() {
        let oidc = |name: &str, token: &str| {
            format!(
                "[sources.{name}]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\ntoken = \"{token}\"\n"
            )
        };
        let role = |on: &str| {
            format!(
                "[sources.bedrock]\nkind = \"aws\"\n[sources.bedrock.web_identity]\noidc = \"{on}\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\n"
            )
        };
        let vertex = "[sources.vertex]\nkind = \"gcp\"\n[sources.vertex.workforce]\noidc = \"corp\"\naudience = \"//iam.googleapis.com/locations/global/workforcePools/p/providers/q\"\nuser_project = \"billed\"\n";
        let ok = parse_str(&format!("{}{}{vertex}", oidc("corp", "id"), role("corp"))).unwrap();
        assert_eq!(ok.sources["bedrock"].signs_in_with(), Some("corp"));
        assert_eq!(ok.sources["vertex"].signs_in_with(), Some("corp"));
        for (text, why) in [
            (role("nobody"), "does not define"),
            (
                format!("{}{}", oidc("corp", "access"), role("corp")),
                "access token",
            ),
            (
                format!(
                    "[sources.corp]\nkind = \"exec\"\ncommand = [\"a\"]\n{}",
                    role("corp")
                ),
                "kind `exec`",
            ),
            (
                format!(
                    "{}{}[forwards.dev]\nsources = [\"corp\"]\n",
                    oidc("corp", "id"),
                    role("corp")
                ),
                "serve `bedrock` instead",
            ),
        ] {
            let err = parse_str(&text).unwrap_err();
            assert!(err.message.contains(why), "{why}: {err}");
        }
        // Serving the role through a forward is what forwards are for.
        let served = format!(
            "{}{}[forwards.dev]\nsources = [\"bedrock\"]\n",
            oidc("corp", "id"),
            role("corp")
        );
        assert!(parse_str(&served).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            parse_str("[sources.g]\nkind = \"exec\"\ncommand = [\"a\"]\ncomand = 1\n").unwrap_err();
        assert!(err.message.contains("comand"), "{err}");
    }

    #[test]
    fn proxy_upstreams_and_regions_that_could_send_elsewhere_are_refused() {
        for (table, why) in [
            (
                r#"proxy = { upstream = "http://llm.example.com" }"#,
                "https://",
            ),
            (
                r#"proxy = { upstream = "https://me:pw@llm.example.com" }"#,
                "user name",
            ),
            (
                r#"proxy = { upstream = "https://llm.example.com/?to=x" }"#,
                "without a query",
            ),
            (r#"proxy = { timeout = "0s" }"#, "longer than zero"),
            (r#"region = "evil.example/x#""#, "not an AWS region name"),
            // A bucket's label, which would make bedrock-runtime.s3.amazonaws.com.
            (r#"region = "s3""#, "not an AWS region name"),
            (r#"region = "s3-accelerate""#, "not an AWS region name"),
        ] {
            let err = parse_str(&format!(
                "[sources.a]\nkind = \"aws\"\nprofile = \"p\"\n{table}\n"
            ))
            .unwrap_err();
            assert!(err.message.contains(why), "{table}: {err}");
        }
        let c = parse_str(
            "[sources.a]\nkind = \"aws\"\nprofile = \"p\"\nregion = \"eu-west-1\"\nproxy = { upstream = \"http://127.0.0.1:8080\" }\n",
        )
        .unwrap();
        assert_eq!(
            c.sources["a"].proxy().unwrap().timeout,
            default_proxy_timeout()
        );
    }

    #[test]
    fn each_providers_settings_apply_only_where_they_mean_something() {
        let aws = "[sources.a]\nkind = \"aws\"\nprofile = \"p\"\n";
        let gcp = "[sources.a]\nkind = \"gcp\"\n";
        let exec = "[sources.a]\nkind = \"exec\"\ncommand = [\"a\"]\n";
        for (source, table, why) in [
            (aws, r#"proxy = { provider = "vertex" }"#, "for gcp sources"),
            (
                aws,
                r#"proxy = { provider = "foundry" }"#,
                "unknown provider `foundry`, expected one of bedrock",
            ),
            (gcp, r#"proxy = { provider = "mantle" }"#, "for aws sources"),
            (
                aws,
                r#"proxy = { provider = "anthropic-aws" }"#,
                "needs `workspace`",
            ),
            (
                gcp,
                r#"proxy = { provider = "anthropic-google-cloud" }"#,
                "needs `workspace`",
            ),
            (
                aws,
                r#"proxy = { workspace = "w" }"#,
                "does not apply to bedrock",
            ),
            (
                aws,
                r#"proxy = { provider = "anthropic-aws", workspace = "w/../x" }"#,
                "not a workspace ID",
            ),
            (gcp, r#"proxy = { location = "us-east5" }"#, "not vertex"),
            (
                gcp,
                r#"proxy = { provider = "anthropic-google-cloud", workspace = "w", location = "a.b" }"#,
                "not a location name",
            ),
            (
                aws,
                r#"proxy = { provider = "anthropic-aws", workspace = "w", auth = "api-key" }"#,
                "not anthropic-aws",
            ),
            (
                aws,
                r#"proxy = { provider = "anthropic-aws", workspace = "w", failover = ["us-west-2"] }"#,
                "not anthropic-aws",
            ),
            (aws, r#"proxy = { failover = ["s3"] }"#, "not a region name"),
            (
                gcp,
                r#"proxy = { failover = ["evil.example"] }"#,
                "not a region name",
            ),
            (
                aws,
                r#"proxy = { model_regions = { m = "evil.example/" } }"#,
                "not a region name",
            ),
            (
                gcp,
                r#"proxy = { model_regions = { m = "us-east5" } }"#,
                "not vertex",
            ),
            (
                exec,
                r#"proxy = { failover = ["us-west-2"] }"#,
                "apply to aws and gcp",
            ),
        ] {
            let err = parse_str(&format!("{source}{table}\n")).unwrap_err();
            assert!(err.message.contains(why), "{table}: {err}");
        }
        for (source, table) in [
            (
                aws,
                r#"proxy = { provider = "mantle", failover = ["us-west-2"], model_regions = { "anthropic.claude-haiku" = "us-west-2" } }"#,
            ),
            (
                aws,
                r#"proxy = { provider = "anthropic-aws", workspace = "wrkspc_01A" }"#,
            ),
            (
                gcp,
                r#"proxy = { provider = "anthropic-google-cloud", workspace = "w", location = "us-east5" }"#,
            ),
            (
                gcp,
                r#"proxy = { failover = ["us-east5", "europe-west1"] }"#,
            ),
        ] {
            parse_str(&format!("{source}{table}\n")).unwrap_or_else(|e| panic!("{table}: {e}"));
        }
    }

    #[test]
    fn an_mcp_server_names_a_source_with_a_token_and_an_https_url() {
        let sources = "[sources.t]\nkind = \"exec\"\ncommand = [\"a\"]\n[sources.a]\nkind = \"aws\"\nprofile = \"p\"\n";
        for (table, why) in [
            (
                "source = \"nope\"\nurl = \"https://mcp.example.com/mcp\"",
                "not defined",
            ),
            (
                "source = \"a\"\nurl = \"https://mcp.example.com/mcp\"",
                "holds AWS credentials",
            ),
            (
                "source = \"t\"\nurl = \"http://mcp.example.com/mcp\"",
                "https://",
            ),
            (
                "source = \"t\"\nurl = \"https://mcp.example.com/mcp?k=v\"",
                "without a query",
            ),
            ("source = \"t\"", "missing field `url`"),
            (
                "source = \"t\"\nurl = \"https://mcp.example.com/mcp\"\n[mcp.t]\nsource = \"t\"\nurl = \"https://a.example.com/\"",
                "a source is named `t` too",
            ),
        ] {
            let err = parse_str(&format!("{sources}[mcp.m]\n{table}\n")).unwrap_err();
            assert!(err.message.contains(why), "{table}: {err}");
        }
        let c = parse_str(&format!(
            "{sources}[mcp.m]\nsource = \"t\"\nurl = \"https://mcp.example.com/mcp\"\n"
        ))
        .unwrap();
        assert_eq!(c.mcp["m"].port, None);
    }
}
