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
    ];
    let shape = shapes[usize::from(ctl) % shapes.len()];
    let events = ["message", "message_start", "message_delta", "error", "response.completed", "content_block_delta"];
    let mut o = Observed::default();
    extract(shape, &mut o, Payload::Json(data));
    extract(shape, &mut o, Payload::Sse { event: events[usize::from(ctl >> 4) % events.len()], data });
    for (mt, et) in [("event", "metadata"), ("event", "chunk"), ("exception", "x")] {
        extract(shape, &mut o, Payload::Aws { message_type: mt, event_type: et, payload: data });
    }
    // The partition never overflows into nonsense: each part is a plain count.
    let _ = o.usage.input.checked_add(o.usage.output);
});
