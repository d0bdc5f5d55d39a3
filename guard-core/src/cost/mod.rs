//! What an exchange cost, in USD, from its exact token partition and a price table (docs/cost.md).
//!
//! Each token count times the rate of its type (USD per million tokens), with the long-context
//! rates when the prompt is above the entry's threshold:
//!
//! ```text
//! ( input × input  +  cache_read × cache_read  +  (cache_write − cache_write_1h) × cache_write
//!   +  cache_write_1h × cache_write_1h  +  (output + reasoning) × output ) / 1e6
//! ```
//!
//! A model the table does not price is [`Cost::Unpriced`]: it keeps its token count so that it
//! can be counted, rather than costing a silent 0.

pub mod cli;
mod table;

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests;

use serde::Serialize;

use crate::providers::{Provider, Usage};

pub use table::{BUILTIN, BUILTIN_PRICES, Entry, LongContext, ModelPrice, PriceError, PriceFile, PriceTable, Rates};

/// What one exchange cost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// Priced by the table, in USD.
    Usd(f64),
    /// No entry prices this provider and model: its billed token total.
    Unpriced { tokens: u64 },
}

impl PriceTable {
    /// The cost of `usage` for `model` (as the exchange reported it) at `provider`.
    pub fn price(&self, provider: Provider, model: Option<&str>, usage: &Usage) -> Cost {
        match model.and_then(|m| self.find(provider, m)) {
            Some(e) => Cost::Usd(usd(&e.price, usage)),
            None => Cost::Unpriced { tokens: usage.total() },
        }
    }
}

/// The formula of the module doc.
pub fn usd(price: &ModelPrice, u: &Usage) -> f64 {
    let prompt = u.input + u.cache_read + u.cache_write;
    let r = price.rates_for(prompt);
    let write_1h = u.cache_write_1h.min(u.cache_write);
    let parts = [
        (u.input, r.input),
        (u.cache_read, r.cache_read),
        (u.cache_write - write_1h, r.cache_write()),
        (write_1h, r.cache_write_1h()),
        (u.output + u.reasoning, r.output),
    ];
    parts.iter().map(|&(n, rate)| n as f64 * rate).sum::<f64>() / 1e6
}
