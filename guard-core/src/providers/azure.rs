//! Azure OpenAI: `/openai/deployments/{deployment}/chat/completions?api-version=…` (and
//! `/completions`, `/openai/responses`). The bodies are OpenAI's, so usage is read by
//! [`super::openai_chat`] or [`super::openai_responses`]; what is Azure's own is the path, where the
//! deployment name stands in for the model when neither request nor response names one.

/// The deployment name in an Azure path, percent-decoded.
pub fn deployment(path: &str) -> Option<String> {
    let rest = path.split("/openai/deployments/").nth(1)?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| super::route::percent_decode(name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn deployment_from_path() {
        assert_eq!(super::deployment("/openai/deployments/gpt-4o%2Dprod/chat/completions").as_deref(), Some("gpt-4o-prod"));
        assert_eq!(super::deployment("/v1/chat/completions"), None);
    }
}
