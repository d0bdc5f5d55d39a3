//! LLM providers: one module per API, usage normalised to the token partition (issue 3).
