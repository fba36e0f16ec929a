//! HTTP requests to the local endpoints (AWS container credentials, GCE metadata, Azure managed
//! identity): method, path, query and headers, as any local process can send them. The input is
//! a request head: `METHOD TARGET` on the first line, then `Name: value` lines; `$SECRET` in it
//! is replaced by the endpoint's real secret, so that the fuzzer gets past the secret checks.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use credd_daemon::audiences::Audiences;
use credd_daemon::cache::Slot;
use credd_daemon::clock::Clock;
use credd_daemon::endpoints::aws_container::AwsContainer;
use credd_daemon::endpoints::azure_managed_identity::AzureManagedIdentity;
use credd_daemon::endpoints::gce_metadata::GceMetadata;
use credd_daemon::endpoints::{Answers, Endpoint, EndpointRequest, host_allowed};
use credd_daemon::source_name::SourceName;
use credd_daemon::sources::{Fetched, Source, SourceError};
use credd_proto::{CredentialSecret, Secret};
use libfuzzer_sys::fuzz_target;

/// Every credential the endpoints can serve.
const SERVED: [&str; 3] = ["fuzz-secret", "fuzz-session", "fuzz-token"];

const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// An upstream that always answers at once.
struct Fixed {
    aws: bool,
}

impl Source for Fixed {
    fn kind(&self) -> &'static str {
        "fixed"
    }

    fn fetch(
        &self,
        now: SystemTime,
    ) -> futures_util::future::BoxFuture<'_, Result<Fetched, SourceError>> {
        let secret = if self.aws {
            CredentialSecret::Aws {
                access_key_id: "ASIAFUZZ".into(),
                secret_access_key: Secret::new(SERVED[0]),
                session_token: Some(Secret::new(SERVED[1])),
            }
        } else {
            CredentialSecret::Token {
                token: Secret::new(SERVED[2]),
            }
        };
        Box::pin(async move {
            Ok(Fetched {
                secret,
                expires_at: now + Duration::from_secs(3600),
                metadata: credd_proto::CredentialFacts {
                    project: Some("fuzz".to_string()),
                    ..Default::default()
                },
                clock_offset_secs: None,
            })
        })
    }
}

struct Endpoints {
    runtime: tokio::runtime::Runtime,
    all: Vec<(Arc<dyn Answers>, String)>,
}

fn name(name: &str) -> SourceName {
    SourceName::try_from(name).unwrap()
}

fn endpoints() -> &'static Endpoints {
    static ENDPOINTS: OnceLock<Endpoints> = OnceLock::new();
    ENDPOINTS.get_or_init(|| {
        let home = std::env::temp_dir().join(format!("credd-fuzz-{}", std::process::id()));
        // SAFETY: set once, before any other thread of this process reads the environment.
        unsafe { std::env::set_var("HOME", &home) };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let clock = Arc::new(Clock::system());
        let token = Slot::new(name("fuzz"), Box::new(Fixed { aws: false }), clock.clone());
        let aws = Slot::new(
            name("fuzz-aws"),
            Box::new(Fixed { aws: true }),
            clock.clone(),
        );
        // Each endpoint's secret, made as when it takes its port.
        let with_secret = |endpoint: &dyn Endpoint| {
            let secret = endpoint.secret().unwrap();
            secret.rotate().unwrap();
            std::fs::read_to_string(secret.file()).unwrap()
        };
        let container = AwsContainer::new(aws, &name("fuzz"));
        let container_secret = with_secret(&container);
        let identity = AzureManagedIdentity::new(token.clone(), &name("fuzz"), vec![SCOPE.into()]);
        let identity_secret = with_secret(&identity);
        // ID tokens from a source whose credential file is missing: every audience fails
        // fast, without a network call.
        let config = credd_daemon::config::parse(
            std::path::Path::new("fuzz.toml"),
            "[sources.fuzz]\nkind = \"gcp\"\ncredentials_file = \"/nonexistent/credd-fuzz.json\"\n",
        )
        .unwrap();
        let audiences = Arc::new(Audiences::new(
            &name("fuzz"),
            config.sources["fuzz"].clone(),
            clock.clone(),
            Arc::new(credd_daemon::sources::NoOtherSources),
        ));
        let metadata = GceMetadata::new(
            token,
            audiences,
            vec!["https://www.googleapis.com/auth/cloud-platform".into()],
        );
        Endpoints {
            all: vec![
                (Arc::new(container), container_secret),
                (Arc::new(metadata), String::new()),
                (Arc::new(identity), identity_secret),
            ],
            runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let endpoints = endpoints();
    for (endpoint, secret) in &endpoints.all {
        let text_has_secret = text.contains("$SECRET");
        let text = text.replace("$SECRET", secret);
        let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
        let Some(first) = lines.next() else {
            return;
        };
        let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (target.to_string(), None),
        };
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let _ = host_allowed(headers.get("host").map(String::as_str), 47000);
        let request = EndpointRequest {
            method: method.to_string(),
            path,
            query,
            headers,
        };
        let flavor = request.headers.get("metadata-flavor").cloned();
        let response = endpoints.runtime.block_on(endpoint.handle(request));
        assert!((200..600).contains(&response.status));
        // Errors do not quote the request, so a credential in the body was served.
        let leaked = SERVED.iter().any(|s| response.body.contains(s));
        assert!(
            !(leaked && response.status >= 400),
            "a refusal carries a credential: {} {}",
            response.status,
            response.body
        );
        // Without the caller secret (or, for the metadata server, its flavor header) nothing
        // is served.
        let authorized = if secret.is_empty() {
            flavor.as_deref() == Some("Google")
        } else {
            text_has_secret
        };
        assert!(
            authorized || !leaked,
            "served a credential to a caller without the secret: {first}"
        );
    }
});
