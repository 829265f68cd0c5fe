//! The quorum packet decoder (and the election notification decoder beside it): what a server
//! reads from a peer. Whatever decodes must encode back to an equal packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::quorum::{self, QuorumPacket};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, frame)) = data.split_first() else { return };
    if kind & 1 == 0 {
        let _ = quorum::decode_notification(frame);
        return;
    }
    if let Ok(packet) = QuorumPacket::decode(frame) {
        let encoded = packet.encode();
        let again = QuorumPacket::decode(&encoded[4..]).expect("an encoded packet decodes");
        assert_eq!(again, packet, "decode(encode(p)) != p");
    }
});
