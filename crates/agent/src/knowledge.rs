//! The knowledge base: knowledge files split into passages (see [`crate::ingest`]) and a
//! BM25F index over three fields of each passage: its heading path, its aliases ("Also
//! asked:" lines, FAQ aliases) and its text.
//!
//! A query term matches a passage through the term itself, a spelling within one or two
//! edits of it (for terms the knowledge never uses), or a synonym from `synonyms.txt`;
//! each way counts once, at its own weight, discounted when the word is an everyday one in
//! general text (`data/common-words.tsv`): a small base cannot tell from its own counts that
//! "day" says less than "refund". A word the knowledge only ever writes right before one
//! same word (see [`BOUND_FACTOR`]) counts little when the question lacks that next word:
//! the knowledge's "WeChat" is "WeChat Pay", not a WeChat bot. A passage's relevance is
//! the probability, by a logistic gate calibrated on the demo's tune questions, that it
//! answers the question; it is used when that reaches the threshold and its score is
//! within a ratio of the best.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::AgentError;
use crate::ingest::{self, Format, IngestProblem};
use crate::text::{
    commonness, detect_lang, edit_distance, is_bigram, reading_key, tokenize, tokenize_clauses,
    Lang, BIGRAM_MARK, CLAUSE_BREAK,
};

pub use crate::ingest::MAX_PASSAGE_CHARS;

/// The file in a knowledge folder's root that holds synonym groups instead of knowledge.
pub const SYNONYMS_FILE: &str = "synonyms.txt";

/// One retrievable piece of a knowledge file.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// Path relative to the knowledge folder, with `/` separators.
    pub file: String,
    /// Heading path within the file (`Install > From source`), the FAQ question, or the
    /// file name for text files.
    pub heading: String,
    pub text: String,
    /// Other phrasings of the question this passage answers (indexed, not quoted).
    pub aliases: Vec<String>,
    pub lang: Lang,
}

/// A passage that passed the relevance threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub passage: usize,
    /// BM25F score (ranking).
    pub score: f64,
    /// Calibrated probability, 0..=1, that the passage answers the question (threshold).
    pub relevance: f64,
}

/// How a search filters and cuts its ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchParams {
    /// At most this many hits.
    pub top_k: usize,
    /// Minimum relevance (the gate's probability).
    pub threshold: f64,
    /// Hits below this share of the best hit's score are dropped.
    pub relative: f64,
}

/// Field weights and length normalisation of BM25F: heading, aliases, text.
const FIELD_WEIGHT: [f64; 3] = [2.5, 2.0, 1.0];
const FIELD_B: [f64; 3] = [0.3, 0.5, 0.75];
const K1: f64 = 1.2;
/// A Chinese character bigram weighs less than a word: each word also yields its bigrams.
const BIGRAM_WEIGHT: f64 = 0.4;
/// A corrected spelling or a synonym is weaker evidence than the word itself.
const TYPO_FACTOR: f64 = 0.8;
const SYNONYM_FACTOR: f64 = 0.7;
/// Passages in the other language than the question's rank lower (the demo knowledge
/// holds each page in both languages).
const OTHER_LANG_FACTOR: f64 = 0.6;
/// An unknown query word counts this share of a rare word's weight against relevance:
/// colloquial questions carry words the knowledge never uses, off-topic ones mostly such.
const UNKNOWN_FACTOR: f64 = 0.5;
/// Where general-text commonness starts to discount a query term, where the discount
/// reaches its floor, and the floor (see `specificity`).
const SPECIFIC_ZIPF: f64 = 4.0;
const COMMON_ZIPF: f64 = 6.5;
const COMMON_FLOOR: f64 = 0.15;
/// Weight of the page-level score added to each passage's own.
const FILE_WEIGHT: f64 = 0.3;
/// A passage score that counts as full evidence, in rare-word weights (the weight of a word
/// found in one passage only), so that it scales with the size of the knowledge base;
/// calibrated on the demo knowledge.
const STRONG_RARE_WORDS: f64 = 2.0;
/// A word the knowledge only ever uses right before one same word ("WeChat" in "WeChat
/// Pay", 微信 in 微信支付) is a part of that compound there; a question holding the word
/// without the compound's next word ("a WeChat bot") matches it at this factor.
const BOUND_FACTOR: f64 = 0.3;
/// Occurrences of a word, all before the same next word, that make it bound.
const BOUND_MIN: u32 = 2;
/// Passages tokenised at once while indexing.
const INDEX_BATCH: usize = 2048;
/// Shortest query term (in characters) that spelling correction is tried on.
const TYPO_MIN_LEN: usize = 4;

/// A multiply-rotate hasher for the index's own keys (terms and ids it made itself): the
/// standard SipHash guards against crafted keys, which indexing pays for on every token
/// while the index gains nothing from it (query terms only look up, never insert).
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastHash = std::hash::BuildHasherDefault<FastHasher>;

#[derive(Debug, Clone, Copy)]
struct Posting {
    passage: u32,
    tf: [u16; 3],
}

/// Passages plus their inverted index.
#[derive(Default)]
pub struct KnowledgeBase {
    passages: Vec<Passage>,
    terms: HashMap<String, u32, FastHash>,
    term_text: Vec<String>,
    postings: Vec<Vec<Posting>>,
    field_len: Vec<[u32; 3]>,
    avg_len: [f64; 3],
    /// Spelling index: (hash of a term with one character deleted, term), sorted.
    deletes: Vec<(u64, u32)>,
    /// Chinese terms of two to four characters by their toneless reading, for questions
    /// typed with a homophone slip of a pinyin input method.
    homophones: HashMap<String, Vec<u32>, FastHash>,
    synonyms: Synonyms,
    problems: Vec<IngestProblem>,
    /// Per term: the word that follows it wherever it stands as a word of its own
    /// (`NO_TERM` once different words, or a field's end, have followed it), and how often.
    follower: Vec<(u32, u32)>,
    /// Per passage, its file's index in `file_len`.
    file_of: Vec<u32>,
    /// Per term: (file, term frequency in the whole file), for the page-level score.
    file_postings: Vec<Vec<(u32, u32)>>,
    file_len: Vec<u32>,
    avg_file_len: f64,
    /// Per passage, its translation group: the passages of one section and of the same
    /// section in the page's translation (see [`twin_groups`]) share one; any other passage
    /// has a group of its own.
    group_of: Vec<u32>,
    /// Per file, the file it shares page-level scores with: its translation's or its own.
    file_group: Vec<u32>,
    /// Total bytes of the files indexed.
    pub bytes: usize,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("passages", &self.passages.len())
            .field("terms", &self.terms.len())
            .field("synonym_groups", &self.synonyms.groups.len())
            .field("problems", &self.problems.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Synonym groups: each entry is the tokens of one phrase.
#[derive(Default)]
struct Synonyms {
    groups: Vec<Vec<Vec<String>>>,
    /// Token -> (group, entry) of the entries that contain it.
    by_token: HashMap<String, Vec<(u32, u32)>>,
}

impl Synonyms {
    /// One group per line, phrases separated by `,` or `，`; `#` starts a comment line.
    fn parse(text: &str) -> Synonyms {
        let mut s = Synonyms::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entries: Vec<Vec<String>> = line
                .split([',', '，', '、'])
                .map(|phrase| key_tokens(tokenize(phrase)))
                .filter(|t| !t.is_empty())
                .collect();
            if entries.len() < 2 {
                continue;
            }
            let g = s.groups.len() as u32;
            for (e, tokens) in entries.iter().enumerate() {
                for t in tokens {
                    s.by_token.entry(t.clone()).or_default().push((g, e as u32));
                }
            }
            s.groups.push(entries);
        }
        s
    }

    /// For each query term, the other phrases (as tokens) of every group one of whose
    /// phrases the query contains whole. A phrase of several words matches a passage only
    /// where all of them occur: "local model" must not match every page that says "local".
    fn expand(&self, query: &HashSet<&str>) -> HashMap<String, Vec<Vec<String>>> {
        let mut out: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        let mut seen = HashSet::new();
        for t in query {
            for &(g, e) in self.by_token.get(*t).into_iter().flatten() {
                if !seen.insert((g, e)) {
                    continue;
                }
                let group = &self.groups[g as usize];
                let entry = &group[e as usize];
                if !entry.iter().all(|tok| query.contains(tok.as_str())) {
                    continue;
                }
                for tok in entry {
                    let alts = out.entry(tok.clone()).or_default();
                    for (i, other) in group.iter().enumerate() {
                        if i != e as usize {
                            alts.push(other.clone());
                        }
                    }
                }
            }
        }
        out
    }
}

/// The tokens that identify a phrase: its words, or its bigrams when it has no word of
/// its own (a single Chinese word yields both).
fn key_tokens(tokens: Vec<String>) -> Vec<String> {
    let words: Vec<String> = tokens.iter().filter(|t| !is_bigram(t)).cloned().collect();
    let mut out = if words.is_empty() { tokens } else { words };
    out.sort();
    out.dedup();
    out
}

/// `follower` markers: no word followed yet, and several words (or none) did.
const NO_FOLLOWER: u32 = u32::MAX;
const NO_TERM: u32 = u32::MAX - 1;

/// Which of a field's tokens stand for a word of the text in its order, as opposed to a
/// bigram or a part repeated beside its whole: an English word's camelCase parts follow it
/// ("dingtalk ding talk"), jieba's search-mode parts come before it (开放 平台 开放平台).
fn main_words(tokens: &[String]) -> Vec<bool> {
    // A four-character word has five parts before it.
    const PARTS_BEFORE: usize = 5;
    let mut out = vec![false; tokens.len()];
    let mut last_whole: Option<&str> = None;
    for (i, t) in tokens.iter().enumerate() {
        if t == CLAUSE_BREAK {
            last_whole = None;
        }
        if is_bigram(t) || t == CLAUSE_BREAK {
            continue;
        }
        let mut next = tokens[i + 1..].iter().filter(|u| !is_bigram(u));
        if last_whole.is_some_and(|w| part_of(t, w))
            || next.by_ref().take(PARTS_BEFORE).any(|n| part_of(t, n))
        {
            continue;
        }
        out[i] = true;
        last_whole = Some(t);
    }
    out
}

/// Whether the term `part` is a part of the term `whole` said again: a camelCase part or a
/// search-mode sub-word ("ding" of "dingtalk", 支付 of 支付宝).
fn part_of(part: &str, whole: &str) -> bool {
    whole.len() > part.len() && whole.contains(part)
}

fn hash_str(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// Every string of `word` with one character removed.
fn deletions(word: &str) -> impl Iterator<Item = String> + '_ {
    word.char_indices().map(move |(i, c)| {
        let mut s = String::with_capacity(word.len());
        s.push_str(&word[..i]);
        s.push_str(&word[i + c.len_utf8()..]);
        s
    })
}

fn typo_candidate(term: &str) -> bool {
    let n = term.chars().count();
    (TYPO_MIN_LEN..=24).contains(&n)
        && term.is_ascii()
        && term.bytes().filter(u8::is_ascii_alphabetic).count() >= TYPO_MIN_LEN
}

/// Tokens of one passage's three fields.
type FieldTokens = [Vec<String>; 3];

fn analyse(p: &Passage) -> FieldTokens {
    [
        tokenize_clauses(&p.heading),
        tokenize_clauses(&p.aliases.join("\n")),
        tokenize_clauses(&p.text),
    ]
}

impl KnowledgeBase {
    /// Reads every knowledge file under `dir` (recursively, hidden entries skipped, in path
    /// order) and indexes it. Files that cannot be read or parsed, and malformed FAQ rows,
    /// are recorded in [`problems`](Self::problems) and skipped; only a folder that cannot
    /// be listed is an error.
    pub fn load_dir(dir: &Path) -> Result<KnowledgeBase, AgentError> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files)?;
        files.sort();
        let mut docs = Vec::with_capacity(files.len());
        let mut problems = Vec::new();
        let mut synonyms = String::new();
        for (rel, path) in files {
            let text = match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        problems.push(whole_file(&rel, "not valid UTF-8; skipped"));
                        continue;
                    }
                },
                Err(e) => {
                    problems.push(whole_file(&rel, &format!("cannot read: {e}; skipped")));
                    continue;
                }
            };
            if rel == SYNONYMS_FILE {
                synonyms = text;
            } else {
                docs.push((rel, text));
            }
        }
        let mut kb = KnowledgeBase::build(docs, &synonyms, problems);
        for p in &kb.problems {
            tracing::warn!(folder = %dir.display(), problem = %p, "knowledge file problem");
        }
        kb.problems.shrink_to_fit();
        Ok(kb)
    }

    /// Indexes documents given as (relative file name, content); the format follows the
    /// name's extension (unknown extensions are read as Markdown).
    pub fn from_documents(docs: impl IntoIterator<Item = (String, String)>) -> KnowledgeBase {
        KnowledgeBase::build(docs.into_iter().collect(), "", Vec::new())
    }

    /// Like [`from_documents`](Self::from_documents), with the synonym groups given as the
    /// text of a `synonyms.txt`.
    pub fn with_synonyms(
        docs: impl IntoIterator<Item = (String, String)>,
        synonyms: &str,
    ) -> KnowledgeBase {
        KnowledgeBase::build(docs.into_iter().collect(), synonyms, Vec::new())
    }

    fn build(
        docs: Vec<(String, String)>,
        synonyms: &str,
        mut problems: Vec<IngestProblem>,
    ) -> KnowledgeBase {
        let mut kb = KnowledgeBase {
            synonyms: Synonyms::parse(synonyms),
            ..KnowledgeBase::default()
        };
        // Per passage, (file ordinal, section ordinal), for pairing translated pages.
        let mut section_of: Vec<(u32, u32)> = Vec::new();
        let mut outlines: Vec<(String, u32)> = Vec::new();
        for (file, text) in docs {
            kb.bytes += text.len();
            let format = Format::of(&file).unwrap_or(Format::Markdown);
            let sections = ingest::sections(&file, &text, format, &mut problems);
            let doc = outlines.len() as u32;
            outlines.push((file.clone(), sections.len() as u32));
            for (k, s) in sections.into_iter().enumerate() {
                for body in s.bodies {
                    section_of.push((doc, k as u32));
                    kb.passages.push(Passage {
                        lang: detect_lang(&body),
                        file: file.clone(),
                        heading: s.heading.clone(),
                        text: body,
                        aliases: s.aliases.clone(),
                    });
                }
            }
        }
        kb.problems = problems;
        // Tokens are held for one batch at a time: for a large knowledge base they take
        // several times the text's size, and the index keeps none of them.
        let passages = std::mem::take(&mut kb.passages);
        let mut id = 0u32;
        for batch in passages.chunks(INDEX_BATCH) {
            for fields in analyse_all(batch) {
                kb.index(id, fields);
                id += 1;
            }
        }
        kb.passages = passages;
        let n = kb.field_len.len().max(1) as f64;
        for f in 0..3 {
            let total: u64 = kb.field_len.iter().map(|l| l[f] as u64).sum();
            kb.avg_len[f] = (total as f64 / n).max(1.0);
        }
        kb.build_file_index();
        (kb.group_of, kb.file_group) = twin_groups(&outlines, &section_of);
        kb.build_spelling_index();
        kb
    }

    /// A second, page-level index: a question about a page's topic matches the page as a
    /// whole even where its words spread over several sections.
    fn build_file_index(&mut self) {
        let mut files: HashMap<&str, u32> = HashMap::new();
        self.file_of = self
            .passages
            .iter()
            .map(|p| {
                let next = files.len() as u32;
                *files.entry(p.file.as_str()).or_insert(next)
            })
            .collect();
        self.file_len = vec![0; files.len()];
        for (p, lens) in self.field_len.iter().enumerate() {
            self.file_len[self.file_of[p] as usize] += lens[0] / 4 + lens[1] + lens[2];
        }
        self.file_postings = self
            .postings
            .iter()
            .map(|posting| {
                let mut per_file: Vec<(u32, u32)> = Vec::new();
                for p in posting {
                    let f = self.file_of[p.passage as usize];
                    let tf = p.tf[1] as u32 + p.tf[2] as u32 + u32::from(p.tf[0] > 0);
                    match per_file.last_mut() {
                        Some((last, n)) if *last == f => *n += tf,
                        _ => per_file.push((f, tf)),
                    }
                }
                per_file
            })
            .collect();
        let n = self.file_len.len().max(1) as f64;
        self.avg_file_len = (self.file_len.iter().map(|&l| l as f64).sum::<f64>() / n).max(1.0);
    }

    fn file_idf(&self, df: usize) -> f64 {
        let n = self.file_len.len() as f64;
        (1.0 + (n - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
    }

    fn index(&mut self, id: u32, fields: FieldTokens) {
        let mut tf: HashMap<u32, [u16; 3], FastHash> = HashMap::default();
        let mut lens = [0u32; 3];
        for (f, tokens) in fields.into_iter().enumerate() {
            // Bigrams repeat what the words say: leave them out of the length, or Chinese
            // passages would look twice as long as English ones.
            lens[f] = tokens
                .iter()
                .filter(|t| !is_bigram(t) && *t != CLAUSE_BREAK)
                .count() as u32;
            let words = main_words(&tokens);
            let mut prev: Option<u32> = None;
            for (i, t) in tokens.into_iter().enumerate() {
                if t == CLAUSE_BREAK {
                    if let Some(p) = prev.take() {
                        self.follow(p, NO_TERM);
                    }
                    continue;
                }
                let term = match self.terms.get(&t) {
                    Some(&term) => term,
                    None => {
                        let term = self.term_text.len() as u32;
                        self.terms.insert(t.clone(), term);
                        self.term_text.push(t);
                        self.postings.push(Vec::new());
                        self.follower.push((NO_FOLLOWER, 0));
                        term
                    }
                };
                let slot = &mut tf.entry(term).or_default()[f];
                *slot = slot.saturating_add(1);
                if words[i] {
                    if let Some(p) = prev {
                        self.follow(p, term);
                    }
                    prev = Some(term);
                }
            }
            if let Some(p) = prev {
                self.follow(p, NO_TERM);
            }
        }
        let mut tf: Vec<(u32, [u16; 3])> = tf.into_iter().collect();
        tf.sort_unstable_by_key(|(t, _)| *t);
        for (term, tf) in tf {
            self.postings[term as usize].push(Posting { passage: id, tf });
        }
        self.field_len.push(lens);
    }

    /// Records that `next` follows the word `term` (`NO_TERM`: nothing does).
    fn follow(&mut self, term: u32, next: u32) {
        let f = &mut self.follower[term as usize];
        *f = match *f {
            (NO_FOLLOWER, _) => (next, 1),
            (w, n) if w == next && w != NO_TERM => (w, n + 1),
            _ => (NO_TERM, 0),
        };
    }

    /// The word `term` is bound to (see [`BOUND_FACTOR`]), if any.
    fn bound_to(&self, term: u32) -> Option<&str> {
        match self.follower.get(term as usize) {
            Some(&(w, n)) if w < NO_TERM && n >= BOUND_MIN => Some(&self.term_text[w as usize]),
            _ => None,
        }
    }

    fn build_spelling_index(&mut self) {
        let mut deletes = Vec::new();
        for (id, t) in self.term_text.iter().enumerate() {
            if typo_candidate(t) {
                for d in deletions(t) {
                    deletes.push((hash_str(&d), id as u32));
                }
            }
        }
        deletes.sort_unstable();
        deletes.dedup();
        self.deletes = deletes;
        let mut homophones: HashMap<String, Vec<u32>, FastHash> = HashMap::default();
        for (id, t) in self.term_text.iter().enumerate() {
            if let Some(key) = reading_key(t) {
                homophones.entry(key).or_default().push(id as u32);
            }
        }
        self.homophones = homophones;
    }

    /// Files and rows that could not be loaded, each naming the file and line.
    pub fn problems(&self) -> &[IngestProblem] {
        &self.problems
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

    fn deleted_hashes(&self, h: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.deletes.partition_point(|&(k, _)| k < h);
        self.deletes[start..]
            .iter()
            .take_while(move |&&(k, _)| k == h)
            .map(|&(_, t)| t)
    }

    /// The indexed term closest in spelling to an unknown `term` (one edit, two for long
    /// words; for Chinese, a term read the same), preferring the most frequent; `None` when
    /// there is none.
    fn correct(&self, term: &str) -> Option<u32> {
        if let Some(key) = reading_key(term) {
            // A word before a bigram of the same characters, then the most frequent.
            return self.homophones.get(&key)?.iter().copied().max_by_key(|&t| {
                let text = &self.term_text[t as usize];
                (!is_bigram(text), self.postings[t as usize].len())
            });
        }
        if !typo_candidate(term) {
            return None;
        }
        let max = if term.chars().count() >= 8 { 2 } else { 1 };
        let mut candidates: Vec<u32> = self.deleted_hashes(hash_str(term)).collect();
        for d in deletions(term) {
            if let Some(&t) = self.terms.get(&d) {
                candidates.push(t);
            }
            candidates.extend(self.deleted_hashes(hash_str(&d)));
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|t| {
                let text = &self.term_text[t as usize];
                edit_distance(term, text, max).map(|d| (d, t))
            })
            .min_by_key(|&(d, t)| (d, std::cmp::Reverse(self.postings[t as usize].len())))
            .map(|(_, t)| t)
    }

    /// Passages holding every term of `terms`, each with the mean BM25F weight of those
    /// terms in it. Postings are in passage order, so the rarest term's list drives and the
    /// others are binary-searched.
    fn phrase_matches(&self, terms: &[u32]) -> Vec<(u32, f64)> {
        let lists: Vec<&Vec<Posting>> = terms.iter().map(|&t| &self.postings[t as usize]).collect();
        let Some(driver) = lists.iter().min_by_key(|l| l.len()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        'passages: for d in driver.iter() {
            let mut sum = 0.0;
            for list in &lists {
                match list.binary_search_by_key(&d.passage, |p| p.passage) {
                    Ok(i) => sum += self.idf(list.len()) * self.tf_weight(&list[i]),
                    Err(_) => continue 'passages,
                }
            }
            out.push((d.passage, sum / lists.len() as f64));
        }
        out
    }

    fn tf_weight(&self, p: &Posting) -> f64 {
        let lens = &self.field_len[p.passage as usize];
        let mut tf = 0.0;
        for f in 0..3 {
            if p.tf[f] > 0 {
                let norm = 1.0 - FIELD_B[f] + FIELD_B[f] * lens[f] as f64 / self.avg_len[f];
                tf += FIELD_WEIGHT[f] * p.tf[f] as f64 / norm;
            }
        }
        tf * (K1 + 1.0) / (tf + K1)
    }

    /// The best passages for `query`: ranked by BM25F, kept when their relevance reaches
    /// `threshold`, at most `top_k`.
    pub fn search(&self, query: &str, top_k: usize, threshold: f64) -> Vec<Hit> {
        self.search_with(
            query,
            SearchParams {
                top_k,
                threshold,
                relative: 0.0,
            },
        )
    }

    /// [`search`](Self::search) with every parameter.
    pub fn search_with(&self, query: &str, params: SearchParams) -> Vec<Hit> {
        let ranked = self.rank(query);
        // The best-ranked passage decides whether the question is covered at all: the gate
        // was fitted on it, and letting any lower one pass instead would give each
        // question several tries at a chance match ("real human" finding the page on
        // human handover).
        match ranked.first() {
            Some(c) if gate(&c.features) >= params.threshold => {}
            _ => return Vec::new(),
        }
        let mut hits: Vec<Hit> = ranked
            .into_iter()
            .map(|c| Hit {
                passage: c.passage,
                score: c.score,
                relevance: gate(&c.features),
            })
            .filter(|h| h.relevance >= params.threshold)
            .collect();
        if let Some(top) = hits.first().map(|h| h.score) {
            hits.retain(|h| h.score >= top * params.relative);
        }
        hits.truncate(params.top_k);
        hits
    }

    /// The best-ranked passage for `query` and the features the relevance gate weighs for
    /// it (calibration data for examples/eval.rs).
    #[doc(hidden)]
    pub fn gate_features(&self, query: &str) -> Option<(usize, GateFeatures)> {
        self.rank(query).first().map(|c| (c.passage, c.features))
    }

    /// Every passage matching `query`, best first, with its gate features.
    fn rank(&self, query: &str) -> Vec<Candidate> {
        let mut qterms = tokenize(query);
        qterms.sort();
        qterms.dedup();
        if qterms.is_empty() || self.passages.is_empty() {
            return Vec::new();
        }
        let qlang = detect_lang(query);
        let query_set: HashSet<&str> = qterms.iter().map(String::as_str).collect();
        let synonyms = self.synonyms.expand(&query_set);
        let n = self.passages.len();
        // Per passage its own score (to pick a group's representative); per translation
        // group the score and matched weight that rank it. A group takes, for each query
        // term, its best passage's match, so a word both languages use counts once.
        let mut score = vec![0f64; n];
        let mut gscore = vec![0f64; n];
        let mut gmatched = vec![0f64; n];
        // Per group, the query term it last took a match for, and that match.
        let mut stamp = vec![u32::MAX; n];
        let mut term_best = vec![(0f64, 0f64); n];
        let mut total_weight = 0.0;
        // Passages with a score, so a query touches only them, not the whole base.
        let mut touched: Vec<usize> = Vec::new();
        // Per query term, whether the knowledge knows it (directly, by spelling or synonym).
        let mut known_term = vec![false; qterms.len()];
        let mut file_score = vec![0f64; self.file_len.len()];
        let mut file_best: HashMap<u32, f64, FastHash> = HashMap::default();
        // Per query term, the best way each passage matched it: (score, factor).
        let mut best: HashMap<u32, (f64, f64), FastHash> = HashMap::default();
        for (ti, t) in qterms.iter().enumerate() {
            let ti = ti as u32;
            let known = self.terms.get(t).copied();
            // A word every text uses ("day", "work", 怎么) says little about the topic,
            // however rare it is in a small knowledge base.
            let weight = specificity(t) * if is_bigram(t) { BIGRAM_WEIGHT } else { 1.0 };
            let df = known.map_or(0, |k| self.postings[k as usize].len());
            let mut qweight = weight * self.idf(df);
            if known.is_none() {
                qweight *= UNKNOWN_FACTOR;
            }
            total_weight += qweight;
            // Ways to match the term: itself or its spelling fix, and its synonyms (each a
            // phrase of one or more terms).
            let mut alts: Vec<(Vec<u32>, f64)> = Vec::new();
            // A bigram stands for the word of its two characters, bound or not.
            let word = if is_bigram(t) {
                self.terms.get(&t[BIGRAM_MARK.len_utf8()..]).copied()
            } else {
                known
            };
            let bound = word
                .and_then(|w| self.bound_to(w))
                .is_some_and(|next| !query_set.contains(next));
            match known {
                Some(k) => alts.push((vec![k], if bound { BOUND_FACTOR } else { 1.0 })),
                None => {
                    if let Some(k) = self.correct(t) {
                        alts.push((vec![k], TYPO_FACTOR));
                    }
                }
            }
            for phrase in synonyms.get(t).into_iter().flatten() {
                let ids: Option<Vec<u32>> =
                    phrase.iter().map(|w| self.terms.get(w).copied()).collect();
                if let Some(ids) = ids {
                    alts.push((ids, SYNONYM_FACTOR));
                }
            }
            known_term[ti as usize] = !alts.is_empty();

            best.clear();
            file_best.clear();
            for (terms, factor) in &alts {
                let (&[term], factor) = (&terms[..], *factor) else {
                    continue; // phrases count at passage level only
                };
                let fp = &self.file_postings[term as usize];
                let idf = self.file_idf(fp.len());
                for &(f, tf) in fp {
                    let len = self.file_len[f as usize] as f64;
                    let tf = tf as f64;
                    let s = weight * factor * idf * tf * (K1 + 1.0)
                        / (tf + K1 * (0.25 + 0.75 * len / self.avg_file_len));
                    let e = file_best.entry(self.file_group[f as usize]).or_insert(0.0);
                    *e = e.max(s);
                }
            }
            for (&f, &s) in &file_best {
                file_score[f as usize] += s;
            }
            let mut add = |p: usize, s: f64, factor: f64| {
                if score[p] == 0.0 {
                    touched.push(p);
                }
                score[p] += s;
                let g = self.group_of[p] as usize;
                let m = qweight * factor;
                if stamp[g] != ti {
                    stamp[g] = ti;
                    term_best[g] = (s, m);
                    gscore[g] += s;
                    gmatched[g] += m;
                } else {
                    let (bs, bm) = term_best[g];
                    if s > bs {
                        gscore[g] += s - bs;
                        term_best[g].0 = s;
                    }
                    if m > bm {
                        gmatched[g] += m - bm;
                        term_best[g].1 = m;
                    }
                }
            };
            if let [(ref terms, factor)] = alts[..] {
                if let &[term] = &terms[..] {
                    // One way to match, by one term (the usual case): no best-of needed.
                    let posting = &self.postings[term as usize];
                    let idf = self.idf(posting.len());
                    for p in posting {
                        add(
                            p.passage as usize,
                            weight * factor * idf * self.tf_weight(p),
                            factor,
                        );
                    }
                    continue;
                }
            }
            for (terms, factor) in alts {
                for (p, s) in self.phrase_matches(&terms) {
                    let s = weight * factor * s;
                    let e = best.entry(p).or_insert((0.0, 0.0));
                    e.0 = e.0.max(s);
                    e.1 = e.1.max(factor);
                }
            }
            for (&p, &(s, factor)) in &best {
                add(p as usize, s, factor);
            }
        }
        let strong = STRONG_RARE_WORDS * self.idf(1);
        let (words, known_share) = known_share(&qterms, &known_term);
        // Each group is answered by one passage: the best-scoring one in the question's
        // language, else the best-scoring one.
        let mut rep: HashMap<u32, usize, FastHash> = HashMap::default();
        for &i in &touched {
            let key = |j: usize| (self.passages[j].lang == qlang, score[j]);
            rep.entry(self.group_of[i])
                .and_modify(|r| {
                    let (a, b) = (key(i), key(*r));
                    if (a.0 && !b.0) || (a.0 == b.0 && a.1 > b.1) {
                        *r = i;
                    }
                })
                .or_insert(i);
        }
        let mut out: Vec<Candidate> = rep
            .into_iter()
            .map(|(g, i)| (i, gscore[g as usize], gmatched[g as usize]))
            .filter(|&(_, s, _)| s > 0.0)
            .map(|(i, s, m)| {
                let file = self.file_group[self.file_of[i] as usize];
                let ranked = s + FILE_WEIGHT * file_score[file as usize];
                Candidate {
                    passage: i,
                    score: if self.passages[i].lang == qlang {
                        ranked
                    } else {
                        ranked * OTHER_LANG_FACTOR
                    },
                    features: [
                        (m / total_weight).min(1.0),
                        (s / strong).min(1.0),
                        known_share,
                        words.ln_1p(),
                        f64::from(self.field_len[i].iter().sum::<u32>()).ln_1p(),
                    ],
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.passage.cmp(&b.passage)));
        out
    }
}

/// The number of the question's words, and the share of them the knowledge knows. Bigrams are not words, and a
/// camelCase part or search-mode sub-word ("ding" of "dingtalk") is its whole word said
/// again, so it does not count on its own. A whole the knowledge does not know stays
/// unknown even when a part is known: "iphone" is not "phone".
fn known_share(qterms: &[String], known_term: &[bool]) -> (f64, f64) {
    let (mut words, mut known) = (0usize, 0usize);
    for (t, &k) in qterms.iter().zip(known_term) {
        if is_bigram(t) || qterms.iter().any(|u| !is_bigram(u) && part_of(t, u)) {
            continue;
        }
        words += 1;
        known += usize::from(k);
    }
    (words as f64, known as f64 / words.max(1) as f64)
}

/// What the relevance gate weighs about a passage and the question: the share of the
/// question's term weight the passage covers (unknown words counted at a discount), its
/// score against a strong match, and the share of the question's words the knowledge knows
/// at all (directly, by spelling or by synonym), each 0..=1; then ln(1 + the question's
/// word count), since a long question carries more words no page uses, and ln(1 + the
/// passage's length in terms), since a long passage matches more words by chance.
pub type GateFeatures = [f64; 5];

struct Candidate {
    passage: usize,
    score: f64,
    features: GateFeatures,
}

/// How much a query term says about the topic, 0..=1, by how common it is in general text
/// (Zipf scale): full weight up to `SPECIFIC_ZIPF` ("refund" is 3.9, "password" 4.1), then
/// falling linearly to the floor at `COMMON_ZIPF` ("day" and "work" are 6.0).
fn specificity(term: &str) -> f64 {
    let z = commonness(term);
    if z <= SPECIFIC_ZIPF {
        1.0
    } else {
        (1.0 - (z - SPECIFIC_ZIPF) / (COMMON_ZIPF - SPECIFIC_ZIPF)).max(COMMON_FLOOR)
    }
}

/// Logistic weights of the relevance gate over [`GateFeatures`], then the bias; fitted by
/// bench/fit-gate.py (class-balanced, L2 0.01) on the tune half of the evaluation set, from
/// the best-ranked passage of each question (the one the gate decides on), leaving out
/// covered questions whose best passage is on the wrong page. 5-fold cross-validation
/// within the tune half chose these features over the others tried (matched-word count and
/// share, score margin over the next page, the top score's share, the best word's share,
/// unknown words' weight, the specific words' coverage, same language); the bias puts the
/// balanced point of that cross-validation at the default threshold, 0.55.
const GATE: [f64; 6] = [2.815, 1.912, 1.604, 1.121, -0.476, -4.106];

/// The probability that a passage answers the question, by the logistic gate.
fn gate(f: &GateFeatures) -> f64 {
    let z: f64 = GATE[5] + f.iter().zip(&GATE[..5]).map(|(x, w)| x * w).sum::<f64>();
    1.0 / (1.0 + (-z).exp())
}

/// A file's translation key and language: `guide.en.md` and `guide.zh.md` are the same page
/// in two languages, keyed `guide.*.md`.
fn translation_key(file: &str) -> Option<(String, Lang)> {
    let (dir, name) = file.rsplit_once('/').map_or(("", file), |(d, n)| (d, n));
    let parts: Vec<&str> = name.split('.').collect();
    // The language tag sits between the stem and the extension.
    let at = parts.len().checked_sub(2).filter(|&i| i >= 1)?;
    let lang = match parts[at] {
        "en" => Lang::En,
        "zh" => Lang::Zh,
        _ => return None,
    };
    let mut key = parts.clone();
    key[at] = "*";
    Some((format!("{dir}/{}", key.join(".")), lang))
}

/// Translation groups (see `KnowledgeBase::group_of`) and per-file page groups. Pages pair
/// when one English and one Chinese file share a translation key and the same number of
/// sections: a translation keeps the outline, so section k answers what section k answers.
/// A question then matches a section through the words of either language, and is answered
/// from the page in its own language.
fn twin_groups(outlines: &[(String, u32)], section_of: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
    let mut by_key: HashMap<String, [Option<u32>; 2]> = HashMap::new();
    for (doc, (file, _)) in outlines.iter().enumerate() {
        if let Some((key, lang)) = translation_key(file) {
            let slot = &mut by_key.entry(key).or_default()[usize::from(lang == Lang::Zh)];
            // A key names one file per language (the extension is part of it), so a slot is
            // claimed once.
            slot.get_or_insert(doc as u32);
        }
    }
    // Per document, the document it pairs with.
    let mut twin: Vec<Option<u32>> = vec![None; outlines.len()];
    for [en, zh] in by_key.into_values() {
        if let (Some(en), Some(zh)) = (en, zh) {
            if outlines[en as usize].1 == outlines[zh as usize].1 {
                twin[en as usize] = Some(zh);
                twin[zh as usize] = Some(en);
            }
        }
    }
    // A section's group is named by its first passage in the lower-numbered document of
    // the pair, so both sides find the same id.
    let mut first: HashMap<(u32, u32), u32> = HashMap::new();
    let mut group_of = Vec::with_capacity(section_of.len());
    let mut doc_file: Vec<Option<u32>> = vec![None; outlines.len()];
    let mut files = 0u32;
    for (p, &(doc, k)) in section_of.iter().enumerate() {
        if doc_file[doc as usize].is_none() {
            doc_file[doc as usize] = Some(files);
            files += 1;
        }
        let owner = twin[doc as usize].map_or(doc, |t| t.min(doc));
        let g = match twin[doc as usize] {
            Some(_) => *first.entry((owner, k)).or_insert(p as u32),
            None => p as u32,
        };
        group_of.push(g);
    }
    // Files are numbered by first passage, as in `build_file_index`.
    let file_group = (0..outlines.len())
        .filter_map(|doc| {
            let f = doc_file[doc]?;
            let partner = twin[doc].and_then(|t| doc_file[t as usize]);
            Some(partner.map_or(f, |t| t.min(f)))
        })
        .collect();
    (group_of, file_group)
}

fn whole_file(file: &str, reason: &str) -> IngestProblem {
    IngestProblem {
        file: file.into(),
        line: 0,
        reason: reason.into(),
    }
}

/// Tokenises every passage, on all cores for large knowledge bases (segmentation is most
/// of the indexing time).
fn analyse_all(passages: &[Passage]) -> Vec<FieldTokens> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads == 1 || passages.len() < 256 {
        return passages.iter().map(analyse).collect();
    }
    let chunk = passages.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = passages
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(analyse).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            // A panic in the segmenter is a bug; surface it where it happened.
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
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
        } else if ft.is_file() && Format::of(&name).is_some() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::with_synonyms(
            vec![
                (
                    "a.md".into(),
                    "# Hot reload\n\nRun with --watch to reload elements when files change.\n\nAlso asked: live edit"
                        .into(),
                ),
                (
                    "b.md".into(),
                    "# Install\n\nBuild the binary with cargo install.".into(),
                ),
                (
                    "c.zh.md".into(),
                    "# 热更新\n\n使用 --watch 启动后，保存文件即可重新加载元素。".into(),
                ),
            ],
            "# comment\nrobot, bot, 机器人\ninstall, set up, 安装\n",
        )
    }

    fn top(kb: &KnowledgeBase, q: &str) -> Option<String> {
        // Ranking only: relevance is calibrated for real knowledge bases, not three lines.
        kb.search(q, 3, 0.0)
            .first()
            .map(|h| kb.passage(h.passage).file.clone())
    }

    #[test]
    fn search_ranks_and_thresholds() {
        let kb = kb();
        assert_eq!(
            top(&kb, "how do I reload on file changes").as_deref(),
            Some("a.md")
        );
        assert!(kb.search("best pizza recipe in naples", 3, 0.3).is_empty());
    }

    #[test]
    fn a_camel_case_name_counts_as_one_known_word() {
        // "clientSecret" is indexed whole and as "client" + "secret"; with "pizza" and
        // "price" unknown, one of three words is known, not three of five.
        let kb = KnowledgeBase::from_documents(vec![(
            "d.md".to_string(),
            "# Robot\n\nPut the clientSecret in .env.".to_string(),
        )]);
        let (_, f) = kb
            .gate_features("clientSecret pizza price")
            .expect("matches d.md");
        assert!((f[2] - 1.0 / 3.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn aliases_typos_synonyms_and_language() {
        let kb = kb();
        assert_eq!(top(&kb, "live edit?").as_deref(), Some("a.md"));
        assert_eq!(top(&kb, "how to relaod").as_deref(), Some("a.md"));
        assert_eq!(top(&kb, "binray instalation").as_deref(), Some("b.md"));
        assert_eq!(top(&kb, "how do I set up it").as_deref(), Some("b.md"));
        assert_eq!(top(&kb, "--watch 是什么").as_deref(), Some("c.zh.md"));
        assert_eq!(top(&kb, "what does --watch do").as_deref(), Some("a.md"));
    }

    #[test]
    fn a_synonym_phrase_needs_all_its_words() {
        let kb = KnowledgeBase::with_synonyms(
            vec![
                (
                    "sandbox.md".into(),
                    "# The local sandbox\n\nTry the robot on your own machine.".into(),
                ),
                (
                    "model.md".into(),
                    "# Models\n\nAny local model server with an OpenAI API works.".into(),
                ),
            ],
            "ollama, local model\n",
        );
        assert_eq!(top(&kb, "ollama?").as_deref(), Some("model.md"));
        let hits = kb.search("ollama?", 3, 0.0);
        assert!(
            hits.iter()
                .all(|h| kb.passage(h.passage).file != "sandbox.md"),
            "{hits:?}"
        );
    }

    #[test]
    fn translated_pages_share_their_words_and_answer_in_the_question_language() {
        let kb = KnowledgeBase::from_documents([
            ("guide.en.md".to_string(), "# Guide\n## Webhook\nThe webhook retries thrice.\n## Cache\nThe cache lives in memory.\n".to_string()),
            ("guide.zh.md".to_string(), "# 指南\n## 回调\n回调失败会重试三次。\n## 缓存\n缓存保存在内存里。\n".to_string()),
        ]);
        // "webhook" appears only in the English page: the Chinese section answers.
        let hits = kb.search("webhook 会重试吗", 1, 0.0);
        let p = kb.passage(hits[0].passage);
        assert_eq!((p.file.as_str(), p.lang), ("guide.zh.md", Lang::Zh));
        assert!(p.heading.contains("回调"), "{}", p.heading);
        // An English question stays on the English page.
        let hits = kb.search("where does the cache live", 1, 0.0);
        assert_eq!(kb.passage(hits[0].passage).file, "guide.en.md");
    }

    #[test]
    fn relative_cut_keeps_only_close_hits() {
        let kb = kb();
        let all = kb.search_with(
            "reload watch install",
            SearchParams {
                top_k: 5,
                threshold: 0.0,
                relative: 0.0,
            },
        );
        let close = kb.search_with(
            "reload watch install",
            SearchParams {
                top_k: 5,
                threshold: 0.0,
                relative: 0.99,
            },
        );
        assert!(all.len() > close.len(), "{all:?} vs {close:?}");
        assert_eq!(close.len(), 1);
    }

    #[test]
    fn a_word_the_knowledge_only_uses_inside_one_compound_weighs_little_alone() {
        let kb = KnowledgeBase::from_documents(vec![
            (
                "pay.md".to_string(),
                "# Payment\n\nPay by Alipay, WeChat Pay or card. WeChat Pay refunds take a day."
                    .to_string(),
            ),
            (
                "lists.md".to_string(),
                "# Lists\n\nAlipay, WeChat Pay.\nAlipay, WeChat Pay.".to_string(),
            ),
        ]);
        // Terms are stems ("alipay" is "alipa").
        let term = |w: &str| kb.terms[&tokenize(w)[0]];
        assert_eq!(kb.bound_to(term("wechat")), Some("pay"));
        // A comma ends the clause: "Alipay, WeChat" twice does not make them neighbours.
        assert_eq!(kb.bound_to(term("alipay")), None);
        // "pay" is followed by different words, and ends a clause.
        assert_eq!(kb.bound_to(term("pay")), None);
        let matched = |q: &str| kb.gate_features(q).expect("a passage matches").1[0];
        assert!(matched("wechat pay") > 0.99, "{}", matched("wechat pay"));
        assert!(matched("wechat") < 0.5, "{}", matched("wechat"));
        // The same for a Chinese compound, by its word and by its bigram.
        let zh = KnowledgeBase::from_documents(vec![(
            "pay.zh.md".to_string(),
            "# 支付\n\n支持微信支付。退款原路退回微信支付。".to_string(),
        )]);
        assert_eq!(zh.bound_to(zh.terms["微信"]), Some("支付"));
        let matched = |q: &str| zh.gate_features(q).expect("a passage matches").1[0];
        assert!(matched("微信") < 0.5, "{}", matched("微信"));
        assert!(matched("微信支付") > 0.99, "{}", matched("微信支付"));
    }
}
