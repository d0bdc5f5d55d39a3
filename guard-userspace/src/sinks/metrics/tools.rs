//! Tool-call metrics: the tools models asked agents to run (from LLM responses), MCP
//! `tools/call` requests agents made, and (in [`super::commands`]) whether a command was
//! proposed by a model. Tool names are capped like models, except the shell tools, which always
//! keep their real name: they are the ones that run commands.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// The shell tools of the agents guard knows, by the name their model calls them.
pub(crate) const SHELL_TOOLS: [&str; 10] = [
    "Bash",             // Claude Code
    "bash",             // Anthropic's bash tool, many SDK examples
    "shell",            // Codex (function tool)
    "local_shell",      // Responses' built-in local shell
    "exec_command",     // Codex (unified exec)
    "run_shell_command",// Gemini CLI, Qwen Code
    "execute_command",  // Cline, Roo Code
    "run_terminal_cmd", // Cursor
    "run_command",      // Windsurf, others
    "shell_command",    // Codex (newer)
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LlmToolLabels {
    pub agent: String,
    pub provider: &'static str,
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct McpToolLabels {
    pub agent: String,
    pub server: String,
    pub tool: String,
    pub outcome: &'static str,
}

pub(crate) struct ToolMetrics {
    pub(super) llm: Family<LlmToolLabels, Counter>,
    pub(super) mcp: Family<McpToolLabels, Counter>,
}

impl ToolMetrics {
    pub(crate) fn register(reg: &mut Registry) -> Self {
        let llm = Family::default();
        reg.register(
            "guard_llm_tool_calls",
            "Tool calls models asked agents to make, in inference responses, by tool (shell tools keep their own name)",
            llm.clone(),
        );
        let mcp = Family::default();
        reg.register(
            "guard_mcp_tool_calls",
            "MCP tools/call requests agents made over Streamable HTTP, by server host, tool and outcome (ok, error, no_reply)",
            mcp.clone(),
        );
        Self { llm, mcp }
    }
}

/// The host of a `Host` header or authority, without its port, lowercased.
pub(crate) fn server_host(raw: &str) -> &str {
    let raw = raw.trim();
    if let Some(v6) = raw.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match raw.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw,
    }
}
