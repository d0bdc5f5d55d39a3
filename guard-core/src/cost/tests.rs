//! Costs against figures worked out by hand from the price pages (USD per million tokens).

use super::*;
use crate::providers::Provider::{self, Anthropic, Azure, Bedrock, Gemini, OpenaiChat, OpenaiResponses};

fn usage(input: u64, cache_read: u64, cache_write: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input, cache_read, cache_write, output, reasoning, cache_write_1h: 0 }
}

fn usd_of(table: &PriceTable, provider: Provider, model: &str, u: &Usage) -> f64 {
    match table.price(provider, Some(model), u) {
        Cost::Usd(v) => v,
        Cost::Unpriced { .. } => panic!("{model} at {provider:?} is unpriced"),
    }
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
}

#[test]
fn anthropic_prices_5_minute_and_1_hour_cache_writes_apart() {
    let t = PriceTable::builtin();
    // Sonnet 4.5: input 3, cache read 0.30, 5m write 3.75, 1h write 6, output 15.
    // 1000×3 + 20000×0.30 + 2000×3.75 + 1000×6 + 500×15 = 30000 µ$ → $0.03.
    let u = Usage { cache_write_1h: 1000, ..usage(1000, 20_000, 3000, 500, 0) };
    close(usd_of(&t, Anthropic, "claude-sonnet-4-5-20250929", &u), 0.03);
    // The same Claude on Vertex, and on Bedrock's global endpoint.
    close(usd_of(&t, Anthropic, "claude-sonnet-4-5@20250929", &u), 0.03);
    close(usd_of(&t, Bedrock, "global.anthropic.claude-sonnet-4-5-20250929-v1:0", &u), 0.03);
    // Bedrock in-region or through a geographic profile: 10% more (3.30, 0.33, 4.125, 6.60,
    // 16.50): 3300 + 6600 + 8250 + 6600 + 8250 = 33000 µ$.
    for model in ["anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"] {
        close(usd_of(&t, Bedrock, model, &u), 0.033);
    }
    // Before Claude 4.5 Bedrock has one price: Sonnet 4 through a US profile is Anthropic's.
    close(usd_of(&t, Bedrock, "us.anthropic.claude-sonnet-4-20250514-v1:0", &u), 0.03);
    // All writes 5-minute: 3000×3.75 instead of 2000×3.75 + 1000×6 → $0.02775.
    close(usd_of(&t, Anthropic, "claude-sonnet-4-5", &usage(1000, 20_000, 3000, 500, 0)), 0.02775);
    // Haiku 4.5 (1, 0.10, 1.25, 2, 5): 100×1 + 1000×0.10 + 0×1.25 + 400×2 + 10×5 = 1050 µ$.
    let h = Usage { cache_write_1h: 400, ..usage(100, 1000, 400, 10, 0) };
    close(usd_of(&t, Bedrock, "global.anthropic.claude-haiku-4-5-20251001-v1:0", &h), 0.00105);
    close(usd_of(&t, Anthropic, "claude-haiku-4-5", &h), 0.00105);
}

#[test]
fn the_first_matching_entry_wins() {
    let t = PriceTable::builtin();
    // 100k input tokens: below every long-context threshold, so a tenth of the input rate.
    let in_100k = usage(100_000, 0, 0, 0, 0);
    for (provider, model, per_m) in [
        (Anthropic, "claude-opus-4-5-20251101", 5.0),
        (Anthropic, "claude-opus-4-1-20250805", 15.0),
        (Anthropic, "claude-opus-4-20250514", 15.0),
        (Anthropic, "claude-sonnet-4-20250514", 3.0),
        (Anthropic, "claude-3-7-sonnet-20250219", 3.0),
        (Anthropic, "claude-3-5-haiku-20241022", 0.80),
        (OpenaiChat, "gpt-4o-mini-2024-07-18", 0.15),
        (OpenaiChat, "gpt-4o-2024-05-13", 5.0),
        (OpenaiChat, "GPT-4o-2024-11-20", 2.50),
        (OpenaiResponses, "gpt-5-codex", 1.25),
        (OpenaiResponses, "gpt-5.1-codex-mini", 0.25),
        (OpenaiResponses, "gpt-5.4-pro", 30.0),
        (OpenaiResponses, "o4-mini-2025-04-16", 1.10),
        (Azure, "gpt-4.1-mini", 0.40),
        (Gemini, "gemini-2.5-flash-lite", 0.10),
        (Gemini, "gemini-2.5-flash", 0.30),
        (Gemini, "models/gemini-2.5-flash-preview-05-20", 0.30),
    ] {
        close(usd_of(&t, provider, model, &in_100k), per_m / 10.0);
    }
}

#[test]
fn openai_prices_cached_input_and_reasoning_as_output() {
    let t = PriceTable::builtin();
    // GPT-5 (1.25, cached 0.125, output 10): 10000×1.25 + 40000×0.125 + (2000 + 3000)×10
    // = 12500 + 5000 + 50000 = 67500 µ$.
    let u = usage(10_000, 40_000, 0, 2000, 3000);
    close(usd_of(&t, OpenaiResponses, "gpt-5-2025-08-07", &u), 0.0675);
    // GPT-4o (2.50, 1.25, 10): 1000×2.5 + 1000×1.25 + 100×10 = 4750 µ$, the same on Azure.
    let u = usage(1000, 1000, 0, 100, 0);
    close(usd_of(&t, OpenaiChat, "gpt-4o-2024-08-06", &u), 0.00475);
    close(usd_of(&t, Azure, "gpt-4o", &u), 0.00475);
}

#[test]
fn gemini_25_pro_bills_a_prompt_above_200k_at_the_higher_tier() {
    let t = PriceTable::builtin();
    // At 200k prompt tokens exactly: 100000×1.25 + 100000×0.125 + (1000 + 1000)×10 = 157500 µ$.
    close(usd_of(&t, Gemini, "gemini-2.5-pro", &usage(100_000, 100_000, 0, 1000, 1000)), 0.1575);
    // One more: every token at the >200k rates (2.50, 0.25, 15):
    // 100001×2.5 + 100000×0.25 + 2000×15 = 305002.5 µ$.
    close(usd_of(&t, Gemini, "gemini-2.5-pro-preview-06-05", &usage(100_001, 100_000, 0, 1000, 1000)), 0.3050025);
}

#[test]
fn an_unknown_model_is_unpriced_with_its_token_count() {
    let t = PriceTable::builtin();
    let u = usage(10, 20, 30, 40, 5);
    assert_eq!(t.price(OpenaiChat, Some("deepseek-chat"), &u), Cost::Unpriced { tokens: 105 });
    assert_eq!(t.price(OpenaiChat, None, &u), Cost::Unpriced { tokens: 105 });
    // A name that only shares a prefix, and a model at a provider that does not sell it.
    assert_eq!(t.price(OpenaiChat, Some("gpt-4o-audio-preview"), &u), Cost::Unpriced { tokens: 105 });
    assert_eq!(t.price(Gemini, Some("gpt-4o"), &u), Cost::Unpriced { tokens: 105 });
    assert_eq!(t.price(Provider::Unknown, Some("claude-sonnet-4-5"), &u), Cost::Unpriced { tokens: 105 });
}

const OVERRIDE: &str = r#"
[[model]]
name = "negotiated GPT-4o"
providers = ["openai_chat", "azure"]
match = "gpt-4o*"
input = 1.0
cache_read = 0.5
output = 4.0

[[model]]
name = "DeepSeek chat"
providers = ["openai_chat"]
match = "deepseek-chat"
input = 0.28
cache_read = 0.028
output = 0.42
"#;

#[test]
fn a_config_entry_wins_over_the_builtin_one_and_adds_models() {
    let t = PriceTable::builtin().with_overrides(PriceFile::parse(OVERRIDE).unwrap(), "guard.toml").unwrap();
    let u = usage(1000, 1000, 0, 100, 0);
    // 1000×1 + 1000×0.5 + 100×4 = 1900 µ$ (the built-in figure is 4750).
    close(usd_of(&t, OpenaiChat, "gpt-4o-2024-08-06", &u), 0.0019);
    // Only for the providers it names: Responses keeps the built-in price.
    close(usd_of(&t, OpenaiResponses, "gpt-4o-2024-08-06", &u), 0.00475);
    // 1000×0.28 + 1000×0.028 + 100×0.42 = 350 µ$.
    close(usd_of(&t, OpenaiChat, "deepseek-chat", &u), 0.00035);
    assert_eq!(t.models[0].origin, "guard.toml");
    assert_eq!(t.models[2].origin, BUILTIN);
    assert_eq!(t.updated, PriceTable::builtin().updated);
}

#[test]
fn a_broken_entry_is_named() {
    let negative = OVERRIDE.replace("output = 0.42", "output = -1");
    assert_eq!(
        PriceFile::parse(&negative),
        Err(PriceError::Entry { name: "DeepSeek chat".into(), reason: "`output` must be a price of 0 or more, not -1".into() })
    );
    let typo = OVERRIDE.replace("output = 4.0", "ouput = 4.0");
    assert!(matches!(PriceFile::parse(&typo), Err(PriceError::Syntax(m)) if m.contains("ouput")));
    let provider = OVERRIDE.replace("\"azure\"", "\"azur\"");
    assert!(matches!(PriceFile::parse(&provider), Err(PriceError::Syntax(m)) if m.contains("azur")));
    let tier = format!("{OVERRIDE}\n[model.long_context]\nabove = 0\ninput = 1.0\ncache_read = 1.0\noutput = 1.0\n");
    assert!(matches!(PriceFile::parse(&tier), Err(PriceError::Entry { name, .. }) if name == "DeepSeek chat"));
}

#[test]
fn the_builtin_file_is_dated_sourced_and_valid() {
    let f = PriceFile::parse(BUILTIN_PRICES).unwrap();
    let date = f.updated.as_deref().unwrap_or_default();
    assert!(regex::Regex::new(r"^20\d\d-[01]\d-[0-3]\d$").unwrap().is_match(date), "{date}");
    assert!(f.models.len() >= 30, "{}", f.models.len());
    for m in &f.models {
        let source = m.source.as_deref().unwrap_or_default();
        assert!(f.sources.get(source).is_some_and(|u| u.starts_with("https://")), "{}: source {source:?}", m.name);
        // Every entry is reachable: no earlier entry of the same providers swallows its pattern.
        let example = m.pattern.split('|').next().unwrap_or_default().replace('*', "");
        let t = PriceTable::builtin();
        let first = t.find(m.providers[0], &example).map(|e| e.price.name.as_str());
        assert_eq!(first, Some(m.name.as_str()), "{example:?} is priced by another entry");
    }
}

#[test]
fn prices_lists_the_table_with_its_date() {
    let t = PriceTable::builtin();
    let mut out = Vec::new();
    assert_eq!(cli::list(&t, false, &mut out), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("prices updated {} ", t.updated)), "{text}");
    let row = text.lines().find(|l| l.starts_with("Gemini 2.5 Pro ")).unwrap();
    assert!(row.contains("1.25") && row.contains("gemini"), "{row}");
    assert!(text.contains("  prompt > 200000 tokens"), "{text}");
    let mut out = Vec::new();
    assert_eq!(cli::list(&t, true, &mut out), 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["updated"], t.updated.as_str());
    assert_eq!(v["models"].as_array().map(Vec::len), Some(t.models.len()));
    assert_eq!(v["models"][0]["origin"], "builtin");
    assert_eq!(v["models"][0]["match"], t.models[0].price.pattern.as_str());
}
