#!/usr/bin/env python3
"""Seeds for the fuzz targets, cut from the repository's captures and configuration.

    seeds.py PCAP_DIR CONFIG_DIR OUT_DIR

Whole capture files (up to 128 KiB) seed the file targets; single frames (with the link
selector byte net_frame expects), SIP messages and HEP packets are cut out of them for the
others; call documents come from fuzz/seeds/. Existing seeds are kept (the corpus grows
from run to run); standard library only.
"""
import hashlib
import os
import shutil
import struct
import sys

# pcap link type -> index in net_frame's LINKS
LINKS = {1: 0, 101: 1, 12: 1, 14: 1, 113: 2, 276: 3, 0: 4, 108: 5, 228: 6, 229: 7}
SIP_STARTS = [b"INVITE ", b"SIP/2.0 ", b"ACK ", b"BYE ", b"CANCEL ", b"REFER ", b"NOTIFY ",
              b"OPTIONS ", b"REGISTER ", b"UPDATE ", b"PRACK ", b"INFO ", b"SUBSCRIBE "]


def frames(data):
    """(linktype, frame) of a classic pcap or pcapng file; stops quietly on damage."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        link = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            off += 16
            if incl > len(data) - off:
                return
            yield link, data[off:off + incl]
            off += incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e, off, links = "<", 0, []
        while off + 12 <= len(data):
            btype = data[off:off + 4]
            if btype == b"\x0a\x0d\x0d\x0a":
                e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                links = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8:off + blen - 4]
            t = struct.unpack(e + "I", btype)[0]
            if t == 1 and len(body) >= 2:
                links.append(struct.unpack(e + "H", body[:2])[0])
            elif t == 6 and len(body) >= 20:
                iface, _, _, caplen = struct.unpack(e + "IIII", body[:16])
                if iface < len(links):
                    yield links[iface], body[20:20 + caplen]
            off += blen


def put(out, target, data, name=None):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


def main():
    pcaps, config, out = sys.argv[1:4]
    for name in sorted(os.listdir(pcaps)):
        with open(os.path.join(pcaps, name), "rb") as f:
            data = f.read()
        if len(data) <= 128 * 1024:
            for t in ("net_stream", "capture_file", "pipeline"):
                put(out, t, data, name)
        for i, (link, frame) in enumerate(frames(data)):
            if i >= 400:
                break
            if link in LINKS and i < 40:
                put(out, "net_frame", bytes([LINKS[link]]) + frame)
            at = frame.find(b"HEP3")
            if at >= 0:
                put(out, "hep", frame[at:])
            starts = [frame.find(s) for s in SIP_STARTS]
            starts = [s for s in starts if s >= 0]
            if starts:
                put(out, "sip_message", frame[min(starts):])
            if len(frame) > 54 and frame[42] & 0xC0 == 0x80 and i < 60:
                put(out, "rtp_sequence", frame[42:])
    seq = b"".join(struct.pack(">H", n & 0xFFFF) for n in
                   list(range(65500, 65536)) + list(range(0, 40)) + [5, 5, 3, 30000, 30001])
    put(out, "rtp_sequence", seq, "wrap")
    put(out, "segment_open", b"\x00\x10" + b"\x05\x00\x01" * 4, "flips")
    put(out, "segment_open", b"\xff\xff", "whole")
    for name in sorted(os.listdir(config)):
        if name.endswith(".toml"):
            with open(os.path.join(config, name), "rb") as f:
                put(out, "agent_config", f.read(), name)
    seeds = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
    for target in sorted(os.listdir(seeds)) if os.path.isdir(seeds) else []:
        for name in sorted(os.listdir(os.path.join(seeds, target))):
            with open(os.path.join(seeds, target, name), "rb") as f:
                put(out, target, f.read(), name)


if __name__ == "__main__":
    main()
