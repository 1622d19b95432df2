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
        for h in agent.retrieve(&q) {
            let p = agent.knowledge().passage(h.passage);
            println!(
                "  {:.3} rel {:.3} {} / {}",
                h.score, h.relevance, p.file, p.heading
            );
        }
    }
}
