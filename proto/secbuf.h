/*
 * secbuf: a growable byte buffer for anything that may hold a secret.
 *
 * Growth allocates a new block, copies, and wipes the old block before
 * freeing it (realloc would leave the old copy behind).  secbuf_free() and
 * secbuf_reset() wipe with OPENSSL_cleanse.  A msgpack write callback is
 * provided so that secret-bearing replies are packed straight into one.
 */
#ifndef CB_SECBUF_H
#define CB_SECBUF_H

#include <stddef.h>
#include <stdint.h>

struct secbuf {
	uint8_t	*data;
	size_t	 len;
	size_t	 cap;
};

#define SECBUF_INIT { NULL, 0, 0 }

/*
 * Locked memory for secrets.  Off by default (plain malloc, still wiped);
 * the daemon turns it on at start-up, before any secbuf exists.
 * secmem_alloc returns at least n bytes and their real size in *cap;
 * secmem_free wipes cap bytes and releases them.
 */
void	 secmem_pool_enable(void);
void	*secmem_alloc(size_t n, size_t *cap);
void	 secmem_free(void *p, size_t cap);
/* Bytes of pool memory locked, and mapped but not lockable. */
void	 secmem_pool_stats(size_t *locked, size_t *unlocked);

/* Make room for at least extra more bytes; 0 or -CB_EINTERNAL. */
int	 secbuf_reserve(struct secbuf *b, size_t extra);
/* Append n bytes; 0 or -CB_EINTERNAL. */
int	 secbuf_append(struct secbuf *b, const void *p, size_t n);
/* Drop the first n bytes, wiping what moves and what is left behind. */
void	 secbuf_consume(struct secbuf *b, size_t n);
/* Wipe the contents and set len to 0, keeping the allocation. */
void	 secbuf_reset(struct secbuf *b);
/* Wipe and free everything. */
void	 secbuf_free(struct secbuf *b);
/* msgpack_packer write callback; data is a struct secbuf *. */
int	 secbuf_msgpack_write(void *data, const char *buf, size_t len);
/* Wipe n bytes at p (OPENSSL_cleanse); p may be NULL when n is 0. */
void	 cb_wipe(void *p, size_t n);
/* Bytes of stack wiped by cb_stack_scrub(). */
#define CB_STACK_SCRUB	(32 * 1024)
/* Wipe CB_STACK_SCRUB bytes of stack below the caller's frame. */
void	 cb_stack_scrub(void);
/* Wipe a NUL-terminated string and free it; NULL is fine. */
void	 cb_strfree_wipe(char *s);

#endif
