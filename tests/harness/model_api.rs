//! A stand-in for the Anthropic Messages API and the Bedrock runtime on 127.0.0.1, for running the
//! real Claude Code.
//!
//! First party: `HEAD /`, and `POST /v1/messages` answered with a streamed message (Server-Sent
//! Events: message_start, content_block_start/delta/stop, message_delta, message_stop).
//! Bedrock: `GET /inference-profiles`, `POST /model/<id>/invoke` (one JSON message) and
//! `POST /model/<id>/invoke-with-response-stream`, answered in AWS event-stream framing with each
//! chunk `{"bytes": base64(<the same event JSON>)}`.
//! It records the headers of every request, and can answer 401 to the next N messages, as the
//! real API does for a rejected key.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct ModelApi {
    pub port: u16,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    reject_next: Arc<AtomicUsize>,
}

/// The reply text the stub streams.
pub const REPLY: &str = "hi from the stub";

impl ModelApi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind model API stub");
        let api = ModelApi {
            port: listener.local_addr().unwrap().port(),
            requests: Arc::default(),
            reject_next: Arc::default(),
        };
        let server = api.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(stream));
            }
        });
        api
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answer the next `n` message requests with 401 authentication_error.
    pub fn reject_next(&self, n: usize) {
        self.reject_next.store(n, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The message requests (POST .../messages, or Bedrock's .../invoke*), in order.
    pub fn messages(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && (r.path.contains("/messages") || r.path.contains("/invoke"))
            })
            .collect()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let request = RecordedRequest {
                method,
                path,
                headers,
            };
            read_body(&mut reader, &request);
            let response = self.answer(&request);
            self.requests.lock().unwrap().push(request);
            if writer.write_all(&response).is_err() {
                return;
            }
        }
    }

    fn answer(&self, request: &RecordedRequest) -> Vec<u8> {
        if request.method == "GET" && request.path.starts_with("/inference-profiles") {
            return http(
                200,
                "application/json",
                br#"{"inferenceProfileSummaries":[]}"#,
            );
        }
        if request.method != "POST" {
            return http(200, "text/plain", b"");
        }
        let rejected = self
            .reject_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if rejected {
            return http(
                401,
                "application/json",
                br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            );
        }
        if request.path.ends_with("/invoke-with-response-stream") {
            return http(
                200,
                "application/vnd.amazon.eventstream",
                &event_stream_message(),
            );
        }
        if request.path.ends_with("/invoke") {
            let message = serde_json::json!({"id":"msg_stub","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":REPLY}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":4}});
            return http(200, "application/json", message.to_string().as_bytes());
        }
        http(200, "text/event-stream", sse_message().as_bytes())
    }
}

fn read_body(reader: &mut impl BufRead, request: &RecordedRequest) {
    if let Some(len) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
    } else if request
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            let _ = reader.read_exact(&mut chunk);
            if size == 0 {
                return;
            }
        }
    }
}

fn http(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = if status == 200 { "OK" } else { "Unauthorized" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nrequest-id: req_stub\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
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
