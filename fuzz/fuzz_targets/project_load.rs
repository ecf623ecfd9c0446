//! The project loader on arbitrary text: it must never panic, and whatever it accepts must save
//! to text that loads back to the same project.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(project) = datpatch::project::load_str(text, Path::new("fuzz.ron")) else {
        return;
    };
    let saved = datpatch::project::to_ron_string(&project).expect("an accepted project saves");
    let reloaded = datpatch::project::load_str(&saved, Path::new("saved.ron"))
        .unwrap_or_else(|e| panic!("a saved project does not load: {e}\n{saved}"));
    let again = datpatch::project::to_ron_string(&reloaded).expect("a reloaded project saves");
    assert_eq!(saved, again, "saving is not stable");
});
