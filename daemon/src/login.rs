//! Interactive logins: at most one flow per source, shared by every caller that asks.
//!
//! `credd login S` first tries to get a credential without interaction; only when the source
//! says it needs a login does a flow start. Callers that arrive while it runs join it, see the
//! same prompt, and finish together. A login never starts from `get` or a background refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use credd_proto::{Credential, LoginPrompt, Secret};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::{oneshot, watch};

use crate::cache::Slot;
use crate::policy::DEFAULT_MIN_VALID;
use crate::sources::{LoginIo, SourceError};

/// Claude Code gives `awsAuthRefresh` and `gcpAuthRefresh` three minutes; a flow ends before.
pub const LOGIN_BOUND: Duration = Duration::from_secs(170);

type Outcome = Result<(), SourceError>;

#[derive(Clone)]
struct Flow {
    prompt: watch::Receiver<Option<LoginPrompt>>,
    /// Where the code the person typed goes, for logins that ask for one.
    code: Arc<Mutex<Option<oneshot::Sender<Secret>>>>,
    done: Shared<BoxFuture<'static, Outcome>>,
}

pub enum Started {
    /// No login needed: this credential could be had without one.
    AlreadyValid(Arc<Credential>),
    /// Waiting for a person to approve.
    Prompt(LoginPrompt),
    /// The flow finished before it had a prompt to show.
    Finished,
}

#[derive(Clone, Default)]
pub struct Logins {
    flows: Arc<Mutex<HashMap<String, Flow>>>,
}

impl Logins {
    fn flow(&self, source: &str) -> Option<Flow> {
        self.flows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .cloned()
    }

    pub async fn start(&self, slot: Arc<Slot>) -> Result<Started, SourceError> {
        let flow = match self.flow(slot.name()) {
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
        let mut prompt = flow.prompt.clone();
        let shown = tokio::select! {
            changed = prompt.wait_for(Option::is_some) => changed.ok().and_then(|p| p.clone()),
            outcome = flow.done.clone() => return outcome.map(|()| Started::Finished),
        };
        match shown {
            Some(p) => Ok(Started::Prompt(p)),
            None => flow.done.await.map(|()| Started::Finished),
        }
    }

    /// Waits for the source's login to finish, then hands out its credential.
    pub async fn wait(&self, slot: Arc<Slot>) -> Result<Arc<Credential>, SourceError> {
        if let Some(flow) = self.flow(slot.name()) {
            flow.done.await?;
        }
        slot.get(DEFAULT_MIN_VALID, None).await
    }

    /// Hands the login in progress the code the person typed, and waits for it to finish.
    pub async fn submit_code(
        &self,
        slot: Arc<Slot>,
        code: Secret,
    ) -> Result<Arc<Credential>, SourceError> {
        let Some(flow) = self.flow(slot.name()) else {
            return Err(SourceError::Upstream(
                "no login is waiting for a code; run `credd login` again".into(),
            ));
        };
        let sender = flow.code.lock().unwrap_or_else(|p| p.into_inner()).take();
        match sender {
            Some(sender) => {
                let _ = sender.send(code);
            }
            None => {
                return Err(SourceError::Upstream(
                    "another `credd login` already gave this login its code".into(),
                ));
            }
        }
        self.wait(slot).await
    }

    /// Starts the flow, unless another caller did just now.
    fn begin(&self, slot: Arc<Slot>) -> Flow {
        let mut flows = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flow) = flows.get(slot.name()) {
            return flow.clone();
        }
        let (tx, rx) = watch::channel(None);
        let (code_tx, code_rx) = oneshot::channel();
        let name = slot.name().to_string();
        let key = name.clone();
        let registry = self.clone();
        let task = tokio::spawn(async move {
            tracing::info!(source = %name, "interactive login started");
            let deadline = SystemTime::now() + LOGIN_BOUND;
            let io = LoginIo {
                report: Box::new(move |prompt: LoginPrompt| {
                    let _ = tx.send(Some(prompt));
                }),
                code: code_rx,
            };
            let outcome = match slot.source().login(deadline, io) {
                Some(login) => login.await,
                None => Err(SourceError::Upstream(format!(
                    "sources of kind `{}` have no interactive login",
                    slot.kind()
                ))),
            };
            if outcome.is_ok() {
                // Pick up the new session at once, clearing any backoff from before.
                let _ = slot.refresh().await;
            }
            tracing::info!(source = %name, ok = outcome.is_ok(), "interactive login finished");
            registry
                .flows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&name);
            outcome
        });
        let done: BoxFuture<'static, Outcome> = Box::pin(task.map(|joined| {
            joined.unwrap_or_else(|e| Err(SourceError::Upstream(format!("internal error: {e}"))))
        }));
        let flow = Flow {
            prompt: rx,
            code: Arc::new(Mutex::new(Some(code_tx))),
            done: done.shared(),
        };
        flows.insert(key, flow.clone());
        flow
    }
}
