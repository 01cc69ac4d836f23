//! One fuzz input as a session: a sequence of device inputs.
//!
//! A download needs several chunks in one run, so the `chunk` target reads its input as frames.
//! Each frame starts with a tag byte; the tag modulo 5 selects:
//!
//! | tag % 5 | then                           | device input                                   |
//! |---------|--------------------------------|------------------------------------------------|
//! | 0       | `len: u16` LE, `len` bytes     | `Input::Chunk(bytes)` (short at end of input)  |
//! | 1       | —                              | `Input::Tick`, 10 s after the previous input   |
//! | 2       | `n: u8`                        | `Input::Command` of pre-signed command `n`     |
//! | 3       | —                              | `Input::Boot`                                  |
//! | 4       | `b: u8`                        | `Input::Health(b & 1 == 1)`                    |
//!
//! Commands are pre-signed (a fuzzer cannot sign), so the only thing fuzzed about them is when
//! they arrive; the `command` target fuzzes their bytes.

/// One decoded frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Raw bytes for `Input::Chunk`.
    Chunk(&'a [u8]),
    /// Time passes.
    Tick,
    /// Pre-signed command number `n` (modulo the list length).
    Command(u8),
    /// A reboot.
    Boot,
    /// A health-check result.
    Health(bool),
}

/// The frames of `data`, in order; a truncated last frame is dropped or shortened.
pub fn steps(mut data: &[u8]) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        let step = match tag % 5 {
            0 => {
                let [lo, hi, ref rest @ ..] = *data else { break };
                let n = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
                let (chunk, rest) = rest.split_at(n);
                data = rest;
                Step::Chunk(chunk)
            }
            1 => Step::Tick,
            2 | 4 => {
                let Some((&arg, rest)) = data.split_first() else { break };
                data = rest;
                if tag % 5 == 2 {
                    Step::Command(arg)
                } else {
                    Step::Health(arg & 1 == 1)
                }
            }
            _ => Step::Boot,
        };
        out.push(step);
    }
    out
}

/// Appends a chunk frame (the inverse of [`steps`], for seeds).
pub fn push_chunk(out: &mut Vec<u8>, chunk: &[u8]) {
    let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&chunk[..usize::from(len)]);
}

/// Appends any other frame.
pub fn push_step(out: &mut Vec<u8>, step: Step<'_>) {
    match step {
        Step::Chunk(c) => push_chunk(out, c),
        Step::Tick => out.push(1),
        Step::Command(n) => out.extend_from_slice(&[2, n]),
        Step::Boot => out.push(3),
        Step::Health(ok) => out.extend_from_slice(&[4, u8::from(ok)]),
    }
}
