//! The OTLP export's cost on the daemon loop, and its memory while the collector is down
//! (tests/src/bin/otlp_sink.rs does the measuring).

use std::process::Command;

use anyhow::Result;

use super::{Env, output};

pub(crate) fn run(env: &Env) -> Result<String> {
    let mut report = String::from(
        "\n## OTLP export\n\nOne counted exchange through the sinks on the daemon loop's thread (the export itself runs on \
         guard's own thread), interleaved rounds of 20,000, medians. Spans are offered to the bounded queue at a rate no \
         agent reaches, so most of them take the full-queue path (a counted drop):\n\n",
    );
    report += &output(Command::new(env.release.join("otlp_sink")).arg("15"))?;
    Ok(report)
}
