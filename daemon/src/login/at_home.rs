//! A login asked for through a forward (a container's or a remote's `credd login`, and so its
//! Claude Code's `awsAuthRefresh` and `gcpAuthRefresh`) happens here, where the person and
//! the browser are: a device login's or a browser sign-in's page opens on this machine's
//! desktop (once, however many callers wait on it, local or forwarded), while its address (and
//! a device login's code) also goes back to where it was asked. An MFA code is typed where it
//! was asked. A login that runs the cloud's own tool (gcloud, az, aws login) needs this
//! machine's terminal: the caller is told to run it here, and the desktop says so too.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use credd_proto::login_lock::LoginLock;
use credd_proto::{ErrorKind, LoginPrompt, Response, login_tools};

use super::Logins;
use crate::cache::Slot;

/// The answer for a forwarded caller to the login `prompt` of source `name`.
pub fn at_home(
    socket: &Path,
    name: &str,
    slot: Arc<Slot>,
    logins: &Logins,
    prompt: LoginPrompt,
) -> Response {
    match prompt {
        LoginPrompt::Device {
            ref verification_uri,
            ..
        } => {
            open_page_once(socket, verification_uri, slot, logins.clone());
            Response::LoginPrompt(prompt)
        }
        LoginPrompt::Browser {
            url,
            expires_in_secs,
        } => {
            open_page_once(socket, &url, slot, logins.clone());
            // The other side learns where, not the sign-in's state and PKCE challenge, with
            // which a code could be slipped in: the page opens here.
            let (page, _) = url.split_once('?').unwrap_or((&url, ""));
            Response::LoginPrompt(LoginPrompt::Browser {
                url: page.to_string(),
                expires_in_secs,
            })
        }
        LoginPrompt::MfaCode { .. } => Response::LoginPrompt(prompt),
        LoginPrompt::Command { command, .. } => {
            let tool = command.first().cloned().unwrap_or_default();
            if first_ask_in_a_while(name, slot.now()) {
                crate::notify::alert(
                    format!("credd: `{name}` needs a login"),
                    format!("A container or remote asked for it: run `credd login {name}` here."),
                );
            }
            Response::error(
                ErrorKind::NeedsLogin,
                format!(
                    "`{name}` signs in with `{tool}` on the machine whose credd serves this forward; run `credd login {name}` there, then retry"
                ),
            )
        }
    }
}

/// How often the desktop is told that a forward asks for a login it cannot run.
const ALERT_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Whether source `name`'s forwarded login was not asked for within [`ALERT_EVERY`] (noting
/// it now): the other side may ask in a loop, the desktop hears of it once.
fn first_ask_in_a_while(name: &str, now: std::time::SystemTime) -> bool {
    static ASKED: std::sync::Mutex<BTreeMap<String, std::time::SystemTime>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut asked = ASKED.lock().unwrap_or_else(|p| p.into_inner());
    let recent = asked
        .get(name)
        .is_some_and(|at| now.duration_since(*at).unwrap_or_default() < ALERT_EVERY);
    if !recent {
        asked.insert(name.to_string(), now);
    }
    !recent
}

/// Opens the login's page (a device code's, a browser sign-in's) in this machine's browser,
/// unless someone (a local `credd login`) already holds its lock; the lock is held until the
/// login ends.
fn open_page_once(socket: &Path, uri: &String, slot: Arc<Slot>, logins: Logins) {
    if !login_tools::openable_page(uri) || std::env::var_os("CREDD_NO_BROWSER").is_some() {
        return;
    }
    let lock = LoginLock::open(socket, uri);
    if lock.as_ref().is_some_and(|lock| !lock.take()) {
        return;
    }
    tracing::info!(source = %slot.name(), "opening a forwarded login's page in the browser");
    if let Err(e) =
        login_tools::open_page(uri).map(|mut child| std::thread::spawn(move || child.wait()))
    {
        tracing::warn!("cannot open the login's page in the browser: {e}");
    }
    tokio::spawn(async move {
        let _ = logins.wait(slot).await;
        if let Some(lock) = lock {
            lock.remove();
        }
    });
}
