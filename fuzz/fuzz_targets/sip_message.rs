//! A SIP message and its SDP, through every accessor the call tracker uses.
//! Invariants: a parsed message's body
//! lies inside the input; every accessor returns without panicking.
#![no_main]

use callvault::sip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sip::looks_like_sip(data);
    assert!(sip::leading_keepalive_len(data) <= data.len());
    let _ = sip::parse_sdp(data);
    let Ok(msg) = sip::parse(data) else {
        return;
    };
    let body = msg.body();
    let inside = data.as_ptr_range();
    assert!(body.is_empty() || inside.contains(&body.as_ptr()));
    assert!(body.len() <= data.len());
    let _ = (
        msg.method(),
        msg.status(),
        msg.is_request(),
        msg.call_id(),
        msg.cseq(),
    );
    let _ = msg
        .request_uri()
        .map(|u| (u.user_unescaped_opt(), u.param("user")));
    for addr in [
        msg.from(),
        msg.to(),
        msg.contact(),
        msg.refer_to(),
        msg.referred_by(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (addr.uri.user_unescaped_opt(), addr.param("tag"));
    }
    let _ = (
        msg.p_asserted_identity(),
        msg.diversion(),
        msg.history_info(),
    );
    let _ = (
        msg.via_branch(),
        msg.replaces(),
        msg.content_type(),
        msg.content_length(),
    );
    let _ = (
        msg.body_truncated(),
        msg.malformed_headers(),
        msg.dropped_headers(),
    );
    let _ = msg.multipart_part("application/sdp");
    if let Some(sdp) = msg.sdp() {
        for m in &sdp.media {
            for &pt in &m.formats {
                let _ = (m.codec_for(pt), m.fmtp_for(pt));
            }
            let _ = (m.effective_connection(&sdp), m.effective_direction(&sdp));
            let _ = m.is_hold_address(&sdp);
        }
    }
});
