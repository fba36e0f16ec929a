//! A forward in a container: `credd container-args` prints what `docker run` or `podman run`
//! needs (the forward's directory mounted read-only at [`CONTAINER_DIR`], the client binary,
//! and the environment, with the host user's uid for the client's trust in the mount), and
//! `credd setup devcontainer` merges the same into a project's `.devcontainer/devcontainer.json`,
//! with the care `setup` takes of settings files (no symbolic links, a backup, the change
//! shown).
//!
//! Nothing is copied in: the container holds sockets and an AWS config of command lines, and
//! every credential it gets comes through them, from the daemon on the host.

use std::path::{Path, PathBuf};

use credd_proto::ForwardStatus;
use credd_proto::forward::CONTAINER_DIR;
use serde_json::{Map, Value, json};

use crate::setup::settings_file::{diff, read_settings, refuse_links, write_settings};
use crate::{Exit, Failure};

/// Where the client binary is mounted inside.
const CLIENT_IN_CONTAINER: &str = "/usr/local/bin/credd";

/// `credd container-args`: the arguments, on one line, for `docker run $(credd container-args)`.
pub fn args(forward: Option<&str>, client: bool) -> Result<String, Failure> {
    let (forward, proxied) = super::pick(forward)?;
    let mut words = Vec::new();
    let mut mount = |source: &str, target: &str, options: &str| {
        words.push("-v".to_string());
        words.push(format!("{source}:{target}{options}"));
    };
    // Read-only: the container connects to the sockets, and changes nothing the host (or a
    // remote that `credd ssh` carries the forward to) reads there.
    mount(&forward.dir, CONTAINER_DIR, ":ro");
    if client {
        mount(&this_client()?, CLIENT_IN_CONTAINER, ":ro");
    }
    let host_user = credd_proto::paths::effective_uid().to_string();
    for (name, value) in super::environment(&forward, proxied, CONTAINER_DIR)
        .into_iter()
        .chain([(credd_proto::forward::FORWARD_UID_ENV, host_user)])
    {
        words.push("-e".to_string());
        words.push(format!("{name}={value}"));
    }
    // SELinux would deny the container the host's sockets; labelling them (`:z`) would
    // relabel the host's runtime directory instead.
    if Path::new("/sys/fs/selinux/enforce").exists() {
        words.push("--security-opt".into());
        words.push("label=disable".into());
    }
    if let Some(word) = words.iter().find(|w| w.chars().any(char::is_whitespace)) {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "`{word}` holds a space, which `$(credd container-args)` would split; set CREDD_SOCKET to a path without one"
            ),
        ));
    }
    Ok(format!("{}\n", words.join(" ")))
}

/// This `credd`, to mount into a container.
fn this_client() -> Result<String, Failure> {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map(|p| p.display().to_string())
        .map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!("cannot tell where this credd is installed: {e}"),
            )
        })
}

/// `credd setup devcontainer FORWARD [DIR]`.
pub fn devcontainer(
    forward: Option<&str>,
    project: &Path,
    dry_run: bool,
) -> Result<String, Failure> {
    let (forward, proxied) = super::pick(forward)?;
    let path = project.join(".devcontainer").join("devcontainer.json");
    let fail = |e: String| Failure::new(Exit::Usage, e);
    refuse_links(&path, true).map_err(fail)?;
    let old = read_settings(&path).map_err(|e| {
        fail(if e.contains("not valid JSON") {
            format!("{e}; credd reads devcontainer.json as plain JSON (comments and trailing commas are refused): add the settings `credd setup devcontainer --dry-run` shows by hand")
        } else {
            e
        })
    })?;
    let new = with_forward(
        old.clone(),
        &forward,
        proxied,
        &source_dir(&forward),
        &this_client()?,
    );
    let changes = diff(&old, &new);
    let shown = path.display();
    if changes.is_empty() {
        return Ok(format!(
            "{shown} already has these settings; nothing to do\n"
        ));
    }
    let mut out = format!(
        "{} {shown}:\n",
        if dry_run { "Would change" } else { "Changed" }
    );
    for line in changes {
        out += &format!("  {line}\n");
    }
    if dry_run {
        return Ok(out);
    }
    match write_settings(&path, &new).map_err(fail)? {
        Some(backup) => {
            out += &format!(
                "The previous file is in {}; restore it to undo.\n",
                backup.display()
            )
        }
        None => out += &format!("Delete {shown} to undo.\n"),
    }
    out += "Rebuild the container for the mounts to take effect.\n";
    Ok(out)
}

/// Where the devcontainer finds the forward's directory on the host: through
/// `${localEnv:XDG_RUNTIME_DIR}` when it is under the runtime directory, so the committed file
/// names no user's path.
fn source_dir(forward: &ForwardStatus) -> String {
    match std::env::var("XDG_RUNTIME_DIR") {
        Ok(runtime) if !runtime.is_empty() => {
            match Path::new(&forward.dir).strip_prefix(&runtime) {
                Ok(rest) => format!("${{localEnv:XDG_RUNTIME_DIR}}/{}", rest.display()),
                Err(_) => forward.dir.clone(),
            }
        }
        _ => forward.dir.clone(),
    }
}

/// `config` with the forward's mounts and environment merged in: credd's mounts (found by
/// their targets) replaced, every other kept.
fn with_forward(
    mut config: Map<String, Value>,
    forward: &ForwardStatus,
    proxied: bool,
    source: &str,
    client: &str,
) -> Map<String, Value> {
    let ours = [
        format!("source={source},target={CONTAINER_DIR},type=bind,readonly"),
        format!("source={client},target={CLIENT_IN_CONTAINER},type=bind,readonly"),
    ];
    let targets = [
        format!("target={CONTAINER_DIR},"),
        format!("target={CLIENT_IN_CONTAINER},"),
    ];
    let mut mounts: Vec<Value> = config
        .get("mounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            !m.as_str()
                .is_some_and(|m| targets.iter().any(|t| m.contains(t.as_str())))
        })
        .collect();
    mounts.extend(ours.map(Value::String));
    config.insert("mounts".into(), Value::Array(mounts));
    let env = config.entry("containerEnv").or_insert_with(|| json!({}));
    if !env.is_object() {
        *env = json!({});
    }
    let env = env.as_object_mut().expect("made an object above");
    for (name, value) in super::environment(forward, proxied, CONTAINER_DIR) {
        env.insert(name.to_string(), Value::String(value));
    }
    config
}

/// The project directory `setup devcontainer` writes into: the one given, or this one.
pub fn project_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forward_is_merged_into_a_devcontainer_keeping_the_rest() {
        let forward: ForwardStatus = serde_json::from_value(json!({
            "name": "dev", "dir": "/run/user/1000/credd/forwards/dev",
            "socket": "", "proxy_socket": "", "sources": ["bedrock"], "connected": 0,
        }))
        .unwrap();
        let old = json!({
            "image": "debian",
            "mounts": ["source=/data,target=/data,type=bind", "source=/old,target=/run/credd,type=bind"],
            "containerEnv": {"KEEP": "1"},
        });
        let new = with_forward(
            old.as_object().unwrap().clone(),
            &forward,
            true,
            "${localEnv:XDG_RUNTIME_DIR}/credd/forwards/dev",
            "/usr/bin/credd",
        );
        assert_eq!(new["image"], "debian");
        assert_eq!(new["containerEnv"]["KEEP"], "1");
        assert_eq!(new["containerEnv"]["CREDD_SOCKET"], "/run/credd/credd.sock");
        let mounts = new["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 3, "{mounts:?}");
        assert!(mounts.iter().all(|m| !m.as_str().unwrap().contains("/old")));
        // Merging again changes nothing.
        let again = with_forward(
            new.clone(),
            &forward,
            true,
            "${localEnv:XDG_RUNTIME_DIR}/credd/forwards/dev",
            "/usr/bin/credd",
        );
        assert_eq!(again, new);
    }
}
