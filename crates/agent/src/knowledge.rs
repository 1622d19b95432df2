//! The knowledge base: Markdown and text files split into passages, and a BM25 index over
//! their tokens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::AgentError;
use crate::text::{detect_lang, tokenize, Lang};

/// Upper bound on a passage's length in characters; longer sections are split at paragraphs
/// (and, for one huge paragraph, at sentence or character bounds).
pub const MAX_PASSAGE_CHARS: usize = 900;

/// One retrievable piece of a knowledge file.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// Path relative to the knowledge folder, with `/` separators.
    pub file: String,
    /// Heading path within the file (`Install > From source`); the file name for text files.
    pub heading: String,
    pub text: String,
    pub lang: Lang,
}

/// A passage that passed the relevance threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub passage: usize,
    /// BM25 score (ranking).
    pub score: f64,
    /// Share of the question's term weight present in the passage, 0..=1 (threshold).
    pub relevance: f64,
}

/// Passages plus their inverted index.
#[derive(Default)]
pub struct KnowledgeBase {
    passages: Vec<Passage>,
    terms: HashMap<String, u32>,
    /// Per term: (passage, term frequency).
    postings: Vec<Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    avg_len: f64,
    /// Total bytes of the files indexed.
    pub bytes: usize,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("passages", &self.passages.len())
            .field("terms", &self.terms.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

const K1: f64 = 1.2;
const B: f64 = 0.75;

impl KnowledgeBase {
    /// Reads every `.md`, `.markdown` and `.txt` file under `dir` (recursively, hidden
    /// entries skipped, in path order) and indexes it.
    pub fn load_dir(dir: &Path) -> Result<KnowledgeBase, AgentError> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files)?;
        files.sort();
        let mut docs = Vec::with_capacity(files.len());
        for (rel, path) in files {
            let bytes = std::fs::read(&path).map_err(|e| AgentError::File {
                path: path.clone(),
                reason: format!("cannot read: {e}"),
            })?;
            let text = String::from_utf8(bytes).map_err(|_| AgentError::File {
                path: path.clone(),
                reason: "not valid UTF-8".into(),
            })?;
            docs.push((rel, text));
        }
        Ok(KnowledgeBase::from_documents(docs))
    }

    /// Indexes documents given as (relative file name, content).
    pub fn from_documents(docs: impl IntoIterator<Item = (String, String)>) -> KnowledgeBase {
        let mut kb = KnowledgeBase::default();
        for (file, text) in docs {
            kb.bytes += text.len();
            let markdown = !file.ends_with(".txt");
            for (heading, body) in split_passages(&file, &text, markdown) {
                kb.add(Passage {
                    lang: detect_lang(&body),
                    file: file.clone(),
                    heading,
                    text: body,
                });
            }
        }
        let total: u64 = kb.lengths.iter().map(|&l| l as u64).sum();
        kb.avg_len = if kb.lengths.is_empty() {
            1.0
        } else {
            (total as f64 / kb.lengths.len() as f64).max(1.0)
        };
        kb
    }

    fn add(&mut self, p: Passage) {
        let id = self.passages.len() as u32;
        // The heading counts twice: titles say what a passage is about.
        let mut tokens = tokenize(&p.heading);
        tokens.extend(tokens.clone());
        tokens.extend(tokenize(&p.text));
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for t in &tokens {
            let next = self.terms.len() as u32;
            let term = *self.terms.entry(t.clone()).or_insert(next);
            if term as usize == self.postings.len() {
                self.postings.push(Vec::new());
            }
            *tf.entry(term).or_default() += 1;
        }
        for (term, n) in tf {
            self.postings[term as usize].push((id, n));
        }
        self.lengths.push(tokens.len() as u32);
        self.passages.push(p);
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn passage(&self, i: usize) -> &Passage {
        &self.passages[i]
    }

    fn idf(&self, df: usize) -> f64 {
        let n = self.passages.len() as f64;
        (1.0 + (n - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
    }

    /// The best passages for `query`: ranked by BM25, kept when their relevance reaches
    /// `threshold`, at most `top_k`.
    pub fn search(&self, query: &str, top_k: usize, threshold: f64) -> Vec<Hit> {
        let mut qterms = tokenize(query);
        qterms.sort();
        qterms.dedup();
        if qterms.is_empty() || self.passages.is_empty() {
            return Vec::new();
        }
        let qlang = detect_lang(query);
        let mut score = vec![0f64; self.passages.len()];
        let mut matched = vec![0f64; self.passages.len()];
        let mut total_weight = 0.0;
        for t in &qterms {
            let Some(&term) = self.terms.get(t) else {
                // Unknown words weigh as much as the rarest: an off-topic question is mostly
                // unknown words and so cannot reach the threshold.
                total_weight += self.idf(0);
                continue;
            };
            let posting = &self.postings[term as usize];
            let idf = self.idf(posting.len());
            total_weight += idf;
            for &(p, tf) in posting {
                let len = self.lengths[p as usize] as f64;
                let tf = tf as f64;
                score[p as usize] +=
                    idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len));
                matched[p as usize] += idf;
            }
        }
        let mut hits: Vec<Hit> = score
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > 0.0)
            .map(|(i, &s)| {
                // Prefer passages in the question's language: the KB has both.
                let s = if self.passages[i].lang == qlang {
                    s
                } else {
                    s * 0.8
                };
                Hit {
                    passage: i,
                    score: s,
                    relevance: matched[i] / total_weight,
                }
            })
            .filter(|h| h.relevance >= threshold)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.passage.cmp(&b.passage)));
        hits.truncate(top_k);
        hits
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), AgentError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AgentError::File {
        path: dir.to_path_buf(),
        reason: format!("cannot list knowledge folder: {e}"),
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| AgentError::File {
            path: dir.to_path_buf(),
            reason: format!("cannot list: {e}"),
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = std::fs::metadata(&path).map_err(|e| AgentError::File {
            path: path.clone(),
            reason: format!("cannot stat: {e}"),
        })?;
        if ft.is_dir() {
            collect(root, &path, out)?;
        } else if ft.is_file() {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".md") || lower.ends_with(".markdown") || lower.ends_with(".txt") {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    Ok(())
}

/// Splits a document into (heading path, passage text) pairs.
fn split_passages(file: &str, text: &str, markdown: bool) -> Vec<(String, String)> {
    let title = file.rsplit('/').next().unwrap_or(file).to_string();
    let mut out = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    let mut para = String::new();
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
            para.push_str(line);
            para.push('\n');
            continue;
        }
        if markdown && !in_fence {
            if let Some(level) = heading_level(trimmed) {
                end_para(&mut para, &mut paragraphs);
                flush_section(&heading_path(&headings), &mut paragraphs, &mut out);
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
            end_para(&mut para, &mut paragraphs);
        } else {
            para.push_str(line);
            para.push('\n');
        }
    }
    end_para(&mut para, &mut paragraphs);
    flush_section(&heading_path(&headings), &mut paragraphs, &mut out);
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

fn end_para(para: &mut String, paragraphs: &mut Vec<String>) {
    let p = para.trim_end();
    if !p.trim().is_empty() {
        paragraphs.push(p.to_string());
    }
    para.clear();
}

/// Groups a section's paragraphs into passages of at most MAX_PASSAGE_CHARS.
fn flush_section(heading: &str, paragraphs: &mut Vec<String>, out: &mut Vec<(String, String)>) {
    let mut cur = String::new();
    for p in paragraphs.drain(..) {
        for piece in split_long(&p) {
            let plen = piece.chars().count();
            if !cur.is_empty() && cur.chars().count() + plen + 2 > MAX_PASSAGE_CHARS {
                out.push((heading.to_string(), std::mem::take(&mut cur)));
            }
            if !cur.is_empty() {
                cur.push_str("\n\n");
            }
            cur.push_str(&piece);
        }
    }
    if !cur.is_empty() {
        out.push((heading.to_string(), cur));
    }
}

/// Splits one over-long paragraph at sentence ends, or hard at the bound.
fn split_long(p: &str) -> Vec<String> {
    if p.chars().count() <= MAX_PASSAGE_CHARS {
        return vec![p.to_string()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for c in p.chars() {
        cur.push(c);
        n += 1;
        let sentence_end = matches!(c, '。' | '！' | '？' | '.' | '!' | '?' | '\n');
        if n >= MAX_PASSAGE_CHARS || (sentence_end && n >= MAX_PASSAGE_CHARS * 2 / 3) {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_headings_and_ignores_hashes_in_code() {
        let md = "# Install\n\nIntro text.\n\n## From source\n\n```sh\n# not a heading\ncargo build\n```\n\nDone.\n# Other\nMore.";
        let p = split_passages("a.md", md, true);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[0].0, "Install");
        assert_eq!(p[1].0, "Install > From source");
        assert!(p[1].1.contains("# not a heading"));
        assert_eq!(p[2].0, "Other");
    }

    #[test]
    fn long_sections_are_bounded() {
        let para = "word ".repeat(100);
        let md = format!("# T\n\n{}", [para.trim(); 10].join("\n\n"));
        let p = split_passages("a.md", &md, true);
        assert!(p.len() >= 5);
        assert!(
            p.iter()
                .all(|(_, t)| t.chars().count() <= MAX_PASSAGE_CHARS),
            "{p:?}"
        );
        let huge = "字".repeat(5000);
        let p = split_passages("b.txt", &huge, false);
        assert!(p
            .iter()
            .all(|(h, t)| t.chars().count() <= MAX_PASSAGE_CHARS && h == "b.txt"));
        assert_eq!(
            p.iter().map(|(_, t)| t.chars().count()).sum::<usize>(),
            5000
        );
    }

    #[test]
    fn search_ranks_and_thresholds() {
        let kb = KnowledgeBase::from_documents(vec![
            (
                "a.md".into(),
                "# Hot reload\n\nRun with --watch to reload elements when files change.".into(),
            ),
            (
                "b.md".into(),
                "# Install\n\nBuild the binary with cargo install.".into(),
            ),
        ]);
        let h = kb.search("how do I reload on file changes", 3, 0.3);
        assert_eq!(kb.passage(h[0].passage).file, "a.md");
        assert!(kb.search("best pizza recipe in naples", 3, 0.3).is_empty());
    }
}
