//! `credd`: the tiny client that Claude Code, the AWS SDKs and people exec to get a credential
//! from `credd-daemon`.
//!
//! It never reads stdin (Claude Code leaves it open), prints nothing on stdout unless it
//! succeeds, and on failure prints one line on stderr that says what to do, with an exit code
//! that says what kind of failure it was (see [`exit`]).

mod caller;
mod claude_env;
mod cli;
mod connection;
mod discovery;
mod doctor;
mod endpoint_probe;
mod failure;
mod forwards;
mod init;
mod local_users;
mod login;
mod output;
mod service;
mod setup;
mod shell_env;
mod status;
mod terminal;
mod upgrade;

use std::process::ExitCode;

use clap::Parser;
use credd_proto::{ErrorKind, Request, Response};

use crate::cli::{Cli, Command, SetupTarget};
pub(crate) use crate::failure::{Exit, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(
                if e.use_stderr() {
                    Exit::Usage
                } else {
                    Exit::Success
                }
                .code(),
            );
        }
    };
    if let Command::Ssh {
        forward,
        host,
        args,
    } = cli.command
    {
        let (options, command) = match args.iter().position(|a| a == "--") {
            Some(at) => (&args[..at], &args[at + 1..]),
            None => (&args[..], &[][..]),
        };
        return match forwards::ssh::run(forward.as_deref(), &host, options, command) {
            Ok(code) => ExitCode::from(code),
            Err(Failure { exit, message }) => {
                eprintln!("credd: {message}");
                ExitCode::from(exit.code())
            }
        };
    }
    match run(cli.command) {
        Ok(text) => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(Failure { exit, message }) => {
            eprintln!("credd: {message}");
            ExitCode::from(exit.code())
        }
    }
}

/// The MCP server Claude Code names to a `headersHelper` (`CLAUDE_CODE_MCP_SERVER_NAME`), when
/// it is an `[mcp.NAME]` of the config: only a server of the config's own gets its source's
/// token that way.
fn mcp_server_from_env() -> Result<String, Failure> {
    use credd_proto::claude_code::MCP_SERVER_ENV;
    let name = std::env::var(MCP_SERVER_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "name the SOURCE (or run as an MCP server's headersHelper, which sets {MCP_SERVER_ENV})"
            ))
        })?;
    let status = match ask(Request::Status, true)? {
        Response::Status(status) => status,
        other => return Err(unexpected(other)),
    };
    if setup::mcp::route_in(status, &name).is_none() {
        return Err(Failure::new(
            Exit::UnknownSource,
            format!(
                "{MCP_SERVER_ENV} names `{}`, and the config has no such [mcp.NAME]; name the SOURCE",
                name.escape_debug()
            ),
        ));
    }
    Ok(name)
}

fn run(command: Command) -> Result<String, Failure> {
    match command {
        Command::Get {
            source,
            format,
            min_valid,
            audience,
            header,
            header_prefix,
        } => {
            let source = match source {
                Some(source) => source,
                None => mcp_server_from_env()?,
            };
            if format == output::Format::BedrockApiKey {
                return match ask(
                    Request::BedrockApiKey {
                        source,
                        lifetime_secs: None,
                    },
                    true,
                )? {
                    Response::Credential(credential) => output::render(
                        &credential,
                        output::Format::Token,
                        &output::Header::default(),
                    )
                    .map_err(Failure::usage),
                    other => Err(unexpected(other)),
                };
            }
            let request = Request::Get {
                source: source.clone(),
                min_valid_secs: min_valid.map(|d| d.as_secs()),
                caller: caller::detect(),
                audience,
            };
            let answer = match ask(request.clone(), true) {
                // An inference helper asked while a person is there may sign them in.
                Err(Failure {
                    exit: Exit::NeedsLogin,
                    ..
                }) if format == output::Format::HelperJson
                    && caller::helper_context().as_deref() == Some("interactive") =>
                {
                    login::run_beside_an_answer(source)?;
                    ask(request, true)?
                }
                answer => answer?,
            };
            let header = output::Header {
                name: header,
                prefix: header_prefix,
            };
            match answer {
                Response::Credential(credential) => {
                    // Run by Claude Code (as its apiKeyHelper, or by a command its agent
                    // runs): what it would refuse from the helper is said on stderr, not left
                    // to its own "invalid API key". The token is printed all the same.
                    if format == output::Format::Token
                        && std::env::var_os(credd_proto::claude_code::ENTRYPOINT_ENV).is_some()
                        && let credd_proto::CredentialSecret::Token { token } = &credential.secret
                        && let Some(refusal) = output::api_key_helper_refusal(token.expose())
                    {
                        eprintln!("credd: warning: source `{}`: {refusal}", credential.source);
                    }
                    output::render(&credential, format, &header).map_err(Failure::usage)
                }
                other => Err(unexpected(other)),
            }
        }
        Command::Init { yes } => init::run(yes),
        Command::Refresh { source } => done(ask(Request::Refresh { source }, true)?),
        Command::Logout { source } => done(ask(Request::Logout { source }, true)?),
        Command::Login { source } => login::run(source),
        Command::Status { short: true, .. } => Ok(status::short_line()),
        Command::Status { json, .. } => match ask(Request::Status, true)? {
            Response::Status(report) if json => Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&report).expect("status serializes")
            )),
            Response::Status(report) => Ok(status::render(&report)),
            other => Err(unexpected(other)),
        },
        Command::Setup {
            target: SetupTarget::ClaudeCode(args),
        } => setup::command(args),
        Command::Setup {
            target: SetupTarget::Mcp { name, dry_run },
        } => setup::mcp::command(&name, dry_run),
        Command::Setup {
            target:
                SetupTarget::Devcontainer {
                    forward,
                    dir,
                    dry_run,
                },
        } => forwards::container::devcontainer(
            forward.as_deref(),
            &forwards::container::project_dir(dir),
            dry_run,
        ),
        // Run by `main`, for its exit code.
        Command::Ssh { .. } => Err(Failure::usage("credd ssh runs on its own")),
        Command::SshConfig {
            forward,
            host,
            remote_home,
        } => forwards::ssh::config(forward.as_deref(), &host, remote_home.as_deref()),
        Command::ContainerArgs { forward, no_client } => {
            forwards::container::args(forward.as_deref(), !no_client)
        }
        Command::Doctor { json } => doctor::command(json),
        Command::Service { action } => service::run(action).map_err(Failure::usage),
        Command::McpHeaders { name } => setup::mcp::headers(&name),
        Command::Start => match ask(Request::Hello, true)? {
            Response::Hello(_) => Ok(String::new()),
            other => Err(unexpected(other)),
        },
        Command::Env { sources, shell } => match ask(Request::Status, true)? {
            Response::Status(report) => shell_env::render(
                &report,
                &sources,
                shell.unwrap_or_else(shell_env::Shell::from_env),
            )
            .map_err(Failure::usage),
            other => Err(unexpected(other)),
        },
        Command::Stop => match ask(Request::Stop, false) {
            Err(Failure {
                exit: Exit::Unreachable,
                ..
            }) => Ok("no credd-daemon is running\n".into()),
            other => done(other?),
        },
    }
}

/// Sends a request; daemon-reported errors become failures with their exit code.
pub(crate) fn ask(request: Request, autostart: bool) -> Result<Response, Failure> {
    match connection::request(request, autostart) {
        Ok(Response::Error(e)) => Err(Failure::from_daemon(e.kind, e.message)),
        Ok(response) => Ok(response),
        Err(e) => Err(Failure::new(e.exit(), e.to_string())),
    }
}

pub(crate) fn done(response: Response) -> Result<String, Failure> {
    match response {
        Response::Done { message } => Ok(format!("{message}\n")),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn unexpected(response: Response) -> Failure {
    let what = match response {
        Response::Hello(_) => "hello",
        Response::Credential(_) => "credential",
        Response::Status(_) => "status",
        Response::Done { .. } => "done",
        Response::LoginPrompt(_) => "login prompt",
        Response::Error(_) => "error",
    };
    Failure::from_daemon(
        ErrorKind::Internal,
        format!("credd-daemon gave an unexpected `{what}` answer; run `credd stop` and retry"),
    )
}
