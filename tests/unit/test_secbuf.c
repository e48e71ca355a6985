/*
 * Unit tests for the locked pool behind secbufs (proto/secbuf.c): blocks
 * come from memory that is locked and kept out of core dumps, are wiped
 * when freed, and are reused.  (secbuf's own growth and wiping are tested
 * in test_proto.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "secbuf.h"

/* The VmFlags line of the mapping that contains p, from /proc/self/smaps. */
static int
map_flags(const void *p, char *flags, size_t sz)
{
	FILE		*f = fopen("/proc/self/smaps", "r");
	char		 line[512];
	uintptr_t	 lo, hi, a = (uintptr_t)p;
	int		 inside = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = a >= lo && a < hi;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, sz, "%.*s", (int)sz - 1, line + 8);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -1;
}

static void
test_pool(void **state)
{
	char		 flags[256];
	size_t		 cap, cap2, locked, unlocked, i;
	unsigned char	*p, *q, *big;

	secmem_pool_enable();
	p = secmem_alloc(100, &cap);
	assert_non_null(p);
	assert_int_equal(cap, 128);
	memset(p, 0xa5, cap);

	/* Locked where RLIMIT_MEMLOCK allows, and never in a core dump. */
	assert_int_equal(map_flags(p, flags, sizeof(flags)), 0);
	assert_non_null(strstr(flags, " dd"));
	secmem_pool_stats(&locked, &unlocked);
	assert_true(locked + unlocked >= 2u << 20);
#ifndef __SANITIZE_ADDRESS__
	/* (ASan's mlock does nothing, so only without it.) */
	if (unlocked == 0)
		assert_non_null(strstr(flags, " lo"));
#endif

	/* Freed blocks are wiped and reused by the same class. */
	secmem_free(p, cap);
	for (i = 0; i < cap; i++)
		if (i >= sizeof(void *))
			assert_int_equal(p[i], 0);
	q = secmem_alloc(120, &cap2);
	assert_ptr_equal(q, p);
	assert_int_equal(cap2, 128);
	secmem_free(q, cap2);

	/* Blocks above the largest class get a locked mapping of their own. */
	big = secmem_alloc((2u << 20) + 1, &cap);
	assert_non_null(big);
	assert_true(cap >= (2u << 20) + 1);
	assert_int_equal(map_flags(big, flags, sizeof(flags)), 0);
	assert_non_null(strstr(flags, " dd"));
	big[cap - 1] = 1;
	secmem_free(big, cap);
}

static void
test_secbuf_uses_pool(void **state)
{
	struct secbuf	b = SECBUF_INIT;
	char		flags[256];
	size_t		i;

	secmem_pool_enable();
	for (i = 0; i < 5000; i++)
		assert_int_equal(secbuf_append(&b, "0123456789", 10), 0);
	assert_true(b.cap >= 50000);
	assert_int_equal(map_flags(b.data, flags, sizeof(flags)), 0);
	assert_non_null(strstr(flags, " dd"));
	secbuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_secbuf_uses_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
