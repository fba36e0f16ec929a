//! The OS secret store, for sources with `persist = "keyring"`: the long-lived part of an
//! interactive login (an Entra device-code refresh token, an MFA session's credentials)
//! survives a restart or an upgrade of the daemon. Secret Service on Linux (GNOME Keyring,
//! KWallet), the login Keychain on macOS, through the `keyring` crate.
//!
//! A source reads its entry once (keychains may prompt: never per request), writes it when a
//! login or a renewal changes it, and deletes it on `credd logout` and when the upstream
//! refuses it. Every call blocks, so each runs on tokio's blocking pool. Without a store the
//! source keeps the login in memory only, as without `persist`, and `status` says why.

use crate::source_name::SourceName;
use credd_proto::Secret;

/// The service name every entry is filed under; the account is the source's name.
pub const SERVICE: &str = "credd";

#[derive(Debug, Clone, thiserror::Error)]
#[error("no secret store: {0}")]
pub struct Unavailable(String);

/// One source's entry in the store.
#[derive(Debug, Clone)]
pub struct Entry {
    source: SourceName,
}

impl Entry {
    pub fn new(source: &SourceName) -> Self {
        Entry {
            source: source.clone(),
        }
    }

    /// What the store holds for the source; `None` when it holds nothing.
    pub async fn load(&self) -> Result<Option<Secret>, Unavailable> {
        self.call(|entry| match entry.get_password() {
            Ok(secret) => Ok(Some(Secret::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    pub async fn save(&self, secret: &Secret) -> Result<(), Unavailable> {
        let secret = secret.clone();
        self.call(move |entry| entry.set_password(secret.expose()))
            .await
    }

    /// Forgets what the store holds for the source (nothing held is no error).
    pub async fn delete(&self) -> Result<(), Unavailable> {
        self.call(|entry| match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send + 'static,
    ) -> Result<T, Unavailable> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || {
            let entry = keyring::Entry::new(SERVICE, &source)?;
            f(&entry)
        })
        .await
        .map_err(|e| Unavailable(format!("the store's call failed: {e}")))?
        .map_err(|e| Unavailable(crate::redact::one_line(&e.to_string())))
    }
}

/// A source's entry, what it held when the source first needed it (read once: keychains may
/// prompt), and what became of the last call to it, for `status`.
#[derive(Debug)]
pub struct Kept {
    entry: Entry,
    first_read: tokio::sync::OnceCell<()>,
    problem: std::sync::Mutex<Option<Unavailable>>,
}

impl Kept {
    pub fn new(source: &SourceName) -> Self {
        Kept {
            entry: Entry::new(source),
            first_read: tokio::sync::OnceCell::new(),
            problem: std::sync::Mutex::new(None),
        }
    }

    /// Runs `restore` with what the store held when the daemon started, the first time it is
    /// called; later calls (and calls while the first runs) wait for it and do nothing.
    pub async fn restore_once(&self, restore: impl FnOnce(Option<Secret>)) {
        self.first_read
            .get_or_init(|| async {
                restore(self.load().await);
            })
            .await;
    }

    fn note<T>(&self, result: Result<T, Unavailable>) -> Option<T> {
        let mut problem = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(value) => {
                *problem = None;
                Some(value)
            }
            Err(e) => {
                tracing::warn!("{e}; the login is kept in memory only");
                *problem = Some(e);
                None
            }
        }
    }

    /// What the store holds; `None` when it holds nothing or cannot be reached.
    pub async fn load(&self) -> Option<Secret> {
        self.note(self.entry.load().await).flatten()
    }

    pub async fn save(&self, secret: &Secret) {
        self.note(self.entry.save(secret).await);
    }

    /// Forgets the entry; the store's refusal is the caller's to report (a logout that did not
    /// happen must not say it did).
    pub async fn delete(&self) -> Result<(), Unavailable> {
        let result = self.entry.delete().await;
        self.note(result.clone());
        result
    }

    /// For `status`: where the login is kept, or why it is not.
    pub fn describe(&self) -> String {
        match &*self.problem.lock().unwrap_or_else(|p| p.into_inner()) {
            None => "the login is kept in the OS secret store".into(),
            Some(e) => {
                format!("persist = \"keyring\", but {e}: the login lasts until the daemon stops")
            }
        }
    }
}
