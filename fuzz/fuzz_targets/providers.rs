#![no_main]
//! Every provider extractor on arbitrary payloads, in every payload form.
use guard_core::providers::{Observed, Payload, Shape, extract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else { return };
    let shapes = [
        Shape::Anthropic,
        Shape::OpenaiChat,
        Shape::OpenaiResponses,
        Shape::Gemini,
        Shape::BedrockConverse,
        Shape::BedrockInvoke,
        Shape::Mcp,
    ];
    let shape = shapes[usize::from(ctl) % shapes.len()];
    let events = [
        "message",
        "message_start",
        "message_delta",
        "error",
        "response.completed",
        "response.output_item.done",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ];
    let mut o = Observed::default();
    extract(shape, &mut o, Payload::Json(data));
    extract(shape, &mut o, Payload::Sse { event: events[usize::from(ctl >> 4) % events.len()], data });
    let blocks = [("event", "contentBlockStart"), ("event", "contentBlockDelta"), ("event", "contentBlockStop")];
    for (mt, et) in [("event", "metadata"), ("event", "chunk"), ("exception", "x")].into_iter().chain(blocks) {
        extract(shape, &mut o, Payload::Aws { message_type: mt, event_type: et, payload: data });
    }
    // The partition never overflows into nonsense: each part is a plain count.
    let _ = o.usage.input.checked_add(o.usage.output);
    // Calls stay within their bounds, whatever the payloads.
    o.tools.close_all();
    assert!(o.tools.calls.len() <= guard_core::providers::tools::MAX_CALLS);
    assert!(o.tools.calls.iter().all(|c| c.args.as_str().len() <= guard_core::providers::tools::MAX_ARG_BYTES));
});
