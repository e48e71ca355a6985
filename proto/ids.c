/*
 * ids: the syntax of the identifiers the protocol carries, user and type
 * uuids and type idents, checked the same way by the daemon, the store and
 * the clients.  Byte by byte, without the locale.
 */
#include <stdbool.h>
#include <stddef.h>

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

/* A type ident: [a-z][a-z0-9_]{0,63}, checked without the locale. */
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
