/*
 * seal: the master key and AES-GCM sealing of values at rest (SPEC
 * section 3).  This is the only file that holds the master key or turns a
 * stored value back into plaintext.
 *
 * The key lives in a page of its own that is mlock'd and excluded from core
 * dumps (seal_key_alloc).  keyfile.c reads it and checks it against four
 * strength rules (seal_key_init), then hands it here (seal_key_derive),
 * and a sealing key is derived from it with HKDF-SHA256 so that the new
 * CB1 format never uses the master key directly.  The legacy GCM: format does use the master key directly, as
 * the source document defines it, and is only ever read.
 *
 * Wiping: every buffer that holds plaintext or key bytes is cleansed with
 * OPENSSL_cleanse on every path (one "goto done;" exit per function), and
 * no message ever contains key bytes, plaintext or the stored text itself
 * (a corrupt row may well be a plaintext secret stored by mistake).
 */
#include <sys/mman.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cb_error.h"
#include "seal.h"
#include "secbuf.h"

#define SEAL_KCV_LEN		16	/* bytes of HKDF output in the KCV */
#define SEAL_OVERHEAD		(SEAL_NONCE_LEN + SEAL_TAG_LEN)

#define SEAL_INFO_SEAL		"credbroker seal v1"
#define SEAL_INFO_KCV		"credbroker key check v1"
#define SEAL_AAD_PREFIX		"credbroker/1"

/* HKDF-SHA256 (no salt) of key with info into out[outlen]; 0 or -1. */
static int
seal_hkdf(const uint8_t *key, size_t keylen, const char *info, uint8_t *out,
    size_t outlen)
{
	static char	 digest[] = "SHA256";
	EVP_KDF		*kdf = NULL;
	EVP_KDF_CTX	*kctx = NULL;
	OSSL_PARAM	 params[4];
	int		 r = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		goto done;
	if ((kctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto done;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    digest, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)key, keylen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)info, strlen(info));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) <= 0)
		goto done;
	r = 0;
 done:
	if (r != 0) {
		cb_wipe(out, outlen);
		ERR_clear_error();
	}
	EVP_KDF_CTX_free(kctx);		/* cleanses its copy of the key */
	EVP_KDF_free(kdf);
	return r;
}

/* Size of the mapping that holds a struct seal_key: whole pages. */
static size_t
seal_key_mapsize(void)
{
	long	pg = sysconf(_SC_PAGESIZE);
	size_t	psz = pg > 0 ? (size_t)pg : 4096;

	return (sizeof(struct seal_key) + psz - 1) / psz * psz;
}

/* A zeroed struct seal_key in its own locked, undumpable mapping. */
struct seal_key *
seal_key_alloc(void)
{
	size_t	 sz = seal_key_mapsize();
	void	*p;

	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/*
	 * mlock fails with EPERM or ENOMEM under a small RLIMIT_MEMLOCK (or
	 * in some containers).  The key is still usable and MADV_DONTDUMP
	 * still keeps it out of core dumps, so carry on quietly rather than
	 * refuse to start.
	 */
	(void)mlock(p, sz);
	(void)madvise(p, sz, MADV_DONTDUMP);
	return p;				/* anonymous pages are zeroed */
}

/* Wipe, unlock and unmap a key from seal_key_alloc; NULL is fine. */
void
seal_key_free(struct seal_key *k)
{
	size_t	sz = seal_key_mapsize();

	if (k == NULL)
		return;
	cb_wipe(k, sizeof(*k));
	(void)munlock(k, sz);
	(void)munmap(k, sz);
}

/*
 * Copy an accepted key into k and derive the sealing key from it.  Which
 * keys are acceptable is keyfile.c's to say (seal_key_init); this only
 * refuses what the cipher cannot take.
 */
int
seal_key_derive(struct seal_key *k, const uint8_t *key, size_t len,
    uint32_t version, struct cb_error *err)
{
	int	r;

	if (len != 16 && len != 24 && len != 32) {
		r = cb_error_set(err, CB_EBADREQ, "master key must be 16, 24 "
		    "or 32 bytes long (got %zu)", len);
		goto done;
	}
	memcpy(k->master, key, len);
	k->len = len;
	k->version = version;
	if (seal_hkdf(k->master, k->len, SEAL_INFO_SEAL, k->sealkey,
	    k->len) != 0) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "could not derive the sealing key from the master key");
		goto done;
	}
	r = 0;
 done:
	if (r != 0)
		cb_wipe(k, sizeof(*k));
	return r;
}

/* "kcv1:" + hex of HKDF-SHA256(master, "credbroker key check v1", 16). */
int
seal_kcv(const struct seal_key *k, char out[SEAL_KCV_MAX],
    struct cb_error *err)
{
	static const char	hex[] = "0123456789abcdef";
	uint8_t			kcv[SEAL_KCV_LEN];
	char			*p;
	size_t			i;
	int			r;

	if (k == NULL || out == NULL || k->len == 0) {
		r = cb_error_set(err, CB_EINTERNAL, "no master key loaded");
		goto done;
	}
	if (seal_hkdf(k->master, k->len, SEAL_INFO_KCV, kcv,
	    sizeof(kcv)) != 0) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "could not compute the key check value");
		goto done;
	}
	p = out;
	memcpy(p, "kcv1:", 5);
	p += 5;
	for (i = 0; i < sizeof(kcv); i++) {
		*p++ = hex[kcv[i] >> 4];
		*p++ = hex[kcv[i] & 0x0f];
	}
	*p = '\0';
	r = 0;
 done:
	cb_wipe(kcv, sizeof(kcv));
	return r;
}

/*
 * The cipher for a key of len bytes, or NULL.  Fetched from the provider
 * once and kept: EVP_aes_256_gcm() would make every EVP_*Init_ex do an
 * implicit fetch, with its lookups and locks, for every value opened.
 */
static const EVP_CIPHER *
seal_cipher(size_t len)
{
	static EVP_CIPHER	*fetched[3];
	static const char *const names[3] = {
		"AES-128-GCM", "AES-192-GCM", "AES-256-GCM"
	};
	size_t			 i;

	if (len != 16 && len != 24 && len != 32)
		return NULL;
	i = (len - 16) / 8;
	if (fetched[i] == NULL)
		fetched[i] = EVP_CIPHER_fetch(NULL, names[i], NULL);
	return fetched[i];
}

/*
 * AES-GCM encrypt pt into out = nonce || ct || tag (ptlen + SEAL_OVERHEAD
 * bytes) with a fresh random nonce; 0 or -1.
 */
static int
seal_gcm_encrypt(const uint8_t *key, size_t keylen, const uint8_t *aad,
    size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	const EVP_CIPHER	*cipher;
	EVP_CIPHER_CTX		*ctx = NULL;
	uint8_t			*nonce = out, *ct = out + SEAL_NONCE_LEN;
	int			 n, r = -1;

	if ((cipher = seal_cipher(keylen)) == NULL ||
	    ptlen > INT_MAX || aadlen > INT_MAX)
		goto done;
	if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1)
		goto done;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto done;
	if (aadlen > 0 &&
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto done;
	if (ptlen > 0 &&
	    (EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1 ||
	    (size_t)n != ptlen))
		goto done;
	if (EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 || n != 0)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
	    ct + ptlen) != 1)
		goto done;
	r = 0;
 done:
	if (r != 0)
		ERR_clear_error();
	EVP_CIPHER_CTX_free(ctx);	/* cleanses the key schedule */
	return r;
}

/*
 * AES-GCM decrypt in = nonce || ct || tag into pt (inlen - SEAL_OVERHEAD
 * bytes) and check the tag; 0 or -1.  On failure pt is wiped: GCM
 * decrypts before it authenticates, so pt holds unauthenticated plaintext.
 */
static int
seal_gcm_decrypt(const uint8_t *key, size_t keylen, const uint8_t *aad,
    size_t aadlen, const uint8_t *in, size_t inlen, uint8_t *pt)
{
	const EVP_CIPHER	*cipher;
	EVP_CIPHER_CTX		*ctx = NULL;
	const uint8_t		*nonce = in, *ct = in + SEAL_NONCE_LEN;
	uint8_t			 tag[SEAL_TAG_LEN];
	size_t			 ctlen = 0;
	int			 n, r = -1;

	if ((cipher = seal_cipher(keylen)) == NULL || inlen < SEAL_OVERHEAD ||
	    inlen - SEAL_OVERHEAD > INT_MAX || aadlen > INT_MAX)
		goto done;
	ctlen = inlen - SEAL_OVERHEAD;
	memcpy(tag, ct + ctlen, SEAL_TAG_LEN);
	/*
	 * One initialisation with the key and the nonce: SEAL_NONCE_LEN is
	 * GCM's default IV length (checked after it), so no separate IV
	 * length step is needed for every value opened.
	 */
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1 ||
	    (size_t)EVP_CIPHER_CTX_get_iv_length(ctx) != SEAL_NONCE_LEN)
		goto done;
	if (aadlen > 0 &&
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto done;
	if (ctlen > 0 &&
	    (EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1 ||
	    (size_t)n != ctlen))
		goto done;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN,
	    tag) != 1)
		goto done;
	if (EVP_DecryptFinal_ex(ctx, pt + ctlen, &n) != 1 || n != 0)
		goto done;
	r = 0;
 done:
	if (r != 0) {
		cb_wipe(pt, ctlen);
		ERR_clear_error();
	}
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/* Room for the AAD of a two-uuid context without a malloc. */
#define SEAL_AAD_BUF	160

/* The value of each byte in the standard base64 alphabet; 0x80: none. */
static const uint8_t seal_b64tab[256] = {
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x3e, 0x80, 0x80, 0x80, 0x3f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b,
	0x3c, 0x3d, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
	0x17, 0x18, 0x19, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
	0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
	0x31, 0x32, 0x33, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

/* Room for a sealed value's bytes on the stack, the usual case. */
#define SEAL_RAW_BUF	512

/*
 * Strict standard base64 (RFC 4648 section 4, padded, no whitespace, zero
 * pad bits) of s into out, which has room for slen / 4 * 3 bytes; *outlenp
 * gets the bytes decoded.  0 or -1.  The alphabet and the pad bits are
 * checked here in one pass through a table; OpenSSL's EVP_DecodeBlock
 * decodes, which alone would skip surrounding whitespace and count
 * padding as output bytes.
 */
static int
seal_b64_decode(const char *s, size_t slen, uint8_t *out, size_t *outlenp)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i, pad = 0;
	uint8_t			 bad = 0;
	int			 n;

	*outlenp = 0;
	if (slen == 0 || slen % 4 != 0 || slen > INT_MAX)
		return -1;
	if (s[slen - 1] == '=')
		pad = s[slen - 2] == '=' ? 2 : 1;
	for (i = 0; i < slen - pad; i++)
		bad |= seal_b64tab[u[i]];
	if (bad & 0x80)
		return -1;
	/* The bits after the last byte must be zero (one encoding only). */
	if ((pad == 2 && (seal_b64tab[u[slen - 3]] & 0x0f) != 0) ||
	    (pad == 1 && (seal_b64tab[u[slen - 2]] & 0x03) != 0))
		return -1;
	n = EVP_DecodeBlock(out, u, (int)slen);
	if (n < 0 || (size_t)n != slen / 4 * 3)
		return -1;
	*outlenp = (size_t)n - pad;
	return 0;
}

/*
 * "credbroker/1|<keyver>|<context>": in buf when it fits (the usual case:
 * a context is two uuids), else in a malloc'd *heap.  *aadp points at
 * the result; 0 or -1.  Written by hand: this runs for every value.
 */
static int
seal_make_aad(uint32_t keyver, const char *context, char *buf, size_t bufsz,
    char **heap, const char **aadp, size_t *aadlenp)
{
	char	 num[10], *p;
	size_t	 nlen = 0, clen, n;

	*heap = NULL;
	do {
		num[sizeof(num) - ++nlen] = (char)('0' + keyver % 10);
		keyver /= 10;
	} while (keyver > 0);
	clen = strlen(context);
	n = sizeof(SEAL_AAD_PREFIX) - 1 + 1 + nlen + 1 + clen;
	if (n < bufsz)
		p = buf;
	else if ((p = *heap = malloc(n + 1)) == NULL)
		return -1;
	*aadp = p;
	*aadlenp = n;
	memcpy(p, SEAL_AAD_PREFIX "|", sizeof(SEAL_AAD_PREFIX));
	p += sizeof(SEAL_AAD_PREFIX);
	memcpy(p, num + sizeof(num) - nlen, nlen);
	p += nlen;
	*p++ = '|';
	memcpy(p, context, clen + 1);
	return 0;
}

/* Seal pt as "CB1:<keyver>:<base64>" bound to context. */
int
seal_seal(const struct seal_key *k, const char *context, const uint8_t *pt,
    size_t ptlen, char **out, struct cb_error *err)
{
	char		 prefix[32], aadbuf[SEAL_AAD_BUF], *aadheap = NULL;
	char		*text = NULL;
	const char	*aad = NULL;
	uint8_t		*raw = NULL;
	size_t		 aadlen = 0, rawlen, b64len, prelen;
	int		 r;

	if (out != NULL)
		*out = NULL;
	if (k == NULL || k->len == 0 || context == NULL || out == NULL ||
	    (pt == NULL && ptlen != 0)) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "cannot seal: no key, context or output given");
		goto done;
	}
	/* Keep every length within int for the EVP calls. */
	if (ptlen > (size_t)INT_MAX / 4 * 3 - SEAL_OVERHEAD - 64) {
		r = cb_error_set(err, CB_EBADREQ, "value is too large to seal");
		goto done;
	}
	if (seal_make_aad(k->version, context, aadbuf, sizeof(aadbuf),
	    &aadheap, &aad, &aadlen) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	rawlen = ptlen + SEAL_OVERHEAD;
	if ((raw = malloc(rawlen)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (seal_gcm_encrypt(k->sealkey, k->len, (const uint8_t *)aad, aadlen,
	    pt, ptlen, raw) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not seal value");
		goto done;
	}
	prelen = (size_t)snprintf(prefix, sizeof(prefix), "CB1:%u:",
	    k->version);
	b64len = (rawlen + 2) / 3 * 4;
	if ((text = malloc(prelen + b64len + 1)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	memcpy(text, prefix, prelen);
	EVP_EncodeBlock((unsigned char *)text + prelen, raw, (int)rawlen);
	text[prelen + b64len] = '\0';
	*out = text;
	text = NULL;
	r = 0;
 done:
	free(text);
	free(raw);			/* nonce, ciphertext and tag only */
	free(aadheap);
	return r;
}

/*
 * Parse the "<keyver>:" after "CB1:" at s: decimal, 1 to UINT32_MAX, no
 * sign or leading zero.  Sets *keyver and *endp past the ':'; 0 or -1.
 */
int
seal_parse_keyver(const char *s, uint32_t *keyver, const char **endp)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i >= 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || s[0] == '0' || s[i] != ':' || v > UINT32_MAX)
		return -1;
	*keyver = (uint32_t)v;
	*endp = s + i + 1;
	return 0;
}

/* Open a GCM: or CB1: value, appending the plaintext to out. */
int
seal_open(const struct seal_key *k, const char *context, const char *text,
    struct secbuf *out, struct cb_error *err)
{
	const uint8_t	*key;
	const char	*b64, *aad = NULL;
	char		 aadbuf[SEAL_AAD_BUF], *aadheap = NULL;
	uint8_t		 rawbuf[SEAL_RAW_BUF], *raw, *rawheap = NULL;
	size_t		 aadlen = 0, rawlen = 0, ptlen = 0, b64len;
	uint32_t	 keyver;
	int		 r;

	if (k == NULL || k->len == 0 || text == NULL || out == NULL) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "cannot open sealed value: no key, value or output given");
		goto done;
	}
	if (strncmp(text, "GCM:", 4) == 0) {
		key = k->master;
		b64 = text + 4;
	} else if (strncmp(text, "CB1:", 4) == 0) {
		if (seal_parse_keyver(text + 4, &keyver, &b64) != 0) {
			r = cb_error_set(err, CB_EINTERNAL,
			    "cannot open sealed value: malformed key version");
			goto done;
		}
		if (keyver != k->version) {
			r = cb_error_set(err, CB_EINTERNAL,
			    "cannot open sealed value: it was sealed with key "
			    "version %u, broker has %u", keyver, k->version);
			goto done;
		}
		if (context == NULL) {
			r = cb_error_set(err, CB_EINTERNAL,
			    "cannot open sealed value: no context given");
			goto done;
		}
		if (seal_make_aad(keyver, context, aadbuf, sizeof(aadbuf),
		    &aadheap, &aad, &aadlen) != 0) {
			r = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		key = k->sealkey;
	} else {
		r = cb_error_set(err, CB_EINTERNAL,
		    "cannot open sealed value: unknown format (expected a "
		    "GCM: or CB1: prefix)");
		goto done;
	}
	b64len = strlen(b64);
	if (b64len / 4 * 3 <= sizeof(rawbuf))
		raw = rawbuf;
	else if ((raw = rawheap = malloc(b64len / 4 * 3)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (seal_b64_decode(b64, b64len, raw, &rawlen) != 0) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "cannot open sealed value: not valid base64");
		goto done;
	}
	if (rawlen < SEAL_OVERHEAD) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "cannot open sealed value: too short");
		goto done;
	}
	ptlen = rawlen - SEAL_OVERHEAD;
	/* Decrypted straight into out: no other copy of the plaintext. */
	if (secbuf_reserve(out, ptlen > 0 ? ptlen : 1) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (seal_gcm_decrypt(key, k->len, (const uint8_t *)aad, aadlen, raw,
	    rawlen, out->data + out->len) != 0) {
		r = cb_error_set(err, CB_EINTERNAL,
		    "sealed value could not be opened: authentication failed "
		    "(wrong master key, or the value was altered or belongs "
		    "to another owner)");
		goto done;
	}
	out->len += ptlen;
	r = 0;
 done:
	free(rawheap);			/* nonce, ciphertext and tag only */
	free(aadheap);
	return r;
}
