//! `credd-daemon`: caches and proactively refreshes cloud credentials for one user and serves
//! them to `credd` over a local socket. The work is done by the `credd_daemon` library; this
//! is its command line, logging, signals and start-up.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use credd_daemon::{
    clock, config, dispatch, filewatch, forwards, harden, logging, registry, scope, server,
};
use tokio::sync::watch;

/// Caches and proactively refreshes cloud credentials, and serves them to `credd` over a
/// local socket. Usually started by `credd` on first use or by a user service.
#[derive(Parser, Debug)]
#[command(name = "credd-daemon", version)]
struct Args {
    /// Socket to listen on [env: CREDD_SOCKET; default: $XDG_RUNTIME_DIR/credd/credd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Config file [env: CREDD_CONFIG; default: ~/.config/credd/config.toml].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before anything is opened or any secret is held.
    let unhardened = harden::harden_process();
    let args = Args::parse();
    logging::init();
    for problem in unhardened {
        tracing::warn!("{problem}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("credd-daemon: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("credd-daemon: {e:#}");
            match e.downcast_ref::<server::StartError>() {
                Some(server::StartError::AlreadyRunning { .. }) => {
                    ExitCode::from(credd_proto::DAEMON_EXIT_ALREADY_RUNNING)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let socket = args.socket.unwrap_or_else(credd_proto::paths::socket_path);
    let config_path = args.config.unwrap_or_else(config::default_path);
    let clock = Arc::new(
        if std::env::var_os("CREDD_TEST_CLOCK").is_some_and(|v| v == "1") {
            tracing::warn!("CREDD_TEST_CLOCK=1: clients may move this daemon's clock");
            clock::Clock::system_adjustable()
        } else {
            clock::Clock::system()
        },
    );

    let proxy_socket = credd_proto::paths::proxy_socket(&socket);
    let registry = registry::Registry::new(config_path.clone(), clock, proxy_socket.clone());
    // Signals are handled before the socket exists, so a stop sent as soon as clients can see
    // the daemon is always a clean one.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_signal_handlers(shutdown_tx.clone(), registry.clone())
        .context("cannot install signal handlers")?;
    let mut activated = credd_daemon::activation::Activated::from_env()
        .context("cannot take the sockets systemd passed")?;
    let bound = server::bind(&socket, &mut activated)?;
    // The config before the proxy socket is served: under socket activation a request is
    // already waiting on it, and must find its source.
    if let Err(e) = registry.reload() {
        eprintln!("credd-daemon: {e} (serving without sources until the file is fixed)");
    }
    let proxy_server = serve_proxy_socket(&proxy_socket, &mut activated, &registry);
    // Under systemd (Type=notify) this says we are ready; elsewhere it does nothing.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let _config_watch = watch_config(&config_path, &registry);

    let forward_table = Arc::new(scope::ForwardTable::default());
    let dispatcher = Arc::new(dispatch::Dispatcher::new(
        registry.clone(),
        socket.clone(),
        shutdown_tx,
        forward_table.clone(),
    ));
    let forwards = tokio::spawn(forwards::run(
        registry.clone(),
        dispatcher.clone(),
        forward_table,
        socket.clone(),
        shutdown_rx.clone(),
    ));
    tracing::info!(
        version = credd_proto::CREDD_VERSION,
        pid = std::process::id(),
        socket = %socket.display(),
        config = %config_path.display(),
        "credd-daemon serving"
    );
    let claim = server::serve(bound, dispatcher, shutdown_rx).await;
    // The forwards' sockets go before the claim does.
    let _ = forwards.await;
    if let Some((task, owned_path)) = proxy_server {
        task.abort();
        if let Some(path) = owned_path {
            let _ = std::fs::remove_file(path);
        }
    }
    // Their secret files go with them: no SDK sends one to whoever takes a port next.
    registry.stop_endpoints();
    // Only now may the next daemon claim the sockets (and make the endpoints' secret files
    // anew, which this one would otherwise remove).
    drop(claim);
    tracing::info!("credd-daemon stopped");
    Ok(())
}

/// Serves the proxy's Unix socket, beside the main one; the task, and the socket's path when
/// credd made it (systemd's stays). A socket that cannot be had leaves the daemon serving
/// without it, saying why.
#[cfg(unix)]
fn serve_proxy_socket(
    path: &std::path::Path,
    activated: &mut credd_daemon::activation::Activated,
    registry: &Arc<registry::Registry>,
) -> Option<(tokio::task::JoinHandle<()>, Option<std::path::PathBuf>)> {
    use credd_daemon::endpoints::proxy::socket;
    let from_systemd = activated.take(path);
    let was_activated = from_systemd.is_some();
    let listener = match from_systemd {
        Some(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixListener::from_std(listener)),
        None => socket::bind(path, false),
    };
    match listener {
        Ok(listener) => {
            tracing::info!(socket = %path.display(), activated = was_activated, "proxy socket listening");
            let routes: Arc<dyn socket::Routes> = registry.clone();
            let task = tokio::spawn(socket::serve(
                listener,
                routes,
                None,
                Arc::new(tokio::sync::Semaphore::new(
                    credd_daemon::endpoints::proxy::MAX_STREAMS,
                )),
            ));
            Some((task, (!was_activated).then(|| path.to_path_buf())))
        }
        Err(e) => {
            tracing::error!(socket = %path.display(), "the proxy socket cannot listen: {e}");
            None
        }
    }
}

#[cfg(not(unix))]
fn serve_proxy_socket(
    _path: &std::path::Path,
    _activated: &mut credd_daemon::activation::Activated,
    _registry: &Arc<registry::Registry>,
) -> Option<(tokio::task::JoinHandle<()>, Option<std::path::PathBuf>)> {
    None
}

#[cfg(unix)]
fn spawn_signal_handlers(
    shutdown: watch::Sender<bool>,
    registry: Arc<registry::Registry>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading the config"); let _ = registry.reload(); }
            }
        }
        let _ = shutdown.send(true);
    });
    Ok(())
}

#[cfg(not(unix))]
fn spawn_signal_handlers(
    shutdown: watch::Sender<bool>,
    _registry: Arc<registry::Registry>,
) -> std::io::Result<()> {
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = shutdown.send(true);
    });
    Ok(())
}

/// Watches the config file: reload on change. (Each source watches its upstream files itself.)
fn watch_config(
    config_path: &std::path::Path,
    registry: &Arc<registry::Registry>,
) -> Option<filewatch::Watch> {
    let on_config = registry.clone();
    match filewatch::watch(vec![filewatch::Target::file(config_path)], move || {
        tracing::info!("config file changed; reloading");
        if on_config.reload().is_ok() {
            tracing::info!("config reloaded");
        }
    }) {
        Ok((watch, _)) => Some(watch),
        Err(e) => {
            tracing::warn!(config = %config_path.display(), "cannot watch the config file; edits need SIGHUP or a restart: {e}");
            None
        }
    }
}
