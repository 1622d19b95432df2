//! e.json files and the chain resolution over them. The input is up to eight e.json texts
//! separated by 0xFF (never in UTF-8); the n-th becomes the element `NAMES[n]`, so inputs
//! can name each other as Types and build chains, cycles and broken links.
#![no_main]

use std::path::PathBuf;

use jitnode_element::{render_tree, resolve, Definition, FoundElement, Parsed, Problem};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "a.meta",
    "a.type",
    "a.inst",
    "a.other",
    "b.meta",
    "b.type",
    "corps.meta",
    "corps.models.CorpMember",
];

fuzz_target!(|data: &[u8]| {
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    for (i, bytes) in data.split(|b| *b == 0xFF).take(NAMES.len()).enumerate() {
        let full_name = NAMES[i];
        let rel_dir = full_name.replace('.', "/");
        let dir = PathBuf::from("/nonexistent/fuzz/elements").join(&rel_dir);
        let def = match Definition::parse(bytes) {
            Ok(d) => {
                let _ = (d.is_meta(), format!("{d:?}"));
                Some(d)
            }
            Err(kinds) => {
                assert!(!kinds.is_empty(), "a rejected e.json names its problems");
                for k in kinds {
                    let p = Problem::new(dir.join("e.json"), Some(full_name), k);
                    let _ = p.to_string();
                    problems.push(p);
                }
                None
            }
        };
        parsed.push(Parsed {
            found: FoundElement {
                full_name: full_name.to_string(),
                rel_dir,
                dir,
                files: vec!["e.json".to_string()],
            },
            def,
        });
    }
    let count = parsed.len();
    match resolve(parsed, problems) {
        Ok(tree) => {
            assert_eq!(tree.len(), count, "every element resolves");
            for e in tree.elements.values() {
                let meta = e.chain.last().expect("a chain ends at a Meta");
                assert!(tree.get(meta).is_some_and(|m| m.is_meta()));
                let _ = (e.name(), e.meta(), tree.loader_of(&e.full_name));
                let _ = tree.children_of(&e.full_name).count();
            }
            let _ = render_tree(&tree);
        }
        Err(p) => {
            assert!(!p.is_empty(), "a failed resolve reports problems");
            let _ = p.to_string();
        }
    }
});
