//! The authenticating proxy, with the real Claude Code going through it on every route
//! (a gateway, Vertex AI, Microsoft Foundry, Bedrock) to the model-API stub: the credential is
//! added by the proxy (and checked by the stub as the real API checks it), never held by
//! Claude Code; a credential the API refuses is replaced once; and the proxy refuses what is
//! not its caller's.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use credd_tests::World;
use credd_tests::google::GoogleUpstream;
use credd_tests::http::read_request;
use credd_tests::model_api::{self, ModelApi};
use serde_json::Value;

use crate::{entra_source, exec_config, gcp_source};

/// The proxy's URL and caller secret on its TCP port, as `credd status --json` names them.
pub(crate) fn proxy_of(world: &World, source: &str) -> (String, String) {
    let endpoint = endpoint_of(world, source, "proxy-port");
    let secret_file = endpoint["secret_file"].as_str().unwrap().to_string();
    let mut secret = String::new();
    world.eventually(Duration::from_secs(10), "the proxy's caller secret", || {
        secret = std::fs::read_to_string(&secret_file).unwrap_or_default();
        !secret.trim().is_empty()
    });
    (
        endpoint["url"].as_str().unwrap().to_string(),
        secret.trim().to_string(),
    )
}

/// `source`'s endpoint of `kind`, as `credd status --json` shows it.
fn endpoint_of(world: &World, source: &str, kind: &str) -> Value {
    let status = world.source_status(source);
    status["endpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} in {status}"))
        .clone()
}

/// The proxy's socket and the `Host` of `source`'s route on it.
pub(crate) fn socket_route_of(world: &World, source: &str) -> (std::path::PathBuf, String) {
    let endpoint = endpoint_of(world, source, "proxy");
    (
        endpoint["socket"].as_str().unwrap().into(),
        host_of(endpoint["url"].as_str().unwrap()),
    )
}

/// `credd setup claude-code SOURCE --via proxy --shell-profile bash`, then Claude Code with
/// those settings and that shell line alone.
pub(crate) fn claude_through_the_proxy(
    world: &World,
    source: &str,
    extra: &[&str],
) -> (String, Value) {
    let mut args = vec![
        "setup",
        "claude-code",
        source,
        "--via",
        "proxy",
        "--shell-profile",
        "bash",
    ];
    args.extend(extra);
    world.credd(&args).ok();
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap(),
    )
    .unwrap();
    let reply = credd_tests::claude_say_hi_from_a_shell(world, world.dir.path());
    (reply, settings)
}

/// Nothing in Claude Code's settings is a credential, nor a caller secret, nor a TCP port:
/// only the route's name on credd's private socket.
fn assert_no_credential_in(settings: &Value, credentials: &[&str]) {
    let text = settings.to_string();
    for credential in credentials {
        assert!(
            !text.contains(credential),
            "a credential is in Claude Code's settings"
        );
    }
    assert!(
        !text.to_ascii_lowercase().contains("x-credd-proxy-secret"),
        "a caller secret is in Claude Code's settings"
    );
    assert!(!text.contains("127.0.0.1"), "a TCP port is in the settings");
    for key in ["apiKeyHelper", "awsCredentialExport"] {
        assert!(settings.get(key).is_none(), "{key} is still set");
    }
}

#[test]
fn claude_code_reaches_a_gateway_through_the_proxy_with_the_exec_token() {
    let api = ModelApi::start();
    let world = gateway_through_the_proxy(&api, "sk-gateway-token-1");
    let _daemon = world.start_daemon();
    let (reply, settings) = claude_through_the_proxy(&world, "gateway", &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_no_credential_in(&settings, &["sk-gateway-token-1"]);
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    for m in &messages {
        assert_eq!(m.header("x-api-key"), Some("sk-gateway-token-1"));
        assert_eq!(m.header("authorization"), Some("Bearer sk-gateway-token-1"));
        assert_eq!(
            m.header("x-credd-proxy-secret"),
            None,
            "the caller secret went upstream"
        );
    }
    // For a project, the route (this machine's own) goes to the settings file Claude Code
    // keeps out of git, never to the one a project commits.
    let project = world.dir.path().join("app");
    std::fs::create_dir_all(&project).unwrap();
    let project_arg = project.to_str().unwrap();
    let setup_proxy = || {
        world
            .credd(&[
                "setup",
                "claude-code",
                "gateway",
                "--via",
                "proxy",
                "--project",
                project_arg,
            ])
            .ok();
    };
    setup_proxy();
    assert!(!project.join(".claude/settings.json").exists());
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(project.join(".claude").join(name)).unwrap())
            .unwrap()
    };
    let keys = |settings: &Value| {
        settings["env"]
            .as_object()
            .map(|e| e.keys().cloned().collect::<Vec<_>>())
    };
    // A gateway's base URL goes in the environment (`credd env`): Claude Code drops it from
    // settings once the socket is set. The settings start credd with each session.
    let local = read("settings.local.json");
    assert!(
        local["env"].get("ANTHROPIC_BASE_URL").is_none()
            && local["env"].get("ANTHROPIC_CUSTOM_HEADERS").is_none(),
        "{:?}",
        keys(&local)
    );
    assert!(
        local["hooks"]["SessionStart"][0]["hooks"][0]["command"]
            .as_str()
            .is_some_and(|c| c.ends_with("credd start")),
        "{}",
        local["hooks"]
    );
    // Back to the helper: the same file (its path to credd is this machine's too), the
    // proxy's settings replaced by the helper's.
    world
        .credd(&["setup", "claude-code", "gateway", "--project", project_arg])
        .ok();
    assert!(!project.join(".claude/settings.json").exists());
    let local = read("settings.local.json");
    assert!(local["apiKeyHelper"].is_string());
    assert!(
        local["env"].get("ANTHROPIC_CUSTOM_HEADERS").is_none()
            && local["env"].get("ANTHROPIC_BASE_URL").is_none(),
        "{:?}",
        keys(&local)
    );
    // And to the proxy again: the helper leaves.
    setup_proxy();
    assert!(read("settings.local.json").get("apiKeyHelper").is_none());
}

#[test]
fn claude_code_reaches_vertex_through_the_proxy_with_a_google_token() {
    let upstream = GoogleUpstream::start();
    let api = ModelApi::start();
    let world = gcp_source::gcp_world(
        &gcp_source::authorized_user(&upstream, gcp_source::REFRESH_TOKEN),
        &format!(
            "project = \"credd-vertex\"\nproxy = {{ upstream = \"{}\" }}\n",
            api.url()
        ),
    );
    let _daemon = world.start_daemon();
    let (reply, settings) = claude_through_the_proxy(&world, "vertex", &["--region", "us-east5"]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let issued = upstream.issued();
    assert_no_credential_in(
        &settings,
        &issued.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(settings["env"]["CLAUDE_CODE_SKIP_VERTEX_AUTH"], "1");
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    for m in &messages {
        assert!(
            m.path
                .starts_with("/v1/projects/credd-vertex/locations/us-east5/"),
            "{}",
            m.path
        );
        let bearer = m.header("authorization").unwrap_or_default();
        assert!(
            issued.iter().any(|t| bearer == format!("Bearer {t}")),
            "the API did not get a token Google issued"
        );
    }
}

#[test]
fn claude_code_reaches_foundry_through_the_proxy_with_an_entra_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = ModelApi::start();
    let (_ca, upstream, world) = entra_source::secret_world(
        &dir,
        &format!("proxy = {{ upstream = \"{}/anthropic\" }}\n", api.url()),
    );
    let _daemon = world.start_daemon();
    let (reply, settings) = claude_through_the_proxy(&world, "foundry", &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let issued = upstream.issued();
    assert_no_credential_in(
        &settings,
        &issued.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    for m in &messages {
        assert!(m.path.starts_with("/anthropic/"), "{}", m.path);
        let bearer = m.header("authorization").unwrap_or_default();
        assert!(
            issued.iter().any(|t| bearer == format!("Bearer {t}")),
            "the API did not get a token Entra issued (Claude Code's placeholder: {})",
            bearer == "Bearer skip-foundry-auth"
        );
    }
}

#[test]
fn claude_code_reaches_bedrock_through_the_proxy_signed_with_moto_credentials() {
    let moto = credd_tests::peers::Moto::start();
    let api = ModelApi::start();
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile bedrock]\nregion = us-east-1\nrole_arn = arn:aws:iam::123456789012:role/bedrock-user\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM012\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\nproxy = {{ upstream = \"{}\" }}\n",
        api.url()
    ));
    let _daemon = world.start_daemon();
    let (reply, settings) = claude_through_the_proxy(&world, "bedrock", &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    assert_eq!(settings["env"]["CLAUDE_CODE_SKIP_BEDROCK_AUTH"], "1");
    assert_no_credential_in(&settings, &["long-term-secret"]);
    // The stub verified each signature with the secret moto issued for the key it names.
    let messages = api.messages();
    assert!(
        messages
            .iter()
            .any(|r| r.path.ends_with("/invoke-with-response-stream")),
        "{messages:?}"
    );
    for m in &messages {
        let auth = m.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=ASIA"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    }
    // An event-stream answer passes byte for byte (its frames carry checksums).
    let (socket, host) = socket_route_of(&world, "bedrock");
    let (status, answer) = exchange_on_socket(
        &socket,
        &format!(
            "POST /model/anthropic.claude/invoke-with-response-stream HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    );
    assert_eq!(status, 200);
    assert!(
        body_of(&answer) == model_api::event_stream_message(),
        "the event stream changed on its way"
    );
}

/// The body of a whole HTTP/1.1 answer, de-chunked when it is chunked.
fn body_of(answer: &[u8]) -> Vec<u8> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer with headers")
        + 4;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let mut rest = &answer[split..];
    if !head.contains("transfer-encoding: chunked") {
        return rest.to_vec();
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A world whose exec source `gateway` prints `token` (until the test changes its output) and
/// is served through a proxy to `api`.
pub(crate) fn gateway_through_the_proxy(api: &ModelApi, token: &str) -> World {
    let world = World::new();
    let cmd = world.counting_command("gw", token);
    let port = credd_tests::peers::free_port();
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!(
            "ttl = \"1h\"\nproxy = {{ port = {port}, upstream = \"{}\" }}",
            api.url()
        ),
    ));
    world
}

/// A gateway world whose token rotates: the command prints `sk-first`, and another from the
/// time the test says.
fn rotating_gateway(api: &ModelApi) -> World {
    gateway_through_the_proxy(api, "sk-first")
}

#[test]
fn a_refused_credential_is_replaced_once_and_the_caller_never_sees_it() {
    for forbidden in [false, true] {
        let api = ModelApi::start();
        let world = rotating_gateway(&api);
        let _daemon = world.start_daemon();
        world
            .credd(&["setup", "claude-code", "gateway", "--via", "proxy", "--tcp"])
            .ok();
        world.credd(&["get", "gateway"]).ok();
        // The gateway revokes the first token and accepts the next one only.
        std::fs::write(world.path("gw.out"), "sk-second").unwrap();
        if forbidden {
            api.forbid_next(1);
        } else {
            api.reject_next(1);
        }
        let reply = credd_tests::claude_say_hi(&world, world.dir.path(), &[]);
        assert!(reply.contains(model_api::REPLY), "{reply}");
        assert_eq!(world.runs("gw"), 2, "one extra credential fetch");
        let keys: Vec<Option<String>> = api
            .messages()
            .iter()
            .map(|m| m.header("x-api-key").map(str::to_string))
            .collect();
        assert_eq!(keys[0].as_deref(), Some("sk-first"), "{keys:?}");
        assert!(
            keys[1..].iter().all(|k| k.as_deref() == Some("sk-second")),
            "{keys:?}"
        );
    }
}

#[test]
fn an_api_that_always_refuses_gets_one_retry_and_the_refusal_reaches_the_caller() {
    let api = ModelApi::start();
    let world = rotating_gateway(&api);
    let _daemon = world.start_daemon();
    let (url, secret) = proxy_of(&world, "gateway");
    api.reject_next(1000);
    let (status, _) = raw_request(&url, &post(&url, &secret, "/v1/messages"));
    assert_eq!(status, 401);
    assert_eq!(api.messages().len(), 2, "one request, one retry");
    assert_eq!(world.runs("gw"), 2, "one forced refresh");
    // Another at once: no forced refresh within the interval, so no retry either.
    let (status, _) = raw_request(&url, &post(&url, &secret, "/v1/messages"));
    assert_eq!(status, 401);
    assert_eq!(api.messages().len(), 3);
    assert_eq!(world.runs("gw"), 2);
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// A JSON `POST` of `{}` to `path` through the proxy at `url`, with the caller secret, on a
/// connection that closes after it.
pub(crate) fn post(url: &str, secret: &str, path: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Credd-Proxy-Secret: {secret}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        host_of(url)
    )
}

/// Sends `request` as it is to the proxy at `url`; (status, whole answer).
pub(crate) fn raw_request(url: &str, request: &str) -> (u16, String) {
    let (status, answer) = raw_exchange(url, request);
    (status, String::from_utf8_lossy(&answer).into_owned())
}

/// The same, with the answer's bytes.
fn raw_exchange(url: &str, request: &str) -> (u16, Vec<u8>) {
    let Ok(stream) = TcpStream::connect(host_of(url)) else {
        return (0, Vec::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    exchange(stream, request)
}

/// A JSON `POST` of `{}` to `path` for `host` on the proxy's Unix socket, with `headers`
/// (whole lines) besides, on a connection that closes after it; (status, the whole answer).
pub(crate) fn post_on_socket(
    socket: &std::path::Path,
    host: &str,
    path: &str,
    headers: &str,
) -> (u16, String) {
    let (status, answer) = exchange_on_socket(
        socket,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    );
    (status, String::from_utf8_lossy(&answer).into_owned())
}

/// Sends `request` as it is on the proxy's Unix socket; (status, the answer's bytes).
pub(crate) fn exchange_on_socket(socket: &std::path::Path, request: &str) -> (u16, Vec<u8>) {
    let Ok(stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return (0, Vec::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    exchange(stream, request)
}

/// `request` sent on `stream`; (status, the whole answer).
fn exchange(mut stream: impl Read + Write, request: &str) -> (u16, Vec<u8>) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer[..answer.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn the_proxy_refuses_what_is_not_its_callers() {
    let api = ModelApi::start();
    let world = rotating_gateway(&api);
    let _daemon = world.start_daemon();
    let (url, secret) = proxy_of(&world, "gateway");
    let host = host_of(&url);
    let post = |headers: &str, body: &str| {
        raw_request(
            &url,
            &format!(
                "POST /v1/messages HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .0
    };
    // No secret, a wrong one, another Host (DNS rebinding), a preflight.
    assert_eq!(post(&format!("Host: {host}\r\n"), "{}"), 401);
    assert_eq!(
        post(
            &format!(
                "Host: {host}\r\nX-Credd-Proxy-Secret: {}\r\n",
                "0".repeat(64)
            ),
            "{}"
        ),
        403
    );
    assert_eq!(
        post(
            &format!("Host: evil.example\r\nX-Credd-Proxy-Secret: {secret}\r\n"),
            "{}"
        ),
        403
    );
    let (status, _) = raw_request(
        &url,
        &format!(
            "OPTIONS /v1/messages HTTP/1.1\r\nHost: {host}\r\nX-Credd-Proxy-Secret: {secret}\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 403);
    // Nothing tunnels, nothing echoes, and no target names another host.
    for request_line in [
        "CONNECT evil.example:443 HTTP/1.1",
        "TRACE /v1/messages HTTP/1.1",
        "POST http://evil.example/v1/messages HTTP/1.1",
    ] {
        let (status, _) = raw_request(
            &url,
            &format!(
                "{request_line}\r\nHost: {host}\r\nX-Credd-Proxy-Secret: {secret}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        );
        assert!(matches!(status, 400 | 405), "{request_line}: {status}");
    }
    assert_nothing_went_on(&api, &world, "a refused request");
    // A body past the bound is refused with 413, not read into memory whole.
    let mut stream = TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let size = 40 * 1024 * 1024;
    stream
        .write_all(
            format!("POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nX-Credd-Proxy-Secret: {secret}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    for _ in 0..40 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or("")
    );
    // The health path, for `credd doctor`: the credential and the API answer.
    let (status, body) = raw_request(
        &url,
        &format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nX-Credd-Proxy-Secret: {secret}\r\nConnection: close\r\n\r\n",
            credd_proto::PROXY_HEALTH_PATH
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("answers (HTTP"), "{body}");
    assert!(
        !body.contains("sk-first"),
        "the health answer holds the credential"
    );
    // `credd doctor` asks that path with the caller secret.
    let doctor = world.credd(&["doctor"]);
    assert!(
        doctor
            .stdout
            .lines()
            .any(|l| l.contains(&url) && l.contains("answers")),
        "{}",
        doctor.stdout
    );
}

/// A world whose `bedrock` source is a role moto issues credentials for, with `proxy` as its
/// proxy table.
fn bedrock_world(moto: &credd_tests::peers::Moto, proxy: &str) -> World {
    let world = World::new().with_aws(
        "[profile base]\nregion = us-east-1\n\n[profile bedrock]\nregion = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/bedrock-user\nsource_profile = base\n",
        "[base]\naws_access_key_id = AKIACREDDLONGTERM013\naws_secret_access_key = long-term-secret\n",
        &moto.url(),
    );
    world.write_config(&format!(
        "[sources.bedrock]\nkind = \"aws\"\nprofile = \"bedrock\"\nproxy = {{ {} }}\n",
        std::iter::once(format!("port = {}", credd_tests::peers::free_port()))
            .chain(Some(proxy.trim_matches(['{', '}', ' ']).to_string()).filter(|p| !p.is_empty()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    world
}

/// The query of a Bedrock API key's presigned URL, as name -> value.
fn api_key_query(key: &str) -> std::collections::BTreeMap<String, String> {
    use base64::Engine as _;
    let encoded = key
        .strip_prefix("bedrock-api-key-")
        .expect("a Bedrock API key");
    let url = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    let query = url
        .strip_prefix("bedrock.amazonaws.com/?")
        .unwrap_or_else(|| panic!("not a presigned Bedrock call: {url}"));
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[test]
fn a_bedrock_api_key_is_the_one_awss_own_generator_makes() {
    let moto = credd_tests::peers::Moto::start();
    let world = bedrock_world(&moto, "{}");
    let _daemon = world.start_daemon();
    let key = world
        .credd(&["get", "bedrock", "--format", "bedrock-api-key"])
        .ok()
        .trim()
        .to_string();
    let ours = api_key_query(&key);
    let creds = world
        .credd(&["get", "bedrock", "--format", "aws-process"])
        .json();
    // AWS's generator (aws-bedrock-token-generator, botocore's signer), with the same
    // credentials, region, lifetime and signing time, must make the same signature.
    let script = r#"
import base64, datetime, json, sys, urllib.parse
from unittest import mock
import botocore.auth
from botocore.credentials import Credentials
from aws_bedrock_token_generator import token_generator
c, region, expires, stamp = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
    token = token_generator._generate_token(
        Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), region, expires)
url = base64.b64decode(token[len("bedrock-api-key-"):]).decode()
print(json.dumps(dict(urllib.parse.parse_qsl(url.split("?", 1)[1]))))
"#;
    let theirs: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&credd_tests::peers::run_python(
            script,
            &[
                &creds.to_string(),
                "eu-west-1",
                &ours["X-Amz-Expires"],
                &ours["X-Amz-Date"],
            ],
            |_| {},
        ))
        .unwrap();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    // Never printed: the signature and the session token are as good as the credentials.
    for name in [
        "Action",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "Version",
    ] {
        assert_eq!(ours.get(name), theirs.get(name), "{name}");
    }
    assert!(
        ours == theirs,
        "credd's key differs from the generator's (signature equal: {})",
        ours.get("X-Amz-Signature") == theirs.get("X-Amz-Signature")
    );
    // Never past the credentials' own end, and at most 12 hours.
    let expires: u64 = ours["X-Amz-Expires"].parse().unwrap();
    let left = humantime::parse_rfc3339(creds["Expiration"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(
        expires <= 43_200 && expires <= left + 5,
        "{expires} > {left}"
    );
    assert!(ours["X-Amz-Credential"].starts_with(creds["AccessKeyId"].as_str().unwrap()));
    assert!(ours["X-Amz-Credential"].contains("/eu-west-1/bedrock/aws4_request"));
}

#[test]
fn claude_code_reaches_bedrock_through_the_proxy_with_an_api_key() {
    let moto = credd_tests::peers::Moto::start();
    let api = ModelApi::start();
    let world = bedrock_world(
        &moto,
        &format!("{{ upstream = \"{}\", auth = \"api-key\" }}", api.url()),
    );
    let _daemon = world.start_daemon();
    let (reply, _settings) = claude_through_the_proxy(&world, "bedrock", &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let creds = world
        .credd(&["get", "bedrock", "--format", "aws-process"])
        .json();
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    let mut keys = std::collections::BTreeSet::new();
    for m in &messages {
        let bearer = m.header("authorization").unwrap_or_default();
        let key = bearer.strip_prefix("Bearer ").expect("a bearer key");
        let query = api_key_query(key);
        assert!(
            query["X-Amz-Credential"].starts_with(creds["AccessKeyId"].as_str().unwrap()),
            "the key was not made from the credentials moto issued"
        );
        // A key caught on its way is good for minutes, not for the credentials' life.
        let expires: u64 = query["X-Amz-Expires"].parse().unwrap();
        assert!(expires <= 15 * 60, "a key valid for {expires}s");
        keys.insert(key.to_string());
    }
    assert_eq!(keys.len(), 1, "one key serves the requests of ten minutes");
}

/// The caller secret that `setup` wrote into Claude Code's settings keeps working after a
/// clean restart and a config edit; after another user held the port it is made anew (what
/// was sent there is worthless), and `credd doctor` says the settings need writing again.
#[test]
fn the_caller_secret_outlives_restarts_but_not_another_users_hold_on_the_port() {
    use credd_tests::other_user::{self, Impostor};
    if !other_user::available(
        "the_caller_secret_outlives_restarts_but_not_another_users_hold_on_the_port",
    ) {
        return;
    }
    let api = ModelApi::start();
    let port = credd_tests::peers::free_port();
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-first");
    let config = |ttl: &str| {
        exec_config(
            "gateway",
            &cmd,
            &format!(
                "ttl = \"{ttl}\"\nproxy = {{ upstream = \"{}\", port = {port} }}",
                api.url()
            ),
        )
    };
    world.write_config(&config("1h"));
    let daemon = world.start_daemon();
    let (url, first) = proxy_of(&world, "gateway");
    world
        .credd(&["setup", "claude-code", "gateway", "--via", "proxy", "--tcp"])
        .ok();
    let post = |secret: &str| raw_request(&url, &post(&url, secret, "/v1/messages")).0;
    let settings_agree = || {
        let (verdict, detail, _) = world.doctor_check("claude code settings");
        (verdict, detail)
    };

    // A clean stop, and the next daemon: the settings still work.
    drop(daemon);
    let daemon = world.start_daemon();
    let (_, after_restart) = proxy_of(&world, "gateway");
    assert!(after_restart == first, "a restart made a new caller secret");
    let reply = credd_tests::claude_say_hi(&world, world.dir.path(), &[]);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    // A config edit rebuilds the proxy: the same secret still.
    world.write_config(&config("2h"));
    world.eventually(Duration::from_secs(10), "the edit is read", || {
        daemon.log().contains("source changed")
    });
    world.eventually(Duration::from_secs(10), "the rebuilt proxy serves", || {
        post(&first) == 200
    });
    assert_eq!(settings_agree().0, "ok", "{:?}", settings_agree());

    // Another user takes the port while credd is down, and collects what is sent there.
    drop(daemon);
    let shared = other_user::shared_dir(world.dir.path());
    let squatter = Impostor::start(&[
        "tcp",
        &port.to_string(),
        &shared.join("squatter.log").display().to_string(),
    ]);
    let _daemon = world.start_daemon();
    world.eventually(
        Duration::from_secs(10),
        "the proxy says who holds its port",
        || {
            endpoint_of(&world, "gateway", "proxy-port")["error"]
                .as_str()
                .is_some_and(|e| e.contains("held by ANOTHER USER (uid 65534)"))
        },
    );
    let short = world.credd(&["status", "--short"]);
    assert!(
        short.stdout.contains("gateway proxy-port PORT NOT HELD"),
        "{}",
        short.stdout
    );
    let secret_file = endpoint_of(&world, "gateway", "proxy-port")["secret_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !std::path::Path::new(&secret_file).exists(),
        "the caller secret's file stayed while another user held the port"
    );
    squatter.stop();
    world.eventually(
        Duration::from_secs(30),
        "the proxy takes its port back",
        || endpoint_of(&world, "gateway", "proxy-port")["error"].is_null(),
    );
    let (_, fresh) = proxy_of(&world, "gateway");
    assert!(
        fresh != first,
        "the secret sent to the squatter is still taken"
    );
    assert_eq!(post(&first), 403);
    assert_eq!(post(&fresh), 200);
    let (verdict, detail) = settings_agree();
    assert_eq!(verdict, "fail", "{detail}");
    assert!(
        detail.contains("caller secret") && !detail.contains(&first) && !detail.contains(&fresh),
        "{detail}"
    );
    world
        .credd(&["setup", "claude-code", "gateway", "--via", "proxy", "--tcp"])
        .ok();
    assert_eq!(settings_agree().0, "ok", "{:?}", settings_agree());
}

/// An upstream on 127.0.0.1 whose answer to each request is `answer(path, stream)`, run once
/// the request was read.
fn scripted_upstream(answer: impl Fn(&str, TcpStream) + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                if let Some(request) = read_request(&mut BufReader::new(&stream)) {
                    answer(&request.path, stream);
                }
            });
        }
    });
    url
}

fn write_chunk(mut stream: &TcpStream, data: &str) -> std::io::Result<()> {
    stream.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())?;
    stream.flush()
}

/// Server-Sent Events reach the caller one by one, as the upstream sends them: the upstream
/// sends each next event only once the caller has the one before, so a proxy that held any
/// back would stall here. An upstream that never answers, or stops in the middle, and a caller
/// that never sends its body are given up on after the proxy's `timeout`.
#[test]
fn answers_stream_through_as_they_come_and_a_silent_side_is_given_up_on() {
    const EVENTS: usize = 5;
    let (caller_has, upstream_waits) = std::sync::mpsc::channel::<usize>();
    let upstream_waits = std::sync::Mutex::new(upstream_waits);
    // Where the redirect points: a server of this user's that notes whether it was reached.
    let redirect_target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    redirect_target.set_nonblocking(true).unwrap();
    let location = format!(
        "http://{}/v1/messages",
        redirect_target.local_addr().unwrap()
    );
    let upstream = scripted_upstream(move |path, mut stream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        match path {
            "/v1/messages" => {
                stream.write_all(head.as_bytes()).unwrap();
                let waits = upstream_waits.lock().unwrap();
                for i in 0..EVENTS {
                    write_chunk(&stream, &format!("event: ping\ndata: {i}\n\n")).unwrap();
                    if waits.recv_timeout(Duration::from_secs(20)) != Ok(i) {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n");
            }
            "/v1/redirect" => {
                let _ = stream.write_all(format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
            }
            "/v1/stall" => {
                stream.write_all(head.as_bytes()).unwrap();
                write_chunk(&stream, "event: ping\ndata: 0\n\n").unwrap();
                std::thread::sleep(Duration::from_secs(30));
            }
            // "/v1/hang": nothing at all.
            _ => std::thread::sleep(Duration::from_secs(30)),
        }
    });
    let world = World::new();
    let cmd = world.counting_command("gw", "sk-first");
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!(
            "proxy = {{ port = {}, upstream = \"{upstream}\", timeout = \"2s\" }}",
            credd_tests::peers::free_port()
        ),
    ));
    let _daemon = world.start_daemon();
    let (url, secret) = proxy_of(&world, "gateway");
    let request = |path: &str, length: usize, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Credd-Proxy-Secret: {secret}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}",
            host_of(&url)
        )
    };

    let mut stream = TcpStream::connect(host_of(&url)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(request("/v1/messages", 2, "{}").as_bytes())
        .unwrap();
    let mut received = Vec::new();
    let mut piece = [0u8; 4096];
    for i in 0..EVENTS {
        let wanted = format!("data: {i}\n");
        while !String::from_utf8_lossy(&received).contains(&wanted) {
            let n = stream
                .read(&mut piece)
                .unwrap_or_else(|e| panic!("event {i} did not come through: {e}"));
            assert!(n > 0, "the answer ended before event {i}");
            received.extend_from_slice(&piece[..n]);
        }
        caller_has.send(i).unwrap();
    }
    let _ = stream.read_to_end(&mut received);
    let body = String::from_utf8_lossy(&body_of(&received)).into_owned();
    assert_eq!(body.matches("event: ping").count(), EVENTS, "{body}");

    // A redirect is neither followed (the credential would go wherever it points) nor passed
    // on (Claude Code would follow it with the caller secret).
    let (status, answer) = raw_request(&url, &request("/v1/redirect", 2, "{}"));
    assert_eq!(status, 502);
    assert!(
        !answer.contains(&redirect_target.local_addr().unwrap().to_string()),
        "{answer}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        redirect_target.accept().is_err(),
        "the proxy followed the redirect"
    );
    // An upstream that sends nothing: 504, not a wait without end.
    let (status, _) = raw_request(&url, &request("/v1/hang", 2, "{}"));
    assert_eq!(status, 504);
    // One that stops in the middle: the answer breaks off (no last chunk), and the
    // connection closes.
    let mut stream = TcpStream::connect(host_of(&url)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(request("/v1/stall", 2, "{}").as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let ended = stream.read_to_end(&mut answer);
    assert!(ended.is_ok(), "the stalled answer was never given up on");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 200")
            && answer.contains("data: 0")
            && !answer.ends_with("0\r\n\r\n"),
        "{answer}"
    );
    // A caller that announces a body and sends a part of it: 408.
    let (status, _) = raw_request(&url, &request("/v1/messages", 100, "{"));
    assert_eq!(status, 408);
}

/// A gateway source served on the proxy socket alone (no TCP port).
fn gateway_on_the_socket(api: &ModelApi, token: &str) -> World {
    let world = World::new();
    let cmd = world.counting_command("gw", token);
    world.write_config(&exec_config(
        "gateway",
        &cmd,
        &format!("ttl = \"1h\"\nproxy = {{ upstream = \"{}\" }}", api.url()),
    ));
    world
}

#[test]
fn after_a_reboot_the_first_session_starts_credd_and_no_port_is_named() {
    let api = ModelApi::start();
    let world = gateway_on_the_socket(&api, "sk-gateway-token-7");
    let daemon = world.start_daemon();
    let (socket, _) = socket_route_of(&world, "gateway");
    world
        .credd(&[
            "setup",
            "claude-code",
            "gateway",
            "--via",
            "proxy",
            "--shell-profile",
            "bash",
        ])
        .ok();
    // What the settings and the shell's line name: the socket, and no TCP port for anyone to
    // hold while credd is down (port 0, which nobody can listen on, aside).
    let settings = std::fs::read_to_string(world.home.join(".claude/settings.json")).unwrap();
    let exported = world.credd(&["env", "--shell", "bash"]);
    for named in [&settings, &exported.stdout] {
        let ports_named = named.split("localhost:").skip(1).any(|after| {
            let port: String = after.chars().take_while(char::is_ascii_digit).collect();
            port != "0"
        });
        assert!(
            !named.contains("127.0.0.1") && !ports_named,
            "a TCP port is named: {named}"
        );
    }
    assert!(
        exported.stdout.contains(&format!(
            "export ANTHROPIC_UNIX_SOCKET='{}'\n",
            socket.display()
        )),
        "{}",
        exported.stdout
    );
    let environment: Vec<(String, String)> = exported
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('\'').to_string()))
        .collect();
    drop(daemon);
    assert!(!socket.exists(), "the stopped daemon left its proxy socket");

    // A session started with that environment and no daemon: its SessionStart hook starts
    // credd before the first model request.
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = credd_tests::claude_say_hi(&world, world.dir.path(), &environment);
    assert!(reply.contains(model_api::REPLY), "{reply}");
    let messages = api.messages();
    assert!(!messages.is_empty(), "no message reached the API");
    assert!(
        messages
            .iter()
            .all(|m| m.header("x-api-key") == Some("sk-gateway-token-7")),
        "a request went without the gateway's token"
    );
    world.credd(&["stop"]).ok();
}

#[test]
fn another_user_cannot_reach_the_proxy_socket() {
    use credd_tests::other_user;
    if !other_user::available("another_user_cannot_reach_the_proxy_socket") {
        return;
    }
    let api = ModelApi::start();
    let world = gateway_on_the_socket(&api, "sk-gateway-token-8");
    let daemon = world.start_daemon();
    let (socket, host) = socket_route_of(&world, "gateway");
    let attempt = || {
        let out = other_user::command("python3")
            .args([
                "-c",
                "import socket, sys\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 try:\n    s.connect(sys.argv[1])\n\
                 except OSError as e:\n    print('refused by the kernel:', e.strerror); sys.exit(0)\n\
                 s.settimeout(10)\n\
                 try:\n    s.sendall(('GET /v1/models HTTP/1.1\\r\\nHost: ' + sys.argv[2] + '\\r\\nConnection: close\\r\\n\\r\\n').encode()); answer = s.recv(4096)\n\
                 except OSError:\n    answer = b''\n\
                 print('answered', len(answer), 'bytes')",
            ])
            .arg(&socket)
            .arg(&host)
            .output()
            .expect("run python3 as the other user");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The directory is credd's, 0700: the kernel turns the other user away at it.
    assert!(
        attempt().starts_with("refused by the kernel"),
        "{}",
        attempt()
    );

    // Opened up, as a careless chmod would: credd itself turns the other user away by the
    // peer's uid, before reading a byte.
    use std::os::unix::fs::PermissionsExt;
    let open_up = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open_up(world.dir.path(), 0o711);
    open_up(socket.parent().unwrap(), 0o711);
    open_up(&socket, 0o777);
    let answer = attempt();
    open_up(&socket, 0o600);
    open_up(socket.parent().unwrap(), 0o700);
    assert_eq!(answer, "answered 0 bytes");
    world.eventually(Duration::from_secs(10), "the refusal is logged", || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("proxy socket") && l.contains("the client runs as uid 65534"))
    });
    assert_nothing_went_on(&api, &world, "the other user's request");
}

#[test]
fn the_socket_routes_by_host_and_sends_nothing_for_a_host_it_does_not_know() {
    let api = ModelApi::start();
    let world = gateway_on_the_socket(&api, "sk-gateway-token-9");
    let _daemon = world.start_daemon();
    let (socket, host) = socket_route_of(&world, "gateway");
    let post = |host: &str| post_on_socket(&socket, host, "/v1/messages", "");
    // Another session's first-party traffic, a source that is not there, a Host made to look
    // like a route: refused with a reason, and nothing fetched or sent.
    for other in [
        "api.anthropic.com",
        "nosuch.credd.localhost",
        "gateway.credd.localhost.evil.example",
        "gateway.credd.localhost:80@evil.example",
    ] {
        let (status, answer) = post(other);
        assert_eq!(status, 421, "{other}: {answer}");
    }
    assert_nothing_went_on(&api, &world, "a refused request");
    // The route, with no caller secret: the token is added.
    let (status, answer) = post(&host);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        api.messages()[0].header("x-api-key"),
        Some("sk-gateway-token-9")
    );
    // `credd doctor` asks the health path on the socket.
    let (verdict, detail, _) = world.doctor_check("endpoint proxy of gateway");
    assert_eq!(verdict, "ok", "{detail}");
}

#[test]
fn a_session_started_without_the_socket_sends_nothing_to_a_port() {
    use credd_tests::other_user;
    if !other_user::available("a_session_started_without_the_socket_sends_nothing_to_a_port") {
        return;
    }
    let moto = credd_tests::peers::Moto::start();
    let world = bedrock_world(&moto, "{}");
    let _daemon = world.start_daemon();
    world
        .credd(&["setup", "claude-code", "bedrock", "--via", "proxy"])
        .ok();
    // Where the route's name leads a client that does not use the socket (Claude Code started
    // from an IDE that never read the shell's profile): loopback, which Claude Code's runtime
    // maps every *.localhost name to, on the URL's port. A squatter there on port 80 (the
    // tests run as root, as CI does, so they can hold it as one could where low ports are
    // open to all) gets nothing: the route names port 0, which nobody can listen on.
    let squatter = std::net::TcpListener::bind("127.0.0.1:80")
        .expect("port 80 of loopback is free for the squatter (the tests run as root)");
    squatter.set_nonblocking(true).unwrap();
    let mut claude = std::process::Command::new(credd_tests::claude_bin());
    world.isolate(&mut claude);
    let mut claude = claude
        .args(["-p", "say hi"])
        .current_dir(world.dir.path())
        .env("TERM", "dumb")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut reached = false;
    while std::time::Instant::now() < deadline && !reached {
        reached = squatter.accept().is_ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = claude.kill();
    let _ = claude.wait();
    assert!(
        !reached,
        "a session without the socket connected to port 80"
    );
}

#[test]
fn the_callers_own_credentials_never_go_upstream() {
    // Each way a gateway takes the token leaves one of the caller's headers that the proxy
    // does not overwrite: both must still be dropped, with every X-Amz-* header.
    for send_as in ["bearer", "x-api-key"] {
        let api = ModelApi::start();
        let world = World::new();
        let cmd = world.counting_command("gw", "sk-credds-own");
        world.write_config(&exec_config(
            "gateway",
            &cmd,
            &format!(
                "proxy = {{ upstream = \"{}\", send_as = \"{send_as}\" }}",
                api.url()
            ),
        ));
        let _daemon = world.start_daemon();
        let (socket, host) = socket_route_of(&world, "gateway");
        let (status, _) = post_on_socket(
            &socket,
            &host,
            "/v1/messages",
            "Authorization: Bearer caller-own-token\r\nx-api-key: caller-own-key\r\nX-Amz-Security-Token: caller-own-session\r\nX-Amz-Target: caller-own-target\r\n",
        );
        assert_eq!(status, 200, "{send_as}");
        let messages = api.messages();
        let sent = &messages[0];
        assert!(
            !sent.headers.iter().any(|(_, v)| v.contains("caller-own")),
            "{send_as}: a header of the caller's went upstream: {:?}",
            sent.headers.iter().map(|(k, _)| k).collect::<Vec<_>>()
        );
        let token = match send_as {
            "bearer" => sent.header("authorization"),
            _ => sent.header("x-api-key"),
        };
        assert!(
            token.is_some_and(|t| t.ends_with("sk-credds-own")),
            "{send_as}: the source's token was not sent"
        );
    }
}

/// Nothing of a refused request reached the model API, and no credential was fetched for it.
fn assert_nothing_went_on(api: &ModelApi, world: &World, who: &str) {
    assert!(api.requests().is_empty(), "{who} reached the API");
    assert_eq!(world.runs("gw"), 0, "{who} fetched a credential");
}
