//! A remote MCP server through credd's proxy: the real Claude Code, set up by `credd setup
//! mcp`, calls a tool of a server made with the official MCP Python SDK before and after the
//! token it was started with expires, and each call carries the source's current token.

use std::time::Duration;

use credd_tests::World;
use credd_tests::model_api::ModelApi;
use credd_tests::peers::McpServer;

use crate::exec_config;

/// How long each token the issuer mints lives.
const LIFETIME_SECS: u64 = 6;

/// A world whose source `mcp-auth` runs a command that mints a new token on every run, valid
/// for `lifetime` seconds, and writes it to the issued file the MCP server trusts; and whose
/// `[mcp.tools]` is that server's route on the port returned.
fn issuing_world(lifetime: u64) -> (World, std::path::PathBuf, McpServer, u16) {
    let world = World::new();
    let issued = world.path("issued");
    std::fs::write(&issued, "").unwrap();
    let counter = world.path("minted");
    let mint = world.script(
        "mint.sh",
        &format!(
            "n=$(( $(cat '{counter}' 2>/dev/null || echo 0) + 1 ))\n\
             echo $n > '{counter}'\n\
             token=\"mcp-token-$n-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')\"\n\
             expires=$(( $(date +%s) + {lifetime} ))\n\
             echo \"$token $expires\" >> '{issued}'\n\
             printf '{{\"token\":\"%s\",\"expires_at\":\"%s\"}}' \"$token\" \"$(date -u -d \"@$expires\" +%Y-%m-%dT%H:%M:%SZ)\"\n",
            counter = counter.display(),
            issued = issued.display(),
        ),
    );
    let mcp = McpServer::start(&issued, world.dir.path());
    let port = credd_tests::peers::free_port();
    world.write_config(&format!(
        "{}\n[mcp.tools]\nsource = \"mcp-auth\"\nurl = \"{}\"\nport = {port}\n",
        exec_config("mcp-auth", &[mint.display().to_string()], ""),
        mcp.url()
    ));
    (world, issued, mcp, port)
}

/// The expiry the issued file gives `token`.
fn expiry_of(issued: &std::path::Path, token: &str) -> f64 {
    std::fs::read_to_string(issued)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{token} ")))
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("{token} was never issued"))
}

#[test]
fn claude_code_calls_an_mcp_tool_before_and_after_its_token_expires() {
    let (world, issued, mcp, port) = issuing_world(LIFETIME_SECS);
    let _daemon = world.start_daemon();
    let out = world.credd(&["setup", "mcp", "tools"]).ok().to_string();
    let config = std::fs::read_to_string(world.home.join(".claude.json")).unwrap();
    let written: serde_json::Value = serde_json::from_str(&config).unwrap();
    let entry = &written["mcpServers"]["tools"];
    assert_eq!(entry["type"], "http", "{written}");
    assert_eq!(entry["url"], format!("http://127.0.0.1:{port}/mcp"));
    assert!(
        entry["headersHelper"]
            .as_str()
            .is_some_and(|h| h.ends_with("credd mcp-headers tools")),
        "{written}"
    );
    // The caller secret stays in credd's file: Claude Code's holds the command that reads it.
    let secret = world.credd(&["mcp-headers", "tools"]).ok().to_string();
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    let secret = secret[credd_proto::PROXY_SECRET_HEADER].as_str().unwrap();
    assert!(!config.contains(secret) && !out.contains(secret));

    // A model that calls the tool, then again once the first call's token has expired.
    let model = ModelApi::start();
    model.call_tool(
        "mcp__tools__count",
        2,
        Duration::from_secs(LIFETIME_SECS + 1),
    );
    let reply = credd_tests::claude_print(
        &world,
        world.dir.path(),
        "count twice",
        &["--allowedTools", "mcp__tools__count"],
        &[
            ("ANTHROPIC_BASE_URL", &model.url()),
            ("ANTHROPIC_API_KEY", "sk-model-stub"),
            // Offered directly: the stub model does not search for tools.
            ("ENABLE_TOOL_SEARCH", "false"),
        ],
    );
    // What each call returned, in order, as the model saw it.
    let (one, two) = (reply.find("call 1"), reply.find("call 2"));
    assert!(one.is_some() && one < two, "{reply}");
    let calls = mcp.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (first, second) = (&calls[0], &calls[1]);
    assert_ne!(
        first.0, second.0,
        "the second call went with the first token"
    );
    assert!(
        expiry_of(&issued, &first.0) <= second.1,
        "the first token had not expired by the second call: nothing was proven"
    );
    // Claude Code itself never held a token.
    let config = std::fs::read_to_string(world.home.join(".claude.json")).unwrap();
    assert!(
        !config.contains("mcp-token-"),
        "a token reached Claude Code's config"
    );
}

#[test]
fn the_mcp_route_serves_its_endpoint_only_and_refuses_callers_without_its_secret() {
    // Tokens that outlive the test: only a refusal makes credd fetch another.
    let (world, issued, _mcp, port) = issuing_world(3600);
    let _daemon = world.start_daemon();
    credd_tests::peers::wait_for_port(port, Duration::from_secs(10), "the MCP route");
    let url = format!("http://127.0.0.1:{port}");
    let secret = std::fs::read_to_string(
        world.source_status("mcp-auth")["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "mcp")
            .unwrap()["secret_file"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let request = |path: &str, secret: Option<&str>| {
        let secret = secret
            .map(|s| format!("X-Credd-Proxy-Secret: {}\r\n", s.trim()))
            .unwrap_or_default();
        crate::proxy::raw_request(
            &url,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{secret}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        )
        .0
    };
    assert_eq!(request("/mcp", None), 401, "no caller secret");
    assert_eq!(request("/.well-known/other", Some(&secret)), 404);
    assert_eq!(request("/", Some(&secret)), 404);
    // The endpoint itself: the SDK answers the empty body, having taken the token.
    assert_eq!(request("/mcp", Some(&secret)), 400);
    let minted = || {
        std::fs::read_to_string(world.path("minted"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(minted(), "1", "one token minted");

    // The server withdraws the token before it expires: its 401 never reaches the caller, the
    // request goes again with a new one.
    std::fs::write(&issued, "").unwrap();
    assert_eq!(request("/mcp", Some(&secret)), 400, "the 401 was passed on");
    assert_eq!(minted(), "2", "one new token");

    // The SDK's own client through the route: its POSTs, the GET event stream it holds open,
    // and the DELETE that ends its session.
    let out = std::process::Command::new(credd_tests::peers::python())
        .arg(credd_tests::workspace_root().join("tests/peers/mcp_client.py"))
        .arg(format!("{url}/mcp"))
        .arg(credd_proto::PROXY_SECRET_HEADER)
        .env("MCP_HEADER_VALUE", secret.trim())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "call 1");
    let log = std::fs::read_to_string(world.dir.path().join("mcp-server.log")).unwrap();
    for method in ["POST", "GET", "DELETE"] {
        assert!(
            log.contains(&format!("\"{method} /mcp HTTP/1.1\" 200")),
            "no {method} went through: {log}"
        );
    }

    // doctor asks the route's health path, with its caller secret: a credential, and a server
    // that answers.
    let doctor = world.credd_command(&["doctor", "--json"]).output().unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let route = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"] == "endpoint mcp of mcp-auth")
        .unwrap_or_else(|| panic!("no check of the route: {checks}"));
    assert_eq!(route["verdict"], "ok", "{route}");
    let log = std::fs::read_to_string(world.dir.path().join("mcp-server.log")).unwrap();
    assert!(
        log.contains("\"HEAD / HTTP/1.1\""),
        "doctor never reached the server: {log}"
    );
}

#[test]
fn as_a_headers_helper_credd_finds_the_source_by_the_servers_name() {
    let (world, _issued, _mcp, _port) = issuing_world(3600);
    let _daemon = world.start_daemon();
    // As Claude Code runs an MCP server's headersHelper: no SOURCE, the server's name and URL
    // in the environment.
    let out = world
        .credd_command(&["get", "--format", "headers"])
        .env("CLAUDE_CODE_MCP_SERVER_NAME", "tools")
        .env("CLAUDE_CODE_MCP_SERVER_URL", "https://mcp.example.com/mcp")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let headers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        headers["Authorization"]
            .as_str()
            .is_some_and(|h| h.starts_with("Bearer mcp-token-1-")),
        "the source of [mcp.tools] was not asked"
    );
    // A server of another config (a project's, say) does not get a source's token by name.
    let out = world
        .credd_command(&["get", "--format", "headers"])
        .env("CLAUDE_CODE_MCP_SERVER_NAME", "mcp-auth")
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "a token went to another config's server"
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Neither a SOURCE nor a server: a clear refusal.
    let out = world.credd(&["get"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("CLAUDE_CODE_MCP_SERVER_NAME"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_caller_secret_is_not_handed_out_while_another_holds_the_routes_port() {
    let (world, _issued, _mcp, port) = issuing_world(3600);
    // Whoever holds the port would receive what Claude Code sends the server.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let _daemon = world.start_daemon();
    let out = world.credd(&["mcp-headers", "tools"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "the secret was handed out");
    assert!(
        out.stderr.contains("does not hold its port"),
        "{}",
        out.stderr
    );
    // Once the port is free, the route takes it and the header is given.
    drop(squatter);
    let mut given = String::new();
    world.eventually(
        Duration::from_secs(20),
        "the route to take its port",
        || {
            let out = world.credd(&["mcp-headers", "tools"]);
            given = out.stdout;
            out.code == 0
        },
    );
    assert!(given.contains(credd_proto::PROXY_SECRET_HEADER), "{given}");
}
