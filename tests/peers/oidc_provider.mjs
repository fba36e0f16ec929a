// A real OpenID Provider for credd's tests: the `oidc-provider` package from npm (a certified
// implementation) over HTTPS on 127.0.0.1, with its own login and consent pages.
//
// Configured from the environment by the harness (tests/harness/oidc.rs):
//   OIDC_PORT, OIDC_CERT, OIDC_KEY    where it listens, and its TLS certificate and key
//   OIDC_CLIENT_ID                    the public client credd signs in as (PKCE required)
//   OIDC_FIXED_REDIRECT               when set, the one redirect URI allowed (an exact port)
//   OIDC_ID_TOKEN_TTL, OIDC_ACCESS_TOKEN_TTL, OIDC_REFRESH_TOKEN_TTL   lifetimes in seconds
//
// Every person who signs in is an account named by the login typed on the login page, with
// an email of LOGIN@example.com. Prints "ready" once listening, then a line for each grant
// and authorization it made or refused.
import https from 'node:https';
import fs from 'node:fs';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const env = (name, fallback) => process.env[name] ?? fallback;
const port = Number(env('OIDC_PORT'));
const issuer = `https://127.0.0.1:${port}`;
const clientId = env('OIDC_CLIENT_ID', 'credd');
const fixed = process.env.OIDC_FIXED_REDIRECT;

// A fresh RS256 key for each start: the ID tokens it signs verify against its JWKS only.
async function signingKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg: 'RS256', use: 'sig', kid: `credd-test-${Date.now()}` };
}

const configuration = {
  clients: [
    {
      client_id: clientId,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
      // RFC 8252 7.3: a loopback redirect URI matches on any port, unless a fixed one is set.
      redirect_uris: [fixed ?? 'http://127.0.0.1/callback'],
    },
  ],
  jwks: { keys: [await signingKey()] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  // The claims a scope asks for go in the ID token too, as Okta, Auth0 and Entra put them.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.com`, email_verified: true };
      },
    };
  },
  // Refresh tokens for every sign-in of the public client, rotated on every use (the default
  // for public clients), with short lifetimes so that the tests see them run out.
  issueRefreshToken: async () => true,
  rotateRefreshToken: true,
  ttl: {
    IdToken: Number(env('OIDC_ID_TOKEN_TTL', '3600')),
    AccessToken: Number(env('OIDC_ACCESS_TOKEN_TTL', '3600')),
    RefreshToken: Number(env('OIDC_REFRESH_TOKEN_TTL', '86400')),
    DeviceCode: 600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  // Consent to what was asked, once per sign-in.
  loadExistingGrant: undefined,
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, err) => console.error('server_error', err));
// What the provider granted and refused, one line each on stdout, for the tests to count.
provider.on('grant.success', (ctx) => console.log('grant.success', ctx.oidc.params.grant_type));
provider.on('authorization.success', () => console.log('authorization.success'));
for (const event of ['grant.error', 'authorization.error']) {
  provider.on(event, (ctx, err) => console.log(event, err.error ?? '', err.error_description ?? ''));
}

const server = https.createServer(
  { cert: fs.readFileSync(env('OIDC_CERT')), key: fs.readFileSync(env('OIDC_KEY')) },
  provider.callback(),
);
server.listen(port, '127.0.0.1', () => console.log('ready'));
