//! DNS messages for the DNS fault tests and benchmarks, built and parsed with hickory-proto.

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query},
    rr::{Name, RecordType, rdata::opt::EdnsOption},
};

/// EDNS option code COOKIE (RFC 7873).
pub const OPTION_COOKIE: u16 = 10;

/// A recursive query for `name` of type `rtype` with id `id`; with `edns`, an OPT record
/// advertising 1232 bytes and carrying an 8-byte client cookie, as dig sends.
pub fn query(name: &str, rtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("a valid test name"),
        rtype,
    ));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.options_mut()
            .insert(EdnsOption::Unknown(OPTION_COOKIE, vec![0x5a; 8]));
        m.set_edns(e);
    }
    m.to_vec().expect("an encodable query")
}

/// Parses a DNS message.
pub fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("a DNS message hickory-proto can parse")
}
