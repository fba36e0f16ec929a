//! What the daemon does with each request: one function from [`Request`] to [`Response`].
//!
//! It knows nothing of sockets or frames (that is `server`) and nothing of how a caller formats
//! the answer (that is the client).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credd_proto::{
    CREDD_VERSION, Caller, Credential, DaemonInfo, ErrorKind, ErrorReply, PROTOCOL_VERSION,
    Request, Response, StatusReport,
};
use tokio::sync::watch;

use crate::cache::Slot;
use crate::login::{Logins, Started};
use crate::registry::{Lookup, Registry};
use crate::scope::{Forward, ForwardTable};
use crate::sources::SourceError;

pub struct Dispatcher {
    registry: Arc<Registry>,
    logins: Logins,
    socket: PathBuf,
    started: Instant,
    shutdown: watch::Sender<bool>,
    forwards: Arc<ForwardTable>,
}

impl Dispatcher {
    pub fn new(
        registry: Arc<Registry>,
        socket: PathBuf,
        shutdown: watch::Sender<bool>,
        forwards: Arc<ForwardTable>,
    ) -> Self {
        Dispatcher {
            registry,
            logins: Logins::default(),
            socket,
            started: Instant::now(),
            shutdown,
            forwards,
        }
    }

    /// The answer to `request`, from the main socket (`scope` none) or a forward's.
    pub async fn handle(&self, request: Request, scope: Option<&Forward>) -> Response {
        if let Some(refusal) = scope.and_then(|forward| forward.admit(&request)) {
            return refusal;
        }
        match request {
            Request::Hello => Response::Hello(info()),
            Request::Get {
                source,
                min_valid_secs,
                caller,
                audience,
            } => {
                self.get(
                    &source,
                    audience.as_deref(),
                    min_valid_secs,
                    caller.as_ref(),
                )
                .await
            }
            Request::BedrockApiKey {
                source,
                lifetime_secs,
            } => self.bedrock_api_key(&source, lifetime_secs).await,
            Request::Refresh { source } if scope.is_some_and(|f| !f.may_refresh(&source)) => {
                Response::error(
                    ErrorKind::Refused,
                    format!(
                        "`{source}` was refreshed through this forward less than {}s ago; `credd get {source}` serves what that brought",
                        crate::policy::FORCED_REFRESH_INTERVAL.as_secs()
                    ),
                )
            }
            Request::Refresh { source } => self.refresh(&source).await,
            Request::Logout { source } => self.logout(&source).await,
            Request::Login { source } => self.login(&source, scope).await,
            Request::LoginWait { source } => self.login_wait(&source, scope).await,
            Request::LoginCode { source, code } => self.login_code(&source, code).await,
            Request::Status => Response::Status(self.status(scope)),
            Request::Stop => {
                tracing::info!("stop requested by a client");
                let _ = self.shutdown.send(true);
                Response::Done {
                    message: format!("credd-daemon (pid {}) is stopping", std::process::id()),
                }
            }
            Request::AdvanceClock { secs } => {
                let clock = self.registry.clock();
                if !clock.is_adjustable() {
                    return Response::error(
                        ErrorKind::Refused,
                        "the clock can be moved only when credd-daemon runs with CREDD_TEST_CLOCK=1",
                    );
                }
                clock.advance(Duration::from_secs(secs));
                tracing::info!(secs, "clock advanced");
                Response::Done {
                    message: format!("clock advanced by {secs}s"),
                }
            }
        }
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, ErrorReply> {
        self.slot_for(name, None)
    }

    /// The slot of source `name`, or of its ID tokens for `audience`.
    fn slot_for(&self, name: &str, audience: Option<&str>) -> Result<Arc<Slot>, ErrorReply> {
        match self.registry.lookup(name, audience) {
            Lookup::Found(slot) => Ok(slot),
            Lookup::NoIdToken(e) => Err(ErrorReply {
                kind: ErrorKind::Refused,
                message: e.to_string(),
            }),
            Lookup::Unknown { known } => {
                let path = self.registry.config_path().display();
                let message = if known.is_empty() {
                    format!(
                        "no source named `{name}`: {path} defines no sources; add a [sources.{name}] table"
                    )
                } else {
                    format!(
                        "no source named `{name}` in {path} (it defines: {})",
                        known.join(", ")
                    )
                };
                Err(ErrorReply {
                    kind: ErrorKind::UnknownSource,
                    message,
                })
            }
        }
    }

    async fn get(
        &self,
        name: &str,
        audience: Option<&str>,
        min_valid_secs: Option<u64>,
        caller: Option<&Caller>,
    ) -> Response {
        let slot = match self.slot_for(name, audience) {
            Ok(slot) => slot,
            Err(error) => return Response::Error(error),
        };
        let min_valid =
            min_valid_secs.map_or(crate::policy::DEFAULT_MIN_VALID, Duration::from_secs);
        match slot.get(min_valid, caller).await {
            Ok(credential) => Response::Credential((*credential).clone()),
            Err(e) => source_error(name, e),
        }
    }

    /// A Bedrock API key minted from the source's AWS credentials (see
    /// [`crate::endpoints::proxy::bedrock`]), as a token credential of its own lifetime.
    async fn bedrock_api_key(&self, name: &str, lifetime_secs: Option<u64>) -> Response {
        use crate::endpoints::proxy::bedrock;
        let slot = match self.slot(name) {
            Ok(slot) => slot,
            Err(error) => return Response::Error(error),
        };
        let credential = match slot.get(crate::policy::AWS_FLOOR, None).await {
            Ok(credential) => credential,
            Err(e) => return source_error(name, e),
        };
        let Some(region) = credential.metadata.region.clone() else {
            return source_error(
                name,
                SourceError::Misconfigured(
                    "a Bedrock API key is for one region, and the profile names none: set `region` in the source's table".into(),
                ),
            );
        };
        let now = slot.now_unix();
        let wanted = lifetime_secs.map_or(bedrock::MAX_LIFETIME, Duration::from_secs);
        match bedrock::mint(&credential, &region, wanted, now) {
            Ok((key, lifetime)) => Response::Credential(credd_proto::Credential {
                source: name.to_string(),
                secret: credd_proto::CredentialSecret::Token {
                    token: credd_proto::Secret::new(key),
                },
                issued_at: now,
                expires_at: now + lifetime.as_secs() as i64,
                metadata: Box::new(credd_proto::CredentialFacts {
                    region: Some(region),
                    profile: credential.metadata.profile.clone(),
                    ..Default::default()
                }),
            }),
            Err(e) => source_error(name, SourceError::Misconfigured(e)),
        }
    }

    async fn refresh(&self, name: &str) -> Response {
        let slot = match self.slot(name) {
            Ok(slot) => slot,
            Err(error) => return Response::Error(error),
        };
        match slot.refresh().await {
            Ok(credential) => Response::Done {
                message: format!(
                    "refreshed `{name}`; valid until {}",
                    until(credential.expires_at)
                ),
            },
            Err(e) => source_error(name, e),
        }
    }

    async fn logout(&self, name: &str) -> Response {
        let slot = match self.slot(name) {
            Ok(slot) => slot,
            Err(error) => return Response::Error(error),
        };
        match slot.logout().await {
            Ok(remains) => Response::Done {
                message: match remains {
                    None => format!(
                        "signed out of `{name}`: its login is forgotten; `credd login {name}` signs in again"
                    ),
                    Some(remains) => {
                        format!("credd forgot what it held for `{name}`, but {remains}")
                    }
                },
            },
            Err(e) => source_error(name, e),
        }
    }

    /// The slot whose login signs `name` in: its own, or the one it stands on (an `aws` role
    /// assumed with an `oidc` source's sign-in).
    fn login_slot(&self, name: &str) -> Result<Arc<Slot>, ErrorReply> {
        match self.registry.signs_in_with(name) {
            Some(other) => self.slot(&other),
            None => self.slot(name),
        }
    }

    async fn login(&self, name: &str, scope: Option<&Forward>) -> Response {
        let slot = match self.login_slot(name) {
            Ok(slot) => slot,
            Err(error) => return Response::Error(error),
        };
        if let Some(other) = self.registry.signs_in_with(name)
            && let Ok(own) = self.slot(name)
        {
            // Its own credential may be had without a sign-in.
            if let Ok(credential) = own.get(crate::policy::DEFAULT_MIN_VALID, None).await {
                return Response::Done {
                    message: format!(
                        "`{name}` needs no login: its credentials are valid until {}",
                        until(credential.expires_at)
                    ),
                };
            }
            tracing::info!(source = name, signs_in_with = %other, "login of the source it stands on");
        }
        match self.logins.start(slot.clone()).await {
            Ok(Started::Prompt(prompt)) if scope.is_some() => {
                crate::login::at_home(&self.socket, name, slot, &self.logins, prompt)
            }
            Ok(Started::AlreadyValid(credential)) => Response::Done {
                message: format!(
                    "`{name}` needs no login: its credentials are valid until {}",
                    until(credential.expires_at)
                ),
            },
            Ok(Started::Prompt(prompt)) => Response::LoginPrompt(prompt),
            Ok(Started::Finished) => self.login_wait(name, scope).await,
            Err(e) => source_error(name, e),
        }
    }

    async fn login_wait(&self, name: &str, scope: Option<&Forward>) -> Response {
        let (slot, own) = match (self.login_slot(name), self.slot(name)) {
            (Ok(slot), Ok(own)) => (slot, own),
            (Err(error), _) | (_, Err(error)) => return Response::Error(error),
        };
        let outcome = self.logins.wait(slot.clone()).await;
        if Arc::ptr_eq(&slot, &own) {
            return signed_in(name, outcome);
        }
        if let Err(e) = outcome {
            return signed_in(name, Err(e));
        }
        // Signed in where it stands: its own credential, from the cache when it holds one;
        // else fetched now, past any backoff (through a forward, as often as a forced refresh
        // may be).
        match own.get(crate::policy::DEFAULT_MIN_VALID, None).await {
            Ok(credential) => signed_in(name, Ok(credential)),
            Err(_) if scope.is_none_or(|forward| forward.may_refresh(name)) => {
                signed_in(name, own.refresh().await)
            }
            Err(e) => signed_in(name, Err(e)),
        }
    }

    async fn login_code(&self, name: &str, code: credd_proto::Secret) -> Response {
        match self.login_slot(name) {
            Ok(slot) => signed_in(name, self.logins.submit_code(slot, code).await),
            Err(error) => Response::Error(error),
        }
    }

    /// The report; through a forward, of its sources only, and no forwards.
    fn status(&self, scope: Option<&Forward>) -> StatusReport {
        let info = info();
        let mut sources = self.registry.statuses();
        if let Some(forward) = scope {
            sources.retain(|s| forward.serves(&s.name));
            forward.localize(&mut sources);
            // The host's paths are not the other side's business.
            for source in &mut sources {
                source.persistence = None;
            }
        }
        let host_only = |text: String| if scope.is_some() { String::new() } else { text };
        StatusReport {
            daemon_version: info.daemon_version,
            protocol: info.protocol,
            pid: info.pid,
            uptime_secs: self.started.elapsed().as_secs(),
            now: self.registry.clock().now_unix(),
            socket: host_only(self.socket.display().to_string()),
            config_path: host_only(self.registry.config_path().display().to_string()),
            config_error: self.registry.config_error().filter(|_| scope.is_none()),
            sources,
            forwards: if scope.is_some() {
                Vec::new()
            } else {
                self.forwards.statuses()
            },
        }
    }
}

fn info() -> DaemonInfo {
    DaemonInfo {
        daemon_version: CREDD_VERSION.to_string(),
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
    }
}

/// The answer to a login that has finished.
fn signed_in(name: &str, outcome: Result<Arc<Credential>, SourceError>) -> Response {
    match outcome {
        Ok(credential) => Response::Done {
            message: format!(
                "signed in: `{name}` has credentials valid until {}",
                until(credential.expires_at)
            ),
        },
        Err(e) => source_error(name, e),
    }
}

fn until(expires_at: i64) -> String {
    humantime::format_rfc3339_seconds(crate::clock::from_unix_secs(expires_at)).to_string()
}

fn source_error(name: &str, error: SourceError) -> Response {
    Response::error(error.kind(), error.present(name))
}
