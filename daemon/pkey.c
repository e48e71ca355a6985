/*
 * pkey: RSA key pairs and peer public keys (SPEC section 9) through
 * OpenSSL 3's EVP, encoder and decoder interfaces.
 *
 * A private key's PEM text is read by OpenSSL's PEM reader from a
 * read-only memory BIO over the caller's bytes (no copy); the reader
 * decodes the base64 into its secure heap, and the key's numbers live
 * there too once pkey_secure_heap_init has run.  The DER form of a
 * private key is encoded into a secure-heap memory BIO and copied into
 * the caller's wiping buffer.  Nothing here ever prompts for a pass
 * phrase, and no message contains key material or the PEM text.  Every
 * path leaves OpenSSL's error queue empty, so that nothing of one call
 * shows up in a later call's message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cb_error.h"
#include "log.h"
#include "pkey.h"
#include "secbuf.h"

#define PKEY_MSG_ENCRYPTED \
	"the key is encrypted; import it unencrypted " \
	"(openssl pkey -in KEY -out PLAIN)"

/* What the PEM labels of a text say, before anything is decoded. */
struct pkey_scan {
	int	privkeys;	/* blocks labelled "...PRIVATE KEY" */
	int	pubkeys;	/* blocks labelled "...PUBLIC KEY" */
	bool	encrypted;	/* encrypted (its label or Proc-Type) */
};

/* The first occurrence of the NUL-terminated needle in p[0..len), or NULL. */
static const char *
pkey_find(const char *p, size_t len, const char *needle)
{
	size_t	n = strlen(needle);

	if (n == 0 || len < n)
		return NULL;
	return memmem(p, len, needle, n);
}

/*
 * Count the key blocks of the PEM text pem[0..len) by their
 * "-----BEGIN <label>-----" lines, and notice an encrypted one.  Other
 * blocks (a certificate, EC parameters) and text around the blocks are
 * no concern of this scan.
 */
static void
pkey_scan_pem(const char *pem, size_t len, struct pkey_scan *sc)
{
	static const char	 begin[] = "-----BEGIN ";
	const char		*p = pem, *end = pem + len, *lab, *q;
	size_t			 n;

	memset(sc, 0, sizeof(*sc));
	if (pkey_find(pem, len, "Proc-Type: 4,ENCRYPTED") != NULL)
		sc->encrypted = true;
	while ((p = pkey_find(p, (size_t)(end - p), begin)) != NULL) {
		lab = p + sizeof(begin) - 1;
		if ((q = pkey_find(lab, (size_t)(end - lab), "-----")) == NULL)
			break;
		n = (size_t)(q - lab);
		if (memchr(lab, '\n', n) == NULL) {
			if (n >= 11 && memcmp(q - 11, "PRIVATE KEY", 11) == 0)
				sc->privkeys++;
			else if (n >= 10 &&
			    memcmp(q - 10, "PUBLIC KEY", 10) == 0)
				sc->pubkeys++;
			if (n == 21 && memcmp(lab, "ENCRYPTED PRIVATE KEY",
			    21) == 0)
				sc->encrypted = true;
		}
		p = q + 5;
	}
}

/* The pass-phrase callback: there is never a pass phrase to give. */
static int
pkey_nopass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * Refuse a key that is not RSA (naming its type; RSA-PSS-restricted keys
 * too) or whose modulus is outside PKEY_BITS_MIN..PKEY_BITS_MAX.
 */
static int
pkey_check(EVP_PKEY *k, struct cb_error *err)
{
	const char	*name;
	int		 bits;

	if (!EVP_PKEY_is_a(k, "RSA")) {
		name = EVP_PKEY_get0_type_name(k);
		if (name == NULL)
			return cb_error_set(err, CB_EBADREQ, "the key is not "
			    "an RSA key; only RSA keys are supported");
		/* "an EC key", "a DSA key", "an RSA-PSS key" */
		return cb_error_set(err, CB_EBADREQ, "the key is %s %s key; "
		    "only RSA keys are supported",
		    strchr("AEFHILMNORSX", name[0]) != NULL && name[0] != '\0' ?
		    "an" : "a", name);
	}
	bits = EVP_PKEY_get_bits(k);
	if (bits < PKEY_BITS_MIN || bits > PKEY_BITS_MAX)
		return cb_error_set(err, CB_EBADREQ, "the key is an RSA key of "
		    "%d bits; only %d to %d bits are supported", bits,
		    PKEY_BITS_MIN, PKEY_BITS_MAX);
	return 0;
}

/*
 * OpenSSL's ordinary heap, with a wipe before every free.  Its decoders
 * copy a private key's DER into ordinary heap buffers and free them
 * without a wipe (OpenSSL 3.0's der2key), so a key's numbers would
 * outlive the call that used them.  Wiping what OpenSSL frees closes
 * that, and every other such path, at once.  A realloc that moves a block
 * wipes the old one.
 */
static void *
pkey_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(n);
}

static void
pkey_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

static void *
pkey_realloc(void *p, size_t n, const char *file, int line)
{
	void	*q;
	size_t	 old;

	if (p == NULL)
		return pkey_malloc(n, file, line);
	if (n == 0) {
		pkey_free(p, file, line);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old);
	pkey_free(p, file, line);
	return q;
}

int
pkey_wipe_frees(struct cb_error *err)
{
	if (CRYPTO_set_mem_functions(pkey_malloc, pkey_realloc,
	    pkey_free) != 1)
		return cb_error_set(err, CB_EINTERNAL, "OpenSSL allocated "
		    "memory before its allocator could be set");
	return 0;
}

int
pkey_secure_heap_init(struct cb_error *err)
{
	static bool	done;
	int		r;

	if (done || CRYPTO_secure_malloc_initialized()) {
		done = true;
		return 0;
	}
	switch (CRYPTO_secure_malloc_init(PKEY_SECURE_HEAP, 32)) {
	case 1:
		break;
	case 2:
		log_warnx("OpenSSL's secure heap is set up but could not be "
		    "locked in memory (RLIMIT_MEMLOCK?): private keys may be "
		    "swapped out");
		break;
	default:
		r = cb_error_set(err, CB_EINTERNAL, "could not set up "
		    "OpenSSL's secure heap of %u bytes for private keys "
		    "(RLIMIT_MEMLOCK too low?)", PKEY_SECURE_HEAP);
		goto done;
	}
	done = true;
	r = 0;
 done:
	ERR_clear_error();
	return r;
}

int
pkey_generate(unsigned bits, EVP_PKEY **out, struct cb_error *err)
{
	EVP_PKEY	*k = NULL;
	int		 r;

	*out = NULL;
	if (bits < PKEY_BITS_MIN || bits > PKEY_BITS_MAX) {
		r = cb_error_set(err, CB_EBADREQ, "cannot generate an RSA key "
		    "of %u bits; only %d to %d bits are supported", bits,
		    PKEY_BITS_MIN, PKEY_BITS_MAX);
		goto done;
	}
	/* The default public exponent is 65537. */
	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "could not generate an RSA "
		    "key of %u bits", bits);
		goto done;
	}
	*out = k;
	k = NULL;
	r = 0;
 done:
	EVP_PKEY_free(k);
	ERR_clear_error();
	return r;
}

int
pkey_private_from_pem(const char *pem, size_t len, EVP_PKEY **out,
    struct cb_error *err)
{
	struct pkey_scan	 sc;
	OSSL_DECODER_CTX	*dctx = NULL;
	BIO			*bio = NULL;
	EVP_PKEY		*k = NULL;
	unsigned char		*der = NULL;
	const unsigned char	*p;
	char			*name = NULL;
	long			 derlen = 0;
	size_t			 n;
	int			 r;

	*out = NULL;
	if (len > PKEY_PEM_MAX) {
		r = cb_error_set(err, CB_ETOOLARGE, "the key text is %zu "
		    "bytes; at most %d are accepted", len, PKEY_PEM_MAX);
		goto done;
	}
	pkey_scan_pem(pem, len, &sc);
	if (sc.encrypted) {
		r = cb_error_set(err, CB_EBADREQ, PKEY_MSG_ENCRYPTED);
		goto done;
	}
	if (sc.privkeys + sc.pubkeys > 1) {
		r = cb_error_set(err, CB_EBADREQ, "the text holds more than "
		    "one key; give one private key");
		goto done;
	}
	if (sc.privkeys == 0) {
		r = cb_error_set(err, CB_EBADREQ, sc.pubkeys > 0 ?
		    "the text is a public key; give the private key (PEM "
		    "\"PRIVATE KEY\" or \"RSA PRIVATE KEY\")" :
		    "the text is not a PEM private key (\"PRIVATE KEY\" or "
		    "\"RSA PRIVATE KEY\")");
		goto done;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	/*
	 * The base64 is decoded into the secure heap (and wiped from it),
	 * then the DER is decoded from there: PEM_read_bio_PrivateKey_ex
	 * would decode it through ordinary heap buffers that are freed
	 * without a wipe, leaving the key's numbers behind.
	 */
	if (PEM_bytes_read_bio_secmem(&der, &derlen, &name,
	    PEM_STRING_EVP_PKEY, bio, pkey_nopass, NULL) != 1 || derlen <= 0) {
		r = cb_error_set(err, CB_EBADREQ, "the text is not a valid PEM "
		    "private key");
		goto done;
	}
	dctx = OSSL_DECODER_CTX_new_for_pkey(&k, "DER", NULL, NULL,
	    EVP_PKEY_KEYPAIR, NULL, NULL);
	p = der;
	n = (size_t)derlen;
	if (dctx == NULL || OSSL_DECODER_from_data(dctx, &p, &n) != 1 ||
	    k == NULL) {
		r = cb_error_set(err, CB_EBADREQ, "the text is not a valid PEM "
		    "private key");
		goto done;
	}
	if ((r = pkey_check(k, err)) != 0)
		goto done;
	*out = k;
	k = NULL;
	r = 0;
 done:
	EVP_PKEY_free(k);
	OSSL_DECODER_CTX_free(dctx);
	if (der != NULL)
		OPENSSL_secure_clear_free(der, (size_t)derlen);
	OPENSSL_secure_free(name);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/*
 * A PKCS#1 "RSA PUBLIC KEY" block: PEM_read_bio_PUBKEY_ex reads only
 * SubjectPublicKeyInfo, so this asks the decoder for RSA's own structure.
 */
static EVP_PKEY *
pkey_rsa_public_from_pem(const char *pem, size_t len)
{
	OSSL_DECODER_CTX	*dctx = NULL;
	EVP_PKEY		*k = NULL;
	const unsigned char	*p = (const unsigned char *)pem;
	size_t			 n = len;

	dctx = OSSL_DECODER_CTX_new_for_pkey(&k, "PEM", "type-specific",
	    "RSA", EVP_PKEY_PUBLIC_KEY, NULL, NULL);
	if (dctx == NULL)
		return NULL;
	if (OSSL_DECODER_from_data(dctx, &p, &n) != 1) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	OSSL_DECODER_CTX_free(dctx);
	return k;
}

int
pkey_public_from_pem(const char *pem, size_t len, EVP_PKEY **out,
    struct cb_error *err)
{
	struct pkey_scan	 sc;
	BIO			*bio = NULL;
	EVP_PKEY		*k = NULL;
	int			 r;

	*out = NULL;
	if (len > PKEY_PEM_MAX) {
		r = cb_error_set(err, CB_ETOOLARGE, "the key text is %zu "
		    "bytes; at most %d are accepted", len, PKEY_PEM_MAX);
		goto done;
	}
	pkey_scan_pem(pem, len, &sc);
	if (sc.privkeys + sc.pubkeys > 1) {
		r = cb_error_set(err, CB_EBADREQ, "the text holds more than "
		    "one key; give one public key");
		goto done;
	}
	if (sc.privkeys > 0 || sc.encrypted) {
		r = cb_error_set(err, CB_EBADREQ, "the text is a private key; "
		    "a peer key is public: give its PEM \"PUBLIC KEY\" "
		    "(openssl pkey -in KEY -pubout)");
		goto done;
	}
	if (sc.pubkeys == 0) {
		r = cb_error_set(err, CB_EBADREQ, "the text is not a PEM "
		    "public key (\"PUBLIC KEY\" or \"RSA PUBLIC KEY\")");
		goto done;
	}
	if (pkey_find(pem, len, "-----BEGIN RSA PUBLIC KEY-----") != NULL)
		k = pkey_rsa_public_from_pem(pem, len);
	else {
		if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
			r = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		k = PEM_read_bio_PUBKEY_ex(bio, NULL, pkey_nopass, NULL, NULL,
		    NULL);
	}
	if (k == NULL) {
		r = cb_error_set(err, CB_EBADREQ, "the text is not a valid PEM "
		    "public key");
		goto done;
	}
	if ((r = pkey_check(k, err)) != 0)
		goto done;
	*out = k;
	k = NULL;
	r = 0;
 done:
	EVP_PKEY_free(k);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
pkey_private_der(EVP_PKEY *k, struct secbuf *out, struct cb_error *err)
{
	OSSL_ENCODER_CTX	*ectx = NULL;
	BIO			*bio = NULL;
	BUF_MEM			*mem = NULL;
	int			 r;

	/* A memory BIO on the secure heap: freed with a wipe. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	ectx = OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_KEYPAIR, "DER",
	    "PrivateKeyInfo", NULL);
	if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 ||
	    OSSL_ENCODER_to_bio(ectx, bio) != 1 ||
	    BIO_get_mem_ptr(bio, &mem) <= 0 || mem == NULL ||
	    mem->length == 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not encode the "
		    "private key");
		goto done;
	}
	if (secbuf_append(out, mem->data, mem->length) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	r = 0;
 done:
	OSSL_ENCODER_CTX_free(ectx);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
pkey_private_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
    struct cb_error *err)
{
	OSSL_DECODER_CTX	*dctx = NULL;
	EVP_PKEY		*k = NULL;
	const unsigned char	*p = der;
	size_t			 n = len;
	int			 r;

	*out = NULL;
	dctx = OSSL_DECODER_CTX_new_for_pkey(&k, "DER", "PrivateKeyInfo",
	    NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
	if (dctx == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "could not set up the "
		    "private key decoder");
		goto done;
	}
	if (len == 0 || OSSL_DECODER_from_data(dctx, &p, &n) != 1 ||
	    k == NULL || n != 0) {
		r = cb_error_set(err, CB_EBADREQ, "the private key is not "
		    "valid PKCS#8 DER");
		goto done;
	}
	if ((r = pkey_check(k, err)) != 0)
		goto done;
	*out = k;
	k = NULL;
	r = 0;
 done:
	EVP_PKEY_free(k);
	OSSL_DECODER_CTX_free(dctx);
	ERR_clear_error();
	return r;
}

int
pkey_public_der(EVP_PKEY *k, struct secbuf *out, struct cb_error *err)
{
	unsigned char	*p;
	int		 n, r;

	if ((n = i2d_PUBKEY(k, NULL)) <= 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not encode the "
		    "public key");
		goto done;
	}
	if (secbuf_reserve(out, (size_t)n) != 0) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	p = out->data + out->len;
	if (i2d_PUBKEY(k, &p) != n) {
		r = cb_error_set(err, CB_EINTERNAL, "could not encode the "
		    "public key");
		goto done;
	}
	out->len += (size_t)n;
	r = 0;
 done:
	ERR_clear_error();
	return r;
}

int
pkey_public_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
    struct cb_error *err)
{
	const unsigned char	*p = der;
	EVP_PKEY		*k = NULL;
	int			 r;

	*out = NULL;
	if (len == 0 || len > PKEY_PEM_MAX ||
	    (k = d2i_PUBKEY_ex(NULL, &p, (long)len, NULL, NULL)) == NULL ||
	    p != der + len) {
		r = cb_error_set(err, CB_EBADREQ, "the public key is not valid "
		    "SubjectPublicKeyInfo DER");
		goto done;
	}
	if ((r = pkey_check(k, err)) != 0)
		goto done;
	*out = k;
	k = NULL;
	r = 0;
 done:
	EVP_PKEY_free(k);
	ERR_clear_error();
	return r;
}

int
pkey_public_pem(EVP_PKEY *k, char **out, struct cb_error *err)
{
	BIO	*bio = NULL;
	char	*data, *s = NULL;
	long	 n;
	int	 r;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(bio, k) != 1 ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		r = cb_error_set(err, CB_EINTERNAL, "could not encode the "
		    "public key");
		goto done;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*out = s;
	r = 0;
 done:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
pkey_bits(EVP_PKEY *k)
{
	return EVP_PKEY_get_bits(k);
}
