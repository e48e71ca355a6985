/*
 * keep: blocks of one size kept for reuse on the loop's thread, for the
 * structures made and ended once per call that are too large for
 * malloc's per-thread cache (a call, a substitution): taking one from
 * malloc's bins and giving it back costs several hundred instructions.
 * A kept block must hold nothing of its own (its owner wipes and frees
 * what it points to first); it is zeroed again before reuse, and poisoned
 * while kept under AddressSanitizer, so that a use after its end is
 * still caught.  Up to KEEP_MAX blocks, as many as a burst of pipelined
 * requests makes; the rest go back to malloc.
 */
#ifndef CB_KEEP_H
#define CB_KEEP_H

#include <stdlib.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n)		((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n)	((void)(p), (void)(n))
#endif

#define KEEP_MAX	1024

struct keep {
	void	*kept[KEEP_MAX];
	size_t	 n;
};

/* A zeroed block of size bytes, as calloc gives; NULL when out of memory. */
static inline void *
keep_take(struct keep *k, size_t size)
{
	void	*p;

	if (k->n == 0)
		return calloc(1, size);
	p = k->kept[--k->n];
	ASAN_UNPOISON_MEMORY_REGION(p, size);
	memset(p, 0, size);
	return p;
}

/* End the block p of size bytes. */
static inline void
keep_put(struct keep *k, void *p, size_t size)
{
	if (k->n < KEEP_MAX) {
		ASAN_POISON_MEMORY_REGION(p, size);
		k->kept[k->n++] = p;
	} else
		free(p);
}

/* At shutdown: give every kept block of size bytes back. */
static inline void
keep_release(struct keep *k, size_t size)
{
	while (k->n > 0) {
		void	*p = k->kept[--k->n];

		ASAN_UNPOISON_MEMORY_REGION(p, size);
		free(p);
	}
}

#endif
