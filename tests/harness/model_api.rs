//! A stand-in for the Anthropic Messages API and the Bedrock runtime on 127.0.0.1, for running the
//! real Claude Code.
//!
//! First party: `HEAD /`, and `POST /v1/messages` answered with a streamed message (Server-Sent
//! Events: message_start, content_block_start/delta/stop, message_delta, message_stop).
//! Bedrock: `GET /inference-profiles`, `POST /model/<id>/invoke` (one JSON message) and
//! `POST /model/<id>/invoke-with-response-stream`, answered in AWS event-stream framing with each
//! chunk `{"bytes": base64(<the same event JSON>)}`.
//! Bedrock requests signed with SigV4 are checked as Bedrock checks them: the signature must
//! hold with the secret AWS issued for the access key id (see [`crate::sigv4`]), and the
//! session token must be the one issued with it; anything else is refused with 403 in
//! Bedrock's error format. It records the headers of every request, and can answer 401 to the
//! next N messages, as the real API does for a rejected key.
//!
//! Started with [`ModelApi::aws`], it stands for one of AWS's other model APIs (Bedrock's
//! Anthropic-compatible `bedrock-mantle`, Claude Platform on AWS's `aws-external-anthropic`):
//! first-party paths, every request signed for that service and one of its regions, as the
//! regional host checks the credential scope; Claude Platform also requires its
//! `anthropic-workspace-id`. And it can be out of capacity in a region (a SigV4 region, or a
//! Vertex AI request's location): 529 `overloaded_error` there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{HttpStub, Request, Response};

pub use crate::http::Request as RecordedRequest;

#[derive(Clone)]
pub struct ModelApi {
    stub: HttpStub,
    reject_next: Arc<AtomicUsize>,
    /// The status a rejection answers with: 401, or 403.
    reject_status: Arc<AtomicUsize>,
    rules: Arc<Mutex<Rules>>,
}

/// What the stub checks beyond a valid signature, and where it is out of capacity.
#[derive(Default)]
struct Rules {
    /// Every request signed for this service, in one of these regions (any, when empty);
    /// `None`: Bedrock's paths signed for `bedrock`.
    aws: Option<(String, Vec<String>)>,
    /// The `anthropic-workspace-id` every request must carry.
    workspace: Option<String>,
    /// Regions that answer 529.
    overloaded: Vec<String>,
    /// A model that calls a tool: see [`ModelApi::call_tool`].
    tool: Option<ToolScript>,
}

/// What the model does when a request offers it `name`: call it `calls` times, waiting `pause`
/// before each call after the first, then say what the calls returned.
#[derive(Clone)]
struct ToolScript {
    name: String,
    calls: usize,
    pause: std::time::Duration,
}

/// The reply text the stub streams.
pub const REPLY: &str = "hi from the stub";

impl ModelApi {
    pub fn start() -> Self {
        let reject_next = Arc::new(AtomicUsize::new(0));
        let reject_status = Arc::new(AtomicUsize::new(401));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let (rejects, status, checks) = (reject_next.clone(), reject_status.clone(), rules.clone());
        let stub = HttpStub::start(move |request| {
            answer(&rejects, &status, &checks.lock().unwrap(), request)
        });
        ModelApi {
            stub,
            reject_next,
            reject_status,
            rules,
        }
    }

    /// An AWS model API that takes first-party requests signed for `service` in one of
    /// `regions`.
    pub fn aws(service: &str, regions: &[&str]) -> Self {
        let api = Self::start();
        api.rules.lock().unwrap().aws = Some((
            service.to_string(),
            regions.iter().map(|r| r.to_string()).collect(),
        ));
        api
    }

    /// Refuse every request without this `anthropic-workspace-id`.
    pub fn require_workspace(&self, workspace: &str) {
        self.rules.lock().unwrap().workspace = Some(workspace.to_string());
    }

    /// Be a model that, offered the tool `name` (`mcp__SERVER__TOOL`), calls it `calls` times,
    /// each call after the first `pause` after the last one's result, and then answers
    /// `results: ` and each call's result text, joined with `, `.
    pub fn call_tool(&self, name: &str, calls: usize, pause: std::time::Duration) {
        self.rules.lock().unwrap().tool = Some(ToolScript {
            name: name.to_string(),
            calls,
            pause,
        });
    }

    /// Answer 529 overloaded to every message request for `region`.
    pub fn overload(&self, region: &str) {
        self.rules
            .lock()
            .unwrap()
            .overloaded
            .push(region.to_string());
    }

    /// The region each message request was signed for (or, unsigned, the location its path
    /// names), with the model its path or body names, in order.
    pub fn regions_of_messages(&self) -> Vec<(String, String)> {
        self.messages()
            .iter()
            .map(|r| (model_of(r), region_of(r).unwrap_or_default()))
            .collect()
    }

    pub fn url(&self) -> String {
        self.stub.url()
    }

    /// Answer the next `n` message requests with 401 authentication_error.
    pub fn reject_next(&self, n: usize) {
        self.reject_status.store(401, Ordering::SeqCst);
        self.reject_next.store(n, Ordering::SeqCst);
    }

    /// Answer the next `n` message requests with 403 permission_error, as an API does for a
    /// credential it no longer accepts.
    pub fn forbid_next(&self, n: usize) {
        self.reject_status.store(403, Ordering::SeqCst);
        self.reject_next.store(n, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.stub.requests()
    }

    /// The `Authorization` header of the last message request (for Bedrock, the SigV4 header
    /// naming the access key id and region).
    pub fn last_authorization(&self) -> String {
        self.messages()
            .last()
            .and_then(|r| r.header("authorization").map(str::to_string))
            .expect("a message request with an Authorization header")
    }

    /// The message requests (POST .../messages, or Bedrock's .../invoke*), in order.
    pub fn messages(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST"
                    && (r.path.contains("/messages")
                        || r.path.contains("/invoke")
                        || r.path.contains("Predict"))
            })
            .collect()
    }
}

/// The model a request is for: Bedrock's path names it, a first-party body holds it.
fn model_of(request: &Request) -> String {
    match request.path.strip_prefix("/model/") {
        Some(rest) => rest.split('/').next().unwrap_or_default().to_string(),
        None => serde_json::from_slice::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|b| b["model"].as_str().map(str::to_string))
            .unwrap_or_default(),
    }
}

/// The region a request is for: its SigV4 credential scope's, else its path's location.
fn region_of(request: &Request) -> Option<String> {
    let scoped = request
        .header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .map(str::to_string);
    scoped.or_else(|| {
        request
            .path
            .split("/locations/")
            .nth(1)
            .and_then(|l| l.split('/').next())
            .map(str::to_string)
    })
}

fn answer(
    reject_next: &AtomicUsize,
    reject_status: &AtomicUsize,
    rules: &Rules,
    request: &Request,
) -> Response {
    let bedrock =
        request.path.starts_with("/model/") || request.path.starts_with("/inference-profiles");
    let signed = request
        .header("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "));
    // A Bedrock API key (`Authorization: Bearer`) has no issuer here to check it against.
    let bearer = request
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer "));
    let (service, regions) = rules
        .aws
        .clone()
        .unwrap_or_else(|| ("bedrock".to_string(), Vec::new()));
    let aws_only = rules.aws.is_some() && service == "aws-external-anthropic";
    if (bedrock || rules.aws.is_some()) && (!bearer || aws_only) {
        let checked = if signed {
            crate::sigv4::verify(request, crate::sigv4::known).and_then(|signed| {
                if signed.service != service {
                    Err(crate::sigv4::Refusal::Mismatch(format!(
                        "Credential should be scoped to correct service: '{service}'."
                    )))
                } else if !regions.is_empty() && !regions.contains(&signed.region) {
                    Err(crate::sigv4::Refusal::Mismatch(format!(
                        "Credential should be scoped to a valid region, not '{}'.",
                        signed.region
                    )))
                } else {
                    Ok(())
                }
            })
        } else {
            Err(crate::sigv4::Refusal::Missing(
                "Missing Authentication Token".into(),
            ))
        };
        if let Err(refusal) = checked {
            let kind = match refusal.code() {
                "SignatureDoesNotMatch" => "InvalidSignatureException",
                "InvalidClientTokenId" => "UnrecognizedClientException",
                _ => "AccessDeniedException",
            };
            return Response::json(403, serde_json::json!({"message": refusal.message()}))
                .with_header("x-amzn-errortype", kind);
        }
    }
    if let Some(workspace) = &rules.workspace
        && request.header("anthropic-workspace-id") != Some(workspace.as_str())
    {
        return Response::json(
            403,
            serde_json::json!({"type":"error","error":{"type":"permission_error","message":"anthropic-workspace-id does not name a workspace this principal may use"}}),
        );
    }
    if request.method == "GET" && request.path.starts_with("/inference-profiles") {
        return Response::json(200, serde_json::json!({"inferenceProfileSummaries": []}));
    }
    if request.method != "POST" {
        return Response::new(200, "text/plain", "");
    }
    if region_of(request).is_some_and(|r| rules.overloaded.contains(&r)) {
        return Response::json(
            529,
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        );
    }
    if let Some(script) = &rules.tool
        && let Some(answer) = tool_script(script, request)
    {
        return answer;
    }
    let rejected = reject_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if rejected {
        return match reject_status.load(Ordering::SeqCst) {
            403 => Response::json(
                403,
                serde_json::json!({"type":"error","error":{"type":"permission_error","message":"the credential is not allowed"}}),
            ),
            _ => Response::json(
                401,
                serde_json::json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}),
            ),
        };
    }
    if request.path.ends_with("/invoke-with-response-stream") {
        return Response::new(
            200,
            "application/vnd.amazon.eventstream",
            event_stream_message(),
        );
    }
    if request.path.ends_with("/invoke") {
        return Response::json(
            200,
            serde_json::json!({"id":"msg_stub","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":REPLY}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":4}}),
        );
    }
    Response::new(200, "text/event-stream", sse_message())
}

/// The scripted model's answer to a request that offers `script`'s tool: a call to it, or,
/// once it was called enough, the results.
fn tool_script(script: &ToolScript, request: &Request) -> Option<Response> {
    let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
    let offered = body["tools"]
        .as_array()?
        .iter()
        .any(|t| t["name"] == script.name.as_str());
    if !offered {
        return None;
    }
    // The text of every tool result in the conversation, in order.
    let results: Vec<String> = body["messages"]
        .as_array()?
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|block| block["type"] == "tool_result")
        .map(|block| match &block["content"] {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .collect();
    let events = if results.len() < script.calls {
        if !results.is_empty() {
            std::thread::sleep(script.pause);
        }
        tool_use_events(&script.name, results.len())
    } else {
        let mut events = message_events().to_vec();
        events[2].1["delta"]["text"] = format!("results: {}", results.join(", ")).into();
        events
    };
    let sse: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    Some(Response::new(200, "text/event-stream", sse))
}

/// A streamed assistant message that calls `tool` (its `n`th call), with no arguments.
fn tool_use_events(tool: &str, n: usize) -> Vec<(&'static str, serde_json::Value)> {
    let mut events = message_events().to_vec();
    events[1].1 = serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":format!("toolu_credd{n}"),"name":tool,"input":{}}});
    events[2].1 = serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}});
    events[4].1["delta"]["stop_reason"] = "tool_use".into();
    events
}

/// One streamed assistant message, as the Messages API sends it.
pub fn sse_message() -> String {
    message_events()
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// The same message as Bedrock streams it: AWS event-stream frames, each carrying
/// `{"bytes": base64(event JSON)}`.
pub fn event_stream_message() -> Vec<u8> {
    use base64::Engine as _;
    message_events()
        .iter()
        .flat_map(|(_, data)| {
            let bytes = base64::engine::general_purpose::STANDARD.encode(data.to_string());
            event_stream_frame(serde_json::json!({ "bytes": bytes }).to_string().as_bytes())
        })
        .collect()
}

/// One event-stream frame: total length, headers length, prelude CRC, headers, payload, CRC.
fn event_stream_frame(payload: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in [
        (":event-type", "chunk"),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7); // string
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&(total as u32).to_be_bytes());
    frame.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&headers);
    frame.extend_from_slice(payload);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

fn message_events() -> [(&'static str, serde_json::Value); 6] {
    [
        (
            "message_start",
            serde_json::json!({"type":"message_start","message":{"id":"msg_stub","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":REPLY}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}}),
        ),
        ("message_stop", serde_json::json!({"type":"message_stop"})),
    ]
}
