//! Arbitrary bytes decoded as every wire message type (Delivery, Signed, Manifest, TrustRoot,
//! SignedTrustRoot, Command, Report, Chunk, ChunkRequest, InclusionProof).
//!
//! Asserts: no panic, and whatever decodes re-encodes to the identical bytes, through an equal
//! value (see `airlock_fuzz::canonical`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    airlock_fuzz::canonical::check_all(data);
});
