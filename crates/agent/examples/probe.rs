//! Prints tokens and hits for questions given as arguments (a debugging aid).
use jitnode_agent::{tokenize, Agent};
fn main() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../elements/aiagents/customerService");
    let agent = Agent::load(
        &dir,
        &serde_json::json!({"retrieval": {"threshold": 0.0, "topK": 4}}),
    )
    .expect("loads");
    for q in std::env::args().skip(1) {
        println!("{q}: {:?}", tokenize(&q));
        // The gate's inputs for the best-ranked passage (GateFeatures order).
        if let Some((_, f)) = agent.knowledge().gate_features(&q) {
            let f: Vec<String> = f.iter().map(|x| format!("{x:.3}")).collect();
            println!("  features {}", f.join(" "));
        }
        let qterms = tokenize(&q);
        for h in agent.retrieve(&q) {
            let p = agent.knowledge().passage(h.passage);
            // Which query terms the passage holds as they are (no synonyms or spelling).
            let own = tokenize(&format!(
                "{}\n{}\n{}",
                p.heading,
                p.aliases.join("\n"),
                p.text
            ));
            let shared: Vec<&String> = qterms.iter().filter(|t| own.contains(t)).collect();
            println!(
                "  {:.3} rel {:.3} {} / {} {shared:?}",
                h.score, h.relevance, p.file, p.heading
            );
        }
    }
}
