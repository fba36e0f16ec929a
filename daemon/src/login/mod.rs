//! Interactive logins: at most one flow per source, shared by every caller that asks.
//!
//! `credd login S` first tries to get a credential without interaction; only when the source
//! says it needs a login does a flow start. Callers that arrive while it runs join it, see the
//! same prompt, and finish together. A login never starts from `get` or a background refresh.

mod at_home;

use std::sync::Arc;

use credd_proto::{Credential, LoginPrompt, Secret};

use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;
use crate::source_name::SourceName;
use crate::sources::SourceError;
use crate::sources::flow::{Flow, Flows};

pub use at_home::at_home;
pub use credd_proto::claude_code::LOGIN_BOUND;

pub enum Started {
    /// No login needed: this credential could be had without one.
    AlreadyValid(Arc<Credential>),
    /// Waiting for a person to approve.
    Prompt(LoginPrompt),
    /// The flow finished before it had a prompt to show.
    Finished,
}

/// The login flows in progress, one per source.
#[derive(Clone, Default)]
pub struct Logins {
    flows: Flows<SourceName>,
}

impl Logins {
    pub async fn start(&self, slot: Arc<Slot>) -> Result<Started, SourceError> {
        let flow = match self.flows.get(slot.name()) {
            Some(flow) => flow,
            None => {
                // The cache first (valid MFA credentials need no new code), then a fresh look
                // past any backoff (a login done elsewhere needs no new flow).
                if let Ok(credential) = slot.get(DEFAULT_MIN_VALID, None).await {
                    return Ok(Started::AlreadyValid(credential));
                }
                match slot.refresh().await {
                    Ok(credential) => return Ok(Started::AlreadyValid(credential)),
                    Err(SourceError::NeedsLogin(_)) => {}
                    Err(e) => return Err(e),
                }
                self.begin(slot)
            }
        };
        match flow.prompt().await {
            Some(prompt) => Ok(Started::Prompt(prompt)),
            None => flow.done().await.map(|()| Started::Finished),
        }
    }

    /// Waits for the source's login to finish, then hands out its credential.
    pub async fn wait(&self, slot: Arc<Slot>) -> Result<Arc<Credential>, SourceError> {
        if let Some(flow) = self.flows.get(slot.name()) {
            flow.done().await?;
        }
        slot.get(DEFAULT_MIN_VALID, None).await
    }

    /// Hands the login in progress the code the person typed, and waits for it to finish.
    pub async fn submit_code(
        &self,
        slot: Arc<Slot>,
        code: Secret,
    ) -> Result<Arc<Credential>, SourceError> {
        let Some(flow) = self.flows.get(slot.name()) else {
            return Err(SourceError::Upstream(
                "no login is waiting for a code; run `credd login` again".into(),
            ));
        };
        if !flow.give_code(code) {
            return Err(SourceError::Upstream(
                "another `credd login` already gave this login its code".into(),
            ));
        }
        self.wait(slot).await
    }

    /// Starts the source's flow, unless another caller did just now.
    fn begin(&self, slot: Arc<Slot>) -> Flow {
        self.flows
            .join_or_start(slot.name().clone(), move |io| async move {
                let name = slot.name().to_string();
                tracing::info!(source = %name, "interactive login started");
                let deadline = slot.now() + LOGIN_BOUND;
                let outcome = match slot.source().login(deadline, io) {
                    // Bounded, and a login that panics ends like any failed one: the flow
                    // must finish, or every later login would join it.
                    Some(login) => {
                        let login = futures_util::FutureExt::catch_unwind(
                            std::panic::AssertUnwindSafe(login),
                        );
                        match tokio::time::timeout(LOGIN_BOUND, login).await {
                            Ok(Ok(outcome)) => outcome,
                            Ok(Err(_)) => Err(SourceError::Internal(
                                "the login failed unexpectedly (a bug in credd)".into(),
                            )),
                            Err(_) => Err(SourceError::NeedsLogin(
                                "the login did not finish in time".into(),
                            )),
                        }
                    }
                    None => Err(SourceError::Upstream(format!(
                        "sources of kind `{}` have no interactive login",
                        slot.kind()
                    ))),
                };
                let outcome = match outcome {
                    // The login's own credential goes straight into the cache.
                    Ok(Some(fetched)) => slot.accept(fetched).map(|_| ()),
                    // The login left a session behind: fetch with it now, past any backoff.
                    Ok(None) => {
                        let _ = slot.refresh().await;
                        Ok(())
                    }
                    Err(e) => Err(e.one_line()),
                };
                tracing::info!(source = %name, ok = outcome.is_ok(), "interactive login finished");
                outcome
            })
    }
}
