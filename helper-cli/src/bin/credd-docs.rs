//! Writes credd's man page, shell completions and `--help` snapshots from the one CLI
//! definition (`src/cli.rs`), into a directory laid out like `packaging/`:
//! `man/credd.1`, `completions/{credd.bash,_credd,credd.fish}`, `help/*.txt`.
//! The end-to-end tests regenerate them and fail if the committed copies differ.

#[path = "../cli.rs"]
#[allow(dead_code)]
mod cli;

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "packaging".into()),
    );
    let mut cmd = cli::Cli::command();
    cmd.build();

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "credd", &completions)?;
    }

    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(man.join("credd.1"), page)?;

    let help = out.join("help");
    std::fs::create_dir_all(&help)?;
    write_help(&help, "credd", &mut cmd)?;
    Ok(())
}

/// What `credd ARGS --help` prints, for the command and each subcommand, one file each
/// (`credd-setup-claude-code.txt`); rendered exactly as the binary renders it.
fn write_help(dir: &Path, name: &str, cmd: &mut clap::Command) -> std::io::Result<()> {
    let mut paths = vec![Vec::<String>::new()];
    collect_paths(cmd, &mut Vec::new(), &mut paths);
    for path in paths {
        let mut args = vec![name.to_string()];
        args.extend(path.iter().cloned());
        args.push("--help".into());
        let text = match cli::Cli::command().try_get_matches_from(&args) {
            Err(e) => e.render().to_string(),
            Ok(_) => unreachable!("--help always ends parsing"),
        };
        let file = std::iter::once(name.to_string())
            .chain(path)
            .collect::<Vec<_>>()
            .join("-");
        std::fs::write(dir.join(format!("{file}.txt")), text)?;
    }
    Ok(())
}

fn collect_paths(cmd: &clap::Command, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        prefix.push(sub.get_name().to_string());
        out.push(prefix.clone());
        collect_paths(sub, prefix, out);
        prefix.pop();
    }
}
