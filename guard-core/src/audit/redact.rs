//! Removes secrets from argv before it is written to the audit log: password options
//! (`--password=…`, `--token x`, mysql `-p…`, redis-cli `-a …`), secret-named environment
//! assignments (`PGPASSWORD=…`), credentials in URLs (`postgres://user:pass@host`), bearer tokens,
//! well-known token formats (`ghp_…`, `sk-…`, `AKIA…`, JWTs) and `key=`/`token=`/`secret=` pairs,
//! also inside shell strings. Over-redaction is preferred to a leak.

use std::sync::LazyLock;

use regex::Regex;

pub const MASK: &str = "***";

/// A secret-bearing option name (without dashes).
const SECRET_WORDS: &str = r"pass(?:word|wd|phrase)?|pwd|token|secret|api[-_]?key|apikey|access[-_]?key|private[-_]?key|client[-_]?secret|credentials?|auth";

static OPTION_WITH_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i)^(--?[a-z0-9_-]*(?:{SECRET_WORDS})[a-z0-9_-]*=).+$"
    ))
});
/// An option whose value is the next argument (not `--password-stdin`, `--token-file`, ...).
static OPTION_ALONE: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"(?i)^--?[a-z0-9_-]*(?:{SECRET_WORDS})$")));
static ENV_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^([A-Z0-9_]*(?:PASS|PWD|TOKEN|SECRET|KEY|AUTH|CREDENTIAL)[A-Z0-9_]*=)\S+$")
});
static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@"));
static SCHEME_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"));
static KNOWN_TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}",
        r"|sk-[A-Za-z0-9_-]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abeoprs]-[A-Za-z0-9-]{10,}",
        r"|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    ))
});
static PAIRS: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i)\b([a-z0-9_.-]*(?:{SECRET_WORDS}|key)[a-z0-9_.-]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&;,'"]+)"#
    ))
});
static SPACED_OPTION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i)(\s--?[a-z0-9_-]*(?:{SECRET_WORDS})\s+)("[^"]*"|'[^']*'|[^\s'"]+)"#
    ))
});
static MYSQL_P: LazyLock<Regex> = LazyLock::new(|| re(r#"(\s)-p[^\s'"]+"#));
static MYSQL_WORD: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(mysql|mariadb|mysqldump|mysqladmin)\b"));

fn re(pattern: &str) -> Regex {
    match Regex::new(pattern) {
        Ok(r) => r,
        // Fixed patterns, exercised by the tests.
        Err(e) => panic!("redaction pattern {pattern:?}: {e}"),
    }
}

/// Programs whose `-p` carries the password attached (`-psecret`).
const ATTACHED_P: &[&str] = &[
    "mysql",
    "mariadb",
    "mysqldump",
    "mysqladmin",
    "mariadb-dump",
];
/// Programs whose short option takes the password as the next argument.
const NEXT_ARG: &[(&str, &str)] = &[
    ("redis-cli", "-a"),
    ("valkey-cli", "-a"),
    ("sshpass", "-p"),
    ("curl", "-u"),
];

/// A copy of `argv` with secrets masked.
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut prog = "";
    let mut mask_next = false;
    for arg in argv {
        if std::mem::take(&mut mask_next) {
            out.push(mask_value(prog, arg));
            continue;
        }
        let base = arg.rsplit('/').next().unwrap_or(arg);
        if ATTACHED_P.contains(&base) || NEXT_ARG.iter().any(|(p, _)| *p == base) {
            prog = if ATTACHED_P.contains(&base) {
                "mysql"
            } else {
                base
            };
        }
        if prog == "mysql" && arg.len() > 2 && arg.starts_with("-p") && !arg.starts_with("--") {
            out.push(format!("-p{MASK}"));
            continue;
        }
        if NEXT_ARG.iter().any(|(p, o)| *p == prog && o == arg)
            || (OPTION_ALONE.is_match(arg) && !is_flag_only(arg))
        {
            mask_next = true;
            out.push(arg.clone());
            continue;
        }
        if let Some(c) = OPTION_WITH_VALUE
            .captures(arg)
            .or_else(|| ENV_ASSIGNMENT.captures(arg))
        {
            out.push(format!("{}{MASK}", &c[1]));
            continue;
        }
        out.push(redact_text(arg));
    }
    out
}

/// Masks secrets inside free text (a shell script, a header, a connection string).
pub fn redact_text(text: &str) -> String {
    let t = URL_CREDENTIALS.replace_all(text, format!("${{1}}:{MASK}@"));
    let t = SCHEME_TOKEN.replace_all(&t, format!("${{1}}${{2}}{MASK}"));
    let t = KNOWN_TOKENS.replace_all(&t, MASK);
    let t = PAIRS.replace_all(&t, format!("${{1}}${{2}}{MASK}"));
    let t = SPACED_OPTION.replace_all(&t, format!("${{1}}{MASK}"));
    if MYSQL_WORD.is_match(&t) {
        return MYSQL_P
            .replace_all(&t, format!("${{1}}-p{MASK}"))
            .into_owned();
    }
    t.into_owned()
}

/// `curl -u user:pass` keeps the user.
fn mask_value(prog: &str, value: &str) -> String {
    match (prog, value.split_once(':')) {
        ("curl", Some((user, _))) => format!("{user}:{MASK}"),
        _ => MASK.to_owned(),
    }
}

/// Secret-sounding options that take no value.
fn is_flag_only(arg: &str) -> bool {
    let a = arg.to_ascii_lowercase();
    a.ends_with("-stdin")
        || a.ends_with("-file")
        || a == "--no-password"
        || a == "-w"
        || a == "--auth"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(argv: &[&str]) -> Vec<String> {
        redact_argv(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn password_options() {
        assert_eq!(
            r(&["tool", "--password=hunter2", "--db-password", "s3cr3t", "x"]),
            ["tool", "--password=***", "--db-password", "***", "x"]
        );
        assert_eq!(
            r(&["mysql", "-uroot", "-phunter2", "-e", "DROP TABLE t"]),
            ["mysql", "-uroot", "-p***", "-e", "DROP TABLE t"]
        );
        assert_eq!(
            r(&["mysql", "-p", "db"]),
            ["mysql", "-p", "db"],
            "a bare -p prompts"
        );
        assert_eq!(
            r(&["sudo", "/usr/bin/mysqldump", "-pX", "db"]),
            ["sudo", "/usr/bin/mysqldump", "-p***", "db"]
        );
        assert_eq!(
            r(&["redis-cli", "-a", "pw", "FLUSHALL"]),
            ["redis-cli", "-a", "***", "FLUSHALL"]
        );
        assert_eq!(
            r(&["curl", "-u", "bob:pw", "https://x"]),
            ["curl", "-u", "bob:***", "https://x"]
        );
        assert_eq!(
            r(&["docker", "login", "--password-stdin"]),
            ["docker", "login", "--password-stdin"]
        );
        assert_eq!(
            r(&["gh", "--token", "abc", "--api-key=zzz"]),
            ["gh", "--token", "***", "--api-key=***"]
        );
        assert_eq!(
            r(&["rm", "-rf", "/tmp/x"]),
            ["rm", "-rf", "/tmp/x"],
            "nothing secret, nothing changed"
        );
    }

    #[test]
    fn environment_assignments() {
        assert_eq!(
            r(&[
                "PGPASSWORD=pw",
                "AWS_SECRET_ACCESS_KEY=abc",
                "HOME=/h",
                "psql"
            ]),
            [
                "PGPASSWORD=***",
                "AWS_SECRET_ACCESS_KEY=***",
                "HOME=/h",
                "psql"
            ]
        );
        assert_eq!(
            r(&["env", "GITHUB_TOKEN=x", "git", "push"]),
            ["env", "GITHUB_TOKEN=***", "git", "push"]
        );
    }

    #[test]
    fn tokens_urls_and_pairs_in_text() {
        let gh = format!("ghp_{}", "a".repeat(36));
        assert_eq!(
            redact_text(&format!("git push https://{gh}@github.com/o/r")),
            "git push https://***@github.com/o/r"
        );
        assert_eq!(
            redact_text("psql postgres://admin:s3cret@db:5432/app -c 'DROP TABLE t'"),
            "psql postgres://admin:***@db:5432/app -c 'DROP TABLE t'"
        );
        assert_eq!(
            redact_text("curl -H 'Authorization: Bearer abcdefgh12345678'"),
            "curl -H 'Authorization: *** ***'"
        );
        assert_eq!(
            redact_text("export OPENAI_API_KEY=sk-proj-abcdefghijklmnop1234"),
            "export OPENAI_API_KEY=***"
        );
        assert_eq!(
            redact_text("echo sk-ant-api03-abcdefghijklmnopqrstu"),
            "echo ***"
        );
        assert_eq!(
            redact_text("aws configure set aws_access_key_id AKIAABCDEFGHIJKLMNOP"),
            "aws configure set aws_access_key_id ***"
        );
        assert_eq!(
            redact_text("https://api.x/v1?token=abc123&user=bob"),
            "https://api.x/v1?token=***&user=bob"
        );
        assert_eq!(
            redact_text("Server=db;User Id=sa;Password=Pa55;"),
            "Server=db;User Id=sa;Password=***;"
        );
        assert_eq!(
            redact_text("deploy --set secret=\"a b\" key=v1"),
            "deploy --set secret=*** key=***"
        );
        assert_eq!(
            redact_text("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4"),
            "jwt ***"
        );
    }

    #[test]
    fn shell_strings_are_redacted_too() {
        assert_eq!(
            r(&[
                "bash",
                "-c",
                "mysql -u root -phunter2 -e 'DROP DATABASE app' && cli --token abc123"
            ]),
            [
                "bash",
                "-c",
                "mysql -u root -p*** -e 'DROP DATABASE app' && cli --token ***"
            ]
        );
        assert_eq!(
            r(&["sh", "-c", "PGPASSWORD=pw psql -c 'drop table x'"]),
            ["sh", "-c", "PGPASSWORD=*** psql -c 'drop table x'"]
        );
    }
}
