//! Which API a request speaks, from its method, path and (failing that) body shape.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Endpoint, Provider, Shape, azure, bedrock};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub provider: Provider,
    pub endpoint: Endpoint,
    /// Counts tokens. False for token counting, model lists, telemetry and everything unknown.
    pub inference: bool,
    pub shape: Shape,
    /// A model named by the path (Gemini, Vertex, Bedrock, an Azure deployment).
    pub path_model: Option<String>,
    /// The response is a stream even without an SSE content type (Gemini's JSON array).
    pub json_array_stream: bool,
    /// Decided from the body because the path was not recognised.
    pub from_body_shape: bool,
}

impl Route {
    fn new(provider: Provider, endpoint: Endpoint, shape: Shape) -> Self {
        let inference = shape != Shape::None;
        Self { provider, endpoint, inference, shape, path_model: None, json_array_stream: false, from_body_shape: false }
    }

    fn other() -> Self {
        Self::new(Provider::Unknown, Endpoint::Other, Shape::None)
    }

    /// Refines a route the path could not decide, from the request body's shape.
    pub fn refine(&mut self, method: &str, body: &RequestBody, anthropic_version: bool) {
        if self.endpoint != Endpoint::Other || method != "POST" || body.model.is_none() {
            return;
        }
        let (provider, shape) = if anthropic_version && body.messages.is_some() {
            (Provider::Anthropic, Shape::Anthropic)
        } else if body.messages.is_some() {
            (Provider::OpenaiChat, Shape::OpenaiChat)
        } else if body.input.is_some() {
            (Provider::OpenaiResponses, Shape::OpenaiResponses)
        } else if body.contents.is_some() {
            (Provider::Gemini, Shape::Gemini)
        } else {
            return;
        };
        *self = Self { from_body_shape: true, ..Self::new(provider, Endpoint::Other, shape) };
    }
}

/// The few request-body fields guard reads; the rest (the prompt) is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct RequestBody {
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub messages: Option<IgnoredAny>,
    pub input: Option<IgnoredAny>,
    pub contents: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// Classifies a request by method and target (path and query).
pub fn route(method: &str, target: &str) -> Route {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = path.trim_end_matches('/');
    let post = method == "POST";
    let last = path.rsplit('/').next().unwrap_or("");

    // Google: the verb follows a colon in the last segment (`models/gemini-2.5-pro:generateContent`,
    // `v1internal:streamGenerateContent`).
    if let Some((before, verb)) = last.split_once(':') {
        let model = (before != "v1internal").then(|| percent_decode(before)).filter(|m| !m.is_empty());
        let anthropic_on_vertex = path.contains("/publishers/anthropic/");
        let mut r = match verb {
            "generateContent" if post => Route::new(Provider::Gemini, Endpoint::GenerateContent, Shape::Gemini),
            "streamGenerateContent" if post => {
                let mut r = Route::new(Provider::Gemini, Endpoint::StreamGenerateContent, Shape::Gemini);
                r.json_array_stream = !query.split('&').any(|kv| kv == "alt=sse");
                r
            }
            "rawPredict" if post && anthropic_on_vertex => {
                Route::new(Provider::Anthropic, Endpoint::Messages, Shape::Anthropic)
            }
            "streamRawPredict" if post && anthropic_on_vertex => {
                Route::new(Provider::Anthropic, Endpoint::Messages, Shape::Anthropic)
            }
            "countTokens" | "count-tokens" => Route::new(Provider::Gemini, Endpoint::CountTokens, Shape::None),
            _ => Route::new(Provider::Gemini, Endpoint::Other, Shape::None),
        };
        r.path_model = model;
        return r;
    }

    // Bedrock runtime: /model/{id}/{operation}.
    if path.contains("/model/") {
        let r = match last {
            "converse" => Some((Endpoint::Converse, Shape::BedrockConverse)),
            "converse-stream" => Some((Endpoint::ConverseStream, Shape::BedrockConverse)),
            "invoke" => Some((Endpoint::Invoke, Shape::BedrockInvoke)),
            "invoke-with-response-stream" => Some((Endpoint::InvokeWithResponseStream, Shape::BedrockInvoke)),
            _ => None,
        };
        if let Some((endpoint, shape)) = r
            && post
        {
            return Route { path_model: bedrock::model_id(path), ..Route::new(Provider::Bedrock, endpoint, shape) };
        }
    }

    if path.ends_with("/messages/count_tokens") {
        return Route::new(Provider::Anthropic, Endpoint::CountTokens, Shape::None);
    }
    if post && path.ends_with("/messages") {
        return Route::new(Provider::Anthropic, Endpoint::Messages, Shape::Anthropic);
    }

    let azure = path.contains("/openai/deployments/") || query.split('&').any(|kv| kv.starts_with("api-version="));
    let wrap = |provider: Provider, endpoint: Endpoint, shape: Shape| {
        let provider = if azure { Provider::Azure } else { provider };
        Route { path_model: azure::deployment(path), ..Route::new(provider, endpoint, shape) }
    };
    if post && path.ends_with("/chat/completions") {
        return wrap(Provider::OpenaiChat, Endpoint::ChatCompletions, Shape::OpenaiChat);
    }
    if post && path.ends_with("/completions") {
        return wrap(Provider::OpenaiChat, Endpoint::Completions, Shape::OpenaiChat);
    }
    if post && path.ends_with("/responses") {
        return wrap(Provider::OpenaiResponses, Endpoint::Responses, Shape::OpenaiResponses);
    }
    if method == "GET" && (last == "models" || path.contains("/models/")) {
        return Route::new(Provider::Unknown, Endpoint::Models, Shape::None);
    }
    Route::other()
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).chars().take(256).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use super::*;

    #[test]
    fn paths_route_by_shape_not_host() {
        let cases = [
            ("POST", "/v1/messages?beta=true", Provider::Anthropic, Endpoint::Messages, true),
            ("POST", "/api/anthropic/v1/messages", Provider::Anthropic, Endpoint::Messages, true),
            ("POST", "/v1/messages/count_tokens?beta=true", Provider::Anthropic, Endpoint::CountTokens, false),
            ("POST", "/v1/chat/completions", Provider::OpenaiChat, Endpoint::ChatCompletions, true),
            ("POST", "/openai/v1/chat/completions", Provider::OpenaiChat, Endpoint::ChatCompletions, true),
            ("POST", "/openai/deployments/prod/chat/completions?api-version=2024-10-21", Provider::Azure, Endpoint::ChatCompletions, true),
            ("POST", "/v1/responses", Provider::OpenaiResponses, Endpoint::Responses, true),
            ("GET", "/v1/responses", Provider::Unknown, Endpoint::Other, false),
            ("POST", "/v1beta/models/gemini-2.5-pro:generateContent", Provider::Gemini, Endpoint::GenerateContent, true),
            ("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", Provider::Gemini, Endpoint::StreamGenerateContent, true),
            ("POST", "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent", Provider::Gemini, Endpoint::GenerateContent, true),
            ("POST", "/v1beta/models/gemini-2.5-pro:countTokens", Provider::Gemini, Endpoint::CountTokens, false),
            ("POST", "/v1internal:streamGenerateContent?alt=sse", Provider::Gemini, Endpoint::StreamGenerateContent, true),
            ("POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream", Provider::Bedrock, Endpoint::ConverseStream, true),
            ("POST", "/model/x/invoke", Provider::Bedrock, Endpoint::Invoke, true),
            ("GET", "/v1/models", Provider::Unknown, Endpoint::Models, false),
            ("HEAD", "/", Provider::Unknown, Endpoint::Other, false),
            ("POST", "/api/event_logging/batch", Provider::Unknown, Endpoint::Other, false),
        ];
        for (m, t, p, e, inf) in cases {
            let r = route(m, t);
            assert_eq!((r.provider, r.endpoint, r.inference), (p, e, inf), "{m} {t}");
        }
    }

    #[test]
    fn models_come_from_paths() {
        assert_eq!(route("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent").path_model.as_deref(), Some("gemini-2.5-pro"));
        assert!(route("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent").json_array_stream);
        assert_eq!(
            route("POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse").path_model.as_deref(),
            Some("anthropic.claude-3-5-sonnet-20240620-v1:0")
        );
        assert_eq!(route("POST", "/v1internal:generateContent").path_model, None);
    }

    #[test]
    fn an_unknown_path_is_refined_by_body_shape() {
        let mut r = route("POST", "/custom/llm");
        let body: RequestBody = serde_json::from_str(r#"{"model":"m","messages":[]}"#).unwrap();
        r.refine("POST", &body, false);
        assert_eq!((r.provider, r.shape, r.from_body_shape), (Provider::OpenaiChat, Shape::OpenaiChat, true));
    }
}
