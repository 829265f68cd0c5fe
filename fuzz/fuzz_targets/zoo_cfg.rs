//! The zoo.cfg parser: any text gives a config or an error naming the bad key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = node::config::Config::parse(text);
    }
});
