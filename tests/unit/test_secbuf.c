/*
 * Unit tests for the locked pool behind secbufs (proto/secbuf.c): blocks
 * come from memory that is locked and kept out of core dumps, are wiped
 * when freed, and are reused up to a low-water mark, above which they go
 * back to the system; memory that cannot be locked is refused.  (secbuf's
 * own growth and wiping are tested in test_proto.c.)
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* No byte of the block at p (cap bytes) past its free-list link is 0x5a. */
static void
assert_block_clean(const unsigned char *p, size_t cap)
{
	size_t	i;

	for (i = sizeof(void *); i < cap; i++)
		if (p[i] == 0x5a)
			fail_msg("byte %zu of %zu left unwiped", i, cap);
}

/*
 * Only the used part of a buffer is wiped on free, and that is enough:
 * whatever was written, through append, a reserve-and-write that never
 * set len (an error path), a kernel read through secbuf_tail/commit, or
 * bytes moved by consume, is gone when the block is back in the pool.
 */
static void
test_secbuf_wipes_what_was_used(void **state)
{
	struct secbuf	 b = SECBUF_INIT;
	unsigned char	 chunk[300], *blk, *q;
	size_t		 cap, cap2;

	secmem_pool_enable();
	memset(chunk, 0x5a, sizeof(chunk));

	/* A read buffer: big free tail, 300 bytes received, all consumed. */
	assert_int_equal(secbuf_tail(&b, 64 * 1024), 0);
	assert_true(b.cap >= 64 * 1024);
	assert_int_equal(b.dirty, 0);
	memcpy(b.data, chunk, sizeof(chunk));
	secbuf_commit(&b, sizeof(chunk));
	secbuf_consume(&b, 100);
	assert_int_equal(b.len, 200);
	secbuf_consume(&b, 200);
	assert_int_equal(b.len, 0);
	assert_block_clean(b.data, b.cap);

	/* A writer that reserved and wrote, then failed before setting len. */
	assert_int_equal(secbuf_reserve(&b, 250), 0);
	memcpy(b.data, chunk, 250);
	assert_int_equal(b.dirty, 250);
	blk = b.data;
	cap = b.cap;
	secbuf_free(&b);
	assert_block_clean(blk, cap);
	/* The same block comes back for the next buffer of its class. */
	q = secmem_alloc(cap, &cap2);
	assert_ptr_equal(q, blk);
	secmem_free(q, cap2);

	/* Growth wipes the old block as far as it was written. */
	assert_int_equal(secbuf_append(&b, chunk, 200), 0);
	blk = b.data;
	cap = b.cap;
	assert_int_equal(secbuf_reserve(&b, 4000), 0);
	assert_ptr_not_equal(b.data, blk);
	assert_block_clean(blk, cap);
	assert_int_equal(b.len, 200);
	assert_memory_equal(b.data, chunk, 200);
	secbuf_reset(&b);
	assert_int_equal(b.dirty, 0);
	assert_block_clean(b.data, b.cap);
	secbuf_free(&b);
}

/*
 * Appends that fit the room a buffer already has (the common case of a
 * reply packed piece by piece) are wiped like any other: after a reset,
 * after a consume, and when the buffer is freed, also when the caller
 * has cut them off by setting len back.
 */
static void
test_secbuf_append_into_room_is_wiped(void **state)
{
	struct secbuf	 b = SECBUF_INIT;
	unsigned char	 chunk[300], *blk;
	size_t		 cap, i;

	(void)state;
	secmem_pool_enable();
	memset(chunk, 0x5a, sizeof(chunk));

	assert_int_equal(secbuf_reserve(&b, sizeof(chunk)), 0);
	secbuf_reset(&b);
	assert_true(b.cap >= sizeof(chunk));
	/* Small pieces into the room there is, as msgpack packs them. */
	for (i = 0; i < sizeof(chunk); i += 3)
		assert_int_equal(secbuf_append(&b, chunk + i, 3), 0);
	assert_int_equal(b.len, sizeof(chunk));
	secbuf_reset(&b);
	assert_block_clean(b.data, b.cap);

	assert_int_equal(secbuf_append(&b, chunk, 200), 0);
	secbuf_consume(&b, 150);
	assert_int_equal(secbuf_append(&b, chunk, 100), 0);
	secbuf_consume(&b, 150);
	assert_int_equal(b.len, 0);
	assert_block_clean(b.data, b.cap);

	/*
	 * A caller that drops what it appended by setting len back (an
	 * all-or-nothing writer) leaves the bytes for the free to wipe.
	 */
	assert_int_equal(secbuf_append(&b, chunk, 10), 0);
	assert_int_equal(secbuf_append(&b, chunk, 240), 0);
	b.len = 10;
	blk = b.data;
	cap = b.cap;
	secbuf_free(&b);
	assert_block_clean(blk, cap);
}

/*
 * Blocks of a page or more freed beyond SECMEM_KEEP bytes are unlocked and
 * unmapped: a burst of large buffers does not keep its memory.
 */
static void
test_pool_returns_blocks_above_low_water(void **state)
{
	enum { NBLK = 64, BLK = 256 * 1024 };
	unsigned char	*blk[NBLK];
	size_t		 cap[NBLK], before, during, after, unlocked, i;

	secmem_pool_enable();
	secmem_pool_stats(&before, &unlocked);
	for (i = 0; i < NBLK; i++) {
		blk[i] = secmem_alloc(BLK, &cap[i]);
		assert_non_null(blk[i]);
		memset(blk[i], 0x5a, cap[i]);
	}
	secmem_pool_stats(&during, &unlocked);
	assert_true(during >= before + (NBLK - 16) * (size_t)BLK);
	for (i = 0; i < NBLK; i++)
		secmem_free(blk[i], cap[i]);
	secmem_pool_stats(&after, &unlocked);
	assert_true(after <= before + SECMEM_KEEP);
	assert_true(after < during);

	/* What is kept is reused, and is clean. */
	blk[0] = secmem_alloc(BLK, &cap[0]);
	assert_non_null(blk[0]);
	assert_block_clean(blk[0], cap[0]);
	secmem_free(blk[0], cap[0]);
}

static int	lock_failures;
static size_t	lock_failure_locked;

static void
count_lock_failure(size_t locked)
{
	lock_failures++;
	lock_failure_locked = locked;
}

/*
 * In a child limited by RLIMIT_MEMLOCK (and without CAP_IPC_LOCK): the
 * pool gives out what it can lock, then fails instead of handing out
 * unlocked memory, and reports the first failure once.  Returns a code
 * that says which check failed.  The pool must be untouched when the child
 * starts: locks are not inherited across fork.
 */
static int
lock_limit_child(void)
{
	struct rlimit	 rl = { 256 * 1024, 256 * 1024 };
	unsigned char	*blk[32], *p;
	size_t		 cap[32], c, locked, unlocked;
	int		 i, n = 0;

	if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		return 10;
	if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
		return 11;
	secmem_pool_on_lock_failure(count_lock_failure);
	secmem_pool_enable();
	for (i = 0; i < 32; i++) {
		if ((blk[i] = secmem_alloc(64 * 1024, &cap[i])) == NULL)
			break;
		n++;
	}
	if (n == 0 || n == 32)
		return 12;	/* nothing, or more than the limit, was given */
	secmem_pool_stats(&locked, &unlocked);
	if (unlocked != 0 || locked > 256 * 1024)
		return 13;
	if (lock_failures != 1 || lock_failure_locked != locked)
		return 14;
	/* Still refused, and not reported again. */
	if (secmem_alloc(64 * 1024, &c) != NULL || lock_failures != 1)
		return 15;
	/* A block given back can be handed out again. */
	n--;
	secmem_free(blk[n], cap[n]);
	if ((p = secmem_alloc(64 * 1024, &c)) == NULL)
		return 16;
	secmem_free(p, c);
	/* Blocks kept for reuse are given back to lock a new one. */
	n--;
	secmem_free(blk[n], cap[n]);
	if ((p = secmem_alloc(128 * 1024, &c)) == NULL)
		return 17;
	secmem_free(p, c);
	for (i = 0; i < n; i++)
		secmem_free(blk[i], cap[i]);
	return 0;
}

static void
test_pool_refuses_memory_it_cannot_lock(void **state)
{
	pid_t	pid;
	int	status;

#ifdef __SANITIZE_ADDRESS__
	skip();		/* ASan's mlock does nothing: no limit to hit */
#endif
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(lock_limit_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: its child must start from an untouched pool. */
		cmocka_unit_test(test_pool_refuses_memory_it_cannot_lock),
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_secbuf_uses_pool),
		cmocka_unit_test(test_secbuf_wipes_what_was_used),
		cmocka_unit_test(test_secbuf_append_into_room_is_wiped),
		cmocka_unit_test(test_pool_returns_blocks_above_low_water),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
