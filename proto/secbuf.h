/*
 * secbuf: a growable byte buffer for anything that may hold a secret.
 *
 * Growth allocates a new block, copies, and wipes the old block before
 * freeing it (realloc would leave the old copy behind).  secbuf_free() and
 * secbuf_reset() wipe with OPENSSL_cleanse.  A msgpack write callback is
 * provided so that secret-bearing replies are packed straight into one.
 *
 * Only the bytes that may have been written are wiped, not the whole
 * allocation: dirty is the high-water mark of what secbuf_reserve() handed
 * out for writing (and of len), and every byte from there to cap is known
 * to hold nothing.  A 64 KiB read buffer that carried a 200-byte request
 * costs a 200-byte wipe, not a 64 KiB one.  Code that lets the kernel
 * write into the free tail (a socket read) uses secbuf_tail() and
 * secbuf_commit(), which mark only the bytes actually received.
 *
 * failed is sticky: once an append through the msgpack write callback
 * could not get memory, the buffer refuses every further write through
 * it, so a packed message is either whole or marked failed, never short.
 * secbuf_reset() and secbuf_free() clear it.
 */
#ifndef CB_SECBUF_H
#define CB_SECBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct secbuf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 dirty;		/* bytes [dirty, cap) never held data */
	bool	 failed;	/* a packed write did not fit: see above */
};

#define SECBUF_INIT { NULL, 0, 0, 0, false }

/*
 * Locked memory for secrets.  Off by default (plain malloc, still wiped);
 * the daemon turns it on at start-up, before any secbuf exists.
 * secmem_alloc returns at least n bytes and their real size in *cap;
 * secmem_free wipes cap bytes and releases them; secmem_free_used wipes
 * only the first used bytes, for a caller that knows the rest is clean.
 */
void	 secmem_pool_enable(void);
void	*secmem_alloc(size_t n, size_t *cap);
void	 secmem_free(void *p, size_t cap);
void	 secmem_free_used(void *p, size_t cap, size_t used);
/*
 * Bytes of pool memory locked, and mapped but not lockable (always 0:
 * memory that cannot be locked is refused, see secbuf.c).
 */
void	 secmem_pool_stats(size_t *locked, size_t *unlocked);
/*
 * fn is called, once, the first time pool memory cannot be locked, with
 * the bytes locked so far; the allocation that needed it fails.
 */
void	 secmem_pool_on_lock_failure(void (*fn)(size_t));
/*
 * For tests: fn, when set, is asked before every allocation and makes it
 * fail by returning true.  NULL (the default) turns it off.
 */
void	 secmem_set_fail_hook(bool (*fn)(size_t));
/* Bytes of freed blocks of a page or more kept for reuse. */
#define SECMEM_KEEP	((size_t)4 << 20)

/* Make room for at least extra more bytes; 0 or -CB_EINTERNAL. */
int	 secbuf_reserve(struct secbuf *b, size_t extra);
/*
 * Make room for at least min more bytes for a writer that reports how many
 * it wrote (a socket read): the free tail is not marked dirty until
 * secbuf_commit(b, n) adds the n bytes written to len.
 */
int	 secbuf_tail(struct secbuf *b, size_t min);
void	 secbuf_commit(struct secbuf *b, size_t n);
/* Append n bytes; 0 or -CB_EINTERNAL. */
int	 secbuf_append(struct secbuf *b, const void *p, size_t n);
/*
 * A secret string in a secbuf: the n bytes at p and a NUL (len is n + 1),
 * so that an empty string and no string differ.  p NULL: no string (the
 * buffer is emptied).  0 or -CB_EINTERNAL, the buffer emptied.
 */
int	 secbuf_set_str(struct secbuf *b, const char *p, size_t n);
/* The string set by secbuf_set_str, or NULL when there is none. */
const char *secbuf_str(const struct secbuf *b);
/* Drop the first n bytes, wiping what moves and what is left behind. */
void	 secbuf_consume(struct secbuf *b, size_t n);
/* Wipe the contents and set len to 0, keeping the allocation. */
void	 secbuf_reset(struct secbuf *b);
/* Wipe and free everything. */
void	 secbuf_free(struct secbuf *b);
/*
 * Hand src's contents to dst, which is wiped and freed first; src is left
 * empty.  The only way a buffer changes owner: no struct copies.
 */
void	 secbuf_move(struct secbuf *dst, struct secbuf *src);
/*
 * msgpack_packer write callback; data is a struct secbuf *.  A write that
 * cannot get memory sets the buffer's sticky failed flag; check it (or
 * secbuf_failed) before using what was packed.
 */
int	 secbuf_msgpack_write(void *data, const char *buf, size_t len);
/* Whether a write through secbuf_msgpack_write failed since the reset. */
bool	 secbuf_failed(const struct secbuf *b);
/* Wipe n bytes at p (OPENSSL_cleanse); p may be NULL when n is 0. */
void	 cb_wipe(void *p, size_t n);
/* Bytes of stack wiped by cb_stack_scrub(). */
#define CB_STACK_SCRUB	(64 * 1024)
/* Wipe CB_STACK_SCRUB bytes of stack below the caller's frame. */
void	 cb_stack_scrub(void);
/* Wipe a NUL-terminated string and free it; NULL is fine. */
void	 cb_strfree_wipe(char *s);

#endif
