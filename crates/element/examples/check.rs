//! Prints `check` problems and the `tree` of an app folder (a manual aid, like the CLI).
fn main() {
    let app = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let app = std::path::Path::new(&app);
    let problems = jitnode_element::check_app(app);
    if problems.is_empty() {
        match jitnode_element::load_tree(&app.join("elements")) {
            Ok(tree) => print!("{}", jitnode_element::render_tree(&tree)),
            Err(p) => println!("{p}"),
        }
    } else {
        println!("{problems}");
        std::process::exit(1);
    }
}
