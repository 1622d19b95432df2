//! Text analysis for retrieval, the same on the index and the query side:
//! - normalisation: full-width forms to ASCII, lowercase, punctuation as separators;
//! - Chinese runs: jieba words (search mode, its dictionary plus `data/zh-new-words.txt`,
//!   today's app and shopping words it predates) plus character bigrams, so a mistyped
//!   character or a word jieba splits differently still shares most of its terms;
//! - other text: words split at camelCase and `_`, stopwords dropped, a light stemmer.
//!
//! The stopword lists are generic function words and politeness fillers of each language,
//! not words picked from any question set.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use jieba_rs::Jieba;

/// Language of a question or passage, used for the wording of fixed answers and to prefer
/// passages written in the question's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// Marks a Chinese character-bigram term, so it never collides with a jieba word.
pub(crate) const BIGRAM_MARK: char = '\u{2}';

fn jieba() -> &'static Jieba {
    // Loading the embedded dictionary takes a while; share one instance per process.
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(|| {
        let mut jieba = Jieba::new();
        for line in include_str!("../data/zh-new-words.txt").lines() {
            let word = line.trim();
            if !word.is_empty() && !word.starts_with('#') {
                jieba.add_word(word, None, None);
            }
        }
        jieba
    })
}

/// Warms the segmenter so the first question does not pay for loading the dictionary.
pub fn warm_up() {
    let _ = jieba();
    let _ = common_words();
    let _ = han_chars();
}

/// Per character of the main CJK block (U+4E00..U+9FFF), its simplified form and its
/// toneless reading, from `data/han-chars.tsv`: an array, since indexing folds every Han
/// character of the knowledge through it.
struct HanChars {
    simplified: Vec<char>,
    reading: Vec<u16>,
    readings: Vec<&'static str>,
}

const HAN_BASE: u32 = 0x4E00;
const HAN_END: u32 = 0xA000;
const NO_READING: u16 = u16::MAX;

fn han_chars() -> &'static HanChars {
    static HAN: OnceLock<HanChars> = OnceLock::new();
    HAN.get_or_init(|| {
        let n = (HAN_END - HAN_BASE) as usize;
        let mut t = HanChars {
            simplified: (HAN_BASE..HAN_END).filter_map(char::from_u32).collect(),
            reading: vec![NO_READING; n],
            readings: Vec::new(),
        };
        let mut ids: HashMap<&'static str, u16> = HashMap::new();
        for line in include_str!("../data/han-chars.tsv").lines() {
            let mut cols = line.split('\t');
            let (Some(c), Some(simple), Some(reading)) = (cols.next(), cols.next(), cols.next())
            else {
                continue; // the header comment
            };
            let Some(c) = c
                .chars()
                .next()
                .filter(|c| (HAN_BASE..HAN_END).contains(&(*c as u32)))
            else {
                continue;
            };
            let i = (c as u32 - HAN_BASE) as usize;
            if let Some(s) = simple.chars().next().filter(|_| simple != "-") {
                t.simplified[i] = s;
            }
            let next = ids.len() as u16;
            let id = *ids.entry(reading).or_insert_with(|| {
                t.readings.push(reading);
                next
            });
            t.reading[i] = id;
        }
        t
    })
}

fn han_index(c: char) -> Option<usize> {
    let cp = c as u32;
    (HAN_BASE..HAN_END)
        .contains(&cp)
        .then(|| (cp - HAN_BASE) as usize)
}

/// A question or passage with full-width ASCII folded to ASCII and traditional characters
/// to simplified ones (裝 to 装): the pages and the segmenter's dictionary are simplified,
/// users in Taiwan and Hong Kong type traditional. Case is kept (camelCase splitting
/// needs it). One pass, since this runs on every passage indexed.
pub(crate) fn normalize(text: &str) -> String {
    let han = han_chars();
    text.chars()
        .map(|c| simplified(han, half_width(c)))
        .collect()
}

fn simplified(t: &HanChars, c: char) -> char {
    han_index(c).map_or(c, |i| t.simplified[i])
}

/// The toneless readings of a Chinese word of two to four characters, joined ("bian yi"
/// for both 编译 and the input-method slip 编绎); `None` for anything else.
pub(crate) fn reading_key(term: &str) -> Option<String> {
    let word = term.strip_prefix(BIGRAM_MARK).unwrap_or(term);
    if !(2..=4).contains(&word.chars().count()) {
        return None;
    }
    let t = han_chars();
    let mut key = String::with_capacity(word.len() * 2);
    for c in word.chars() {
        let r = t.reading[han_index(c)?];
        if r == NO_READING {
            return None;
        }
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(t.readings[r as usize]);
    }
    Some(key)
}

/// How common words are in general text (Zipf scale x 10), from `data/common-words.tsv`,
/// keyed by term as [`tokenize`] makes it (English words stemmed; a stem takes its most
/// common word's figure).
fn common_words() -> &'static HashMap<String, u8> {
    static COMMON: OnceLock<HashMap<String, u8>> = OnceLock::new();
    COMMON.get_or_init(|| {
        let mut map: HashMap<String, u8> = HashMap::new();
        for line in include_str!("../data/common-words.tsv").lines() {
            let Some((word, zipf)) = line.split_once('\t') else {
                continue; // the header comment
            };
            let Ok(zipf) = zipf.parse::<u8>() else {
                continue;
            };
            let key = if word.is_ascii() {
                stem(word)
            } else {
                word.to_string()
            };
            let e = map.entry(key).or_insert(0);
            *e = (*e).max(zipf);
        }
        map
    })
}

/// How common a term is in general text, on the Zipf scale (log10 of occurrences per
/// billion words; "the" is about 7.7, "refund" 3.9); 0 for a term the table does not hold,
/// which is rarer than 3.5 or names something no general text uses ("dingtalk").
pub(crate) fn commonness(term: &str) -> f64 {
    let key = term.strip_prefix(BIGRAM_MARK).unwrap_or(term);
    common_words()
        .get(key)
        .map_or(0.0, |&z| f64::from(z) / 10.0)
}

pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF)
}

/// Chinese when the text contains any Han character, else English.
pub fn detect_lang(text: &str) -> Lang {
    if text.chars().any(is_han) {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// Cuts `text` after each character for which `cut(c, n)` holds, `n` counting the
/// characters of the current piece (`c` included); returns the pieces and the uncut rest,
/// which together concatenate to `text`.
pub(crate) fn cut_after(
    text: &str,
    mut cut: impl FnMut(char, usize) -> bool,
) -> (Vec<String>, String) {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for c in text.chars() {
        cur.push(c);
        n += 1;
        if cut(c, n) {
            pieces.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    (pieces, cur)
}

/// Full-width ASCII forms (Ａ, ｅ, ０, ＃ …) and the ideographic space to their ASCII
/// equivalents.
fn half_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

const EN_STOP: &[&str] = &[
    // articles, pronouns, determiners
    "a",
    "an",
    "the",
    "i",
    "me",
    "my",
    "mine",
    "myself",
    "we",
    "us",
    "our",
    "ours",
    "you",
    "your",
    "yours",
    "he",
    "him",
    "his",
    "she",
    "her",
    "hers",
    "it",
    "its",
    "they",
    "them",
    "their",
    "theirs",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "some",
    "any",
    "each",
    "every",
    "all",
    "both",
    "either",
    "neither",
    "such",
    "own",
    "same",
    "other",
    "another",
    "something",
    "anything",
    "everything",
    "nothing",
    "someone",
    "anyone",
    "somebody",
    "anybody",
    "one",
    "ones",
    "thing",
    "things",
    "stuff",
    // auxiliaries and modals
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "do",
    "does",
    "did",
    "doing",
    "done",
    "have",
    "has",
    "had",
    "having",
    "can",
    "could",
    "may",
    "might",
    "must",
    "shall",
    "should",
    "will",
    "would",
    "ought",
    "cannot",
    "can't",
    "don't",
    "doesn't",
    "didn't",
    "isn't",
    "aren't",
    "wasn't",
    "won't",
    "wouldn't",
    "shouldn't",
    "couldn't",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "it's",
    "that's",
    "what's",
    "there's",
    "let's",
    "let",
    "get",
    "gets",
    "got",
    "getting",
    // prepositions and conjunctions
    "of",
    "in",
    "on",
    "at",
    "by",
    "for",
    "with",
    "without",
    "about",
    "to",
    "from",
    "into",
    "onto",
    "over",
    "under",
    "up",
    "down",
    "out",
    "off",
    "through",
    "via",
    "per",
    "as",
    "than",
    "then",
    "and",
    "or",
    "but",
    "nor",
    "so",
    "if",
    "because",
    "while",
    "until",
    "also",
    "too",
    "very",
    "just",
    "only",
    "even",
    "still",
    "yet",
    "again",
    "already",
    "really",
    "actually",
    "basically",
    "maybe",
    "perhaps",
    "quite",
    "rather",
    "much",
    "many",
    "more",
    "most",
    "less",
    "few",
    "lot",
    "lots",
    "bit",
    // question words
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "whether",
    // politeness and chat fillers
    "please",
    "pls",
    "plz",
    "thanks",
    "thank",
    "thx",
    "hi",
    "hello",
    "hey",
    "ok",
    "okay",
    "yes",
    "no",
    "not",
    "guys",
    "anyone",
    "know",
    "wondering",
    "wonder",
    "tell",
    "like",
    "want",
    "wanna",
    "need",
    "able",
    "way",
    "kind",
    "sort",
    "possible",
    "help",
    "question",
    "now",
    "ever",
    "never",
    "always",
    "sometimes",
    "etc",
    "eg",
    "ie",
    // contractions as people type them in chat, without the apostrophe
    "whats",
    "hows",
    "wheres",
    "whos",
    "whys",
    "dont",
    "doesnt",
    "didnt",
    "cant",
    "wont",
    "isnt",
    "arent",
    "wasnt",
    "werent",
    "im",
    "ive",
    "youre",
    "theyre",
    "theres",
    "thats",
    "u",
    "ur",
    // chat fillers
    "yeah",
    "yep",
    "lol",
    "btw",
    "gonna",
    "gotta",
    "kinda",
    "sorta",
    "hmm",
    "um",
    "uh",
    "anyway",
    // days said in passing ("I set it up yesterday"), not what the question is about
    "today",
    "yesterday",
    "tomorrow",
];

const ZH_STOP: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "嘛",
    "么",
    "哦",
    "噢",
    "哈",
    "嗯",
    "是",
    "在",
    "我",
    "你",
    "您",
    "他",
    "她",
    "它",
    "我们",
    "你们",
    "他们",
    "咱们",
    "自己",
    "怎么",
    "怎样",
    "怎么样",
    "如何",
    "什么",
    "为什么",
    "为啥",
    "啥",
    "咋",
    "哪些",
    "哪个",
    "哪里",
    "哪儿",
    "多少",
    "几",
    "请问",
    "请",
    "一下",
    "下",
    "要",
    "可以",
    "可",
    "能",
    "能够",
    "会",
    "有",
    "没",
    "没有",
    "不",
    "和",
    "与",
    "及",
    "跟",
    "或",
    "或者",
    "还是",
    "把",
    "被",
    "这个",
    "那个",
    "这",
    "那",
    "这样",
    "那样",
    "这些",
    "那些",
    "就",
    "都",
    "也",
    "还",
    "又",
    "再",
    "让",
    "给",
    "对",
    "从",
    "到",
    "向",
    "时",
    "时候",
    "的话",
    "中",
    "里",
    "上",
    "个",
    "一个",
    "该",
    "应该",
    "需要",
    "想",
    "想要",
    "如果",
    "然后",
    "并",
    "并且",
    "而且",
    "但是",
    "但",
    "因为",
    "所以",
    "进行",
    "谢谢",
    "麻烦",
    "你好",
    "您好",
    "大家",
    "知道",
    "问",
    "一般",
    "其实",
    "真的",
    "一直",
    "到底",
    "现在",
    "已经",
    "还有",
    "得",
    "地",
    "着",
    "过",
    "呗",
    // days said in passing ("I set it up yesterday"), not what the question is about
    "今天",
    "昨天",
    "明天",
];

/// A stopword list as a set: it is consulted for every word and character indexed.
fn stop_set(words: &'static [&'static str]) -> HashSet<&'static str> {
    words.iter().copied().collect()
}

fn is_stop_en(w: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| stop_set(EN_STOP)).contains(w)
}

fn is_stop_zh(w: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| stop_set(ZH_STOP)).contains(w)
}

/// A small suffix stemmer: consistent on both sides is all retrieval needs, and it maps the
/// common inflections and derivations of one word (install, installs, installed,
/// installing, installation) onto one term.
pub fn stem(word: &str) -> String {
    let mut w = word.to_string();
    if w.len() <= 3 || !w.is_ascii() {
        return w;
    }
    if let Some(s) = w.strip_suffix("ies") {
        w = format!("{s}y");
    } else if w.ends_with("sses") {
        w.truncate(w.len() - 2);
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.truncate(w.len() - 1);
    }
    let mut stripped = false;
    for suf in [
        "ational", "ization", "isation", "ation", "ition", "ement", "ment", "ness", "able", "ible",
        "ing", "ed", "ly", "er",
    ] {
        if w.len() >= suf.len() + 4 && w.ends_with(suf) {
            w.truncate(w.len() - suf.len());
            stripped = true;
            break;
        }
    }
    if stripped {
        // running -> runn -> run; but keep install, pass, buzz.
        let b = w.as_bytes();
        let n = b.len();
        if n >= 2
            && b[n - 1] == b[n - 2]
            && !b"lsz".contains(&b[n - 1])
            && !b"aeiou".contains(&b[n - 1])
        {
            w.truncate(n - 1);
        }
    }
    if w.len() > 4 && w.ends_with('e') {
        w.truncate(w.len() - 1);
    }
    if w.len() > 4 && w.ends_with('y') {
        // deploy/deployment stay apart from nothing; retry/retries meet at "retr".
        w.truncate(w.len() - 1);
    }
    w
}

fn push_ascii_word(word: &str, out: &mut Vec<String>) {
    // Split camelCase (clientSecret -> client, secret) but keep the whole word too, so an
    // exact identifier match counts more.
    let lower = word.to_ascii_lowercase();
    if lower.is_empty() || is_stop_en(&lower) {
        return;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in word.chars() {
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    out.push(stem(&lower));
    if parts.len() > 1 {
        for p in parts {
            if !is_stop_en(&p) && p.len() > 1 {
                out.push(stem(&p));
            }
        }
    }
}

/// File names (`e.json`, `config.json`, `faq.csv`) as whole terms besides their parts:
/// people ask about them by name.
fn push_file_names(text: &str, out: &mut Vec<String>) {
    for chunk in text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        let name = chunk.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if let Some((stem, ext)) = name.rsplit_once('.') {
            let ext_ok =
                (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
            if !stem.is_empty() && ext_ok && ext.bytes().any(|b| b.is_ascii_alphabetic()) {
                out.push(name.to_ascii_lowercase());
            }
        }
    }
}

/// Template syntax people ask about by its symbols (`{{`, `<<`, `:-`): each digraph is a
/// term of its own, where other punctuation only separates words.
const SYNTAX: &[&str] = &["{{", "}}", "<<", ">>", ":-"];

fn push_syntax(text: &str, out: &mut Vec<String>) {
    for s in SYNTAX {
        if text.contains(s) {
            out.push((*s).to_string());
        }
    }
}

/// Marks the end of a clause in [`tokenize_clauses`]: no term, only a boundary.
pub(crate) const CLAUSE_BREAK: &str = "\u{3}";

/// Punctuation that ends a clause, so the words either side of it are not neighbours.
fn ends_clause(c: char) -> bool {
    matches!(
        c,
        '\n' | ','
            | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '('
            | ')'
            | '['
            | ']'
            | '|'
            | '、'
            | '，'
            | '。'
            | '；'
            | '：'
            | '！'
            | '？'
            | '（'
            | '）'
            | '「'
            | '」'
            | '《'
            | '》'
            | '…'
    )
}

fn push_break(out: &mut Vec<String>) {
    if out.last().is_some_and(|t| t != CLAUSE_BREAK) {
        out.push(CLAUSE_BREAK.to_string());
    }
}

fn tokenize_other(text: &str, out: &mut Vec<String>, breaks: bool) {
    push_file_names(text, out);
    push_syntax(text, out);
    let mut gap_start = 0;
    // An apostrophe inside a word keeps "don't" whole for the stopword list.
    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\'')) {
        if breaks {
            // `split` yields subslices of `text`, so the offset is within it.
            let start = word.as_ptr() as usize - text.as_ptr() as usize;
            if text[gap_start..start].chars().any(ends_clause) {
                push_break(out);
            }
            gap_start = start + word.len();
        }
        let word = word.trim_matches('\'');
        if word.is_empty() {
            continue;
        }
        if word.is_ascii() {
            if is_stop_en(&word.to_ascii_lowercase()) {
                continue;
            }
            if word.contains('_') && word.split('_').filter(|p| !p.is_empty()).count() > 1 {
                // An identifier such as RUST_LOG counts whole as well as by its parts.
                out.push(word.to_ascii_lowercase());
            }
            for piece in word
                .split(['_', '\''])
                .filter(|p| !p.is_empty() && (p.len() > 1 || p.bytes().all(|b| b.is_ascii_digit())))
            {
                push_ascii_word(piece, out);
            }
        } else {
            let lower = word.to_lowercase();
            if !is_stop_en(&lower) {
                out.push(lower);
            }
        }
    }
}

fn tokenize_han(run: &str, out: &mut Vec<String>) {
    // Dictionary words only (no HMM guesses at unknown words): a guess glues a colloquial
    // pair into a word no passage has, while the bigrams already cover unknown words.
    for tok in jieba().cut_for_search(run, false) {
        let w = tok.word.trim();
        if w.is_empty() || !w.chars().any(is_han) || is_stop_zh(w) {
            continue;
        }
        out.push(w.to_string());
    }
    // Bigrams within the stretches between single-character stopwords (的, 了, 吗 …), so a
    // stopword neither glues its neighbours together nor forms a bigram itself.
    let mut stretch: Vec<char> = Vec::new();
    let mut b = [0u8; 4];
    for c in run.chars().chain(std::iter::once('的')) {
        if !is_stop_zh(c.encode_utf8(&mut b)) {
            stretch.push(c);
            continue;
        }
        for pair in stretch.windows(2) {
            let word: String = pair.iter().collect();
            if !is_stop_zh(&word) {
                let mut t = String::with_capacity(7);
                t.push(BIGRAM_MARK);
                t.push_str(&word);
                out.push(t);
            }
        }
        stretch.clear();
    }
}

/// Terms of `text` for indexing and querying (the same function on both sides).
pub fn tokenize(text: &str) -> Vec<String> {
    tokenize_with(text, false)
}

/// [`tokenize`], with a [`CLAUSE_BREAK`] where punctuation ends a clause (for indexing,
/// which learns which words stand next to each other).
pub(crate) fn tokenize_clauses(text: &str) -> Vec<String> {
    tokenize_with(text, true)
}

fn tokenize_with(text: &str, breaks: bool) -> Vec<String> {
    let text = normalize(text);
    let mut out = Vec::new();
    let mut start = 0;
    let mut han: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let h = is_han(c);
        match han {
            Some(prev) if prev != h => {
                flush(&text[start..i], prev, &mut out, breaks);
                start = i;
            }
            _ => {}
        }
        han = Some(h);
    }
    if let Some(h) = han {
        flush(&text[start..], h, &mut out, breaks);
    }
    out
}

fn flush(run: &str, han: bool, out: &mut Vec<String>, breaks: bool) {
    if han {
        tokenize_han(run, out);
    } else {
        tokenize_other(run, out, breaks);
    }
}

/// True for a Chinese character-bigram term.
pub(crate) fn is_bigram(term: &str) -> bool {
    term.starts_with(BIGRAM_MARK)
}

/// Optimal-string-alignment distance (edits: insert, delete, substitute, swap two
/// neighbours), giving up early once it exceeds `max`.
pub(crate) fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let (n, m) = (a.len(), b.len());
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[m]).filter(|&d| d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_folds_and_homophones_share_a_reading() {
        assert_eq!(normalize("怎麼安裝 ｊｉｔｎｏｄｅ"), "怎么安装 jitnode");
        assert_eq!(tokenize("怎麼安裝"), tokenize("怎么安装"));
        assert_eq!(reading_key("编译"), reading_key("编绎"));
        assert_eq!(reading_key("编译").as_deref(), Some("bian yi"));
        assert_ne!(reading_key("编译"), reading_key("部署"));
        assert_eq!(
            reading_key(&format!("{BIGRAM_MARK}编译")),
            reading_key("编译")
        );
        assert_eq!(
            reading_key("编"),
            None,
            "one character is too little to match by sound"
        );
        assert_eq!(reading_key("dist"), None);
    }

    #[test]
    fn commonness_tells_everyday_words_from_topic_words() {
        // Stemmed keys: "meaning" and "days" find their stems' figures.
        assert!(commonness(&stem("days")) >= 5.5, "day is an everyday word");
        assert!(commonness("怎么") >= 5.5);
        assert!(commonness("refund") < 4.5 && commonness("refund") > 3.5);
        assert_eq!(commonness("dingtalk"), 0.0, "no general text names it");
        assert_eq!(commonness("钉钉"), 0.0);
        // A bigram term is looked up by its two characters.
        let bigram = format!("{BIGRAM_MARK}今天");
        assert_eq!(commonness(&bigram), commonness("今天"));
    }

    #[test]
    fn stems_are_consistent() {
        assert_eq!(stem("installing"), stem("install"));
        assert_eq!(stem("installed"), stem("installs"));
        assert_eq!(stem("installation"), stem("install"));
        assert_eq!(stem("configuration"), stem("configure"));
        assert_eq!(stem("variables"), stem("variable"));
        assert_eq!(stem("running"), stem("run"));
        assert_eq!(stem("reloading"), "reload");
        assert_eq!(stem("retries"), stem("retry"));
    }

    #[test]
    fn chinese_is_segmented_into_words_and_bigrams() {
        let t = tokenize("如何配置钉钉机器人的环境变量");
        assert!(t.contains(&"配置".to_string()), "{t:?}");
        assert!(
            t.contains(&"环境变量".to_string()) || t.contains(&"环境".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"机器人".to_string()), "{t:?}");
        assert!(!t.contains(&"的".to_string()));
        // No bigram spans the dropped 的, and stopword pairs are no bigrams.
        assert!(!t.contains(&format!("{BIGRAM_MARK}人环")), "{t:?}");
        assert!(t.contains(&format!("{BIGRAM_MARK}器人")), "{t:?}");
        assert!(!tokenize("怎样").iter().any(|t| is_bigram(t)));
        // A wrong character still leaves most bigrams in common.
        let typo = tokenize("环竟变量");
        assert!(typo.contains(&format!("{BIGRAM_MARK}变量")), "{typo:?}");
    }

    #[test]
    fn mixed_text_width_and_identifiers() {
        let t = tokenize("设置clientSecret和 --watch 选项");
        assert!(t.contains(&"clientsecret".to_string()), "{t:?}");
        assert!(t.contains(&"secret".to_string()), "{t:?}");
        assert!(t.contains(&"watch".to_string()), "{t:?}");
        assert_eq!(tokenize("ＷＡＴＣＨ"), tokenize("watch"));
        let t = tokenize("edit e.json, then set RUST_LOG (v1.2 is fine).");
        assert!(t.contains(&"e.json".to_string()), "{t:?}");
        assert!(t.contains(&"json".to_string()), "{t:?}");
        assert!(t.contains(&"rust_log".to_string()), "{t:?}");
        assert!(!t.iter().any(|w| w == "v1.2"), "{t:?}");
        let t = tokenize("占位符里的 :- 是什么意思, and {{X}} vs <<X>>?");
        for s in [":-", "{{", "}}", "<<", ">>"] {
            assert!(t.contains(&s.to_string()), "{s} in {t:?}");
        }
        assert!(tokenize("don't you know what's this").is_empty());
        assert_eq!(detect_lang("How do I run it?"), Lang::En);
        assert_eq!(detect_lang("怎么运行 jitnode?"), Lang::Zh);
    }

    #[test]
    fn chat_contractions_without_apostrophes_are_stopwords() {
        // "whats" must not stem to a content word "what" that matches any page.
        let t = tokenize("hey whats up, dont know why the bot isnt replying");
        assert_eq!(t, vec!["bot".to_string(), stem("replying")]);
        // A day said in passing is not the topic.
        let t = tokenize("昨天 today 天气");
        assert!(t.iter().all(|w| w.contains("天气")), "{t:?}");
    }

    #[test]
    fn words_newer_than_the_segmenters_dictionary_stay_whole() {
        for (text, word) in [
            ("微信支付", "微信"),
            ("钉钉群里", "钉钉"),
            ("飞书机器人", "飞书"),
        ] {
            assert!(
                tokenize(text).iter().any(|t| t == word),
                "{text}: {:?}",
                tokenize(text)
            );
        }
    }

    #[test]
    fn clause_breaks_mark_punctuation_but_not_spaces() {
        let t = tokenize_clauses("Alipay, WeChat Pay\n支付宝、微信");
        let breaks: Vec<usize> = (0..t.len()).filter(|&i| t[i] == CLAUSE_BREAK).collect();
        assert_eq!(breaks.len(), 3, "{t:?}");
        assert_eq!(t[..breaks[0]], tokenize("Alipay"), "{t:?}");
        assert!(!tokenize("Alipay, WeChat").contains(&CLAUSE_BREAK.to_string()));
    }

    #[test]
    fn edit_distance_bounds() {
        assert_eq!(edit_distance("reload", "relaod", 1), Some(1));
        assert_eq!(edit_distance("sandbox", "sanbox", 1), Some(1));
        assert_eq!(edit_distance("install", "instal", 2), Some(1));
        assert_eq!(edit_distance("config", "dingtalk", 2), None);
        assert_eq!(edit_distance("abc", "abc", 0), Some(0));
    }
}
