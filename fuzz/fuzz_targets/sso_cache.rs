//! An SSO token file under `~/.aws/sso/cache`, written by the AWS CLI, an SDK or anyone. `$S`
//! in the input stands for a secret in the file: no error may quote it. A token credd reads
//! must survive being written back (credd rewrites the file the CLI shares) unchanged.
#![no_main]

use credd_daemon::sources::aws::sso::{self, Cached};
use libfuzzer_sys::fuzz_target;

/// Shaped like a base64 secret, with characters no identifier has.
const PLANTED: &str = "SeCrEt/4f2a+9c17e0=";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("cache.json");
    match sso::parse_cache(text.replace("$S", PLANTED).as_bytes(), path) {
        Cached::Missing => unreachable!("bytes were given"),
        Cached::Unreadable(e) => assert!(!e.contains(PLANTED), "the error quotes the file: {e}"),
        Cached::Token(token) => {
            let written = serde_json::to_vec_pretty(&token).unwrap();
            let Cached::Token(again) = sso::parse_cache(&written, path) else {
                panic!("a token credd wrote does not read back");
            };
            assert_eq!(again.access_token, token.access_token);
            assert_eq!(again.expires_at, token.expires_at);
            assert_eq!(again.refresh_token, token.refresh_token);
            assert_eq!(again.client_id, token.client_id);
            assert_eq!(again.client_secret, token.client_secret);
            assert_eq!(again.registration_expires_at, token.registration_expires_at);
        }
    }
});
