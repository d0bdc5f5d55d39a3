//! Path patterns with segments: `/api/v1/namespaces/*`, `/repos/*/*/branches/**/protection`.

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// A glob over one segment (lower case; `*` alone is any one segment).
    Glob(String),
    /// `**`: any number of segments, none included.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathPattern(Vec<Seg>);

impl PathPattern {
    pub(crate) fn parse(p: &str) -> Result<Self, &'static str> {
        let rest = p.strip_prefix('/').ok_or("must start with `/`")?;
        let segs = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if s == "**" { Seg::Any } else { Seg::Glob(s.to_ascii_lowercase()) })
            .collect();
        Ok(Self(segs))
    }

    /// Whether the path's segments, lower case already, match.
    pub(crate) fn matches(&self, segs: &[String]) -> bool {
        matches_at(&self.0, segs)
    }
}

/// Segment-wise match; `**` tries each split (patterns are short, paths are bounded by the head).
fn matches_at(p: &[Seg], s: &[String]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((Seg::Any, rest)) => (0..=s.len()).any(|i| matches_at(rest, &s[i..])),
        Some((Seg::Glob(g), rest)) => s.split_first().is_some_and(|(first, tail)| crate::glob::matches(g, first) && matches_at(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::PathPattern;

    fn m(p: &str, path: &str) -> bool {
        let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
        PathPattern::parse(p).unwrap_or_else(|e| panic!("{p}: {e}")).matches(&segs)
    }

    #[test]
    fn segments_stars_and_double_stars() {
        assert!(m("/api/v1/namespaces/*", "/api/v1/namespaces/prod"));
        assert!(!m("/api/v1/namespaces/*", "/api/v1/namespaces/prod/pods"));
        assert!(!m("/api/v1/namespaces/*", "/api/v1/namespaces"));
        assert!(m("/repos/*/*/branches/**/protection", "/repos/o/r/branches/release/v1/protection"));
        assert!(m("/repos/*/*/branches/**/protection", "/repos/o/r/branches/main/protection"));
        assert!(!m("/repos/*/*/branches/**/protection", "/repos/o/r/branches/main/protection/x"));
        assert!(m("/v*/projects/*", "/v9/projects/web"));
        assert!(m("/subscriptions/*/resourcegroups/*", "/subscriptions/s/resourceGroups/rg"));
        assert!(m("/", "/"));
        assert!(!m("/", "/key"));
        assert!(PathPattern::parse("api").is_err());
    }
}
