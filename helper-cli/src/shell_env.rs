//! `credd env`: the environment a shell exports so that what it starts finds credd's
//! endpoints and proxy socket: the SDKs' endpoint variables (`AWS_CONTAINER_*`,
//! `GCE_METADATA_*`, `IDENTITY_*`) and Claude Code's `ANTHROPIC_UNIX_SOCKET`, which Claude Code
//! reads only from the environment it starts in (never from its settings files).
//!
//! Meant for `eval "$(credd env)"` in a shell profile. Of a proxy route, only what Claude Code
//! reads from nowhere else is exported (the socket; of a gateway route, its base URL and
//! placeholder key too, which Claude Code drops from settings once the socket is set); the
//! rest (Bedrock's, Vertex's or Foundry's base URL, skipped authentication) belongs in Claude
//! Code's settings, where `setup` writes it.

use credd_proto::StatusReport;

pub use crate::cli::Shell;

impl Shell {
    /// The user's login shell, from `SHELL`; a POSIX shell when it is none of ours.
    pub fn from_env() -> Shell {
        let shell = std::env::var("SHELL").unwrap_or_default();
        match shell.rsplit('/').next() {
            Some("fish") => Shell::Fish,
            Some("zsh") => Shell::Zsh,
            _ => Shell::Bash,
        }
    }

    /// The file of the shell's that every interactive shell reads, relative to `HOME`.
    pub fn profile(self) -> &'static str {
        match self {
            Shell::Bash => ".bashrc",
            Shell::Zsh => ".zshrc",
            Shell::Fish => ".config/fish/config.fish",
        }
    }

    /// The one line a profile holds to take credd's environment at every shell's start.
    pub fn profile_line(self, credd: &str) -> String {
        let credd = self.quote(credd);
        match self {
            Shell::Fish => format!("{credd} env --shell fish | source"),
            Shell::Bash | Shell::Zsh => format!("eval \"$({credd} env)\""),
        }
    }

    /// `name` set to `value` for this shell and its children. A value of the form
    /// `$(cat 'FILE')` is the file's contents when the line runs (an endpoint's secret, which
    /// is never printed); any other is taken literally.
    fn export(self, name: &str, value: &str) -> String {
        let file = value
            .strip_prefix("$(cat '")
            .and_then(|rest| rest.strip_suffix("')"))
            .filter(|file| !file.contains('\''));
        let quoted = |text: &str| self.quote(text);
        match (self, file) {
            (Shell::Fish, Some(file)) => format!("set -gx {name} (cat {})", quoted(file)),
            (Shell::Fish, None) => format!("set -gx {name} {}", quoted(value)),
            (_, Some(file)) => format!("export {name}=\"$(cat {})\"", quoted(file)),
            (_, None) => format!("export {name}={}", quoted(value)),
        }
    }

    /// `value` in single quotes, read literally: POSIX shells end a quote at any `'`; fish also
    /// takes `\'` and `\\` inside one as escapes.
    fn quote(self, value: &str) -> String {
        match self {
            Shell::Fish => format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'")),
            Shell::Bash | Shell::Zsh => format!("'{}'", value.replace('\'', r"'\''")),
        }
    }
}

/// The variables of an endpoint of `kind` that belong in a shell's environment: all of an SDK
/// endpoint's; of a proxy route, only what Claude Code reads from nowhere else (the rest goes
/// in its settings); none of a proxy's TCP port (its caller secret goes in settings too).
fn exported(kind: &str, name: &str) -> bool {
    match kind {
        "proxy" => credd_proto::claude_code::ENVIRONMENT_ONLY.contains(&name),
        "proxy-port" => false,
        _ => true,
    }
}

/// The lines for `shell`: every endpoint of the `sources` named (all when none is), the first
/// source in name order winning where two set one variable, as a comment says.
pub fn render(report: &StatusReport, sources: &[String], shell: Shell) -> Result<String, String> {
    if let Some(unknown) = sources
        .iter()
        .find(|wanted| !report.sources.iter().any(|s| &s.name == *wanted))
    {
        return Err(format!(
            "no source named `{unknown}`; `credd status` lists them"
        ));
    }
    let mut set: Vec<(String, String)> = Vec::new();
    let mut out = String::new();
    let chosen = report
        .sources
        .iter()
        .filter(|s| sources.is_empty() || sources.contains(&s.name));
    for source in chosen {
        for endpoint in &source.endpoints {
            for line in &endpoint.env {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                if !exported(&endpoint.kind, name) {
                    continue;
                }
                match set.iter().find(|(n, _)| n == name) {
                    Some((_, by)) if by != &source.name => {
                        out += &format!(
                            "# {name} of source `{}` left out: `{by}` sets it (name the sources you want: credd env SOURCE...)\n",
                            source.name
                        );
                    }
                    Some(_) => {}
                    None => {
                        out += &shell.export(name, value);
                        out.push('\n');
                        set.push((name.to_string(), source.name.clone()));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_literal_and_secrets_are_read_from_their_files() {
        assert_eq!(
            Shell::Bash.export(
                "ANTHROPIC_UNIX_SOCKET",
                "/run/user/1000/credd/credd.sock.proxy"
            ),
            "export ANTHROPIC_UNIX_SOCKET='/run/user/1000/credd/credd.sock.proxy'"
        );
        assert_eq!(
            Shell::Bash.export("X", "it's $(rm -rf ~)"),
            r"export X='it'\''s $(rm -rf ~)'"
        );
        assert_eq!(
            Shell::Zsh.export("IDENTITY_HEADER", "$(cat '/s/a b.secret')"),
            "export IDENTITY_HEADER=\"$(cat '/s/a b.secret')\""
        );
        assert_eq!(
            Shell::Fish.export("IDENTITY_HEADER", "$(cat '/s/x.secret')"),
            "set -gx IDENTITY_HEADER (cat '/s/x.secret')"
        );
        assert_eq!(Shell::Fish.export("A", "b"), "set -gx A 'b'");
        // In fish a backslash escapes inside single quotes too: none may end the quote.
        assert_eq!(Shell::Fish.export("A", r"x\"), r"set -gx A 'x\\'");
        assert_eq!(Shell::Fish.export("A", "it's"), r"set -gx A 'it\'s'");
        assert_eq!(Shell::Bash.export("A", r"x\"), r"export A='x\'");
    }

    #[test]
    fn only_the_socket_of_a_proxy_route_is_exported() {
        assert!(exported("proxy", "ANTHROPIC_UNIX_SOCKET"));
        assert!(exported("proxy", "ANTHROPIC_BASE_URL"));
        assert!(!exported("proxy", "CLAUDE_CODE_USE_BEDROCK"));
        assert!(!exported("proxy", "ANTHROPIC_BEDROCK_BASE_URL"));
        assert!(!exported("proxy-port", "ANTHROPIC_CUSTOM_HEADERS"));
        assert!(exported("gce-metadata", "GCE_METADATA_HOST"));
    }
}
