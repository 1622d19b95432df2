//! Knowledge ingestion and search. The first byte picks the file's extension (md, txt, csv,
//! json, jsonl, html); the rest is its text. Then the end of the text is the query: hits
//! are bounded, ordered and calibrated, and point at real passages.
#![no_main]

use jitnode_agent::{KnowledgeBase, SearchParams};
use libfuzzer_sys::fuzz_target;

const EXTENSIONS: [&str; 6] = ["md", "txt", "csv", "json", "jsonl", "html"];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let ext = EXTENSIONS[usize::from(*first) % EXTENSIONS.len()];
    let text = String::from_utf8_lossy(rest).into_owned();
    let kb = KnowledgeBase::from_documents([(format!("fuzz.{ext}"), text.clone())]);
    for p in kb.problems() {
        let _ = p.to_string();
    }
    let query: String = {
        let chars: Vec<char> = text.chars().collect();
        chars[chars.len().saturating_sub(24)..].iter().collect()
    };
    let top_k = 5;
    let hits = kb.search_with(
        &query,
        SearchParams {
            top_k,
            threshold: 0.0,
            relative: 0.0,
        },
    );
    assert!(hits.len() <= top_k);
    for pair in hits.windows(2) {
        assert!(pair[0].score >= pair[1].score, "hits ordered by score");
    }
    for h in &hits {
        assert!(h.passage < kb.passages().len());
        assert!(h.score.is_finite(), "score {}", h.score);
        assert!(
            (0.0..=1.0).contains(&h.relevance),
            "relevance {}",
            h.relevance
        );
        let _ = kb.passage(h.passage);
    }
    let _ = kb.gate_features(&query);
});
