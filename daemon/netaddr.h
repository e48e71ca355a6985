/*
 * netaddr: IP addresses and address blocks, and the class of an address
 * (SPEC section 13).  The broker resolves the host of a request it sends
 * itself and refuses to connect to a special address (anything but
 * NETADDR_PUBLIC) unless the credential type's destinations name that
 * address or a block containing it (dest_address_allowed in dest.h).  The
 * caller decides: classify first; a public address needs no allowance.
 *
 * Addresses are parsed numerically only (inet_pton: never a name, never
 * the "0x7f.1" or "127.1" forms of inet_aton), and printed as inet_ntop
 * does: dotted decimal, IPv6 in the canonical text form of RFC 5952.
 */
#ifndef CB_NETADDR_H
#define CB_NETADDR_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

#include "cb_error.h"

/* Room for the text of an address, and of a block ("addr/128"). */
#define NETADDR_STRLEN	46
#define NETBLOCK_STRLEN	(NETADDR_STRLEN + 4)

/* An IPv4 or IPv6 address. */
struct netaddr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	bytes[16];	/* network order; AF_INET uses 4 */
};

/*
 * The class of an address.  Everything but NETADDR_PUBLIC is special:
 *  - loopback: 127.0.0.0/8, ::1;
 *  - link-local: 169.254.0.0/16, fe80::/10;
 *  - private: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and the shared
 *    address space 100.64.0.0/10;
 *  - unique-local: fc00::/7;
 *  - multicast: 224.0.0.0/4, ff00::/8;
 *  - unspecified: 0.0.0.0/8, ::;
 *  - reserved: 240.0.0.0/4 (with 255.255.255.255), 192.0.0.0/24, the
 *    documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
 *    and 2001:db8::/32, benchmarking 198.18.0.0/15, and the deprecated
 *    IPv6 site-local fec0::/10.
 * An IPv6 address that embeds an IPv4 address is classified by it when
 * that is special: IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d
 * (but :: and ::1 are themselves), NAT64 64:ff9b::a.b.c.d and 6to4
 * 2002:AABB:CCDD:: (the IPv4 address in bits 16..47).
 */
enum netaddr_class {
	NETADDR_PUBLIC,
	NETADDR_LOOPBACK,
	NETADDR_LINKLOCAL,
	NETADDR_PRIVATE,
	NETADDR_UNIQUELOCAL,
	NETADDR_MULTICAST,
	NETADDR_UNSPECIFIED,
	NETADDR_RESERVED
};

/* An address block: the address with the host bits clear, and a prefix. */
struct netblock {
	struct netaddr	addr;
	unsigned	prefix;		/* 0..32 or 0..128 */
};

/*
 * Parse the numeric address of len bytes of s (need not be
 * NUL-terminated): dotted-decimal IPv4 of four parts or IPv6 text (no
 * brackets, no zone).  0, or -CB_EBADREQ with a message.
 */
int	 netaddr_parse(const char *s, size_t len, struct netaddr *a,
	    struct cb_error *err);

/* The address of an AF_INET or AF_INET6 sockaddr; -CB_EBADREQ otherwise. */
int	 netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *a,
	    struct cb_error *err);

/* Print a into buf (at least NETADDR_STRLEN bytes). */
void	 netaddr_format(const struct netaddr *a, char *buf, size_t len);

/*
 * a, with an IPv4-mapped IPv6 address (::ffff:a.b.c.d) replaced by its
 * IPv4 address, into *out.
 */
void	 netaddr_unmap(const struct netaddr *a, struct netaddr *out);

/* Same address, an IPv4-mapped address being equal to its IPv4 one? */
bool	 netaddr_equal(const struct netaddr *a, const struct netaddr *b);

/* The class of a (see above); reserved for a family other than the two. */
enum netaddr_class netaddr_classify(const struct netaddr *a);

/* The name of a class for messages: "public", "loopback", "link-local". */
const char *netaddr_class_name(enum netaddr_class c);

/*
 * Parse a block of len bytes: "address/prefix" (prefix in decimal without
 * leading zeros, at most 32 or 128) or a bare address (a /32 or /128).
 * A base address with host bits set is refused: "10.0.0.1/8 has host bits
 * set; write 10.0.0.0/8".  0, or -CB_EBADREQ with a message.
 */
int	 netblock_parse(const char *s, size_t len, struct netblock *b,
	    struct cb_error *err);

/*
 * Is a inside b?  IPv4-mapped addresses, and blocks of them of at least
 * /96, count as their IPv4 form; otherwise the families must agree.
 */
bool	 netblock_contains(const struct netblock *b, const struct netaddr *a);

/* Print b as "address/prefix" into buf (at least NETBLOCK_STRLEN bytes). */
void	 netblock_format(const struct netblock *b, char *buf, size_t len);

#endif
