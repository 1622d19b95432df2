//! Knowledge files to sections: Markdown and text split at headings and paragraphs, FAQ
//! pairs from CSV, JSON and JSONL, and HTML pages reduced to headings and paragraphs.
//!
//! A file that cannot be read as a whole, or an FAQ row that is malformed, becomes an
//! [`IngestProblem`] naming the file and line; everything else still loads.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::text::cut_after;

/// Upper bound on a passage's length in characters; longer sections are split at paragraphs
/// (and, for one huge paragraph, at sentence or character bounds).
pub const MAX_PASSAGE_CHARS: usize = 900;

/// Line prefixes that mark a section's alternative phrasings: indexed, never quoted.
const ALIAS_PREFIXES: &[&str] = &[
    "Also asked:",
    "Also asked as:",
    "相关问法：",
    "相关问法:",
    "也问：",
    "也问:",
];

/// One section of a knowledge file, before it is cut into passages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// Heading path (`Install > From source`), the FAQ question, or the file name.
    pub heading: String,
    /// Other ways to ask for this section ("Also asked:" lines, FAQ aliases).
    pub aliases: Vec<String>,
    /// Passages of at most [`MAX_PASSAGE_CHARS`].
    pub bodies: Vec<String>,
}

/// A part of the knowledge base that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestProblem {
    /// Path relative to the knowledge folder.
    pub file: String,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for IngestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

/// The formats the knowledge base reads, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Csv,
    Json,
    Jsonl,
    Html,
}

impl Format {
    /// The format of a file name, or `None` for files the knowledge base ignores.
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        Some(match ext {
            "md" | "markdown" => Format::Markdown,
            "txt" => Format::Text,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            "html" | "htm" => Format::Html,
            _ => return None,
        })
    }
}

/// Splits one file's text into sections; problems are appended to `problems`.
pub fn sections(
    file: &str,
    text: &str,
    format: Format,
    problems: &mut Vec<IngestProblem>,
) -> Vec<Section> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Markdown => split_document(file, text, true),
        Format::Text => split_document(file, text, false),
        Format::Html => split_document(file, &html_to_markdown(text), true),
        Format::Csv => faq_csv(file, text, problems),
        Format::Json => faq_json(file, text, problems),
        Format::Jsonl => faq_jsonl(file, text, problems),
    }
}

fn alias_line(line: &str) -> Option<&str> {
    let t = line.trim();
    ALIAS_PREFIXES
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .map(str::trim)
}

fn split_aliases(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split([';', '；', '|'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
}

/// Markdown (or plain text) into sections at headings; "Also asked:" lines become aliases.
fn split_document(file: &str, text: &str, markdown: bool) -> Vec<Section> {
    let title = file.rsplit('/').next().unwrap_or(file).to_string();
    let mut out = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut open = OpenSection::default();
    let mut in_fence = false;

    let heading_path = |hs: &[(usize, String)]| {
        if hs.is_empty() {
            title.clone()
        } else {
            hs.iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(" > ")
        }
    };

    for line in text.lines() {
        let trimmed = line.trim_start();
        if markdown && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            in_fence = !in_fence;
            open.push_line(line);
            continue;
        }
        if !in_fence {
            if let Some(a) = alias_line(line) {
                open.end_para();
                open.aliases.extend(split_aliases(a));
                continue;
            }
        }
        if markdown && !in_fence {
            if let Some(level) = heading_level(trimmed) {
                open.close(&heading_path(&headings), &mut out);
                let h = trimmed[level..]
                    .trim()
                    .trim_end_matches('#')
                    .trim()
                    .to_string();
                headings.retain(|(l, _)| *l < level);
                headings.push((level, h));
                continue;
            }
        }
        if line.trim().is_empty() && !in_fence {
            open.end_para();
        } else {
            open.push_line(line);
        }
    }
    open.close(&heading_path(&headings), &mut out);
    out
}

fn heading_level(line: &str) -> Option<usize> {
    let n = line.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&n) && line[n..].starts_with(' ') {
        Some(n)
    } else {
        None
    }
}

/// The section [`split_document`] is reading: its paragraphs so far, the paragraph still
/// open, and its aliases.
#[derive(Default)]
struct OpenSection {
    para: String,
    paragraphs: Vec<String>,
    aliases: Vec<String>,
}

impl OpenSection {
    fn push_line(&mut self, line: &str) {
        self.para.push_str(line);
        self.para.push('\n');
    }

    fn end_para(&mut self) {
        let p = self.para.trim_end();
        if !p.trim().is_empty() {
            self.paragraphs.push(p.to_string());
        }
        self.para.clear();
    }

    /// Ends the open paragraph and the section, whose paragraphs are grouped into passages
    /// of at most MAX_PASSAGE_CHARS. A section with aliases but no text (a heading followed
    /// only by "Also asked:") is dropped: there is nothing to quote.
    fn close(&mut self, heading: &str, out: &mut Vec<Section>) {
        self.end_para();
        let bodies = pack(self.paragraphs.drain(..));
        let aliases = std::mem::take(&mut self.aliases);
        if !bodies.is_empty() {
            out.push(Section {
                heading: heading.to_string(),
                aliases,
                bodies,
            });
        }
    }
}

fn pack(paragraphs: impl Iterator<Item = String>) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut cur = String::new();
    for p in paragraphs {
        for piece in split_long(&p) {
            let plen = piece.chars().count();
            if !cur.is_empty() && cur.chars().count() + plen + 2 > MAX_PASSAGE_CHARS {
                bodies.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push_str("\n\n");
            }
            cur.push_str(&piece);
        }
    }
    if !cur.is_empty() {
        bodies.push(cur);
    }
    bodies
}

/// Splits one over-long paragraph at sentence ends, or hard at the bound.
fn split_long(p: &str) -> Vec<String> {
    if p.chars().count() <= MAX_PASSAGE_CHARS {
        return vec![p.to_string()];
    }
    let (mut out, rest) = cut_after(p, |c, n| {
        let sentence_end = matches!(c, '。' | '！' | '？' | '.' | '!' | '?' | '\n');
        n >= MAX_PASSAGE_CHARS || (sentence_end && n >= MAX_PASSAGE_CHARS * 2 / 3)
    });
    if !rest.trim().is_empty() {
        out.push(rest);
    }
    out
}

// ---- FAQ pairs ---------------------------------------------------------------------------

/// One FAQ entry as users write it in JSON or JSONL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaqEntry {
    #[serde(alias = "q")]
    question: String,
    #[serde(alias = "a")]
    answer: String,
    #[serde(default)]
    aliases: Aliases,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Aliases {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Aliases {
    fn into_vec(self) -> Vec<String> {
        match self {
            Aliases::None => Vec::new(),
            Aliases::One(s) => split_aliases(&s).collect(),
            Aliases::Many(v) => v
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

fn faq_section(question: &str, answer: &str, aliases: Vec<String>) -> Result<Section, String> {
    let (question, answer) = (question.trim(), answer.trim());
    if question.is_empty() {
        return Err("the question is empty".into());
    }
    if answer.is_empty() {
        return Err("the answer is empty".into());
    }
    Ok(Section {
        heading: question.to_string(),
        aliases,
        bodies: pack(
            answer
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        ),
    })
}

/// CSV with a header naming `question` and `answer` columns (and optionally `aliases`,
/// separated by `|` or `;`); English or Chinese column names, any order.
fn faq_csv(file: &str, text: &str, problems: &mut Vec<IngestProblem>) -> Vec<Section> {
    let mut records = match csv_records(text) {
        Ok(r) => r.into_iter(),
        Err((line, reason)) => {
            problems.push(IngestProblem {
                file: file.into(),
                line,
                reason,
            });
            return Vec::new();
        }
    };
    let Some((_, header)) = records.next() else {
        return Vec::new();
    };
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.contains(&h.trim().to_lowercase().as_str()))
    };
    let (Some(q), Some(a)) = (col(&["question", "问题"]), col(&["answer", "答案", "回答"]))
    else {
        problems.push(IngestProblem {
            file: file.into(),
            line: 1,
            reason: "the header must name a `question` and an `answer` column".into(),
        });
        return Vec::new();
    };
    let al = col(&["aliases", "alias", "别名", "相似问法"]);
    let mut out = Vec::new();
    for (line, row) in records {
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let field = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let aliases = al
            .map(|i| split_aliases(field(i)).collect())
            .unwrap_or_default();
        match faq_section(field(q), field(a), aliases) {
            Ok(s) => out.push(s),
            Err(reason) => problems.push(IngestProblem {
                file: file.into(),
                line,
                reason,
            }),
        }
    }
    out
}

/// A CSV record: the line it starts on and its fields.
type Record = (usize, Vec<String>);

/// RFC 4180 records; an unterminated quote is an error naming its line.
fn csv_records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let mut out = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut row_line = 1;
    let mut quoted = false;
    let mut quote_line = 0;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                quote_line = line;
                any = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                out.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
                any = false;
            }
            c => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err((quote_line, "a quoted field is never closed".into()));
    }
    if any || !field.is_empty() {
        row.push(field);
        out.push((row_line, row));
    }
    Ok(out)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A JSON array of entries, or an object holding one under `faq`, `items` or `questions`.
fn faq_json(file: &str, text: &str, problems: &mut Vec<IngestProblem>) -> Vec<Section> {
    let problem = |line: usize, reason: String| IngestProblem {
        file: file.into(),
        line,
        reason,
    };
    // Untagged enums buffer their input, which RawValue cannot borrow from: look at the
    // first character instead.
    let parsed: Result<Vec<&RawValue>, serde_json::Error> = if text.trim_start().starts_with('{') {
        serde_json::from_str::<std::collections::BTreeMap<String, &RawValue>>(text).and_then(|m| {
            match ["faq", "items", "questions"].iter().find_map(|k| m.get(*k)) {
                Some(v) if m.len() == 1 => serde_json::from_str(v.get()),
                _ => Err(serde::de::Error::custom(
                    "expected one key `faq`, `items` or `questions` holding an array",
                )),
            }
        })
    } else {
        serde_json::from_str(text)
    };
    let items = match parsed {
        Ok(v) => v,
        Err(e) => {
            let line = if e.is_syntax() || e.is_eof() {
                e.line()
            } else {
                1
            };
            problems.push(problem(
                line,
                format!("expected an array of {{question, answer}} entries: {e}"),
            ));
            return Vec::new();
        }
    };
    let base = text.as_ptr() as usize;
    let mut out = Vec::new();
    for raw in items {
        // RawValue borrows from `text`, so its address gives its offset, and so its line.
        let line = line_of(text, raw.get().as_ptr() as usize - base);
        push_entry(raw.get(), line, &mut out, problems, file);
    }
    out
}

fn push_entry(
    json: &str,
    line: usize,
    out: &mut Vec<Section>,
    problems: &mut Vec<IngestProblem>,
    file: &str,
) {
    let result = serde_json::from_str::<FaqEntry>(json)
        .map_err(|e| format!("not a {{question, answer, aliases?}} entry: {e}"))
        .and_then(|e| faq_section(&e.question, &e.answer, e.aliases.into_vec()));
    match result {
        Ok(s) => out.push(s),
        Err(reason) => problems.push(IngestProblem {
            file: file.into(),
            line,
            reason,
        }),
    }
}

/// One entry per non-empty line.
fn faq_jsonl(file: &str, text: &str, problems: &mut Vec<IngestProblem>) -> Vec<Section> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        push_entry(line, i + 1, &mut out, problems, file);
    }
    out
}

// ---- HTML --------------------------------------------------------------------------------

/// Reduces an HTML page to Markdown-like text: `<title>` and `<h1>`..`<h6>` become
/// headings, block elements paragraphs; scripts, styles and comments are dropped and the
/// common entities decoded. Enough for help-centre pages; not a browser.
fn html_to_markdown(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    let mut pre = 0usize;
    while !rest.is_empty() {
        if let Some(end) = skip_until {
            match find_ci(rest, end) {
                Some(i) => {
                    let after = &rest[i + end.len()..];
                    rest = after.find('>').map_or("", |g| &after[g + 1..]);
                    skip_until = None;
                }
                None => break,
            }
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(lt) = rest.find('<') else {
            push_text(&mut out, rest, pre > 0);
            break;
        };
        push_text(&mut out, &rest[..lt], pre > 0);
        let tag_src = &rest[lt + 1..];
        let Some(gt) = tag_src.find('>') else {
            break;
        };
        let tag = &tag_src[..gt];
        rest = &tag_src[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "script" if !closing => skip_until = Some("</script"),
            "style" if !closing => skip_until = Some("</style"),
            "title" => {
                if !closing {
                    out.push_str("\n\n# ");
                } else {
                    out.push_str("\n\n");
                }
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                if closing {
                    out.push_str("\n\n");
                } else {
                    let level = (name.as_bytes()[1] - b'0') as usize;
                    out.push_str("\n\n");
                    out.push_str(&"#".repeat(level));
                    out.push(' ');
                }
            }
            "pre" => {
                pre = if closing {
                    pre.saturating_sub(1)
                } else {
                    pre + 1
                };
                out.push_str("\n\n");
            }
            "li" if !closing => out.push_str("\n- "),
            "br" => out.push('\n'),
            "p" | "div" | "section" | "article" | "ul" | "ol" | "table" | "tr" | "blockquote"
            | "dl" | "dt" | "dd" | "header" | "footer" | "main" => out.push_str("\n\n"),
            "td" | "th" => out.push(' '),
            _ => {}
        }
    }
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
}

fn push_text(out: &mut String, raw: &str, keep_lines: bool) {
    let text = decode_entities(raw);
    if keep_lines {
        out.push_str(&text);
        return;
    }
    // Collapse the source's line breaks and indentation into single spaces.
    let mut last_space = out.ends_with([' ', '\n']);
    for c in text.chars() {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
        } else {
            out.push(c);
            last_space = false;
        }
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" | "#39" => '\'',
                "nbsp" => ' ',
                _ => {
                    let n = name.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(file: &str, text: &str) -> (Vec<Section>, Vec<IngestProblem>) {
        let mut problems = Vec::new();
        let format = Format::of(file).expect("a known format");
        (sections(file, text, format, &mut problems), problems)
    }

    #[test]
    fn markdown_splits_by_headings_and_ignores_hashes_in_code() {
        let md = "# Install\n\nIntro text.\n\n## From source\n\n```sh\n# not a heading\ncargo build\n```\n\nDone.\nAlso asked: build it myself; compile\n# Other\nMore.";
        let (s, _) = one("a.md", md);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].heading, "Install");
        assert_eq!(s[1].heading, "Install > From source");
        assert!(s[1].bodies[0].contains("# not a heading"));
        assert!(!s[1].bodies[0].contains("Also asked"));
        assert_eq!(s[1].aliases, ["build it myself", "compile"]);
        assert_eq!(s[2].heading, "Other");
        assert!(s[2].aliases.is_empty());
    }

    #[test]
    fn long_sections_are_bounded() {
        let para = "word ".repeat(100);
        let md = format!("# T\n\n{}", [para.trim(); 10].join("\n\n"));
        let (s, _) = one("a.md", &md);
        assert!(s[0].bodies.len() >= 5);
        assert!(s[0]
            .bodies
            .iter()
            .all(|t| t.chars().count() <= MAX_PASSAGE_CHARS));
        let huge = "字".repeat(5000);
        let (s, _) = one("b.txt", &huge);
        assert_eq!(s[0].heading, "b.txt");
        assert_eq!(
            s[0].bodies.iter().map(|t| t.chars().count()).sum::<usize>(),
            5000
        );
    }

    #[test]
    fn csv_faq_with_quotes_aliases_and_a_bad_row() {
        let csv = "question,answer,aliases\n\
                   How do I reset my password?,\"Open Me > Settings, then \"\"Security\"\".\",forgot password|lost password\n\
                   \"Multi\nline?\",\"Yes.\nReally.\",\n\
                   No answer here,,\n\
                   退款多久到账？,3 到 5 个工作日。,退款时间\n";
        let (s, p) = one("faq.csv", csv);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].heading, "How do I reset my password?");
        assert_eq!(s[0].bodies, ["Open Me > Settings, then \"Security\"."]);
        assert_eq!(s[0].aliases, ["forgot password", "lost password"]);
        assert_eq!(s[1].heading, "Multi\nline?");
        assert_eq!(s[2].aliases, ["退款时间"]);
        assert_eq!(p.len(), 1, "{p:?}");
        // The quoted record above spans lines 3 to 5.
        assert_eq!((p[0].line, p[0].file.as_str()), (6, "faq.csv"), "{p:?}");
        assert!(p[0].to_string().starts_with("faq.csv:6: "), "{}", p[0]);
    }

    #[test]
    fn csv_without_the_columns_or_with_an_open_quote_is_one_problem() {
        let (s, p) = one("x.csv", "a,b\n1,2\n");
        assert!(s.is_empty());
        assert_eq!(p[0].line, 1);
        let (_, p) = one("x.csv", "question,answer\nq,a\n\"open,a\n");
        assert_eq!((p.len(), p[0].line), (1, 3), "{p:?}");
    }

    #[test]
    fn json_and_jsonl_faq_name_the_line_of_a_bad_entry() {
        let json = "[\n  {\"question\": \"Q1\", \"answer\": \"A1\", \"aliases\": [\"x\"]},\n  {\"question\": \"Q2\"},\n  {\"q\": \"Q3\", \"a\": \"A3\", \"aliases\": \"y|z\"}\n]";
        let (s, p) = one("faq.json", json);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].aliases, ["y", "z"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 3, "{p:?}");
        let (s, _) = one(
            "w.json",
            "{\"faq\": [{\"question\": \"Q\", \"answer\": \"A\"}]}",
        );
        assert_eq!(s.len(), 1);
        let (s, p) = one("bad.json", "[{\"question\": \"Q\",\n \"answer\": }]");
        assert!(s.is_empty());
        assert_eq!(p[0].line, 2, "{p:?}");
        let (s, p) = one(
            "f.jsonl",
            "{\"question\": \"Q\", \"answer\": \"A\"}\n\nnot json\n{\"question\": \"R\", \"answer\": \"B\"}\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(p[0].line, 3, "{p:?}");
    }

    #[test]
    fn html_keeps_headings_and_text_and_drops_scripts() {
        let html = "<html><head><title>Help</title><style>h1{}</style><script>var x='<h1>no</h1>';</script></head>\
                    <body><h2>Refunds &amp; returns</h2><p>Ask within\n   <b>7 days</b>.</p><!-- <h2>hidden</h2> -->\
                    <ul><li>Step one</li><li>Step&nbsp;two &#x4e00;</li></ul></body></html>";
        let (s, _) = one("help.html", html);
        let headings: Vec<&str> = s.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(headings, ["Help > Refunds & returns"], "{s:?}");
        let body = &s[0].bodies.join("\n");
        assert!(body.contains("Ask within 7 days."), "{body}");
        assert!(body.contains("- Step two 一"), "{body}");
        assert!(
            !body.contains("var x") && !body.contains("hidden"),
            "{body}"
        );
    }
}
