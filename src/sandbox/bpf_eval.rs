//! A small interpreter for the seccomp BPF programs this crate builds, so their tests can ask
//! "what would the kernel answer for this syscall?" without installing anything.

/// One instruction: code, jump-if-true, jump-if-false, constant.
pub type Insn = (u16, u8, u8, u32);

/// Run `program` over `seccomp_data` {nr, arch, args} and return its verdict, like the kernel.
/// Panics on an instruction or load the filters here never use.
pub fn eval(program: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let word = |offset: u32| -> u32 {
        match offset {
            0 => nr,
            4 => arch,
            o if (16..64).contains(&o) => {
                let arg = args[((o - 16) / 8) as usize];
                if (o - 16) % 8 == 0 {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            o => panic!("load at {o}"),
        }
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let (code, jt, jf, k) = program[pc];
        pc += 1;
        match code {
            0x20 => a = word(k),      // BPF_LD | BPF_W | BPF_ABS
            0x54 => a &= k,           // BPF_ALU | BPF_AND | BPF_K
            0x05 => pc += k as usize, // BPF_JMP | BPF_JA
            0x06 => return k,         // BPF_RET | BPF_K
            0x15 | 0x25 | 0x35 | 0x45 => {
                let hit = match code {
                    0x15 => a == k,  // JEQ
                    0x25 => a > k,   // JGT
                    0x35 => a >= k,  // JGE
                    _ => a & k != 0, // JSET
                };
                pc += usize::from(if hit { jt } else { jf });
            }
            code => panic!("opcode {code:#x}"),
        }
    }
}
