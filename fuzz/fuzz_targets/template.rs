//! Template rendering. The input is a .env text, a 0xFF byte, then a config.json template.
//! Besides not panicking: a value can never become JSON structure, so if the template
//! renders to valid JSON with every value `true`, it must also do so with the input's
//! values (each made a non-literal by a leading quote) -- and an error never shows a value.
//! `true` is valid JSON both as string content and bare, and the quoted value only where
//! the scanner placed it correctly, so this also catches string tracking gone wrong.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use jitnode_element::{parse_dotenv, render_template, template_vars, Env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (env_bytes, tpl_bytes) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let Ok(text) = std::str::from_utf8(tpl_bytes) else {
        return;
    };
    let file = Path::new(".env");
    let vars = match parse_dotenv(env_bytes, file) {
        Ok(v) => v,
        Err(e) => {
            let _ = e.to_string();
            HashMap::new()
        }
    };
    let _ = template_vars(text);
    let element = "fuzz.element";
    let path = Path::new("config.json");

    let quoted: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.clone(), format!("\"{v}")))
        .collect();
    let plain: HashMap<String, String> = vars.keys().map(|k| (k.clone(), "true".into())).collect();
    let with_values = render_template(text, &Env::from_map(quoted.clone()), element, path);
    let with_plain = render_template(text, &Env::from_map(plain), element, path);
    match (&with_plain, &with_values) {
        (Ok(p), Ok(v)) => {
            if serde_json::from_str::<serde_json::Value>(p).is_ok() {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(v) {
                    panic!("a value changed the JSON structure ({e}): {text:?} -> {v:?}");
                }
            }
        }
        (Err(_), Err(e)) => {
            let shown = e.to_string();
            for v in quoted.values() {
                // Short values can occur in the message by chance (names, the file).
                if v.len() >= 8 && !text.contains(v.as_str()) {
                    assert!(!shown.contains(v.as_str()), "an error shows a value");
                }
            }
        }
        _ => panic!("whether a render fails cannot depend on the values"),
    }
    let _ = render_template(text, &Env::from_map(vars), element, path);
});
