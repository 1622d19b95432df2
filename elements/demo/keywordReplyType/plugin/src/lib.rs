//! demo.keywordReplyType: a native element Type answering common questions with canned
//! replies, so a robot can skip the AI agent for them.
//!
//! An instance's config.json lists rules, tried in order; the first that matches wins:
//!
//! ```json
//! {"rules": [
//!   {"keywords": ["refund", "退款"], "answer": "Refunds within 7 days ..."},
//!   {"patterns": ["*reset*password*"], "answer": "Use \"Forgot password\" ..."}
//! ]}
//! ```
//!
//! A keyword matches when it appears anywhere in the question; a pattern must match the
//! whole question, `*` standing for any text and `?` for one character. Matching ignores
//! case and runs of whitespace. `reply {"question": "..."}` returns
//! `{"matched": true, "answer": "...", "rule": <index>, "trigger": "<keyword or pattern>"}`
//! or `{"matched": false, "answer": null}`.

use jitnode_plugin::{export_type, json, Function, LoadArgs, NativeType, PluginError, Value};

struct Rule {
    keywords: Vec<String>,
    patterns: Vec<Vec<char>>,
    /// Original spellings, for reporting what matched.
    keyword_text: Vec<String>,
    pattern_text: Vec<String>,
    answer: String,
}

pub struct KeywordReply {
    rules: Vec<Rule>,
}

/// Lower case, whitespace runs as one space, trimmed: how questions and triggers compare.
fn normalize(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whole-text glob match: `*` any run of characters (also none), `?` exactly one.
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently covers up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry.
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn strings(rule: &Value, i: usize, key: &str) -> Result<Vec<String>, PluginError> {
    match rule.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(j, v)| match v.as_str().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(PluginError::bad_args(format!(
                    "config.json: rules[{i}].{key}[{j}] must be a non-empty string"
                ))),
            })
            .collect(),
        Some(_) => Err(PluginError::bad_args(format!(
            "config.json: rules[{i}].{key} must be an array of strings"
        ))),
    }
}

impl KeywordReply {
    fn from_config(config: &Value) -> Result<KeywordReply, PluginError> {
        let list =
            match config.get("rules") {
                Some(Value::Array(list)) if !list.is_empty() => list,
                _ => return Err(PluginError::bad_args(
                    "config.json needs \"rules\": a non-empty array of {keywords|patterns, answer}",
                )),
            };
        let mut rules = Vec::with_capacity(list.len());
        for (i, r) in list.iter().enumerate() {
            if !r.is_object() {
                return Err(PluginError::bad_args(format!(
                    "config.json: rules[{i}] must be an object"
                )));
            }
            let answer = match r.get("answer").and_then(Value::as_str) {
                Some(a) if !a.trim().is_empty() => a.to_string(),
                _ => {
                    return Err(PluginError::bad_args(format!(
                        "config.json: rules[{i}].answer must be a non-empty string"
                    )))
                }
            };
            let keyword_text = strings(r, i, "keywords")?;
            let pattern_text = strings(r, i, "patterns")?;
            if keyword_text.is_empty() && pattern_text.is_empty() {
                return Err(PluginError::bad_args(format!(
                    "config.json: rules[{i}] needs \"keywords\" or \"patterns\""
                )));
            }
            rules.push(Rule {
                keywords: keyword_text.iter().map(|k| normalize(k)).collect(),
                patterns: pattern_text
                    .iter()
                    .map(|p| normalize(p).chars().collect())
                    .collect(),
                keyword_text,
                pattern_text,
                answer,
            });
        }
        Ok(KeywordReply { rules })
    }

    fn reply(&self, question: &str) -> Value {
        let q = normalize(question);
        let qc: Vec<char> = q.chars().collect();
        for (i, rule) in self.rules.iter().enumerate() {
            let by_keyword = rule
                .keywords
                .iter()
                .position(|k| q.contains(k.as_str()))
                .map(|k| &rule.keyword_text[k]);
            let trigger = by_keyword.or_else(|| {
                rule.patterns
                    .iter()
                    .position(|p| glob_match(p, &qc))
                    .map(|p| &rule.pattern_text[p])
            });
            if let Some(trigger) = trigger {
                return json!({"matched": true, "answer": rule.answer, "rule": i, "trigger": trigger});
            }
        }
        json!({"matched": false, "answer": null})
    }
}

impl NativeType for KeywordReply {
    fn functions() -> Vec<Function> {
        vec![Function::new("reply")
            .title("The canned answer of the first rule matching the question, if any")
            .arg("question", Some("Stext"), true)]
    }

    fn config_schema() -> Option<Value> {
        let words = json!({"type": "array", "minItems": 1,
                           "items": {"type": "string", "minLength": 1}});
        Some(json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["rules"],
            "properties": {
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "description": "Tried in order; the first rule that matches answers.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["answer"],
                        "allOf": [{
                            "anyOf": [{"required": ["keywords"]}, {"required": ["patterns"]}],
                            "x-expected": "a rule needs \"keywords\" or \"patterns\""
                        }],
                        "properties": {
                            "keywords": {"description": "Matched case-insensitively anywhere in the question.", "allOf": [words]},
                            "patterns": {"description": "Globs (* and ?) matched against the whole question.", "allOf": [words]},
                            "answer": {"type": "string", "minLength": 1, "description": "The canned reply."}
                        }
                    }
                }
            }
        }))
    }

    fn load(args: LoadArgs) -> Result<Self, PluginError> {
        KeywordReply::from_config(&args.config)
    }

    fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
        match function {
            "reply" => match args.get("question").and_then(Value::as_str) {
                Some(q) => Ok(self.reply(q)),
                None => Err(PluginError::bad_args("\"question\" must be a string")),
            },
            other => Err(PluginError::failed(format!("no function \"{other}\""))),
        }
    }
}

export_type!(KeywordReply);

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, t: &str) -> bool {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = t.chars().collect();
        glob_match(&p, &t)
    }

    #[test]
    fn globs_match_whole_text() {
        assert!(g("*reset*password*", "how do i reset my password?"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "abbc"));
        assert!(g("*", ""));
        assert!(!g("abc", "abcd"));
        assert!(g("*忘记密码*", "我忘记密码了"));
    }

    #[test]
    fn first_matching_rule_answers() {
        let kr = KeywordReply::from_config(&json!({"rules": [
            {"keywords": ["Refund"], "answer": "A"},
            {"patterns": ["*refund*"], "keywords": ["money"], "answer": "B"}
        ]}))
        .unwrap();
        assert_eq!(
            kr.reply("Can I get a  REFUND?"),
            json!({"matched": true, "answer": "A", "rule": 0, "trigger": "Refund"})
        );
        assert_eq!(kr.reply("my money")["rule"], 1);
        assert_eq!(kr.reply("hello"), json!({"matched": false, "answer": null}));
    }

    #[test]
    fn bad_config_names_the_rule() {
        let e = |c: Value| KeywordReply::from_config(&c).err().unwrap().to_string();
        assert!(e(json!({})).contains("\"rules\""));
        assert_eq!(
            e(json!({"rules": [{"keywords": ["a"]}]})),
            "config.json: rules[0].answer must be a non-empty string"
        );
        assert_eq!(
            e(json!({"rules": [{"answer": "x"}]})),
            "config.json: rules[0] needs \"keywords\" or \"patterns\""
        );
        assert_eq!(
            e(json!({"rules": [{"answer": "x", "keywords": [""]}]})),
            "config.json: rules[0].keywords[0] must be a non-empty string"
        );
    }
}
