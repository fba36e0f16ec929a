//! Taking a forward somewhere: `credd ssh` and `credd ssh-config` carry its sockets to a
//! remote, `credd container-args` and `credd setup devcontainer` mount them into a container.
//! All of them start from what the daemon says of the forward (where its sockets are), and
//! give the other side the same environment: where the sockets are, and that they are a
//! forward's (`CREDD_FORWARD`), so the client there never starts a daemon of its own.

pub mod container;
pub mod ssh;

use credd_proto::{ForwardStatus, Request, Response, forward};

use crate::{Exit, Failure, ask, unexpected};

/// The forward `name`, or the only one the config has, and whether any of its sources has a
/// proxy (else the other side gets no `ANTHROPIC_UNIX_SOCKET`: a Claude Code that has it
/// sends every request there, helper routes too).
pub fn pick(name: Option<&str>) -> Result<(ForwardStatus, bool), Failure> {
    let report = match ask(Request::Status, true)? {
        Response::Status(report) => report,
        other => return Err(unexpected(other)),
    };
    let names = || {
        report
            .forwards
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match name {
        Some(name) => report
            .forwards
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                if report.forwards.is_empty() {
                    none_configured(&report.config_path)
                } else {
                    Failure::new(
                        Exit::Usage,
                        format!(
                            "no forward named `{name}` in {} (it defines: {})",
                            report.config_path,
                            names()
                        ),
                    )
                }
            })?,
        None => match &report.forwards[..] {
            [only] => only,
            [] => return Err(none_configured(&report.config_path)),
            _ => {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "the config defines several forwards ({}); name one with --forward",
                        names()
                    ),
                ));
            }
        },
    };
    if let Some(error) = &found.error {
        return Err(Failure::new(
            Exit::Unreachable,
            format!("the forward `{}` does not listen: {error}", found.name),
        ));
    }
    let proxied = report
        .sources
        .iter()
        .filter(|s| found.sources.contains(&s.name))
        .any(|s| s.endpoints.iter().any(|e| e.socket.is_some()));
    Ok((found.clone(), proxied))
}

fn none_configured(config: &str) -> Failure {
    Failure::new(
        Exit::Usage,
        format!(
            "{config} defines no forwards; add one, for example:\n\n[forwards.dev]\nsources = [\"bedrock\"]\n"
        ),
    )
}

/// The environment a process on the other side needs, with the forward's directory at `dir`
/// there: its sockets (the proxy's when `proxied`), the AWS config beside them, and the
/// forward's name and host.
pub fn environment(
    forward: &ForwardStatus,
    proxied: bool,
    dir: &str,
) -> Vec<(&'static str, String)> {
    let mut env = vec![("CREDD_SOCKET", format!("{dir}/{}", forward::SOCKET_FILE))];
    if proxied {
        env.push((
            "ANTHROPIC_UNIX_SOCKET",
            format!("{dir}/{}", forward::PROXY_SOCKET_FILE),
        ));
    }
    env.extend([
        (
            forward::FORWARD_ENV,
            forward::Forwarded::env_value(&forward.name, &forward::host_name()),
        ),
        (
            "AWS_CONFIG_FILE",
            format!("{dir}/{}", forward::AWS_CONFIG_FILE),
        ),
    ]);
    env
}

/// `text` quoted for a POSIX shell: as it is when it needs no quoting.
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_every_character() {
        assert_eq!(shell_quote("/run/credd"), "/run/credd");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
