//! The SSE parser of the LLM client. The first byte sets a chunk size; the rest is fed in
//! such chunks and, separately, at once: the events cannot depend on where the network
//! cut the bytes.
#![no_main]

use jitnode_agent::SseParser;
use libfuzzer_sys::fuzz_target;

fn run(bytes: &[u8], chunk: usize) -> Result<Vec<String>, String> {
    let mut p = SseParser::default();
    let mut events = Vec::new();
    for part in bytes.chunks(chunk) {
        events.extend(p.feed(part).map_err(|e| e.to_string())?);
    }
    events.extend(p.finish());
    // A finished parser starts clean.
    assert_eq!(p.finish(), None);
    Ok(events)
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(*first % 16) + 1;
    let whole = run(rest, rest.len().max(1));
    let cut = run(rest, chunk);
    match (whole, cut) {
        (Ok(w), Ok(c)) => assert_eq!(w, c, "events depend on the chunking"),
        (Err(_), Err(_)) => {}
        (w, c) => panic!("only one chunking failed: whole {w:?}, chunks of {chunk} {c:?}"),
    }
});
