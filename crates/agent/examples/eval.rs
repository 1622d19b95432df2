//! Scores a question set file (the shape of tests/eval/*.json) against the demo agent and
//! prints each miss with its top three passages below the threshold too (a tuning aid;
//! never point it at the held-out half). `EVAL_THRESHOLD` overrides the demo's threshold.
//! `EVAL_FEATURES=FILE` also writes the relevance gate's features of each question's
//! best-ranked passage, for bench/fit-gate.py: a line per question, its label first
//! (1: covered and that passage is on the right page, 2: covered but it is not, 0: off-topic).
use jitnode_agent::{Agent, Hit};
use serde_json::{json, Value};

fn main() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../elements/aiagents/customerService");
    let text = std::fs::read_to_string(dir.join("config.json")).expect("demo config");
    let mut config: Value =
        serde_json::from_str(&text.replace("{{LLM_BASE_URL:-}}", "")).expect("config is JSON");
    if let Some(t) = std::env::var("EVAL_THRESHOLD")
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
    {
        config["retrieval"]["threshold"] = json!(t);
    }
    let agent = Agent::load(&dir, &config).expect("loads");
    // The same knowledge with no threshold: what a miss would have ranked.
    let probe =
        Agent::load(&dir, &json!({"retrieval": {"threshold": 0.0, "topK": 3}})).expect("loads");
    let path = std::env::args().nth(1).expect("usage: eval SET.json");
    let set: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("set readable"))
        .expect("set is JSON");
    let describe = |a: &Agent, h: &Hit| {
        let p = a.knowledge().passage(h.passage);
        format!(
            "{:.2}/{:.2} {} / {}",
            h.score, h.relevance, p.file, p.heading
        )
    };

    let covered = set["covered"].as_array().expect("covered");
    if let Some(out) = std::env::var_os("EVAL_FEATURES") {
        let mut lines = String::new();
        let kb = probe.knowledge();
        let off = set["off_topic"].as_array().expect("off_topic").iter();
        let questions = covered
            .iter()
            .map(|q| (q["q"].as_str(), q["file"].as_str()))
            .chain(off.map(|q| (q.as_str(), None)));
        for (q, want) in questions {
            let Some((p, f)) = kb.gate_features(q.expect("a question is a string")) else {
                continue; // no passage shares a word: refused whatever the gate says
            };
            let label = match want {
                None => 0,
                Some(w) if kb.passage(p).file == w => 1,
                Some(_) => 2,
            };
            let f: Vec<String> = f.iter().map(|x| format!("{x:.5}")).collect();
            lines.push_str(&format!("{label} {}\n", f.join(" ")));
        }
        std::fs::write(&out, lines).expect("features file writable");
    }
    let mut ok = 0;
    for q in covered {
        let (text, want) = (
            q["q"].as_str().expect("q"),
            q["file"].as_str().expect("file"),
        );
        let hits = agent.retrieve(text);
        let got = hits
            .first()
            .map(|h| agent.knowledge().passage(h.passage).file.as_str());
        if got == Some(want) {
            ok += 1;
            continue;
        }
        println!("MISS {text:?} want {want} got {got:?}");
        for h in probe.retrieve(text) {
            println!("    {}", describe(&probe, &h));
        }
    }
    let off = set["off_topic"].as_array().expect("off_topic");
    let mut refused = 0;
    for q in off {
        let q = q.as_str().expect("off-topic is a string");
        match agent.retrieve(q).first() {
            None => refused += 1,
            Some(h) => println!("ANSWERED {q:?}: {}", describe(&agent, h)),
        }
    }
    println!(
        "top1={:.3} refused={:.3}",
        ok as f64 / covered.len() as f64,
        refused as f64 / off.len() as f64
    );
}
