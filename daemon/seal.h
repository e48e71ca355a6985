/*
 * seal: the master key and AES-GCM sealing of values (SPEC section 3):
 * seal.c, and keyfile.c for reading and checking a key.
 *
 * Formats (documented in credbroker.conf(5) / credbrokerd(8)):
 *
 *   GCM:<base64(nonce[12] || ciphertext || tag[16])>
 *	The source document's format: AES-GCM under the master key used
 *	directly, no associated data.  Always readable, never written.
 *
 *   CB1:<keyver>:<base64(nonce[12] || ciphertext || tag[16])>
 *	Written by default.  The AES key is derived from the master key with
 *	HKDF-SHA256 (info "credbroker seal v1"); the associated data is
 *	"credbroker/1|<keyver>|<context>", where context names the owner of
 *	the value (for credentials "<type_uuid>/<user_uuid>"), so a value
 *	moved to another row, or opened with another key, fails to open.
 *
 * The key check value stored in the database is "kcv1:" followed by hex of
 * HKDF-SHA256(master, info "credbroker key check v1", 16 bytes).
 */
#ifndef CB_SEAL_H
#define CB_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb_error.h"
#include "secbuf.h"

#define SEAL_KEY_MAX	32
#define SEAL_NONCE_LEN	12
#define SEAL_TAG_LEN	16
#define SEAL_KCV_MAX	64

struct seal_key {
	uint8_t		 master[SEAL_KEY_MAX];
	size_t		 len;			/* 16, 24 or 32 */
	uint32_t	 version;		/* key version, starts at 1 */
	uint8_t		 sealkey[SEAL_KEY_MAX];	/* HKDF-derived */
};

/* keyfile.c */

/*
 * Check the four strength rules on a candidate key, taken exactly as given
 * (seal_key_init strips the trailing newline first).  Each failure is
 * -CB_EBADREQ with its own message naming the rule:
 *   "master key must be 16, 24 or 32 bytes long (got N)"
 *   "master key must be printable ASCII (characters 0x20 to 0x7e)"
 *   "master key must not be a single repeated character"
 *   "master key is too weak: <reason>; generate one with: ..." where the
 *	reason is a well-known weak key or password, a short pattern
 *	repeated, a run of consecutive characters, or fewer than 8 distinct
 *	characters.
 * Never puts the key into the message.
 */
int	 seal_key_check_strength(const uint8_t *key, size_t len,
	    struct cb_error *err);
/*
 * The first two rules alone (length and printable ASCII), with the same
 * messages; what names the key in them ("master key", "legacy key").
 */
int	 seal_key_check_form(const uint8_t *key, size_t len, const char *what,
	    struct cb_error *err);
/* Read a key file (refusing files larger than a key) into k. */
/*
 * The same, choosing whether to refuse a file that group or others may
 * read.  A systemd credential is checked by systemd instead: where its
 * file system has ACLs, the file shows mode 0440 with an ACL for the
 * service user alone.
 */
int	 seal_key_load_file_mode(struct seal_key *k, const char *path,
	    uint32_t version, bool check_mode, struct cb_error *err);
int	 seal_key_load_file(struct seal_key *k, const char *path,
	    uint32_t version, struct cb_error *err);
/*
 * Read a one-line secret (a password) from a file with a key file's
 * rules (check_mode: refuse one that others may read or change), without
 * its trailing newline, into out; at most KEYFILE_SECRET_MAX bytes.
 */
#define KEYFILE_SECRET_MAX	1024
int	 keyfile_read_secret(const char *path, const char *what,
	    bool check_mode, struct secbuf *out, struct cb_error *err);
/*
 * Read the legacy key (security.legacy_key_file) into k: the file rules
 * of a master key, but only the length and printable-ASCII rules on the
 * key itself.  Such a key only ever opens GCM: values; it never seals.
 */
int	 seal_key_load_legacy_file(struct seal_key *k, const char *path,
	    struct cb_error *err);
/*
 * Initialise k from raw key bytes: checks strength, derives subkeys.  The
 * key may be followed by one "\n" or "\r\n" (as written by echo), which is
 * stripped.  k lives in locked memory (seal_key_alloc).
 */
int	 seal_key_init(struct seal_key *k, const uint8_t *raw, size_t len,
	    uint32_t version, struct cb_error *err);

/* seal.c */

/*
 * Copy a key that seal_key_init accepted into k and derive its subkeys;
 * refuses only a length the cipher cannot take.  k is wiped on failure.
 */
int	 seal_key_derive(struct seal_key *k, const uint8_t *key, size_t len,
	    uint32_t version, struct cb_error *err);
/* Allocate a key struct in memory that is mlock'd and MADV_DONTDUMP. */
struct seal_key *seal_key_alloc(void);
/* Wipe and release. */
void	 seal_key_free(struct seal_key *k);

/*
 * Parse the "<keyver>:" after "CB1:" at s: decimal, 1 to UINT32_MAX, no
 * sign or leading zero.  Sets *keyver and *endp past the ':'; 0 or -1.
 */
int	 seal_parse_keyver(const char *s, uint32_t *keyver, const char **endp);

/* Key check value text for k, into out (SEAL_KCV_MAX). */
int	 seal_kcv(const struct seal_key *k, char out[SEAL_KCV_MAX],
	    struct cb_error *err);

/* Seal pt in CB1 format bound to context; *out malloc'd text. */
int	 seal_seal(const struct seal_key *k, const char *context,
	    const uint8_t *pt, size_t ptlen, char **out, struct cb_error *err);
/*
 * Open sealed text (GCM: or CB1:) into out (appended).  context is used
 * for CB1; GCM: values carry no binding.  Authentication failure is
 * -CB_EINTERNAL with a message that says the value could not be opened.
 */
int	 seal_open(const struct seal_key *k, const char *context,
	    const char *text, struct secbuf *out, struct cb_error *err);

#endif
