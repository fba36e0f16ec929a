//! The live set of sources: one cache slot per source the config names (and one per audience
//! its ID tokens were asked for), rebuilt on reload.
//!
//! A reload keeps the slot (and its cached credential) of every source whose settings did not
//! change, replaces the changed ones and drops the removed ones. An invalid file changes nothing
//! but the error that `status` shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audiences::{AudienceError, Audiences};
use crate::cache::Slot;
use crate::clock::Clock;
use crate::config::{self, Config, ForwardSpec, SourceName, SourceSpec};
use crate::endpoints::{self, EndpointHandle};
use crate::filewatch;
use crate::sources;

pub struct Registry {
    /// Itself, for the sources that ask it for other sources' credentials.
    this: std::sync::Weak<Registry>,
    config_path: PathBuf,
    /// The proxy's Unix socket, which `status` names for every proxied source.
    proxy_socket: PathBuf,
    clock: Arc<Clock>,
    inner: RwLock<Inner>,
    /// The config's forwards, for `forwards` to serve.
    forwards: watch::Sender<BTreeMap<SourceName, ForwardPlan>>,
}

/// A forward as the config gives it, with the AWS config file it puts beside its sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPlan {
    pub spec: ForwardSpec,
    /// A `credential_process` profile per `aws` source it serves (no secret).
    pub aws_config: String,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<SourceName, Entry>,
    /// The MCP servers served through the proxy, by name.
    mcp: BTreeMap<SourceName, McpEntry>,
    config_error: Option<String>,
}

/// An `[mcp.NAME]` route, served on its port with its source's slot.
struct McpEntry {
    spec: crate::config::McpSpec,
    slot: Arc<Slot>,
    endpoint: EndpointHandle,
}

struct Entry {
    spec: SourceSpec,
    slot: Arc<Slot>,
    audiences: Arc<Audiences>,
    refresher: JoinHandle<()>,
    endpoints: Vec<EndpointHandle>,
    /// The source's proxy, served on the proxy socket (and on its TCP port, among
    /// `endpoints`, when the config names one).
    proxy: Option<Arc<endpoints::proxy::Proxy>>,
    /// Watches the files the source depends on; stops when dropped.
    _upstream_files: Option<filewatch::Watch>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

pub enum Lookup {
    Found(Arc<Slot>),
    Unknown {
        known: Vec<String>,
    },
    /// The source exists, but has no ID tokens for the audience asked.
    NoIdToken(AudienceError),
}

impl Registry {
    pub fn new(config_path: PathBuf, clock: Arc<Clock>, proxy_socket: PathBuf) -> Arc<Self> {
        Arc::new_cyclic(|this| Registry {
            this: this.clone(),
            config_path,
            proxy_socket,
            clock,
            inner: RwLock::new(Inner::default()),
            forwards: watch::Sender::new(BTreeMap::new()),
        })
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// Stops every local endpoint (at shutdown).
    pub fn stop_endpoints(&self) {
        let mut inner = self.write();
        for entry in inner.entries.values_mut() {
            entry.endpoints.clear();
        }
        inner.mcp.clear();
    }

    /// Reads the config file and applies it; on error the old config stays in force.
    pub fn reload(&self) -> Result<(), config::ConfigError> {
        match config::load(&self.config_path) {
            Ok(config) => {
                self.apply(config);
                Ok(())
            }
            Err(e) => {
                tracing::error!("config not reloaded, the previous one stays in force: {e}");
                self.write().config_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The config's forwards, now and at each reload.
    pub fn forwards(&self) -> watch::Receiver<BTreeMap<SourceName, ForwardPlan>> {
        self.forwards.subscribe()
    }

    fn apply(&self, config: Config) {
        crate::notify::set_enabled(config.notifications);
        let plans = config
            .forwards
            .iter()
            .map(|(name, spec)| {
                let plan = ForwardPlan {
                    spec: spec.clone(),
                    aws_config: aws_config(name, spec, &config.sources),
                };
                (name.clone(), plan)
            })
            .collect();
        self.forwards.send_if_modified(|current| {
            let changed = *current != plans;
            *current = plans;
            changed
        });
        let mut inner = self.write();
        inner.config_error = None;
        let mut old = std::mem::take(&mut inner.entries);
        for (name, spec) in config.sources {
            let entry = match old.remove(&name) {
                Some(entry) if entry.spec == spec => entry,
                previous => {
                    tracing::info!(source = %name, kind = spec.kind(), "{}", if previous.is_some() { "source changed" } else { "source added" });
                    // The old entry lets go of its endpoint's port before the new one binds it.
                    drop(previous);
                    let slot = Slot::new(
                        name.clone(),
                        sources::build(&name, &spec, &self.clock, &self.others()),
                        self.clock.clone(),
                    );
                    let audiences = Arc::new(Audiences::new(
                        &name,
                        spec.clone(),
                        self.clock.clone(),
                        self.others(),
                    ));
                    let refresher = tokio::spawn(slot.clone().keep_fresh());
                    let mut endpoints: Vec<EndpointHandle> =
                        start_endpoint(&name, &spec, &slot, &audiences)
                            .into_iter()
                            .collect();
                    let proxy = endpoints::proxy::Proxy::start(&name, &spec, &slot);
                    if let Some(proxy) = &proxy
                        && let Some(port) = spec.proxy().and_then(|p| p.port)
                    {
                        endpoints.push(endpoints::serve(port, proxy.clone()));
                    }
                    let upstream_files = watch_upstream_files(&slot, &audiences);
                    Entry {
                        spec,
                        slot,
                        audiences,
                        refresher,
                        endpoints,
                        proxy,
                        _upstream_files: upstream_files,
                    }
                }
            };
            inner.entries.insert(name, entry);
        }
        for name in old.keys() {
            tracing::info!(source = %name, "source removed");
        }
        drop(old);
        let mut old_mcp = std::mem::take(&mut inner.mcp);
        for (server, spec) in config.mcp {
            let Some(source) = inner.entries.get(&spec.source) else {
                continue;
            };
            let kept = old_mcp
                .remove(&server)
                .filter(|e| e.spec == spec && Arc::ptr_eq(&e.slot, &source.slot));
            let entry = match kept {
                Some(entry) => entry,
                None => {
                    let Some(proxy) = endpoints::proxy::Proxy::for_mcp(
                        &server,
                        &spec,
                        &source.spec,
                        &source.slot,
                    ) else {
                        continue;
                    };
                    let port = spec
                        .port
                        .unwrap_or_else(|| endpoints::default_port("mcp", &server));
                    tracing::info!(mcp = %server, source = %spec.source, "mcp server route added");
                    McpEntry {
                        slot: source.slot.clone(),
                        endpoint: endpoints::serve(port, proxy).named(&server),
                        spec,
                    }
                }
            };
            inner.mcp.insert(server, entry);
        }
    }

    /// Other sources' credentials, for the sources that stand on them.
    fn others(&self) -> Arc<dyn sources::OtherSources> {
        Arc::new(Others(self.this.clone()))
    }

    /// The source whose sign-in `name` stands on, if another's.
    pub fn signs_in_with(&self, name: &str) -> Option<String> {
        let inner = self.read();
        inner
            .entries
            .get(name)?
            .spec
            .signs_in_with()
            .map(str::to_string)
    }

    /// The slot of source `name` (or of the source MCP server `name` names), or of its ID
    /// tokens for `audience`.
    pub fn lookup(&self, name: &str, audience: Option<&str>) -> Lookup {
        let inner = self.read();
        let entry = inner.entries.get(name).or_else(|| {
            let server = inner.mcp.get(name)?;
            inner.entries.get(&server.spec.source)
        });
        match (entry, audience) {
            (Some(entry), None) => Lookup::Found(entry.slot.clone()),
            (Some(entry), Some(audience)) => match entry.audiences.slot(audience) {
                Ok(slot) => Lookup::Found(slot),
                Err(e) => Lookup::NoIdToken(e),
            },
            (None, _) => Lookup::Unknown {
                known: inner.entries.keys().map(ToString::to_string).collect(),
            },
        }
    }

    /// Every source's status, with its endpoints.
    pub fn statuses(&self) -> Vec<credd_proto::SourceStatus> {
        let inner = self.read();
        inner
            .entries
            .values()
            .flat_map(|e| {
                let mut status = e.slot.status();
                status.endpoints.extend(
                    e.proxy
                        .as_ref()
                        .map(|proxy| proxy.socket_status(&self.proxy_socket)),
                );
                status
                    .endpoints
                    .extend(e.endpoints.iter().map(EndpointHandle::status));
                status.endpoints.extend(
                    inner
                        .mcp
                        .values()
                        .filter(|m| *m.spec.source == *status.name)
                        .map(|m| m.endpoint.status()),
                );
                std::iter::once(status).chain(e.audiences.statuses())
            })
            .collect()
    }

    pub fn config_error(&self) -> Option<String> {
        self.read().config_error.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The AWS config file a forward puts beside its sockets: a profile per `aws` source it
/// serves, whose `credential_process` asks the forwarded socket (and `default` when there is
/// one), so that an SDK inside needs only `AWS_CONFIG_FILE`.
fn aws_config(
    forward: &SourceName,
    spec: &ForwardSpec,
    sources: &BTreeMap<SourceName, SourceSpec>,
) -> String {
    let aws: Vec<(&SourceName, Option<&String>)> = spec
        .sources
        .iter()
        .filter_map(|name| match sources.get(name) {
            Some(SourceSpec::Aws(aws)) => Some((name, aws.region.as_ref())),
            _ => None,
        })
        .collect();
    let mut text = format!(
        "# Written by credd-daemon for the forward `{forward}`: each profile's credentials come\n# from the forwarded socket, through `credd get`. No secret is kept here.\n"
    );
    let profile = |header: String, name: &SourceName, region: Option<&String>| {
        let mut section =
            format!("\n{header}\ncredential_process = credd get {name} --format aws-process\n");
        if let Some(region) = region {
            section.push_str(&format!("region = {region}\n"));
        }
        section
    };
    if let [(name, region)] = aws[..] {
        text.push_str(&profile("[default]".into(), name, region));
    }
    for (name, region) in aws {
        text.push_str(&profile(format!("[profile {name}]"), name, region));
    }
    text
}

/// The registry as sources see it: other sources' credentials, from their slots (so fetched
/// once for all, and a login shared).
struct Others(std::sync::Weak<Registry>);

impl sources::OtherSources for Others {
    fn credential(
        &self,
        name: &str,
        min_valid: std::time::Duration,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<Arc<credd_proto::Credential>, sources::SourceError>,
    > {
        let slot = self.0.upgrade().map(|registry| registry.lookup(name, None));
        let name = name.to_string();
        Box::pin(async move {
            match slot {
                Some(Lookup::Found(slot)) => slot.get(min_valid, None).await,
                _ => Err(sources::SourceError::Misconfigured(format!(
                    "the config defines no source `{name}`"
                ))),
            }
        })
    }
}

/// Starts the local endpoint a source's config asks for, if any.
fn start_endpoint(
    name: &SourceName,
    spec: &SourceSpec,
    slot: &Arc<Slot>,
    audiences: &Arc<Audiences>,
) -> Option<EndpointHandle> {
    let (kind, port, endpoint): (_, _, Arc<dyn endpoints::Endpoint>) = match spec {
        SourceSpec::Aws(aws) => {
            let port = aws.container_endpoint.as_ref()?.port;
            let container = endpoints::aws_container::AwsContainer::new(slot.clone(), name);
            ("aws-container", port, Arc::new(container))
        }
        SourceSpec::Gcp(gcp) => {
            let port = gcp.metadata_endpoint.as_ref()?.port;
            let metadata = endpoints::gce_metadata::GceMetadata::new(
                slot.clone(),
                audiences.clone(),
                gcp.scopes.clone(),
            );
            ("gce-metadata", port, Arc::new(metadata))
        }
        SourceSpec::Entra(entra) => {
            let port = entra.identity_endpoint.as_ref()?.port;
            let identity = endpoints::azure_managed_identity::AzureManagedIdentity::new(
                slot.clone(),
                name,
                entra.scopes(),
            );
            ("azure-managed-identity", port, Arc::new(identity))
        }
        SourceSpec::Exec(_) | SourceSpec::Oidc(_) => return None,
    };
    let port = port.unwrap_or_else(|| endpoints::default_port(kind, name));
    Some(endpoints::serve(port, endpoint))
}

#[cfg(unix)]
impl endpoints::proxy::socket::Routes for Registry {
    fn proxy(&self, source: &str) -> Result<Arc<endpoints::proxy::Proxy>, String> {
        let inner = self.read();
        let mut named = inner
            .entries
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(source));
        match (named.next(), named.next()) {
            (Some((_, entry)), None) => entry.proxy.clone().ok_or_else(|| {
                format!(
                    "source `{source}` has no proxy; add `proxy = {{}}` to its table in the config"
                )
            }),
            (Some((a, _)), Some((b, _))) => Err(format!(
                "sources `{a}` and `{b}` differ only in case, which a URL's host cannot tell apart; rename one"
            )),
            (None, _) => Err(format!(
                "no source named `{source}` in {}",
                self.config_path.display()
            )),
        }
    }
}

/// Watches the upstream tool's files a source depends on (a login done elsewhere, an edited AWS
/// config, a rotated key file): a failing source then tries again now instead of at the end of
/// its backoff.
fn watch_upstream_files(slot: &Arc<Slot>, audiences: &Arc<Audiences>) -> Option<filewatch::Watch> {
    let targets = slot.source().watched_files();
    if targets.is_empty() {
        return None;
    }
    let (on_change, id_tokens) = (slot.clone(), audiences.clone());
    let retry = move || {
        on_change.retry_now();
        id_tokens.retry_now();
    };
    match filewatch::watch(targets, retry) {
        Ok((watch, dirs)) => {
            tracing::debug!(source = %slot.name(), ?dirs, "watching upstream files");
            Some(watch)
        }
        Err(e) => {
            tracing::warn!(source = %slot.name(), "cannot watch the upstream files; logins done elsewhere are seen at the next retry: {e}");
            None
        }
    }
}
