//! A sign-in that credd keeps itself (an `oidc` source's, an Entra device-code or browser
//! sign-in's): its refresh token and what else the source needs to renew it, in memory, and in
//! the OS secret store with `persist = "keyring"` (never in a file).
//!
//! What the store keeps names whom it belongs to (the `owner`: an issuer or authority, a
//! tenant, a client), so a changed config never sends a refresh token elsewhere. A logout bumps
//! an epoch: a grant asked for before it keeps nothing it brings back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use credd_proto::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::secret_store::{Entry, Kept, Unavailable};
use crate::source_name::SourceName;
use crate::sources::spec::Persist;

pub struct KeptSession<T> {
    current: Mutex<Option<T>>,
    kept: Option<Kept>,
    /// The source's name, which files its entry in the secret store.
    name: SourceName,
    logouts: AtomicU64,
}

impl<T: Clone + Serialize + DeserializeOwned> KeptSession<T> {
    pub fn new(name: &SourceName, persist: Option<Persist>) -> Self {
        KeptSession {
            current: Mutex::new(None),
            kept: persist.map(|Persist::Keyring| Kept::new(name)),
            name: name.clone(),
            logouts: AtomicU64::new(0),
        }
    }

    /// The session: the one in memory, or (once per daemon) the one the store kept for
    /// `owner`; without one, only a sign-in helps.
    pub async fn current(&self, owner: &Value) -> Result<T, crate::sources::SourceError> {
        if let Some(kept) = &self.kept {
            kept.restore_once(
                |stored| match stored.and_then(|stored| from_kept(&stored, owner)) {
                    Some(session) => {
                        tracing::info!("a sign-in was kept from before; renewing with it");
                        *self.lock() = Some(session);
                    }
                    None => tracing::debug!("no sign-in kept for this provider and client"),
                },
            )
            .await;
        }
        self.lock().clone().ok_or_else(|| {
            crate::sources::SourceError::NeedsLogin(if self.kept.is_some() {
                "no sign-in kept".to_string()
            } else {
                "no sign-in since the daemon started".to_string()
            })
        })
    }

    /// Where a grant asked for now stands: pass it to [`KeptSession::keep`].
    pub fn epoch(&self) -> u64 {
        self.logouts.load(Ordering::SeqCst)
    }

    /// Keeps `session` for `owner` (in the store too, when told to), unless the person signed
    /// out since `epoch`.
    pub async fn keep(&self, session: T, owner: &Value, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        if let Some(kept) = &self.kept
            && let Some(stored) = to_kept(&session, owner)
        {
            kept.save(&stored).await;
        }
        *self.lock() = Some(session);
    }

    /// Drops the session, from memory and the secret store (which may still hold one from
    /// before `persist` was turned off); the store's refusal is the caller's to report.
    pub async fn forget(&self) -> Result<(), Unavailable> {
        self.logouts.fetch_add(1, Ordering::SeqCst);
        *self.lock() = None;
        match &self.kept {
            Some(kept) => kept.delete().await,
            None => {
                let _ = Entry::new(&self.name).delete().await;
                Ok(())
            }
        }
    }

    /// For `status`: where the sign-in is kept, when told to keep it.
    pub fn persistence(&self) -> Option<String> {
        self.kept.as_ref().map(Kept::describe)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The stored form: `owner`'s fields and the session's side by side, one JSON object.
fn to_kept<T: Serialize>(session: &T, owner: &Value) -> Option<Secret> {
    let mut stored: Map<String, Value> = owner.as_object()?.clone();
    stored.extend(serde_json::to_value(session).ok()?.as_object()?.clone());
    Some(Secret::new(Value::Object(stored).to_string()))
}

/// The session the store kept, if it belongs to `owner` (each of its fields equal).
fn from_kept<T: DeserializeOwned>(stored: &Secret, owner: &Value) -> Option<T> {
    let stored: Value = serde_json::from_str(stored.expose()).ok()?;
    let mine = owner
        .as_object()?
        .iter()
        .all(|(key, value)| stored.get(key) == Some(value));
    mine.then(|| serde_json::from_value(stored).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Serialize, serde::Deserialize)]
    struct Session {
        refresh_token: Secret,
        subject: String,
    }

    #[test]
    fn a_kept_session_comes_back_only_to_its_owner() {
        let owner = serde_json::json!({ "issuer": "https://idp.example", "client_id": "c" });
        let session = Session {
            refresh_token: Secret::new("rt"),
            subject: "alice".into(),
        };
        let stored = to_kept(&session, &owner).unwrap();
        let back: Session = from_kept(&stored, &owner).unwrap();
        assert_eq!(back.refresh_token.expose(), "rt");
        assert_eq!(back.subject, "alice");
        let other = serde_json::json!({ "issuer": "https://idp.example", "client_id": "d" });
        assert!(from_kept::<Session>(&stored, &other).is_none());
        // Entra's kept logins from before keep working: the same fields, side by side.
        let entra = Secret::new(
            r#"{"authority":"https://login.microsoftonline.com","tenant":"t","client_id":"c","refresh_token":"rt"}"#,
        );
        #[derive(serde::Deserialize)]
        struct Refresh {
            refresh_token: Secret,
        }
        let owner = serde_json::json!({
            "authority": "https://login.microsoftonline.com", "tenant": "t", "client_id": "c",
        });
        let back: Refresh = from_kept(&entra, &owner).unwrap();
        assert_eq!(back.refresh_token.expose(), "rt");
    }
}
