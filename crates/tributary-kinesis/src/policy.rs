//! IAM-like policies: statements that allow or deny actions on resources.
//!
//! ```json
//! {"Version": "2012-10-17",
//!  "Statement": [{"Effect": "Allow",
//!                 "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
//!                 "Resource": "arn:aws:kinesis:us-east-1:000000000000:stream/orders"}]}
//! ```
//!
//! - `Action` and `Resource` take one string or a list; `*` matches any run of characters and `?`
//!   one character. Actions compare without regard to case, as in IAM; resources exactly.
//! - `NotAction`, `NotResource`, `Principal` and `Condition` are refused (not silently ignored):
//!   a policy means what it says or is not stored.
//! - Evaluation ([`evaluate`]): an explicit Deny wins; otherwise an Allow is needed; no matching
//!   statement (or no policy) means deny.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tributary_types::Error;

/// A policy document's largest size, in characters (IAM's managed-policy limit).
pub const MAX_POLICY_CHARS: usize = 6_144;
/// The policy versions accepted.
const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub sid_opt: Option<String>,
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    pub statements: Vec<Statement>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_argument(format!("MalformedPolicyDocument: {}", message.into()))
}

fn strings(value: &Value, field: &str) -> Result<Vec<String>, Error> {
    let list = match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("every {field} must be a string")))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(invalid(format!(
                "{field} must be a string or a list of strings"
            )));
        }
    };
    if list.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if list.iter().any(String::is_empty) {
        return Err(invalid(format!("an empty {field}")));
    }
    Ok(list)
}

impl PolicyDocument {
    /// Parses and validates a policy document (JSON text).
    pub fn parse(text: &str) -> Result<PolicyDocument, Error> {
        if text.chars().count() > MAX_POLICY_CHARS {
            return Err(Error::new(
                tributary_types::ErrorCode::LimitExceeded,
                format!("a policy document is at most {MAX_POLICY_CHARS} characters"),
            ));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("the document is not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(invalid("the document must be a JSON object"));
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "Version" | "Statement" | "Id") {
                return Err(invalid(format!("unknown field {key}")));
            }
        }
        if let Some(version) = object.get("Version")
            && !version
                .as_str()
                .is_some_and(|version| VERSIONS.contains(&version))
        {
            return Err(invalid("Version must be \"2012-10-17\""));
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(item @ Value::Object(_)) => vec![item.clone()],
            _ => return Err(invalid("Statement must be an object or a list of objects")),
        };
        if statements.is_empty() {
            return Err(invalid("a policy needs at least one statement"));
        }
        let statements = statements
            .iter()
            .map(parse_statement)
            .collect::<Result<_, _>>()?;
        Ok(PolicyDocument { statements })
    }
}

fn parse_statement(value: &Value) -> Result<Statement, Error> {
    let Value::Object(object) = value else {
        return Err(invalid("every statement must be an object"));
    };
    for key in object.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "Resource" => {}
            "NotAction" | "NotResource" | "Principal" | "NotPrincipal" | "Condition" => {
                return Err(invalid(format!(
                    "{key} is not supported: use Effect, Action and Resource"
                )));
            }
            _ => return Err(invalid(format!("unknown statement field {key}"))),
        }
    }
    let effect = match object.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(invalid("Effect must be \"Allow\" or \"Deny\"")),
    };
    let actions = strings(
        object
            .get("Action")
            .ok_or_else(|| invalid("a statement needs an Action"))?,
        "Action",
    )?;
    for action in &actions {
        if action != "*" && !action.contains(':') {
            return Err(invalid(format!(
                "action {action} must be service:Operation, like kinesis:PutRecord"
            )));
        }
    }
    let resources = strings(
        object
            .get("Resource")
            .ok_or_else(|| invalid("a statement needs a Resource"))?,
        "Resource",
    )?;
    Ok(Statement {
        sid_opt: object
            .get("Sid")
            .and_then(Value::as_str)
            .map(str::to_string),
        effect,
        actions,
        resources,
    })
}

/// What the policies say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement denies it.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// Evaluates `action` on `resource` against every policy: explicit deny, then allow, else deny.
pub fn evaluate<'a>(
    policies: impl IntoIterator<Item = &'a PolicyDocument>,
    action: &str,
    resource: &str,
) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for statement in &policy.statements {
            let action_matches = statement.actions.iter().any(|pattern| {
                wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
            });
            let resource_matches = statement
                .resources
                .iter()
                .any(|pattern| wildcard_match(pattern, resource));
            if action_matches && resource_matches {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// `*` matches any run of characters (none included), `?` exactly one; iterative, so a hostile
/// pattern costs at most O(pattern × text).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star_opt: Option<(usize, usize)> = None;
    while t < text.len() {
        // A `*` in the pattern is always a wildcard, even where the text has a `*` too (a
        // resource ARN can: `stream/*`); taking it as a literal would leave nothing to
        // backtrack to.
        if p < pattern.len() && pattern[p] == '*' {
            star_opt = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star_opt {
            p = star_p + 1;
            t = star_t + 1;
            star_opt = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";

    fn policy(text: &str) -> PolicyDocument {
        PolicyDocument::parse(text).unwrap()
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("kinesis:Put*", "kinesis:PutRecords"));
        assert!(wildcard_match("arn:*:stream/ord?rs", ORDERS));
        assert!(!wildcard_match(
            "arn:*:stream/ord?rs",
            "arn:x:stream/orderss"
        ));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(!wildcard_match("", "a"));
        // A star meeting a star in the text is still a wildcard (found by the iam_policy fuzz
        // target: "*" did not match "*x").
        assert!(wildcard_match("*", "*x"));
        assert!(wildcard_match("arn:*", "arn:*:stream/x"));
        assert!(wildcard_match(
            "arn:aws:kinesis:*:stream/*",
            "arn:aws:kinesis:us-east-1:0:stream/*/consumer/c:*"
        ));
        assert!(!wildcard_match("*y", "*x"));
        // Many stars against a long text finish quickly.
        let text = "a".repeat(2_000);
        assert!(!wildcard_match(&format!("{}b", "*a".repeat(500)), &text));
    }

    #[test]
    fn explicit_deny_wins_and_nothing_means_deny() {
        let allow_puts = policy(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"{ORDERS}"}}]}}"#
        ));
        let deny_all =
            policy(r#"{"Statement":{"Effect":"Deny","Action":"kinesis:*","Resource":"*"}}"#);
        assert_eq!(
            evaluate([&allow_puts], "kinesis:PutRecord", ORDERS),
            Decision::Allow
        );
        assert_eq!(
            evaluate([&allow_puts], "KINESIS:putrecord", ORDERS),
            Decision::Allow,
            "actions compare without case"
        );
        assert_eq!(
            evaluate([&allow_puts], "kinesis:GetRecords", ORDERS),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(
                [&allow_puts],
                "kinesis:PutRecord",
                "arn:aws:kinesis:us-east-1:000000000000:stream/other"
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate([&allow_puts, &deny_all], "kinesis:PutRecord", ORDERS),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(std::iter::empty(), "kinesis:PutRecord", ORDERS),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        for (text, why) in [
            ("[]", "JSON object"),
            ("{}", "Statement"),
            (r#"{"Statement":[]}"#, "at least one"),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#,
                "Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
                "Resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"PutRecord","Resource":"*"}}"#,
                "service:Operation",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","NotAction":"x:y","Resource":"*"}}"#,
                "not supported",
            ),
            (
                r#"{"Version":"2099-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
                "Version",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
                "empty",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}}"#,
                "unknown",
            ),
        ] {
            let error = PolicyDocument::parse(text).unwrap_err();
            assert!(error.message.contains(why), "{text}: {}", error.message);
        }
        let huge = format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"*","Resource":"{}"}}}}"#,
            "x".repeat(MAX_POLICY_CHARS)
        );
        assert_eq!(
            PolicyDocument::parse(&huge).unwrap_err().code,
            tributary_types::ErrorCode::LimitExceeded
        );
    }
}
