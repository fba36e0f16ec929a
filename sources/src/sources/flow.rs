//! An interactive flow that every caller asking while it runs joins: one prompt shown to all,
//! one code taken from whoever types it first, one outcome for all. The flow runs in a task of
//! its own, so a caller that gives up does not end it for the others, and it is forgotten when
//! it finishes, so the next caller starts afresh.
//!
//! `credd login` keeps one flow per source (`login::Logins`); AWS SSO keeps one per SSO
//! session, so that profiles sharing a session share the person's one approval.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use credd_proto::{LoginPrompt, Secret};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::sync::{oneshot, watch};

use super::{LoginIo, SourceError};

pub type Outcome = Result<(), SourceError>;

/// A flow in progress, as its callers see it.
#[derive(Clone)]
pub struct Flow {
    prompt: watch::Receiver<Option<LoginPrompt>>,
    /// Where the code the person typed goes, for flows that ask for one.
    code: Arc<Mutex<Option<oneshot::Sender<Secret>>>>,
    done: Shared<BoxFuture<'static, Outcome>>,
}

impl Flow {
    /// What to show the person, once the flow knows; `None` when it finished without a prompt.
    pub async fn prompt(&self) -> Option<LoginPrompt> {
        let mut prompt = self.prompt.clone();
        tokio::select! {
            shown = prompt.wait_for(Option::is_some) => shown.ok().and_then(|p| p.clone()),
            _ = self.done.clone() => None,
        }
    }

    /// Waits for the flow to finish.
    pub async fn done(&self) -> Outcome {
        self.done.clone().await
    }

    /// Hands the flow the code the person typed; `false` when another caller already did.
    pub fn give_code(&self, code: Secret) -> bool {
        let sender = self.code.lock().unwrap_or_else(|p| p.into_inner()).take();
        sender.is_some_and(|sender| {
            let _ = sender.send(code);
            true
        })
    }
}

/// The flows in progress, one per key.
pub struct Flows<K> {
    running: Arc<Mutex<HashMap<K, Flow>>>,
}

impl<K> Default for Flows<K> {
    fn default() -> Self {
        Flows {
            running: Arc::default(),
        }
    }
}

impl<K> Clone for Flows<K> {
    fn clone(&self) -> Self {
        Flows {
            running: self.running.clone(),
        }
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> Flows<K> {
    /// The flow running for `key`, if any.
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<Flow>
    where
        K: Borrow<Q>,
    {
        self.lock().get(key).cloned()
    }

    /// The flow running for `key`, or a new one: `run` is given the [`LoginIo`] through which
    /// it shows its prompt and receives a code, and its future runs in a task of its own.
    pub fn join_or_start<F>(&self, key: K, run: impl FnOnce(LoginIo) -> F) -> Flow
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut running = self.lock();
        if let Some(flow) = running.get(&key) {
            return flow.clone();
        }
        let (prompt_tx, prompt_rx) = watch::channel(None);
        let (code_tx, code_rx) = oneshot::channel();
        let future = run(LoginIo {
            report: Box::new(move |prompt: LoginPrompt| {
                let _ = prompt_tx.send(Some(prompt));
            }),
            code: code_rx,
        });
        let (flows, finished) = (self.clone(), key.clone());
        let task = tokio::spawn(async move {
            let outcome = future.await;
            flows.lock().remove(&finished);
            outcome
        });
        let done: BoxFuture<'static, Outcome> = Box::pin(task.map(|joined| {
            joined.unwrap_or_else(|e| Err(SourceError::Upstream(format!("internal error: {e}"))))
        }));
        let flow = Flow {
            prompt: prompt_rx,
            code: Arc::new(Mutex::new(Some(code_tx))),
            done: done.shared(),
        };
        running.insert(key, flow.clone());
        flow
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Flow>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn prompt(code: &str) -> LoginPrompt {
        LoginPrompt::Device {
            verification_uri: "https://device.example/".into(),
            user_code: code.into(),
            expires_in_secs: 600,
        }
    }

    #[tokio::test]
    async fn callers_join_the_running_flow_and_the_next_starts_afresh() {
        let flows = Flows::<String>::default();
        let started = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let mut released = Some(released);
        let mut start = |code: &'static str| {
            let started = started.clone();
            let released = released.take();
            flows.join_or_start("corp".to_string(), move |io: LoginIo| async move {
                started.fetch_add(1, Ordering::SeqCst);
                (io.report)(prompt(code));
                if let Some(released) = released {
                    let _ = released.await;
                }
                let typed = io
                    .code
                    .await
                    .map_err(|_| SourceError::Upstream("no code".into()))?;
                assert_eq!(typed.expose(), "123456");
                Ok(())
            })
        };
        let first = start("AAAA-1111");
        let second = start("BBBB-2222");
        assert_eq!(first.prompt().await, Some(prompt("AAAA-1111")));
        assert_eq!(second.prompt().await, Some(prompt("AAAA-1111")), "joined");
        assert!(second.give_code(Secret::new("123456")));
        assert!(!first.give_code(Secret::new("654321")), "one code per flow");
        release.send(()).unwrap();
        first.done().await.unwrap();
        second.done().await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);

        // Finished flows are forgotten: the next caller starts one of its own.
        assert!(flows.get("corp").is_none());
        let third = start("CCCC-3333");
        assert_eq!(third.prompt().await, Some(prompt("CCCC-3333")));
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
