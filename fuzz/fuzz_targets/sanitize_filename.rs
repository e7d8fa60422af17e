//! The destination-name sanitizers: whatever the client sends, the result is one safe path
//! component (or safe relative path) that cannot leave its directory.
#![no_main]

use chunked_upload::{sanitize_filename, sanitize_relative_path};
use libfuzzer_sys::fuzz_target;

fn check_component(name: &str) {
    assert!(!name.is_empty());
    assert!(name.len() <= 200 + 4, "{} bytes", name.len());
    assert!(!name.contains(['/', '\\', '\0']));
    assert!(!name.starts_with('.'));
    assert!(name != "..");
    assert!(!name.chars().any(char::is_control));
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    check_component(&sanitize_filename(input));
    let path = sanitize_relative_path(input);
    assert!(!path.starts_with('/'));
    for component in path.split('/') {
        check_component(component);
    }
});
