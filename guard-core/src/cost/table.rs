//! The price table: the built-in file (`guard-core/prices.toml`) and the admin's entries in front
//! of it. An entry names the providers it applies to and a model pattern; the first entry that
//! matches an exchange prices it.

use std::{collections::BTreeMap, sync::Arc, sync::LazyLock};

use serde::{Deserialize, Serialize};

use crate::{glob, providers::Provider};

/// The built-in table, embedded.
pub const BUILTIN_PRICES: &str = include_str!("../../prices.toml");

/// Where the built-in entries come from, in [`Entry::origin`].
pub const BUILTIN: &str = "builtin";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("{0}")]
    Syntax(String),
    #[error("price entry `{name}`: {reason}")]
    Entry { name: String, reason: String },
}

/// USD per million tokens of each type.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Prompt tokens not read from a cache.
    pub input: f64,
    pub cache_read: f64,
    /// 5-minute cache writes (the only kind most providers have); default: `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// 1-hour cache writes; default: `cache_write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    /// Generated tokens, reasoning included.
    pub output: f64,
}

impl Rates {
    pub fn cache_write(&self) -> f64 {
        self.cache_write.unwrap_or(self.input)
    }

    pub fn cache_write_1h(&self) -> f64 {
        self.cache_write_1h.unwrap_or_else(|| self.cache_write())
    }

    fn check(&self) -> Result<(), String> {
        let all = [
            ("input", Some(self.input)),
            ("cache_read", Some(self.cache_read)),
            ("cache_write", self.cache_write),
            ("cache_write_1h", self.cache_write_1h),
            ("output", Some(self.output)),
        ];
        match all.iter().find(|(_, v)| v.is_some_and(|v| !v.is_finite() || v < 0.0)) {
            Some((key, v)) => Err(format!("`{key}` must be a price of 0 or more, not {}", v.unwrap_or_default())),
            None => Ok(()),
        }
    }
}

/// The rates of a prompt above `above` tokens (Gemini 2.5 Pro doubles past 200k).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    /// Prompt tokens (input + cache_read + cache_write) past which these rates apply.
    pub above: u64,
    pub input: f64,
    pub cache_read: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    pub output: f64,
}

impl LongContext {
    pub fn rates(&self) -> Rates {
        Rates {
            input: self.input,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            output: self.output,
        }
    }
}

/// One `[[model]]` of a price file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// What `guard prices` shows.
    pub name: String,
    /// The `provider` values of the exchanges it prices.
    pub providers: Vec<Provider>,
    /// A glob over the exchange's model, compared without regard to case.
    #[serde(rename = "match")]
    pub pattern: String,
    /// A key of the file's `[sources]`: the page the figures come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub input: f64,
    pub cache_read: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<f64>,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
}

impl ModelPrice {
    pub fn rates(&self) -> Rates {
        Rates {
            input: self.input,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
            output: self.output,
        }
    }

    /// The rates for a prompt of `prompt` tokens.
    pub fn rates_for(&self, prompt: u64) -> Rates {
        match &self.long_context {
            Some(l) if prompt > l.above => l.rates(),
            _ => self.rates(),
        }
    }

    fn check(&self) -> Result<(), PriceError> {
        let bad = |reason: String| PriceError::Entry { name: self.name.clone(), reason };
        if self.name.trim().is_empty() {
            return Err(PriceError::Entry { name: self.pattern.clone(), reason: "`name` is empty".into() });
        }
        if self.pattern.trim().is_empty() {
            return Err(bad("`match` is empty".into()));
        }
        if self.providers.is_empty() {
            return Err(bad("`providers` is empty".into()));
        }
        self.rates().check().map_err(bad)?;
        if let Some(l) = &self.long_context {
            if l.above == 0 {
                return Err(bad("`long_context.above` must be at least 1".into()));
            }
            l.rates().check().map_err(|r| bad(format!("long_context: {r}")))?;
        }
        Ok(())
    }
}

/// A price file: the built-in one, or an admin's in the same format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// The day the figures were read from the sources (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelPrice>,
}

impl PriceFile {
    /// Parses and checks a price file.
    pub fn parse(text: &str) -> Result<Self, PriceError> {
        let file: Self = toml::from_str(text).map_err(|e| PriceError::Syntax(e.message().to_owned()))?;
        file.check()?;
        Ok(file)
    }

    pub fn check(&self) -> Result<(), PriceError> {
        self.models.iter().try_for_each(ModelPrice::check)
    }
}

/// One entry of the effective table, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// `builtin`, or the config that added it.
    pub origin: String,
    #[serde(flatten)]
    pub price: ModelPrice,
    /// `pattern`, lowercased once.
    #[serde(skip)]
    lower: String,
}

/// The effective table: admin entries first, then the built-in ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriceTable {
    /// The built-in file's date.
    pub updated: String,
    pub sources: BTreeMap<String, String>,
    pub models: Vec<Entry>,
}

static BUILTIN_TABLE: LazyLock<Arc<PriceTable>> = LazyLock::new(|| match PriceFile::parse(BUILTIN_PRICES) {
    Ok(f) => Arc::new(PriceTable::from_file(f, BUILTIN)),
    // The embedded file is checked by the tests: a defect of the build, not of input.
    Err(e) => panic!("built-in price table is invalid: {e}"),
});

impl PriceTable {
    /// The embedded table (parsed once).
    pub fn builtin() -> Arc<Self> {
        Arc::clone(&BUILTIN_TABLE)
    }

    fn from_file(f: PriceFile, origin: &str) -> Self {
        let mut t = Self { updated: f.updated.unwrap_or_default(), sources: f.sources, models: Vec::new() };
        t.models = f.models.into_iter().map(|p| entry(p, origin)).collect();
        t
    }

    /// This table with `extra` checked before every entry it has (admin overrides and
    /// additions). Sources of `extra` are added; the date stays the built-in file's.
    pub fn with_overrides(&self, extra: PriceFile, origin: &str) -> Result<Self, PriceError> {
        extra.check()?;
        let mut t = self.clone();
        t.sources.extend(extra.sources);
        let front = extra.models.into_iter().map(|p| entry(p, origin));
        t.models = front.chain(t.models).collect();
        Ok(t)
    }

    /// The first entry for `provider` whose pattern matches `model`.
    pub fn find(&self, provider: Provider, model: &str) -> Option<&Entry> {
        let model = model.to_ascii_lowercase();
        self.models
            .iter()
            .find(|e| e.price.providers.contains(&provider) && glob::matches(&e.lower, &model))
    }
}

fn entry(price: ModelPrice, origin: &str) -> Entry {
    Entry { origin: origin.to_owned(), lower: price.pattern.to_ascii_lowercase(), price }
}
