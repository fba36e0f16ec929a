//! `credd service install|uninstall|status`: run credd-daemon as a systemd user service with
//! socket activation (Linux) or a launchd agent (macOS), instead of starting it on first use.
//!
//! The unit files are the ones in `packaging/`, with the path of the installed credd-daemon
//! filled in. When the service manager is running, it is told to enable and start them;
//! otherwise credd says what to run. Every action prints how to undo it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SOCKET_UNIT: &str = include_str!("../../packaging/systemd/credd.socket");
const SERVICE_UNIT: &str = include_str!("../../packaging/systemd/credd.service");
const LAUNCHD_PLIST: &str = include_str!("../../packaging/launchd/dev.credd.daemon.plist");
/// The daemon path in the committed templates, replaced by the real one.
const TEMPLATE_SERVICE_PATH: &str = "%h/.cargo/bin/credd-daemon";
const TEMPLATE_PLIST_PATH: &str = "/usr/local/bin/credd-daemon";
/// The home directory in the template's log path.
const TEMPLATE_PLIST_HOME: &str = "/Users/you";
const LAUNCHD_LABEL: &str = "dev.credd.daemon";

pub use crate::cli::ServiceAction as Action;

fn home() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| "HOME is not set".to_string())
}

fn systemd_dir() -> Result<PathBuf, String> {
    Ok(
        match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(config) => PathBuf::from(config).join("systemd/user"),
            None => home()?.join(".config/systemd/user"),
        },
    )
}

/// Runs a service-manager command; `Err` carries its complaint.
fn manager(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().next().unwrap_or("failed").trim().to_string())
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn run(action: Action) -> Result<String, String> {
    if cfg!(target_os = "macos") {
        launchd(action)
    } else {
        systemd(action)
    }
}

fn daemon_path() -> Result<String, String> {
    let daemon = crate::connection::daemon_program();
    let daemon = daemon.canonicalize().map_err(|_| {
        format!(
            "cannot find credd-daemon (looked for {}); install it next to credd",
            daemon.display()
        )
    })?;
    Ok(daemon.display().to_string())
}

/// The TCP ports of the config's endpoints and proxies, as the daemon reports them (with what
/// each serves), and what to say of them.
fn tcp_ports() -> (Vec<(String, u16)>, &'static str) {
    let report = match crate::connection::request(credd_proto::Request::Status, true) {
        Ok(credd_proto::Response::Status(report)) => report,
        _ => {
            return (
                Vec::new(),
                "credd-daemon could not be asked for the config's TCP ports, so systemd holds none of them; run this again when it answers\n",
            );
        }
    };
    let mut ports: Vec<(String, u16)> = report
        .sources
        .iter()
        .flat_map(|source| {
            source.endpoints.iter().filter_map(move |endpoint| {
                let port = endpoint
                    .url
                    .strip_prefix("http://127.0.0.1:")?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()?;
                Some((format!("the {} of `{}`", endpoint.kind, source.name), port))
            })
        })
        .collect();
    ports.sort_by_key(|(_, port)| *port);
    ports.dedup_by_key(|(_, port)| *port);
    let note = if ports.is_empty() {
        ""
    } else {
        "after changing a port in the config, run `credd service install` again\n"
    };
    (ports, note)
}

/// The socket unit, holding `ports` on 127.0.0.1 besides credd's Unix sockets.
fn socket_unit(ports: &[(String, u16)]) -> String {
    let tcp: String = ports
        .iter()
        .map(|(_, port)| format!("ListenStream=127.0.0.1:{port}\n"))
        .collect();
    SOCKET_UNIT.replacen("SocketMode=", &format!("{tcp}SocketMode="), 1)
}

fn systemd(action: Action) -> Result<String, String> {
    let dir = systemd_dir()?;
    let socket = dir.join("credd.socket");
    let service = dir.join("credd.service");
    let mut out = String::new();
    match action {
        Action::Install => {
            let daemon = daemon_path()?;
            let (ports, asked) = tcp_ports();
            write(&socket, &socket_unit(&ports))?;
            write(
                &service,
                &SERVICE_UNIT.replace(TEMPLATE_SERVICE_PATH, &daemon),
            )?;
            out += &format!(
                "wrote {}\nwrote {} (runs {daemon})\n",
                socket.display(),
                service.display()
            );
            for (what, port) in &ports {
                out += &format!(
                    "systemd holds 127.0.0.1:{port} ({what}) from login on, so nobody else can take it while credd is down\n"
                );
            }
            out += asked;
            let enabled = manager("systemctl", &["--user", "daemon-reload"]).and_then(|()| {
                // A daemon started on first use holds the socket; hand it over to systemd.
                let _ = crate::connection::request(credd_proto::Request::Stop, false);
                manager("systemctl", &["--user", "enable", "--now", "credd.socket"])
            });
            match enabled {
                Ok(()) => {
                    out += "enabled and started credd.socket: credd-daemon starts on the first request\n"
                }
                Err(why) => {
                    out += &format!(
                        "the systemd user manager did not take them ({why}); when it runs, start them with:\n  systemctl --user daemon-reload && systemctl --user enable --now credd.socket\n"
                    )
                }
            }
            out += "undo with: credd service uninstall\n";
        }
        Action::Uninstall => {
            let _ = manager(
                "systemctl",
                &[
                    "--user",
                    "disable",
                    "--now",
                    "credd.socket",
                    "credd.service",
                ],
            );
            for path in [&socket, &service] {
                match std::fs::remove_file(path) {
                    Ok(()) => out += &format!("removed {}\n", path.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
                }
            }
            let _ = manager("systemctl", &["--user", "daemon-reload"]);
            out += "credd will start credd-daemon on first use again\n";
        }
        Action::Status => {
            if !socket.exists() {
                return Ok(format!(
                    "not installed ({} is missing); credd starts credd-daemon on first use\n",
                    socket.display()
                ));
            }
            out += &format!(
                "installed: {} and {}\n",
                socket.display(),
                service.display()
            );
            out += &match manager(
                "systemctl",
                &["--user", "is-active", "--quiet", "credd.socket"],
            ) {
                Ok(()) => "credd.socket is active\n".to_string(),
                Err(_) => {
                    "credd.socket is not active (systemctl --user enable --now credd.socket)\n"
                        .to_string()
                }
            };
        }
    }
    Ok(out)
}

/// The launchd agent for `daemon`, logging under `home`'s `Library/Logs`.
fn render_plist(daemon: &str, home: &std::path::Path) -> String {
    // The home first: the template names it only in the log path, while the daemon's path may
    // begin like the placeholder (`/Users/young/.cargo/bin`).
    LAUNCHD_PLIST
        .replace(TEMPLATE_PLIST_HOME, &xml_text(&home.display().to_string()))
        .replace(TEMPLATE_PLIST_PATH, &xml_text(daemon))
}

/// `text` as XML character data.
fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn launchd(action: Action) -> Result<String, String> {
    let plist = home()?.join(format!("Library/LaunchAgents/{LAUNCHD_LABEL}.plist"));
    // SAFETY: getuid has no preconditions.
    #[cfg(unix)]
    let domain = format!("gui/{}", unsafe { libc::getuid() });
    #[cfg(not(unix))]
    let domain = String::new();
    let mut out = String::new();
    match action {
        Action::Install => {
            let daemon = daemon_path()?;
            write(&plist, &render_plist(&daemon, &home()?))?;
            out += &format!("wrote {} (runs {daemon})\n", plist.display());
            let _ = crate::connection::request(credd_proto::Request::Stop, false);
            match manager(
                "launchctl",
                &["bootstrap", &domain, &plist.display().to_string()],
            ) {
                Ok(()) => out += "loaded it: credd-daemon runs at login\n",
                Err(why) => {
                    out += &format!(
                        "launchctl did not load it ({why}); run: launchctl bootstrap {domain} {}\n",
                        plist.display()
                    )
                }
            }
            out += "undo with: credd service uninstall\n";
        }
        Action::Uninstall => {
            let _ = manager(
                "launchctl",
                &["bootout", &format!("{domain}/{LAUNCHD_LABEL}")],
            );
            if std::fs::remove_file(&plist).is_ok() {
                out += &format!("removed {}\n", plist.display());
            }
            out += "credd will start credd-daemon on first use again\n";
        }
        Action::Status => {
            out += &if plist.exists() {
                format!("installed: {}\n", plist.display())
            } else {
                format!("not installed ({} is missing)\n", plist.display())
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_unit_holds_the_configs_tcp_ports() {
        let unit = socket_unit(&[("the proxy-port of `gw`".into(), 47123)]);
        let listens: Vec<&str> = unit
            .lines()
            .filter(|l| l.starts_with("ListenStream="))
            .collect();
        assert_eq!(
            listens,
            [
                "ListenStream=%t/credd/credd.sock",
                "ListenStream=%t/credd/credd.sock.proxy",
                "ListenStream=127.0.0.1:47123",
            ]
        );
        assert_eq!(socket_unit(&[]), SOCKET_UNIT);
    }

    #[test]
    fn the_launchd_agent_logs_under_the_users_library() {
        let plist = render_plist(
            "/opt/credd/bin/credd-daemon",
            std::path::Path::new("/Users/ada"),
        );
        assert!(plist.contains("<string>/opt/credd/bin/credd-daemon</string>"));
        assert!(plist.contains("<string>/Users/ada/Library/Logs/credd-daemon.log</string>"));
        assert!(!plist.contains("/tmp"), "{plist}");
        assert!(!plist.contains(TEMPLATE_PLIST_HOME));
        // A user whose name starts like the template's, and a path with XML in it.
        let plist = render_plist(
            "/Users/young/.cargo/bin/credd-daemon",
            std::path::Path::new("/Users/young"),
        );
        assert!(plist.contains("<string>/Users/young/.cargo/bin/credd-daemon</string>"));
        assert!(plist.contains("<string>/Users/young/Library/Logs/credd-daemon.log</string>"));
        let plist = render_plist("/opt/R&D/credd-daemon", std::path::Path::new("/Users/a<b"));
        assert!(plist.contains("/opt/R&amp;D/credd-daemon"), "{plist}");
        assert!(plist.contains("/Users/a&lt;b/Library"), "{plist}");
    }
}
