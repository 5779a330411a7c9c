//! Which addresses an outbound request may reach: public unicast only.
//!
//! The rule is applied to every address a name resolves to, and again at every redirect; the
//! connection then goes to the address that was checked, never to a second lookup of the name.
//! Addresses that carry an IPv4 address inside an IPv6 one (IPv4-mapped, NAT64, 6to4) are
//! judged by the IPv4 address they lead to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address a request would go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A public unicast address: allowed.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918, shared address space (`100.64.0.0/10`), local-use NAT64.
    Private,
    /// `169.254.0.0/16` (cloud metadata lives there), `fe80::/10`, and the old site-local
    /// `fec0::/10`.
    LinkLocal,
    /// `fc00::/7` (also where some clouds put their metadata service).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`, and the IPv4 broadcast address.
    Multicast,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// Documentation, benchmarking, protocol assignments, reserved and deprecated ranges:
    /// nothing a public web page lives on.
    Reserved,
}

impl Class {
    /// Whether a request may go there.
    pub fn is_public(self) -> bool {
        self == Class::Public
    }

    /// How an error message names it.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::LinkLocal => "link-local",
            Class::UniqueLocal => "unique-local",
            Class::Multicast => "multicast",
            Class::Unspecified => "unspecified",
            Class::Reserved => "reserved",
        }
    }
}

/// The class of `ip`.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Class::Unspecified,
        (10, _, _) => Class::Private,
        (100, 64..=127, _) => Class::Private,
        (127, _, _) => Class::Loopback,
        (169, 254, _) => Class::LinkLocal,
        (172, 16..=31, _) => Class::Private,
        (192, 0, 0) | (192, 0, 2) | (192, 88, 99) => Class::Reserved,
        (192, 168, _) => Class::Private,
        (198, 18..=19, _) | (198, 51, 100) | (203, 0, 113) => Class::Reserved,
        _ if ip.is_broadcast() => Class::Multicast,
        (224..=239, _, _) => Class::Multicast,
        (240..=255, _, _) => Class::Reserved,
        _ => Class::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip.is_unspecified() {
        return Class::Unspecified;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d): the IPv4 address is where the packets go.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and the rest of ::/96.
    if s[..6] == [0; 6] {
        return Class::Reserved;
    }
    // NAT64, well-known prefix 64:ff9b::/96: a translator forwards to the IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    // Local-use NAT64, 64:ff9b:1::/48: translated inside a private network.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Class::Private;
    }
    // 6to4, 2002::/16: the IPv4 address of the relay is in bits 16 to 48.
    if s[0] == 0x2002 {
        return classify_v4(embedded_v4(s[1], s[2]));
    }
    match s[0] {
        0xfe80..=0xfebf => return Class::LinkLocal,
        0xfec0..=0xfeff => return Class::LinkLocal,
        0xfc00..=0xfdff => return Class::UniqueLocal,
        0xff00..=0xffff => return Class::Multicast,
        _ => {}
    }
    // Teredo (2001::/32) hides its IPv4 address, and the rest of 2001::/23 is protocol
    // assignments; documentation 2001:db8::/32 and 3fff::/20.
    if s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8) {
        return Class::Reserved;
    }
    if s[0] & 0xfff0 == 0x3ff0 {
        return Class::Reserved;
    }
    // Only 2000::/3 is allocated for global unicast; everything else is reserved.
    if s[0] & 0xe000 != 0x2000 {
        return Class::Reserved;
    }
    Class::Public
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Class {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_refused_class_is_refused() {
        let cases = [
            // Loopback.
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("::1", Class::Loopback),
            ("::ffff:127.0.0.1", Class::Loopback),
            ("64:ff9b::7f00:1", Class::Loopback),
            ("2002:7f00:1::", Class::Loopback),
            // Private.
            ("10.0.0.1", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("100.127.255.255", Class::Private),
            ("::ffff:10.1.2.3", Class::Private),
            ("::ffff:192.168.0.1", Class::Private),
            ("64:ff9b::a01:203", Class::Private),
            ("64:ff9b::c0a8:1", Class::Private),
            ("64:ff9b:1::1", Class::Private),
            ("2002:c0a8:101::1", Class::Private),
            // Link-local and cloud metadata.
            ("169.254.169.254", Class::LinkLocal),
            ("169.254.0.1", Class::LinkLocal),
            ("::ffff:169.254.169.254", Class::LinkLocal),
            ("64:ff9b::a9fe:a9fe", Class::LinkLocal),
            ("2002:a9fe:a9fe::", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("febf::1", Class::LinkLocal),
            ("fec0::1", Class::LinkLocal),
            // Unique-local (AWS's IPv6 metadata address among them).
            ("fc00::1", Class::UniqueLocal),
            ("fd00:ec2::254", Class::UniqueLocal),
            ("fdff:ffff::1", Class::UniqueLocal),
            // Multicast and broadcast.
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("255.255.255.255", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("ff05::1:3", Class::Multicast),
            ("::ffff:224.0.0.251", Class::Multicast),
            ("64:ff9b::e000:1", Class::Multicast),
            // Unspecified.
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("::", Class::Unspecified),
            ("::ffff:0.0.0.0", Class::Unspecified),
            ("64:ff9b::", Class::Unspecified),
            // Reserved, documentation, benchmarking, deprecated.
            ("192.0.0.8", Class::Reserved),
            ("192.0.2.1", Class::Reserved),
            ("198.51.100.7", Class::Reserved),
            ("203.0.113.9", Class::Reserved),
            ("198.18.0.1", Class::Reserved),
            ("192.88.99.1", Class::Reserved),
            ("240.0.0.1", Class::Reserved),
            ("::127.0.0.1", Class::Reserved),
            ("::8.8.8.8", Class::Reserved),
            ("2001::1", Class::Reserved),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Class::Reserved),
            ("2001:db8::1", Class::Reserved),
            ("3fff::1", Class::Reserved),
            ("100::1", Class::Reserved),
            ("4000::1", Class::Reserved),
            ("1::1", Class::Reserved),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), want, "{ip}");
            assert!(!class(ip).is_public(), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.167.1.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(class(ip), Class::Public, "{ip}");
        }
    }

    #[test]
    fn embedded_addresses_follow_their_ipv4_address() {
        // Every IPv4 address judged alone and wrapped in each IPv6 form gets the same answer.
        for n in (0u32..=u32::MAX).step_by(65_521) {
            let v4 = Ipv4Addr::from(n);
            let want = classify_v4(v4);
            assert_eq!(classify_v6(v4.to_ipv6_mapped()), want, "{v4} mapped");
            let [a, b, c, d] = v4.octets();
            let nat64 = Ipv6Addr::new(
                0x64,
                0xff9b,
                0,
                0,
                0,
                0,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
            );
            assert_eq!(classify_v6(nat64), want, "{v4} nat64");
            let six_to_four = Ipv6Addr::new(
                0x2002,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
                0,
                0,
                0,
                0,
                1,
            );
            assert_eq!(classify_v6(six_to_four), want, "{v4} 6to4");
        }
    }
}
