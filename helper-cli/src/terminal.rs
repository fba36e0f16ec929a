//! Reading a code from the person at the terminal: never from stdin, which belongs to whoever
//! ran us (Claude Code leaves it open forever), but from the controlling terminal itself.

use std::io::{BufRead, BufReader, Write};

/// Asks `prompt` on the controlling terminal and returns the line typed, trimmed.
pub fn read_code(prompt: &str) -> Result<String, String> {
    let tty_path = if cfg!(windows) { "CONIN$" } else { "/dev/tty" };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty_path)
        .map_err(|_| "there is no terminal to ask on".to_string())?;
    let mut writer = &tty;
    writer
        .write_all(prompt.as_bytes())
        .and_then(|()| writer.flush())
        .map_err(|e| format!("writing to the terminal failed: {e}"))?;
    let mut line = String::new();
    BufReader::new(&tty)
        .read_line(&mut line)
        .map_err(|e| format!("reading the terminal failed: {e}"))?;
    let code = line.trim().to_string();
    if code.is_empty() {
        return Err("no code was typed".into());
    }
    Ok(code)
}
