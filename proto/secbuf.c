/*
 * secbuf: growable buffers that never leave a copy of their contents
 * behind.  Used for request bytes, decrypted values and packed replies.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "secbuf.h"

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

int
secbuf_reserve(struct secbuf *b, size_t extra)
{
	size_t	 need, ncap;
	uint8_t	*n;

	if (extra > SIZE_MAX - b->len)
		return -CB_EINTERNAL;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -CB_EINTERNAL;
		ncap *= 2;
	}
	if ((n = malloc(ncap)) == NULL)
		return -CB_EINTERNAL;
	if (b->len > 0)
		memcpy(n, b->data, b->len);
	if (b->data != NULL) {
		cb_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = n;
	b->cap = ncap;
	return 0;
}

int
secbuf_append(struct secbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (secbuf_reserve(b, n) != 0)
		return -CB_EINTERNAL;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void
secbuf_consume(struct secbuf *b, size_t n)
{
	if (n >= b->len) {
		secbuf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	cb_wipe(b->data + (b->len - n), n);
	b->len -= n;
}

void
secbuf_reset(struct secbuf *b)
{
	cb_wipe(b->data, b->len);
	b->len = 0;
}

void
secbuf_free(struct secbuf *b)
{
	if (b->data != NULL) {
		cb_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

int
secbuf_msgpack_write(void *data, const char *buf, size_t len)
{
	return secbuf_append(data, buf, len) == 0 ? 0 : -1;
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
