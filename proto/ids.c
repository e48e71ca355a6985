/*
 * ids: the syntax of the identifiers the protocol carries, user and type
 * uuids, type idents, key pair idents and account names, checked the same
 * way by the daemon, the store and the clients.  Byte by byte, without the locale.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ids.h"

/*
 * A user or type id: exactly 36 characters, 8-4-4-4-12 groups of lower-case
 * hex separated by '-'.  Upper case is refused rather than folded so that
 * one id has exactly one spelling, one row and one Vault path.  Version and
 * variant bits are not checked: the platform's ids are its own business.
 */
bool
ids_uuid_valid(const char *s)
{
	size_t	i;

	if (s == NULL)
		return false;
	for (i = 0; i < IDS_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;	/* also stops at an early NUL */
	}
	return s[IDS_UUID_LEN] == '\0';
}

/* The value of each lower-case hex digit; XX for every other byte. */
#define XX	0xff
static const uint8_t ids_hex[256] = {
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, 10, 11, 12, 13, 14, 15, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};

/*
 * The same check as ids_uuid_valid, made in the one pass that packs: out
 * is written only when s is valid.  Each byte is looked at only when all
 * before it were hex digits or dashes, so nothing is read past a NUL.
 */
bool
ids_uuid_pack(const char *s, uint8_t out[IDS_UUID_BYTES])
{
	const unsigned char	*u = (const unsigned char *)s;
	uint8_t			 b[IDS_UUID_BYTES], hi, lo;
	size_t			 i, j;

	if (s == NULL)
		return false;
	for (i = 0, j = 0; j < IDS_UUID_BYTES; j++, i += 2) {
		/* A dash before bytes 4, 6, 8 and 10. */
		if ((0x550 >> j) & 1) {
			if (u[i] != '-')
				return false;
			i++;
		}
		if ((hi = ids_hex[u[i]]) == XX ||
		    (lo = ids_hex[u[i + 1]]) == XX)
			return false;
		b[j] = (uint8_t)(hi << 4 | lo);
	}
	if (u[IDS_UUID_LEN] != '\0')
		return false;
	memcpy(out, b, sizeof(b));
	return true;
}
#undef XX

void
ids_uuid_unpack(const uint8_t b[IDS_UUID_BYTES], char out[IDS_UUID_LEN + 1])
{
	static const char	hex[] = "0123456789abcdef";
	size_t			i, j;

	for (i = 0, j = 0; i < IDS_UUID_BYTES; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 0x0f];
	}
	out[j] = '\0';
}

/*
 * A key pair ident or an account name: [a-z][a-z0-9_]{0,63}, checked
 * without the locale.  These stay narrow: account names are path segments
 * in Vault and key idents name key files.
 */
bool
ids_ident_valid(const char *s)
{
	size_t	i;

	if (s == NULL || s[0] < 'a' || s[0] > 'z')
		return false;
	for (i = 1; s[i] != '\0'; i++) {
		if (i >= IDS_IDENT_MAX)
			return false;
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	}
	return true;
}

static bool
ids_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * A type ident: [A-Za-z][A-Za-z0-9_.-]{0,63}, case-sensitive, checked
 * without the locale.  The platform's idents are kept as they are.  A
 * string that is also a uuid is refused, so that a type reference is
 * either a uuid or an ident, never both.
 */
bool
ids_type_ident_valid(const char *s)
{
	size_t	i;

	if (s == NULL || !ids_is_alpha(s[0]))
		return false;
	for (i = 1; s[i] != '\0'; i++) {
		if (i >= IDS_IDENT_MAX)
			return false;
		if (!(ids_is_alpha(s[i]) || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '-' || s[i] == '.'))
			return false;
	}
	return !ids_uuid_valid(s);
}
