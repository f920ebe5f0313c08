//! Id recovery from the kept edges of an oversize line: whatever it returns must be the line's
//! top-level id as a generic JSON parser reads it, never an id from inside params, from a
//! string, or from a look-alike key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_guard::protocol::id_recovery::recover_id;
use mcp_guard_fuzz::true_top_level_id;

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    // Bytes 0 and 1: how much of the line the head and the tail keep (scaled: 0..=1020).
    let line = &input[2..];
    let head = &line[..(input[0] as usize * 4).min(line.len())];
    let tail = &line[line.len() - (input[1] as usize * 4).min(line.len())..];
    for got in [recover_id(head, tail), recover_id(line, line)]
        .into_iter()
        .flatten()
    {
        let Some(truth) = true_top_level_id(line) else {
            return; // not one JSON object with at most one id: nothing to compare with
        };
        assert_eq!(
            Some(&got),
            truth.as_ref(),
            "recovered {got} from head {:?} / tail {:?}; the line's top-level id is {truth:?}",
            String::from_utf8_lossy(head),
            String::from_utf8_lossy(tail)
        );
    }
});
