//! The `aws` source: credentials for a profile of the AWS config files, resolved by the AWS SDK's
//! own profile provider (SSO sessions, role chains, web identity, `credential_process`, static
//! keys), so credd accepts exactly the profiles the AWS CLI accepts.
//!
//! Callers such as Claude Code require a session token and an expiry, so long-term keys are
//! turned into session credentials with STS `GetSessionToken`. Endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`, ...) and the config file locations
//! (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`) work as they do for the SDKs.

use std::borrow::Cow;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::os_shim_internal::{Env, Fs};
use credd_proto::{CredentialFacts, CredentialSecret, Secret};
use futures_util::future::BoxFuture;

mod chain;
mod console;
pub mod mfa;
pub mod spec;
pub mod sso;
pub mod web_identity;

use credd_proto::LoginPrompt;

pub use self::spec::AwsSpec;
use super::{Fetched, LoginIo, LoginOutcome, Source, SourceError};
use crate::upstream_clock::DateProbe;

/// How a profile gets its credentials, as far as credd must know.
pub enum ProfileAuth {
    /// A role that needs an MFA code: only `credd login` makes credentials.
    Mfa(mfa::MfaRole),
    /// An IAM Identity Center session, which credd keeps fresh.
    Sso(sso::SsoSession),
    /// An `aws login` console session, which credd keeps fresh.
    Console(console::ConsoleSession),
    /// A `credential_process`, the profile's own or at the root of its role chain: credd runs
    /// it (see [`crate::process`]), so a command that hangs is killed with everything it
    /// started, and its stderr is summarised like an `exec` source's, never quoted whole.
    Process(chain::ProcessChain),
    /// Anything else the SDK's profile provider resolves by itself.
    Other,
    Unknown {
        known: Vec<String>,
    },
}

/// An STS client on the SDK's config (region, HTTP client) that signs with `credentials`.
pub(crate) fn sts_signed_by(
    sdk: &aws_config::SdkConfig,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(sdk)
            .credentials_provider(credentials)
            .build(),
    )
}

/// One renewal at a time per token file (an SSO session's, an `aws login` session's): sources
/// whose profiles share the file share its refresh token, which the first renewal may rotate.
pub(crate) fn file_lock(path: &std::path::Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    type Locks =
        std::collections::HashMap<std::path::PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>;
    static LOCKS: std::sync::LazyLock<std::sync::Mutex<Locks>> =
        std::sync::LazyLock::new(Default::default);
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(path.to_path_buf())
        .or_default()
        .clone()
}

pub struct AwsSource {
    spec: AwsSpec,
    /// Where an MFA session is kept across restarts, with `persist = "keyring"`.
    kept: Option<crate::secret_store::Kept>,
    /// The MFA session the store held when the daemon started, until it is used up.
    kept_session: std::sync::Mutex<Option<Secret>>,
    /// The source's name, which files its entry in the secret store.
    name: crate::source_name::SourceName,
    clock: std::sync::Arc<crate::clock::Clock>,
}

impl AwsSource {
    pub fn new(
        name: &crate::source_name::SourceName,
        spec: AwsSpec,
        clock: std::sync::Arc<crate::clock::Clock>,
    ) -> Self {
        AwsSource {
            clock,
            kept: spec
                .persist
                .map(|crate::sources::spec::Persist::Keyring| crate::secret_store::Kept::new(name)),
            spec,
            kept_session: std::sync::Mutex::new(None),
            name: name.clone(),
        }
    }

    /// The MFA session kept from before the daemon started, while it has the AWS floor left.
    async fn kept_session(&self, now: SystemTime) -> Option<Fetched> {
        let kept = self.kept.as_ref()?;
        kept.restore_once(|stored| {
            *self.kept_session.lock().unwrap_or_else(|p| p.into_inner()) = stored;
        })
        .await;
        let stored = self
            .kept_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let restored = mfa::from_kept(&stored, &self.spec.profile, now);
        if restored.is_none() {
            // Run out (or another profile's): of no more use.
            *self.kept_session.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = kept.delete().await;
        }
        restored
    }

    /// The SDK's config for this profile, reaching upstreams through the proxy and CA bundle
    /// the user gave (see [`crate::net`]), noting the upstreams' `Date` in `dates`.
    async fn sdk_config(&self, dates: &DateProbe) -> Result<aws_config::SdkConfig, SourceError> {
        let http = crate::net::aws_http_client(self.spec.ca_bundle.as_deref(), dates)
            .map_err(SourceError::Upstream)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .profile_name(&self.spec.profile)
            .http_client(http);
        if let Some(region) = &self.spec.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        Ok(loader.load().await)
    }

    /// How the profile authenticates, read from the AWS config files once per call.
    async fn auth(&self) -> Result<ProfileAuth, SourceError> {
        let set = load_profiles().await.map_err(SourceError::Upstream)?;
        classify(&set, &self.spec.profile).map_err(SourceError::Upstream)
    }

    async fn resolve(&self, now: SystemTime) -> Result<Fetched, SourceError> {
        let profile = self.spec.profile.as_str();
        let auth = self.auth().await?;
        if let ProfileAuth::Unknown { known } = &auth {
            return Err(SourceError::Misconfigured(format!(
                "no profile `{profile}` in the AWS config files (they define: {})",
                known.join(", ")
            )));
        }
        if let ProfileAuth::Mfa(role) = &auth {
            if let Some(session) = self.kept_session(now).await {
                return Ok(session);
            }
            // Only a login (with a person and a code) makes these credentials; it hands them
            // to the cache itself.
            return Err(SourceError::NeedsLogin(format!(
                "profile `{profile}` needs an MFA code ({})",
                role.serial
            )));
        }
        let dates = DateProbe::default();
        let sdk = self.sdk_config(&dates).await?;
        // An SSO session is kept fresh here, never interactively; the SDK then finds a token
        // with time to spare in the cache.
        if let ProfileAuth::Sso(session) = &auth {
            sso::ensure_fresh(session, &sdk, now).await?;
        }
        if let ProfileAuth::Console(session) = &auth {
            console::ensure_fresh(session, &sdk, now).await?;
        }
        let credentials = if let ProfileAuth::Process(process) = &auth {
            let mut credentials = self
                .run_credential_process(&process.root, &process.command, now)
                .await?;
            for role in &process.roles {
                credentials = chain::assume(role, &sdk, credentials).await?;
            }
            credentials
        } else {
            let provider = ProfileFileCredentialsProvider::builder()
                .profile_name(profile)
                .configure(&provider_config(&sdk))
                .build();
            match provider.provide_credentials().await {
                Ok(c) => c,
                Err(e) => return Err(self.explain(e, &auth)),
            }
        };
        let credentials = if credentials.session_token().is_none() {
            self.session_from_long_term_keys(&sdk, credentials).await?
        } else {
            credentials
        };
        // Every AWS expiry is absolute, by the clock of the upstream that stated it.
        let (expires_at, clock_offset_secs) = match credentials.expiry() {
            Some(expiry) => dates.to_local(expiry, now),
            None => (now + self.spec.duration, None),
        };
        let metadata = CredentialFacts {
            profile: Some(profile.to_string()),
            region: sdk.region().map(|r| r.to_string()),
            ..CredentialFacts::default()
        };
        Ok(Fetched {
            secret: CredentialSecret::Aws {
                access_key_id: credentials.access_key_id().to_string(),
                secret_access_key: Secret::new(credentials.secret_access_key()),
                session_token: credentials.session_token().map(Secret::new),
            },
            expires_at,
            metadata,
            clock_offset_secs,
        })
    }

    /// Runs the profile's `credential_process` as the AWS CLI does (`sh -c`), bounded by the
    /// source's timeout.
    async fn run_credential_process(
        &self,
        profile: &str,
        command: &str,
        now: SystemTime,
    ) -> Result<Credentials, SourceError> {
        let argv = ["sh".to_string(), "-c".to_string(), command.to_string()];
        let program = command
            .split_whitespace()
            .next()
            .unwrap_or("credential_process");
        let fetched = crate::sources::exec::run_command(
            &argv,
            program,
            self.spec.timeout,
            self.spec.duration,
            now,
        )
        .await
        .map_err(|e| match e {
            SourceError::Upstream(m) => {
                SourceError::Upstream(format!("profile `{}`: credential_process {m}", profile))
            }
            other => other,
        })?;
        let CredentialSecret::Aws {
            access_key_id,
            secret_access_key,
            session_token,
        } = fetched.secret
        else {
            return Err(SourceError::Upstream(format!(
                "profile `{}`: credential_process printed a bare token, not AWS credentials (Version 1 JSON)",
                profile
            )));
        };
        Ok(Credentials::new(
            access_key_id,
            secret_access_key.expose(),
            session_token.map(|t| t.expose().to_string()),
            Some(fetched.expires_at),
            "credential_process",
        ))
    }

    /// STS GetSessionToken with long-term keys: session credentials that carry an expiry.
    async fn session_from_long_term_keys(
        &self,
        sdk: &aws_config::SdkConfig,
        long_term: Credentials,
    ) -> Result<Credentials, SourceError> {
        let out = sts_signed_by(sdk, long_term)
            .get_session_token()
            .duration_seconds(self.spec.duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                SourceError::Upstream(format!(
                    "STS GetSessionToken for profile `{}` failed: {}",
                    self.spec.profile,
                    service_error(&e)
                ))
            })?;
        let c = out.credentials().ok_or_else(|| {
            SourceError::Upstream("STS GetSessionToken answered without credentials".into())
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "GetSessionToken",
        ))
    }

    /// Asks for the MFA code and assumes the role with it: the credentials are the login's
    /// outcome (only a login, with a person and a code, makes them).
    async fn mfa_login(
        &self,
        role: &mfa::MfaRole,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let code = match &self.spec.mfa_process {
            // A command gives the code: no one is asked.
            Some(argv) => mfa::code_from_process(argv, self.spec.timeout).await?,
            None => {
                (io.report)(LoginPrompt::MfaCode {
                    mfa_serial: role.serial.clone(),
                });
                let wait = deadline
                    .duration_since(self.clock.now())
                    .unwrap_or_default();
                match tokio::time::timeout(wait, io.code).await {
                    Ok(Ok(code)) => code,
                    _ => {
                        return Err(SourceError::NeedsLogin(format!(
                            "no MFA code for `{}` was given in time",
                            role.profile
                        )));
                    }
                }
            }
        };
        let dates = DateProbe::default();
        let started = self.clock.now();
        let sdk = self.sdk_config(&dates).await?;
        let c = mfa::assume_with_code(role, &sdk, code.expose(), self.spec.duration).await?;
        let (expires_at, clock_offset_secs) = match SystemTime::try_from(*c.expiration()) {
            Ok(expiry) => dates.to_local(expiry, started),
            Err(_) => (started + self.spec.duration, None),
        };
        let metadata = CredentialFacts {
            profile: Some(role.profile.clone()),
            mfa_serial: Some(role.serial.clone()),
            ..CredentialFacts::default()
        };
        let fetched = Fetched {
            secret: CredentialSecret::Aws {
                access_key_id: c.access_key_id().to_string(),
                secret_access_key: Secret::new(c.secret_access_key()),
                session_token: Some(Secret::new(c.session_token())),
            },
            expires_at,
            metadata,
            clock_offset_secs,
        };
        if let Some(kept) = &self.kept
            && let Some(session) = mfa::to_kept(&fetched)
        {
            kept.save(&session).await;
        }
        Ok(fetched)
    }

    /// `aws login` is the AWS CLI's own: show it (the client runs it when `aws` is installed),
    /// then wait until the session it leaves yields credentials, which are the login's outcome.
    async fn console_login(
        &self,
        session: &console::ConsoleSession,
        deadline: SystemTime,
        io: LoginIo,
    ) -> Result<Fetched, SourceError> {
        let command: Vec<String> = credd_proto::login_tools::AWS_LOGIN
            .iter()
            .map(|w| w.to_string())
            .chain([session.profile.clone()])
            .collect();
        (io.report)(LoginPrompt::Command {
            instructions: format!(
                "Sign in with `{}`; credd keeps the session fresh from then on.",
                command.join(" ")
            ),
            command,
            env: Vec::new(),
        });
        // The ended session's file stays until `aws login` replaces it.
        super::outside_login::wait(
            &self.clock,
            deadline,
            "`aws login` did not finish",
            super::outside_login::Watched::files(vec![session.cache_path()]),
            |now| self.resolve(now),
        )
        .await
    }

    /// Turns the SDK's error into what credd reports, by the error's type, not its words:
    /// settings the SDK found missing or wrong are a misconfiguration; the SSO portal refusing
    /// the session's token needs a login; the rest is the upstream's.
    fn explain(&self, error: CredentialsError, auth: &ProfileAuth) -> SourceError {
        let profile = &self.spec.profile;
        let detail = DisplayErrorContext(&error).to_string();
        let sso = matches!(auth, ProfileAuth::Sso(_));
        // A provider in a chain wraps the error of the one it sourced from: the innermost
        // says what went wrong.
        let innermost = causes(&error)
            .filter_map(|e| e.downcast_ref::<CredentialsError>())
            .last()
            .unwrap_or(&error);
        match innermost {
            _ if sso_session_refused(&error) => SourceError::NeedsLogin(format!(
                "the SSO session of profile `{profile}` was refused ({detail})"
            )),
            // The SDK's own renewal of an `aws login` session, refused because it is over.
            _ if causes(&error)
                .filter_map(|e| {
                    e.downcast_ref::<aws_sdk_signin::operation::create_o_auth2_token::CreateOAuth2TokenError>()
                })
                .any(console::ended) =>
            {
                SourceError::NeedsLogin(format!(
                    "the `aws login` session of profile `{profile}` has ended ({detail})"
                ))
            }
            CredentialsError::CredentialsNotLoaded(_) if sso => SourceError::NeedsLogin(format!(
                "the SSO session of profile `{profile}` has expired or is missing ({detail})"
            )),
            CredentialsError::CredentialsNotLoaded(_)
            | CredentialsError::InvalidConfiguration(_) => {
                SourceError::Misconfigured(format!("profile `{profile}`: {detail}"))
            }
            _ => SourceError::Upstream(format!("profile `{profile}`: {detail}")),
        }
    }
}

impl Source for AwsSource {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn watched_files(&self) -> Vec<crate::filewatch::Target> {
        watched_files()
    }

    fn logout(&self) -> Option<BoxFuture<'_, Result<Option<String>, SourceError>>> {
        Some(Box::pin(async move {
            *self.kept_session.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let forgotten = match &self.kept {
                Some(kept) => kept.delete().await,
                None => crate::secret_store::Entry::new(&self.name)
                    .delete()
                    .await
                    .or(Ok(())),
            };
            forgotten.map_err(|e| {
                SourceError::Upstream(format!(
                    "the session is forgotten here, but the OS secret store kept it ({e}); it would come back at the next start"
                ))
            })?;
            // What the AWS CLI keeps is shared with it, and the CLI's to end.
            let profile = &self.spec.profile;
            Ok(match self.auth().await {
                Ok(ProfileAuth::Sso(_)) => Some(format!(
                    "profile `{profile}`'s SSO session stays in ~/.aws/sso/cache, shared with the AWS CLI; `aws sso logout` ends it"
                )),
                Ok(ProfileAuth::Console(_)) => Some(format!(
                    "profile `{profile}`'s `aws login` session stays in ~/.aws/login/cache, shared with the AWS CLI; `aws logout --profile {profile}` ends it"
                )),
                Ok(ProfileAuth::Mfa(_)) => None,
                _ => Some(format!(
                    "profile `{profile}` signs in without a login of credd's (keys, a role, a process): the next `credd get` fetches again"
                )),
            })
        }))
    }

    fn persistence(&self) -> Option<String> {
        self.kept.as_ref().map(crate::secret_store::Kept::describe)
    }

    fn login(&self, deadline: SystemTime, io: LoginIo) -> Option<BoxFuture<'_, LoginOutcome>> {
        Some(Box::pin(async move {
            match self.auth().await? {
                ProfileAuth::Mfa(role) => self.mfa_login(&role, deadline, io).await.map(Some),
                ProfileAuth::Sso(session) => {
                    let sdk = self.sdk_config(&DateProbe::default()).await?;
                    // The token file is written; role credentials are fetched with it.
                    sso::shared_device_login(&session, &sdk, &self.clock, deadline, io.report)
                        .await
                        .map(|()| None)
                }
                ProfileAuth::Console(session) => {
                    self.console_login(&session, deadline, io).await.map(Some)
                }
                ProfileAuth::Process(_) | ProfileAuth::Other | ProfileAuth::Unknown { .. } => {
                    Err(SourceError::Upstream(format!(
                        "profile `{}` uses neither SSO, `aws login` nor MFA; there is nothing to log in to (see `credd status` for its error)",
                        self.spec.profile
                    )))
                }
            }
        }))
    }

    fn fetch(&self, now: SystemTime) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.spec.timeout, self.resolve(now)).await {
                Ok(result) => result,
                Err(_) => Err(SourceError::Upstream(format!(
                    "resolving profile `{}` took longer than {}s",
                    self.spec.profile,
                    self.spec.timeout.as_secs()
                ))),
            }
        })
    }
}

/// Whether the SSO portal refused the session's access token (GetRoleCredentials answered
/// UnauthorizedException), somewhere in the chain of `error`'s causes.
fn sso_session_refused(error: &CredentialsError) -> bool {
    use aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError;
    causes(error)
        .filter_map(|e| e.downcast_ref::<aws_sdk_sso::error::SdkError<GetRoleCredentialsError>>())
        .any(|sdk| {
            matches!(
                sdk.as_service_error(),
                Some(GetRoleCredentialsError::UnauthorizedException(_))
            )
        })
}

/// What an AWS service said when a call failed, as credd passes it on: one bounded line with
/// anything secret-looking replaced (a service may quote what it was sent). An answer cut off
/// at [`crate::net::MAX_ANSWER`] is said so, without the SDK's dump of the raw response.
pub(crate) fn service_error<E: std::error::Error>(error: E) -> String {
    let mut cause = error.source();
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return format!("the service {}", crate::net::ReadError::TooLarge);
        }
        cause = e.source();
    }
    crate::redact::one_line(&crate::redact::redact(
        &DisplayErrorContext(error).to_string(),
        &[],
    ))
}

/// `error` and the errors that caused it, outermost first.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

/// The config for the SDK's credential providers: the same region and HTTP client (proxy, CA
/// bundle) as the SDK clients.
pub fn provider_config(sdk: &aws_config::SdkConfig) -> ProviderConfig {
    let config = ProviderConfig::without_region().with_region(sdk.region().cloned());
    match sdk.http_client() {
        Some(http) => config.with_http_client(http),
        None => config,
    }
}

/// How `profile` of `set` authenticates.
pub fn classify(
    set: &aws_config::profile::ProfileSet,
    profile: &str,
) -> Result<ProfileAuth, String> {
    if set.get_profile(profile).is_none() {
        let mut known: Vec<String> = set.profiles().map(str::to_string).collect();
        known.sort();
        return Ok(ProfileAuth::Unknown { known });
    }
    if let Some(role) = mfa::mfa_role(set, profile)? {
        return Ok(ProfileAuth::Mfa(role));
    }
    if let Some(session) = sso::session_for_profile(set, profile)? {
        return Ok(ProfileAuth::Sso(session));
    }
    if let Some(session) = console::ConsoleSession::of_profile(set, profile) {
        return Ok(ProfileAuth::Console(session));
    }
    Ok(match chain::process_chain(set, profile) {
        Some(process) => ProfileAuth::Process(process),
        None => ProfileAuth::Other,
    })
}

/// The AWS config and credentials files, parsed as the SDK parses them.
pub async fn load_profiles() -> Result<aws_config::profile::ProfileSet, String> {
    load_profiles_from(&Fs::real(), &Env::real()).await
}

/// The same, from the files and environment given (the fuzzer's, for one).
pub async fn load_profiles_from(
    fs: &Fs,
    env: &Env,
) -> Result<aws_config::profile::ProfileSet, String> {
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    aws_config::profile::load(fs, env, &files, Some(Cow::Borrowed("default")))
        .await
        .map_err(|e| format!("cannot read the AWS config files: {e}"))
}

/// The files where the AWS CLI and SDKs keep what an `aws` source depends on: `~/.aws` (the
/// config and credentials files, and the SSO token cache `aws sso login` writes), and the config
/// files wherever `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` put them.
pub fn watched_files() -> Vec<crate::filewatch::Target> {
    let mut targets = vec![crate::filewatch::Target::tree(
        &crate::files::home_dir().join(".aws"),
    )];
    for var in ["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] {
        if let Some(path) = std::env::var_os(var) {
            targets.push(crate::filewatch::Target::file(std::path::Path::new(&path)));
        }
    }
    if let Some(dir) = std::env::var_os(console::CACHE_DIRECTORY_ENV).filter(|d| !d.is_empty()) {
        targets.push(crate::filewatch::Target::tree(std::path::Path::new(&dir)));
    }
    targets
}
