//! Line framing: any bytes, any cap, any chunking of the reads; the frames must be exactly the
//! input's lines (none lost, none merged, oversize ones reported once with their true edges).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_guard_fuzz::{check_frames, frames};

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    // Byte 0: the cap (small, so oversize lines are common); byte 1: how many chunk sizes
    // follow; then the sizes, then the stream.
    let max_line = input[0] as usize % 64;
    let n = (input[1] as usize % 8).min(input.len() - 2);
    let sizes: Vec<usize> = input[2..2 + n].iter().map(|&b| b as usize).collect();
    let data = &input[2 + n..];
    let got = frames(data, sizes, max_line);
    check_frames(data, max_line, &got);
});
