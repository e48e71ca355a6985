/*
 * secbuf: growable buffers that never leave a copy of their contents
 * behind.  Used for request bytes, decrypted values and packed replies.
 */
#include <sys/mman.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "secbuf.h"

/*
 * The locked pool.  When the daemon turns it on (secmem_pool_enable), the
 * memory of every secbuf comes from chunks that are mlock'ed (never
 * swapped) and marked MADV_DONTDUMP (never in a core dump).  mlockall is
 * not an option: it would lock SQLite's page cache and memory maps too.
 *
 * Blocks come in power-of-two classes from SECMEM_MIN to SECMEM_MAX bytes;
 * freed blocks (already wiped) go on a free list per class and are reused.
 * Blocks smaller than a page are cut from shared chunks, which are kept:
 * they hold a few KiB per connection at most.  A page or more (every read
 * buffer) gets a locked mapping of its own, and a freed one is kept for
 * reuse only while the pool keeps less than SECMEM_KEEP bytes of them;
 * the rest is unlocked and unmapped at once, so memory taken by a burst of
 * large messages goes back to the system when their connections are gone.
 * Blocks above SECMEM_MAX are never kept.
 *
 * Memory that cannot be locked (RLIMIT_MEMLOCK) is not used: the mapping
 * is undone and the allocation fails, so a secret never lands in memory
 * that may be swapped.  The caller sees an error (a connection whose read
 * buffer cannot grow is closed, a call whose reply cannot be packed gets
 * an error); the first failure is reported through the hook set with
 * secmem_pool_on_lock_failure.  Single-threaded, like the daemon's loop.
 */
#define SECMEM_MIN_SHIFT	6
#define SECMEM_MAX_SHIFT	20
#define SECMEM_MIN		((size_t)1 << SECMEM_MIN_SHIFT)
#define SECMEM_MAX		((size_t)1 << SECMEM_MAX_SHIFT)
#define SECMEM_CHUNK		((size_t)2 << 20)
#define SECMEM_PAGE		((size_t)4096)	/* own mapping from here up */
#define SECMEM_NCLASS		(SECMEM_MAX_SHIFT - SECMEM_MIN_SHIFT + 1)

struct secmem_free {
	struct secmem_free	*next;
};

static bool			 secmem_on;
static struct secmem_free	*secmem_lists[SECMEM_NCLASS];
static uint8_t			*secmem_cur, *secmem_end;
static size_t			 secmem_locked, secmem_unlocked;
static size_t			 secmem_kept;	/* mapped, on free lists */
static void			(*secmem_lock_hook)(size_t);
static bool			 secmem_lock_warned;
static bool			(*secmem_fail_hook)(size_t);

static void	secmem_trim(void);

/*
 * Map n bytes, locked and kept out of core dumps; NULL if the memory
 * cannot be locked, even after giving back the blocks kept for reuse.
 */
static void *
secmem_map(size_t n)
{
	void	*p;
	int	 rc;

	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, n, MADV_DONTDUMP);
	rc = mlock(p, n);
	if (rc != 0 && secmem_kept > 0) {
		/* The blocks kept for reuse count against the limit too. */
		secmem_trim();
		rc = mlock(p, n);
	}
	if (rc != 0) {
		(void)munmap(p, n);
		if (secmem_lock_hook != NULL && !secmem_lock_warned) {
			secmem_lock_warned = true;
			secmem_lock_hook(secmem_locked);
		}
		return NULL;
	}
	secmem_locked += n;
	return p;
}

/* Give a mapping of n bytes (already wiped) back to the system. */
static void
secmem_unmap(void *p, size_t n)
{
	(void)munlock(p, n);
	(void)munmap(p, n);
	secmem_locked -= n;
}

/* Class index for n bytes, n <= SECMEM_MAX. */
static unsigned
secmem_class(size_t n)
{
	unsigned	c = 0;

	while (((size_t)SECMEM_MIN << c) < n)
		c++;
	return c;
}

/* Give back every block of a page or more kept for reuse. */
static void
secmem_trim(void)
{
	struct secmem_free	*f;
	unsigned		 c;

	for (c = secmem_class(SECMEM_PAGE); c < SECMEM_NCLASS; c++)
		while ((f = secmem_lists[c]) != NULL) {
			secmem_lists[c] = f->next;
			secmem_unmap(f, SECMEM_MIN << c);
			secmem_kept -= SECMEM_MIN << c;
		}
}

void
secmem_pool_enable(void)
{
	secmem_on = true;
}

void
secmem_pool_on_lock_failure(void (*fn)(size_t))
{
	secmem_lock_hook = fn;
}

void
secmem_set_fail_hook(bool (*fn)(size_t))
{
	secmem_fail_hook = fn;
}

void
secmem_pool_stats(size_t *locked, size_t *unlocked)
{
	*locked = secmem_locked;
	*unlocked = secmem_unlocked;
}

void *
secmem_alloc(size_t n, size_t *cap)
{
	struct secmem_free	*f;
	unsigned		 c;
	size_t			 sz;
	void			*p;

	if (secmem_fail_hook != NULL && secmem_fail_hook(n))
		return NULL;
	if (!secmem_on) {
		*cap = n;
		return malloc(n);
	}
	if (n > SECMEM_MAX) {
		sz = (n + 4095) & ~(size_t)4095;
		if ((p = secmem_map(sz)) == NULL)
			return NULL;
		*cap = sz;
		return p;
	}
	c = secmem_class(n);
	sz = SECMEM_MIN << c;
	if ((f = secmem_lists[c]) != NULL) {
		secmem_lists[c] = f->next;
		f->next = NULL;
		if (sz >= SECMEM_PAGE)
			secmem_kept -= sz;
		*cap = sz;
		return f;
	}
	if (sz >= SECMEM_PAGE) {
		if ((p = secmem_map(sz)) == NULL)
			return NULL;
		*cap = sz;
		return p;
	}
	if ((size_t)(secmem_end - secmem_cur) < sz) {
		/* The rest of the old chunk is lost: less than a page. */
		if ((secmem_cur = secmem_map(SECMEM_CHUNK)) == NULL) {
			secmem_end = NULL;
			return NULL;
		}
		secmem_end = secmem_cur + SECMEM_CHUNK;
	}
	p = secmem_cur;
	secmem_cur += sz;
	*cap = sz;
	return p;
}

void
secmem_free(void *p, size_t cap)
{
	secmem_free_used(p, cap, cap);
}

void
secmem_free_used(void *p, size_t cap, size_t used)
{
	struct secmem_free	*f = p;
	unsigned		 c;

	if (p == NULL)
		return;
	if (used > cap)
		used = cap;
	if (used > 0)
		OPENSSL_cleanse(p, used);
	if (!secmem_on) {
		free(p);
		return;
	}
	if (cap > SECMEM_MAX) {
		secmem_unmap(p, cap);
		return;
	}
	if (cap >= SECMEM_PAGE) {
		if (secmem_kept + cap > SECMEM_KEEP) {
			secmem_unmap(p, cap);
			return;
		}
		secmem_kept += cap;
	}
	c = secmem_class(cap);
	f->next = secmem_lists[c];
	secmem_lists[c] = f;
}

void
cb_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		OPENSSL_cleanse(p, n);
}

void
cb_strfree_wipe(char *s)
{
	if (s == NULL)
		return;
	cb_wipe(s, strlen(s));
	free(s);
}

/* Bytes that may hold data: everything below the high-water mark. */
static size_t
secbuf_used(const struct secbuf *b)
{
	return b->dirty > b->len ? b->dirty : b->len;
}

/* Grow to hold need bytes; the old block is wiped as far as it was used. */
static int
secbuf_grow(struct secbuf *b, size_t need)
{
	size_t	 ncap;
	uint8_t	*n;

	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -CB_EINTERNAL;
		ncap *= 2;
	}
	if ((n = secmem_alloc(ncap, &ncap)) == NULL)
		return -CB_EINTERNAL;
	if (b->len > 0)
		memcpy(n, b->data, b->len);
	if (b->data != NULL)
		secmem_free_used(b->data, b->cap, secbuf_used(b));
	b->data = n;
	b->cap = ncap;
	b->dirty = b->len;
	return 0;
}

int
secbuf_reserve(struct secbuf *b, size_t extra)
{
	size_t	 need;

	if (extra > SIZE_MAX - b->len)
		return -CB_EINTERNAL;
	need = b->len + extra;
	if (secbuf_grow(b, need) != 0)
		return -CB_EINTERNAL;
	/* The caller may write anywhere up to need. */
	if (b->dirty < need)
		b->dirty = need;
	return 0;
}

int
secbuf_tail(struct secbuf *b, size_t min)
{
	if (min > SIZE_MAX - b->len)
		return -CB_EINTERNAL;
	return secbuf_grow(b, b->len + min);
}

void
secbuf_commit(struct secbuf *b, size_t n)
{
	b->len += n;
	if (b->dirty < b->len)
		b->dirty = b->len;
}

int
secbuf_append(struct secbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	/* Room already (most appends: msgpack packs in small pieces). */
	if (n <= b->cap - b->len) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		if (b->dirty < b->len)
			b->dirty = b->len;
		return 0;
	}
	if (secbuf_reserve(b, n) != 0)
		return -CB_EINTERNAL;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
secbuf_set_str(struct secbuf *b, const char *p, size_t n)
{
	secbuf_reset(b);
	if (p == NULL)
		return 0;
	if (n == SIZE_MAX || secbuf_reserve(b, n + 1) != 0)
		return -CB_EINTERNAL;
	if (n > 0)
		memcpy(b->data, p, n);
	b->data[n] = '\0';
	b->len = n + 1;
	return 0;
}

const char *
secbuf_str(const struct secbuf *b)
{
	return b->len > 0 ? (const char *)b->data : NULL;
}

void
secbuf_consume(struct secbuf *b, size_t n)
{
	size_t	used = secbuf_used(b);

	if (n >= b->len) {
		secbuf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	cb_wipe(b->data + b->len, used - b->len);
	b->dirty = b->len;
}

void
secbuf_reset(struct secbuf *b)
{
	cb_wipe(b->data, secbuf_used(b));
	b->len = b->dirty = 0;
	b->failed = false;
}

void
secbuf_free(struct secbuf *b)
{
	if (b->data != NULL)
		secmem_free_used(b->data, b->cap, secbuf_used(b));
	b->data = NULL;
	b->len = b->cap = b->dirty = 0;
	b->failed = false;
}

void
secbuf_move(struct secbuf *dst, struct secbuf *src)
{
	if (dst == src)
		return;
	secbuf_free(dst);
	*dst = *src;
	src->data = NULL;
	src->len = src->cap = src->dirty = 0;
	src->failed = false;
}

int
secbuf_msgpack_write(void *data, const char *buf, size_t len)
{
	struct secbuf	*b = data;

	if (b->failed)
		return -1;
	/* Room already: most pieces are a few bytes into a sized buffer. */
	if (len > 0 && len <= b->cap - b->len) {
		memcpy(b->data + b->len, buf, len);
		b->len += len;
		if (b->dirty < b->len)
			b->dirty = b->len;
		return 0;
	}
	if (secbuf_append(b, buf, len) != 0) {
		b->failed = true;
		return -1;
	}
	return 0;
}

bool
secbuf_failed(const struct secbuf *b)
{
	return b->failed;
}

/*
 * Wipe the stack below the caller.  Called after a call that handled a
 * secret: the frames it used are gone but their bytes are not, and
 * neither are registers spilled there by library code.
 */
__attribute__((noinline)) void
cb_stack_scrub(void)
{
	volatile unsigned char	buf[CB_STACK_SCRUB];

	OPENSSL_cleanse((void *)buf, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}
