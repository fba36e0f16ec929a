//! The client assertion of a certificate credential: a JWT signed (RS256, with `jsonwebtoken`)
//! by the certificate's private key, naming the certificate by its SHA-1 thumbprint (`x5t`), as
//! the Microsoft identity platform documents. `azure_identity` builds the same assertion only
//! through OpenSSL; this keeps credd on one TLS and crypto stack.

use std::path::{Path, PathBuf};

use azure_core::http::ClientMethodOptions;
use base64::Engine as _;
use serde::Serialize;
use sha1::Digest as _;

/// Lifetime of one assertion.
const ASSERTION_LIFETIME_SECS: i64 = 600;

pub struct CertificateAssertion {
    path: PathBuf,
    thumbprint: String,
    key: jsonwebtoken::EncodingKey,
    audience: String,
    client_id: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("path", &self.path)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

impl CertificateAssertion {
    /// Reads the PEM file (certificate and private key, in either order). `audience` is the
    /// tenant's token endpoint.
    pub fn load(path: &Path, audience: String, client_id: String) -> Result<Self, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the certificate {}: {e}", path.display()))?;
        let blocks =
            pem::parse_many(&text).map_err(|_| format!("{} is not a PEM file", path.display()))?;
        let certificate = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| format!("{} holds no CERTIFICATE", path.display()))?;
        let key = blocks
            .iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or_else(|| format!("{} holds no private key", path.display()))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem::encode(key).as_bytes())
            .map_err(|_| format!("the private key in {} is not an RSA key", path.display()))?;
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(certificate.contents()));
        Ok(CertificateAssertion {
            path: path.to_path_buf(),
            thumbprint,
            key,
            audience,
            client_id,
        })
    }

    fn sign(&self) -> Result<String, String> {
        // Entra checks the assertion against its own clock.
        let now = crate::clock::unix_secs(crate::clock::wall());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t = Some(self.thumbprint.clone());
        let claims = Claims {
            aud: &self.audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: crate::random::secret(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.sign().map_err(|message| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, message)
        })
    }
}
