//! Scores a question set file (the shape of tests/eval/*.json) against the demo agent and
//! prints each miss with the top hits (a tuning aid; never point it at the held-out half).
use jitnode_agent::Agent;
fn main() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../elements/aiagents/customerService");
    let text = std::fs::read_to_string(dir.join("config.json")).expect("demo config");
    let mut config: serde_json::Value =
        serde_json::from_str(&text.replace("{{LLM_BASE_URL:-}}", "")).expect("config is JSON");
    if let Some(t) = std::env::var("EVAL_THRESHOLD")
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
    {
        config["retrieval"]["threshold"] = serde_json::json!(t);
    }
    let agent = Agent::load(&dir, &config).expect("loads");
    let path = std::env::args().nth(1).expect("usage: eval SET.json");
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("set readable"))
            .expect("set is JSON");
    let top = |q: &str| {
        let mut probe = Agent::load(
            &dir,
            &serde_json::json!({"retrieval": {"threshold": 0.0, "topK": 3}}),
        )
        .expect("loads");
        let _ = &mut probe;
        probe
            .retrieve(q)
            .iter()
            .map(|h| {
                let p = probe.knowledge().passage(h.passage);
                format!(
                    "{:.2}/{:.2} {} / {}",
                    h.score, h.relevance, p.file, p.heading
                )
            })
            .collect::<Vec<_>>()
    };
    if std::env::var_os("EVAL_FEATURES").is_some() {
        // label (1 = covered and the top file is right, 2 = covered, wrong file, 0 = off-topic)
        let kb = agent.knowledge();
        for q in set["covered"].as_array().expect("covered") {
            let (text, want) = (
                q["q"].as_str().expect("q"),
                q["file"].as_str().expect("file"),
            );
            let right = probe_top_file(&dir, text).as_deref() == Some(want);
            if let Some(f) = kb.gate_features(text) {
                println!(
                    "F {} {}",
                    if right { 1 } else { 2 },
                    f.iter()
                        .map(|x| format!("{x:.4}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        for q in set["off_topic"].as_array().expect("off_topic") {
            if let Some(f) = kb.gate_features(q.as_str().expect("str")) {
                println!(
                    "F 0 {}",
                    f.iter()
                        .map(|x| format!("{x:.4}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        return;
    }
    let (mut n, mut ok) = (0, 0);
    for q in set["covered"].as_array().expect("covered") {
        let (text, want) = (
            q["q"].as_str().expect("q"),
            q["file"].as_str().expect("file"),
        );
        n += 1;
        let hits = agent.retrieve(text);
        let got = hits
            .first()
            .map(|h| agent.knowledge().passage(h.passage).file.clone());
        if got.as_deref() == Some(want) {
            ok += 1;
        } else {
            println!("MISS {text:?} want {want} got {got:?}");
            for t in top(text) {
                println!("    {t}");
            }
        }
    }
    let off = set["off_topic"].as_array().expect("off_topic");
    let mut refused = 0;
    for q in off {
        let q = q.as_str().expect("off-topic is a string");
        let hits = agent.retrieve(q);
        if hits.is_empty() {
            refused += 1;
        } else {
            let p = agent.knowledge().passage(hits[0].passage);
            println!(
                "ANSWERED {q:?}: {:.2}/{:.2} {} / {}",
                hits[0].score, hits[0].relevance, p.file, p.heading
            );
        }
    }
    println!(
        "top1={:.3} refused={:.3}",
        ok as f64 / n as f64,
        refused as f64 / off.len() as f64
    );
}

fn probe_top_file(dir: &std::path::Path, q: &str) -> Option<String> {
    let probe = Agent::load(
        dir,
        &serde_json::json!({"retrieval": {"threshold": 0.0, "topK": 1}}),
    )
    .expect("loads");
    let h = probe.retrieve(q);
    h.first()
        .map(|h| probe.knowledge().passage(h.passage).file.clone())
}
