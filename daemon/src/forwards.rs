//! Serving the config's forwards: for each `[forwards.NAME]`, a directory beside the main
//! socket (`forwards/NAME/`) holding a protocol socket and a proxy socket scoped to its
//! sources (see `scope`), and an AWS config file naming them. A container mounts that
//! directory; `credd ssh` carries its sockets to a remote.
//!
//! The directory is this user's and closed to others (0700); when the forward's allow-list
//! names other users (a rootful container's root, a devcontainer's user), it is 0711 and its
//! sockets 0666, so that those users can reach them where it is mounted, and the daemon checks
//! every peer against the list. The directory above it stays 0700: on this machine nobody else
//! reaches a forward's sockets through the runtime directory.
//!
//! A reload starts new forwards, restarts changed ones and removes the sockets of the ones
//! gone; a forward that cannot listen says why in `status` and leaves the others serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use credd_proto::forward;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::SourceName;
use crate::dispatch::Dispatcher;
use crate::registry::{ForwardPlan, Registry};
use crate::scope::{Forward, ForwardTable};

/// A forward as it runs; its sockets stop and go when it is dropped, and so do the
/// connections open on them (a reload that takes a source or a uid off the forward cuts them).
struct Running {
    plan: ForwardPlan,
    forward: Arc<Forward>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// What every forward's connections share: the other sides together hold at most a quarter of
/// the daemon's connections (and of the proxy's streams), so that a container or a remote
/// that opens many cannot take the descriptors this user's own callers need.
struct Caps {
    connections: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
        for file in [
            forward::SOCKET_FILE,
            forward::PROXY_SOCKET_FILE,
            forward::AWS_CONFIG_FILE,
        ] {
            let _ = std::fs::remove_file(self.forward.dir.join(file));
        }
        let _ = std::fs::remove_dir(&self.forward.dir);
    }
}

/// Serves the config's forwards until `shutdown`, following reloads; removes their sockets at
/// the end.
pub async fn run(
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher>,
    table: Arc<ForwardTable>,
    socket: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut plans = registry.forwards();
    let mut running: BTreeMap<SourceName, Running> = BTreeMap::new();
    let caps = Caps {
        connections: Arc::new(Semaphore::new(crate::server::connection_cap() / 4)),
        streams: Arc::new(Semaphore::new(crate::endpoints::proxy::MAX_STREAMS / 4)),
    };
    loop {
        let wanted = plans.borrow_and_update().clone();
        running.retain(|name, r| wanted.get(name) == Some(&r.plan));
        for (name, plan) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let started = start(&name, plan, &socket, &registry, &dispatcher, &caps);
            running.insert(name, started);
        }
        table.set(
            running
                .iter()
                .map(|(name, r)| (name.to_string(), r.forward.clone()))
                .collect(),
        );
        tokio::select! {
            changed = plans.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    table.set(BTreeMap::new());
    drop(running);
}

fn start(
    name: &SourceName,
    plan: ForwardPlan,
    socket: &Path,
    registry: &Arc<Registry>,
    dispatcher: &Arc<Dispatcher>,
    caps: &Caps,
) -> Running {
    let dir = forward::dir(socket, name);
    let forward = Arc::new(Forward::new(
        name,
        dir.clone(),
        &plan.spec.sources,
        &plan.spec.allow_uids,
        plan.aws_config.clone(),
        registry.clock().clone(),
    ));
    warn_of_accounts(name, &plan.spec.allow_uids);
    let mut running = Running {
        plan,
        forward: forward.clone(),
        tasks: Vec::new(),
        stop: watch::Sender::new(false),
    };
    match listen(&mut running, registry, dispatcher, caps) {
        Ok(()) => tracing::info!(forward = %name, dir = %dir.display(), "forward listening"),
        Err(e) => {
            tracing::error!(forward = %name, "the forward cannot listen: {e}");
            forward.set_error(Some(e));
        }
    }
    running
}

fn listen(
    running: &mut Running,
    registry: &Arc<Registry>,
    dispatcher: &Arc<Dispatcher>,
    caps: &Caps,
) -> Result<(), String> {
    let forward = running.forward.clone();
    let shared = !forward.allow_uids().is_empty();
    make_dir(&forward.dir, shared)?;
    credd_proto::private_file::replace(
        &forward.dir.join(forward::AWS_CONFIG_FILE),
        running.plan.aws_config.as_bytes(),
    )
    .map_err(|e| format!("cannot write {}: {e}", forward::AWS_CONFIG_FILE))?;
    if shared {
        // Read inside by users of the allow-list; it holds no secret.
        set_mode(&forward.dir.join(forward::AWS_CONFIG_FILE), 0o644)?;
    }
    let protocol = crate::server::bind_forward(&forward.dir.join(forward::SOCKET_FILE), shared)
        .map_err(|e| e.to_string())?;
    running
        .tasks
        .push(tokio::spawn(crate::server::serve_forward(
            protocol,
            dispatcher.clone(),
            running.stop.subscribe(),
            forward.clone(),
            caps.connections.clone(),
        )));
    #[cfg(unix)]
    {
        use crate::endpoints::proxy::socket;
        let path = forward.dir.join(forward::PROXY_SOCKET_FILE);
        let listener = socket::bind(&path, shared)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        let routes: Arc<dyn socket::Routes> = registry.clone();
        running.tasks.push(tokio::spawn(socket::serve(
            listener,
            routes,
            Some(forward),
            caps.streams.clone(),
        )));
    }
    #[cfg(not(unix))]
    let _ = registry;
    Ok(())
}

/// Warns of a uid on the allow-list that is an account of this machine: whoever uses that
/// account can reach the forward's sockets through a container's root (`/proc/PID/root`), and
/// is served.
fn warn_of_accounts(name: &SourceName, uids: &[u32]) {
    for &uid in uids.iter().filter(|&&uid| uid != 0) {
        if let Some(account) = account_of(uid) {
            tracing::warn!(
                forward = %name,
                "allow_uids names uid {uid}, the account `{account}` on this machine: its processes can reach the forward's sockets through a container's /proc/PID/root and are served; prefer running the container's user as yours (Podman's --userns=keep-id, a devcontainer's updateRemoteUserUID)"
            );
        }
    }
}

/// The name of the account with `uid` on this machine, if there is one.
#[cfg(unix)]
fn account_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

#[cfg(not(unix))]
fn account_of(_uid: u32) -> Option<String> {
    None
}

/// Makes the forward's directory, and the `forwards` directory above it (private), checking
/// that neither is a link or another user's.
fn make_dir(dir: &Path, shared: bool) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(dir);
    credd_proto::paths::ensure_private_dir(parent).map_err(|e| e.to_string())?;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(_) if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) => {
            return Err(format!(
                "{} is not a directory; credd-daemon will not use it",
                dir.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    // Made private first, so the check below holds whatever mode it had.
    set_mode(dir, 0o700)?;
    credd_proto::paths::check_private_dir(dir).map_err(|e| e.to_string())?;
    if shared {
        set_mode(dir, 0o711)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
