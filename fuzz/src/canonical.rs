//! Decode, re-encode, compare: the check `decode_all` makes for every wire message type.
//!
//! For every type, on every input that decodes:
//! 1. the re-encoding decodes, to an equal value (no information is lost or invented);
//! 2. re-encoding that value gives the same bytes again (the encoder is deterministic);
//! 3. the re-encoding is the input itself: `codec::decode` accepts only canonical encodings.
//!
//! Point 3 is the one this target found broken (README.md, "Findings"): postcard decodes
//! over-long varints, and until commit ffc6dd4 `codec::decode` accepted them, so `80 00 00`
//! decoded as a `SignedTrustRoot` that re-encodes as `00 00`. [`non_canonical`] says when a
//! difference is explained by an over-long varint, to make such a report quick to read.

use airlock_proto::{
    codec, decode, Chunk, ChunkRequest, Command, Delivery, InclusionProof, Manifest, Report, Signed, SignedTrustRoot,
    TrustRoot,
};

/// Whether `data` holds the last byte of a non-minimal varint somewhere.
pub fn has_overlong_varint(data: &[u8]) -> bool {
    data.windows(2).any(|w| w[0] & 0x80 != 0 && w[1] == 0)
}

/// Fails: `data` decoded as `ty` but re-encodes to the different bytes `enc`.
pub fn non_canonical(ty: &str, data: &[u8], enc: &[u8]) -> ! {
    let why = if enc.len() < data.len() && has_overlong_varint(data) {
        "it holds an over-long varint"
    } else {
        "no over-long varint explains it"
    };
    panic!(
        "{ty}: decode accepted a non-canonical encoding ({why})\n  input:      {data:02x?}\n  re-encoded: {enc:02x?}"
    );
}

/// Round-trips `$data` through type `$ty`; evaluates to whether it decoded.
macro_rules! round_trip {
    ($ty:ty, $data:expr) => {{
        let data: &[u8] = $data;
        match decode::<$ty>(data) {
            Ok(v) => {
                let ty = stringify!($ty);
                let enc = codec::encode(&v);
                let w = decode::<$ty>(&enc)
                    .unwrap_or_else(|r| panic!("{ty}: re-encoding {enc:02x?} of {data:02x?} does not decode: {r}"));
                assert_eq!(v, w, "{ty}: value changed in a round trip of {data:02x?}");
                assert_eq!(codec::encode(&w), enc, "{ty}: the encoder is not canonical");
                if enc != data {
                    non_canonical(ty, data, &enc);
                }
                true
            }
            Err(_) => false,
        }
    }};
}

/// [`check_all`] for `Delivery` alone (the `delivery` target decodes its input this way too).
pub fn check_delivery(data: &[u8]) -> bool {
    round_trip!(Delivery<'_>, data)
}

/// Round-trips `data` through every message type; returns how many decoded it.
pub fn check_all(data: &[u8]) -> usize {
    [
        round_trip!(Delivery<'_>, data),
        round_trip!(Signed<'_>, data),
        round_trip!(Manifest<'_>, data),
        round_trip!(TrustRoot, data),
        round_trip!(SignedTrustRoot<'_>, data),
        round_trip!(Command<'_>, data),
        round_trip!(Report<'_>, data),
        round_trip!(Chunk<'_>, data),
        round_trip!(ChunkRequest, data),
        round_trip!(InclusionProof, data),
    ]
    .into_iter()
    .filter(|&ok| ok)
    .count()
}
