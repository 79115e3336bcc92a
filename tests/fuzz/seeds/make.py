#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (tests/fuzz/seeds/<target>/).

The DHCP packets are the clients of node/src/dhcp/tests/clients.rs (iPXE BIOS/UEFI, EDK2,
UEFI HTTP boot, arm64 UEFI, dhclient) with the same header fields and options as those
builders (option order may differ); TFTP
requests are what iPXE, EDK2, PXELINUX and curl send; the release seeds are `.release` files
written by `netboot publish` (see README.md); the fleet seeds wrap one of them.

    python3 tests/fuzz/seeds/make.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


# ---- DHCP -------------------------------------------------------------------------------
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MAC1 = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x01])
MAC2 = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x02])
UUID97 = bytes([0]) + bytes(0xA0 + i for i in range(16))


def opt(code, value):
    return bytes([code, len(value)]) + value


def dhcp(mac, xid, mtype, options, broadcast=True, ciaddr=b"\0" * 4, giaddr=b"\0" * 4):
    head = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 4, 0x8000 if broadcast else 0)
    head += ciaddr + b"\0" * 4 + b"\0" * 4 + giaddr
    head += mac + b"\0" * 10 + b"\0" * 64 + b"\0" * 128
    body = opt(53, bytes([mtype])) + b"".join(options)
    return head + bytes([99, 130, 83, 99]) + body + b"\xff"


def prl(codes):
    return opt(55, bytes(codes))


def ipxe(mtype, mac, arch, extra=()):
    return dhcp(mac, 0x1B2C3D00 | arch, mtype, [
        opt(57, struct.pack("!H", 1472)),
        opt(93, struct.pack("!H", arch)),
        opt(94, bytes([1, 2, 1])),
        opt(97, UUID97),
        opt(60, b"PXEClient:Arch:%05d:UNDI:002001" % arch),
        opt(77, b"iPXE"),
        opt(175, bytes([0xB1, 0x05, 0x01, 0x1A, 0xF4, 0x10, 0x00, 0x13, 0x01, 0x01, 0x11, 0x01, 0x01])),
        prl([1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 175, 203]),
        opt(61, b"\x01" + mac),
        *extra,
    ])


def firmware(mtype, mac, arch, vendor, extra=()):
    return dhcp(mac, 0x0ED20000 | arch, mtype, [
        opt(57, struct.pack("!H", 1472)),
        prl([1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58,
             59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]),
        opt(97, UUID97),
        opt(94, bytes([1, 3, 0])),
        opt(93, struct.pack("!H", arch)),
        opt(60, vendor),
        *extra,
    ])


def dhclient(mtype, mac, extra=(), ciaddr=b"\0" * 4):
    return dhcp(mac, 0xDC000000 | mac[5], mtype, [
        prl([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]),
        opt(12, b"labhost"),
        opt(61, b"\x01" + mac),
        *extra,
    ], broadcast=False, ciaddr=ciaddr)


SERVER = bytes([10, 1, 0, 2])
LEASED = bytes([10, 1, 0, 100])
ASK = [opt(50, LEASED), opt(54, SERVER)]
write("dhcp", "ipxe-bios-discover", ipxe(DISCOVER, MAC1, 0))
write("dhcp", "ipxe-bios-request", ipxe(REQUEST, MAC1, 0, ASK))
write("dhcp", "ipxe-uefi-discover", ipxe(DISCOVER, MAC1, 7))
write("dhcp", "edk2-discover", firmware(DISCOVER, MAC2, 7, b"PXEClient:Arch:00007:UNDI:003000"))
write("dhcp", "edk2-request-4011", firmware(REQUEST, MAC2, 7, b"PXEClient:Arch:00007:UNDI:003000",
                                              [opt(43, bytes([71, 4, 0x80, 0, 0, 0, 255]))]))
write("dhcp", "uefi-http-discover", firmware(DISCOVER, MAC2, 16, b"HTTPClient:Arch:00016:UNDI:003001"))
write("dhcp", "arm64-discover", firmware(DISCOVER, MAC2, 11, b"PXEClient:Arch:00011:UNDI:003000"))
write("dhcp", "dhclient-discover", dhclient(DISCOVER, MAC2))
write("dhcp", "dhclient-request", dhclient(REQUEST, MAC2, ASK))
write("dhcp", "dhclient-renew", dhclient(REQUEST, MAC2, ciaddr=LEASED))
write("dhcp", "dhclient-release", dhclient(RELEASE, MAC2, [opt(54, SERVER)], ciaddr=LEASED))
write("dhcp", "dhclient-decline", dhclient(DECLINE, MAC2, ASK))
write("dhcp", "dhclient-inform", dhclient(INFORM, MAC2, ciaddr=LEASED))
write("dhcp", "relayed-discover",
      dhcp(MAC1, 0x5EE0001, DISCOVER, [opt(93, b"\0\0"), opt(60, b"PXEClient:Arch:00000:UNDI:002001"),
                                        opt(82, opt(1, b"eth0") + opt(2, b"sw1"))],
           giaddr=bytes([10, 2, 0, 1])))

# ---- TFTP -------------------------------------------------------------------------------


def rrq(name, *options, op=1, mode=b"octet"):
    return struct.pack("!H", op) + name + b"\0" + mode + b"\0" + b"".join(o + b"\0" for o in options)


write("tftp", "ipxe-rrq", rrq(b"undionly.kpxe", b"blksize", b"1432", b"tsize", b"0"))
write("tftp", "edk2-tsize-probe", rrq(b"ipxe.efi", b"tsize", b"0", b"blksize", b"1468", b"windowsize", b"4"))
write("tftp", "pxelinux-cfg", rrq(b"pxelinux.cfg/01-52-54-00-12-34-01", b"tsize", b"0", b"blksize", b"1408"))
write("tftp", "curl-timeout", rrq(b"/boot/ldlinux.c32", b"timeout", b"255", b"blksize", b"512", mode=b"OCTET"))
write("tftp", "windows-path", rrq(b"\\boot\\x64\\wdsnbp.com", b"tsize", b"0"))
write("tftp", "netascii", rrq(b"pxelinux.0", mode=b"netascii"))
write("tftp", "wrq", rrq(b"upload.bin", op=2))
write("tftp", "ack", struct.pack("!HH", 4, 1))
write("tftp", "data", struct.pack("!HH", 3, 1) + b"x" * 16)
write("tftp", "error-abort", struct.pack("!HH", 5, 8) + b"tsize probe\0")
write("tftp", "oack", struct.pack("!H", 6) + b"blksize\x001468\x00tsize\x0012345\x00")

# ---- HTTP -------------------------------------------------------------------------------
HASH = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
for name, text in {
    "identify": "/boot.ipxe\n",
    "chain": "/boot.ipxe?mac=52%3A54%3A00%3A12%3A34%3A01&ip=10.1.0.100&arch=x86_64\n",
    "menu-entry": "/boot/debian-12.ipxe?mac=52-54-00-12-34-01\nbytes=0-0",
    "release": "/r/debian-12/3/boot/vmlinuz\nbytes=0-1023",
    "image": "/images/debian-12/initrd.img\nbytes=1000-",
    "suffix": "/images/debian-12/live/filesystem.squashfs\nbytes=-65536",
    "blob": "/blobs/%s\nbytes=0-18446744073709551614" % HASH,
    "first-stage": "/first-stage/ipxe.efi\nbytes=0-1,5-6",
    "pxelinux": "/pxelinux/pxelinux.cfg/01-52-54-00-12-34-01\n",
    "traversal": "/images/debian-12/../../etc/passwd\nbytes= 5 - 9 ",
}.items():
    write("http", name, text.encode())

# ---- fleet (postcard bodies, without the 4-byte frame header) -----------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def blob(b):
    return varint(len(b)) + b


with open(os.path.join(HERE, "release", "linux-template.release"), "rb") as f:
    SIGNED = f.read()
# Request: Ping, Announce(Offer), Catalog, Publish. Response: Pong, Ack, Catalog, Progress,
# Published, Refused. Holding: Complete, Fetching, Relaying.
write("fleet", "ping", varint(0) + varint(0x1234_5678_9ABC))
write("fleet", "announce", varint(1) + blob(SIGNED) + varint(1))
write("fleet", "catalog-request", varint(2))
write("fleet", "publish", varint(3) + blob(SIGNED))
write("fleet", "ack", varint(1))
write("fleet", "catalog", varint(2) + varint(2) + blob(SIGNED) + varint(0) + blob(SIGNED) + varint(2))
write("fleet", "progress", varint(3) + varint(1 << 20) + varint(50 << 20))
write("fleet", "published", varint(4) + varint(7))
write("fleet", "refused", varint(5) + blob(b"version 3 is not newer than 7"))
