//! The client request decoder: a connect request, then request frames, as a server reads them.
//! Whatever decodes must encode back to the same frame (the decoder and encoder agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::proto::{jute::Reader, ConnectRequest, Packet};

fuzz_target!(|data: &[u8]| {
    // The first byte picks what the bytes are read as: the handshake or a request frame.
    let Some((&kind, frame)) = data.split_first() else { return };
    if kind & 1 == 0 {
        let _ = ConnectRequest::decode(&mut Reader::new(frame));
        return;
    }
    if let Ok(packet) = Packet::decode(frame) {
        let encoded = packet.encode();
        let again = Packet::decode(&encoded[4..]).expect("an encoded packet decodes");
        assert_eq!(again, packet, "decode(encode(p)) != p");
    }
});
