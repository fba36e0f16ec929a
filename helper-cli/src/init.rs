//! `credd init`: a config from the sign-ins this machine already has (see [`discovery`]). On
//! a terminal it asks which to use; with `--yes` it takes them all. It writes a commented
//! config with no secret in it, waits for the daemon to read it, and offers `credd setup
//! claude-code` for the provider Claude Code is set up for. Run again, it changes nothing that
//! is already right; a config edited by hand is replaced only after its diff is shown and the
//! person says yes (never with `--yes` alone), its old text kept under credd's backups.

use std::path::Path;
use std::time::{Duration, Instant};

use credd_proto::{Request, Response, StatusReport};

use crate::discovery::{self, Found};
use crate::{Exit, Failure, ask, terminal, unexpected};

pub fn run(yes: bool) -> Result<String, Failure> {
    if let Some(forwarded) = credd_proto::forward::Forwarded::from_env() {
        return Err(Failure::usage(format!(
            "this credd uses the forward `{}` of credd on {}; run `credd init` there, where its config is",
            forwarded.name, forwarded.host
        )));
    }
    let report = status()?;
    let config = Path::new(&report.config_path).to_path_buf();
    // Not through a link (a dotfiles repository's, say): the file would be replaced by one.
    crate::setup::settings_file::refuse_links(&config, false).map_err(Failure::usage)?;
    let found = discovery::discover();
    let mut out = String::new();
    for (what, problem) in &found.problems {
        out += &format!("Not used: {what} {problem}.\n");
    }
    if found.found.is_empty() {
        return Ok(out
            + "Found no sign-ins to use (AWS profiles, a gcloud login, az login). Add a [sources.NAME] table to "
            + &format!(
                "{} by hand: docs/sources.md has one of each kind.\n",
                config.display()
            ));
    }
    let chosen = choose(&found.found, yes)?;
    let text = discovery::config_text(&chosen);
    match std::fs::read_to_string(&config) {
        Ok(old) if old == text => {
            out += &format!(
                "{} already uses these sign-ins; nothing to do.\n",
                config.display()
            );
        }
        Ok(old) => {
            let diff = line_diff(&old, &text);
            let question = format!(
                "{diff}Replace {} with this (its old text is kept)?",
                config.display()
            );
            let answer = if yes {
                None
            } else {
                terminal::confirm(&question).map_err(Failure::usage)?
            };
            match (yes, answer) {
                (false, Some(true)) => {
                    let backup =
                        crate::setup::settings_file::backup_path(&config, true).map_err(|e| {
                            Failure::usage(format!("cannot back up {}: {e}", config.display()))
                        })?;
                    write(&backup, &old)?;
                    write(&config, &text)?;
                    out += &format!(
                        "Wrote {} (the old one is in {}).\n",
                        config.display(),
                        backup.display()
                    );
                }
                (false, Some(false)) => return Ok(out + "Left the config as it is.\n"),
                _ => {
                    return Err(Failure::new(
                        Exit::Usage,
                        format!(
                            "{} was edited since; credd init replaces it only when you say so on a terminal. What would change:\n{diff}",
                            config.display()
                        ),
                    ));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = config.parent() {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(dir)
                    .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
            }
            write(&config, &text)?;
            out += &format!(
                "Wrote {} with {} source{}.\n",
                config.display(),
                chosen.len(),
                if chosen.len() == 1 { "" } else { "s" }
            );
        }
        Err(e) => {
            return Err(Failure::usage(format!(
                "cannot read {}: {e}",
                config.display()
            )));
        }
    }
    let names: Vec<&str> = chosen.iter().map(|f| f.name.as_str()).collect();
    // The daemon watches its config, but not a directory that did not exist when it started.
    reload(report.pid);
    wait_for_reload(&names)?;
    out += &format!(
        "credd serves: {}. Try `credd get {}`.\n",
        names.join(", "),
        names[0]
    );
    if let Some((provider, source)) = &found.claude {
        match source {
            Some(source) if names.contains(&source.as_str()) => {
                let command = format!("credd setup claude-code {source}");
                out += &format!(
                    "Claude Code is set up for {provider}: `{command}` has it get credentials from credd.\n"
                );
                if !yes
                    && terminal::confirm(&format!("Run `{command}` now?"))
                        .ok()
                        .flatten()
                        == Some(true)
                {
                    print!("{out}");
                    out.clear();
                    out += &crate::setup::command(crate::cli::ClaudeCode::for_source(source))?;
                }
            }
            _ => {
                out += &format!(
                    "Claude Code is set up for {provider}, but none of the sources chosen serves it.\n"
                )
            }
        }
    }
    Ok(out)
}

fn status() -> Result<StatusReport, Failure> {
    match ask(Request::Status, true)? {
        Response::Status(report) => Ok(report),
        other => Err(unexpected(other)),
    }
}

/// The sign-ins to use: all with `yes`, else the person's pick on the terminal.
fn choose(found: &[Found], yes: bool) -> Result<Vec<&Found>, Failure> {
    if yes {
        return Ok(found.iter().collect());
    }
    let mut question = String::from("Found these sign-ins:\n");
    for (i, f) in found.iter().enumerate() {
        question += &format!("  {}. {} (as the source `{}`)\n", i + 1, f.what, f.name);
    }
    question += "Use which? (numbers separated by spaces; Enter for all) ";
    let Some(answer) = terminal::ask_line(&question).map_err(Failure::usage)? else {
        return Err(Failure::usage(
            "credd init asks which sign-ins to use, and there is no terminal to ask on; run `credd init --yes` to use every one found",
        ));
    };
    if answer.trim().is_empty() {
        return Ok(found.iter().collect());
    }
    let mut chosen: Vec<&Found> = answer
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| found.get(i))
                .ok_or_else(|| Failure::usage(format!("`{w}` is not one of the numbers shown")))
        })
        .collect::<Result<_, _>>()?;
    chosen.sort_by_key(|f| found.iter().position(|g| g.name == f.name));
    chosen.dedup_by_key(|f| f.name.clone());
    if chosen.is_empty() {
        return Err(Failure::usage("no sign-in chosen; nothing written"));
    }
    Ok(chosen)
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    credd_proto::private_file::replace(path, text.as_bytes())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

/// Asks the daemon (`pid`, this user's) to read its config again.
fn reload(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 1
    {
        // SAFETY: kill has no memory effects; the daemon reloads on SIGHUP.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Waits until the daemon serves `names` (it reloads a config it sees change).
fn wait_for_reload(names: &[&str]) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = status()?;
        if let Some(error) = &report.config_error {
            return Err(Failure::new(
                Exit::Misconfigured,
                format!("credd-daemon refused the config: {error}"),
            ));
        }
        if names
            .iter()
            .all(|n| report.sources.iter().any(|s| s.name == *n))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failure::new(
                Exit::Unreachable,
                "credd-daemon did not read the new config within 10s; run `credd status`",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines only `old` has (`-`) and only `new` has (`+`), in order.
fn line_diff(old: &str, new: &str) -> String {
    let mut out = String::new();
    for line in old.lines().filter(|l| !new.lines().any(|n| n == *l)) {
        out += &format!("  - {line}\n");
    }
    for line in new.lines().filter(|l| !old.lines().any(|o| o == *l)) {
        out += &format!("  + {line}\n");
    }
    out
}
