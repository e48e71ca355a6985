/*
 * ids: the syntax of user and type uuids, of type idents and of key pair
 * idents and account names (see credbroker-protocol(7)).  uuids are
 * lower-case hex only (upper case is refused, not folded), so one id has one
 * row and one path.
 */
#ifndef CB_IDS_H
#define CB_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define IDS_UUID_LEN		36	/* RFC 4122 text form */
#define IDS_IDENT_MAX		64
#define IDS_UUID_BYTES		16	/* the binary form */

/* 8-4-4-4-12 groups of lower-case hex separated by '-'. */
bool	 ids_uuid_valid(const char *s);
/*
 * The 16 bytes of a uuid's text form s; false, with out untouched, when s
 * is not valid by ids_uuid_valid.  Blobs of valid uuids sort as their text.
 */
bool	 ids_uuid_pack(const char *s, uint8_t out[IDS_UUID_BYTES]);
/* The lower-case text form of 16 bytes, NUL-terminated. */
void	 ids_uuid_unpack(const uint8_t b[IDS_UUID_BYTES],
	    char out[IDS_UUID_LEN + 1]);
/* A key pair ident or an account name: [a-z][a-z0-9_]{0,63}. */
bool	 ids_ident_valid(const char *s);
/* A type ident: [A-Za-z][A-Za-z0-9_.-]{0,63}, and not a uuid. */
bool	 ids_type_ident_valid(const char *s);

#endif
