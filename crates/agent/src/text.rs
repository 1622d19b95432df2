//! Tokenising for retrieval: Chinese runs are segmented with jieba (search mode), other text
//! is split into lowercase words with stopwords removed and a light suffix stemmer applied.

use std::sync::OnceLock;

use jieba_rs::Jieba;

/// Language of a question, used for the wording of fixed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

fn jieba() -> &'static Jieba {
    // Loading the embedded dictionary takes a while; share one instance per process.
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Warms the segmenter so the first question does not pay for loading the dictionary.
pub fn warm_up() {
    let _ = jieba();
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

const EN_STOP: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for",
    "from", "get", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or",
    "should", "so", "that", "the", "then", "there", "this", "to", "was", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your", "we", "our", "use", "using",
    "used", "need", "want", "make", "way", "it's", "i'm", "any", "some", "there", "these", "those",
    "than", "but", "not", "no", "yes", "also", "one", "have", "has", "had", "tell", "please",
    "happen", "happens", "after", "before", "right", "now",
];

const ZH_STOP: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "么",
    "是",
    "在",
    "我",
    "你",
    "他",
    "它",
    "我们",
    "你们",
    "怎么",
    "怎样",
    "怎么样",
    "如何",
    "什么",
    "为什么",
    "哪些",
    "哪个",
    "哪里",
    "请问",
    "一下",
    "要",
    "可以",
    "能",
    "能够",
    "会",
    "有",
    "和",
    "与",
    "及",
    "或",
    "把",
    "被",
    "这个",
    "那个",
    "这",
    "那",
    "就",
    "都",
    "也",
    "还",
    "又",
    "让",
    "给",
    "用",
    "对",
    "从",
    "到",
    "时",
    "时候",
    "后",
    "之后",
    "以后",
    "中",
    "里",
    "上",
    "下",
    "个",
    "一个",
    "该",
    "应该",
    "需要",
    "想",
    "如果",
    "然后",
    "并",
    "或者",
    "使用",
    "进行",
    "吗？",
    "多少",
];

fn is_stop_en(w: &str) -> bool {
    EN_STOP.contains(&w)
}

fn is_stop_zh(w: &str) -> bool {
    ZH_STOP.contains(&w)
}

/// A deliberately small suffix stemmer: consistent on both sides is all retrieval needs.
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
    for suf in ["ational", "ation", "ition", "ment", "ing", "ed", "ly", "er"] {
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

fn tokenize_other(text: &str, out: &mut Vec<String>) {
    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if word.is_empty() {
            continue;
        }
        if word.is_ascii() {
            for piece in word.split('_').filter(|p| !p.is_empty()) {
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
    for tok in jieba().cut_for_search(run, true) {
        let w = tok.word.trim();
        if w.is_empty() || !w.chars().any(is_han) || is_stop_zh(w) {
            continue;
        }
        out.push(w.to_string());
    }
}

/// Tokens of `text` for indexing and querying (the same function on both sides).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut han: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let h = is_han(c);
        match han {
            Some(prev) if prev != h => {
                flush(&text[start..i], prev, &mut out);
                start = i;
            }
            _ => {}
        }
        han = Some(h);
    }
    if let Some(h) = han {
        flush(&text[start..], h, &mut out);
    }
    out
}

fn flush(run: &str, han: bool, out: &mut Vec<String>) {
    if han {
        tokenize_han(run, out);
    } else {
        tokenize_other(run, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_consistent() {
        assert_eq!(stem("installing"), stem("install"));
        assert_eq!(stem("installed"), stem("installs"));
        assert_eq!(stem("configuration"), stem("configure"));
        assert_eq!(stem("variables"), stem("variable"));
        assert_eq!(stem("running"), stem("run"));
        assert_eq!(stem("reloading"), "reload");
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let t = tokenize("如何配置钉钉机器人的环境变量");
        assert!(t.contains(&"配置".to_string()), "{t:?}");
        assert!(
            t.contains(&"环境变量".to_string()) || t.contains(&"环境".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"机器人".to_string()), "{t:?}");
        assert!(!t.contains(&"的".to_string()));
    }

    #[test]
    fn mixed_text_and_identifiers() {
        let t = tokenize("设置clientSecret和 --watch 选项");
        assert!(t.contains(&"clientsecret".to_string()), "{t:?}");
        assert!(t.contains(&"secret".to_string()), "{t:?}");
        assert!(t.contains(&"watch".to_string()), "{t:?}");
        assert_eq!(detect_lang("How do I run it?"), Lang::En);
        assert_eq!(detect_lang("怎么运行 jitnode?"), Lang::Zh);
    }
}
