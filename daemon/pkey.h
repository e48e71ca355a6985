/*
 * pkey: the RSA keys of the keys-and-tokens methods (SPEC section 9),
 * through OpenSSL 3's EVP interface only.
 *
 * Private keys are secrets.  Their PEM text is decoded by OpenSSL into
 * its secure heap (pkey_secure_heap_init: locked, never swapped, wiped on
 * free), their numbers live there too, and their DER form, the text that
 * is sealed into the store, only ever sits in a wiping buffer (secbuf).
 * A key is parsed for one call and freed (EVP_PKEY_free) when it ends.
 */
#ifndef CB_PKEY_H
#define CB_PKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "cb_error.h"
#include "secbuf.h"

#define PKEY_BITS_MIN		2048	/* smallest RSA modulus accepted */
#define PKEY_BITS_MAX		4096	/* largest */
#define PKEY_BITS_GENERATE	2048	/* what keypair.generate makes */
#define PKEY_PEM_MAX		16384	/* longest PEM text accepted */
/* Size of OpenSSL's secure heap (bytes, a power of two). */
#define PKEY_SECURE_HEAP	(1U << 20)

/*
 * Make OpenSSL wipe every block of its ordinary heap when it frees it
 * (CRYPTO_set_mem_functions).  Must run before OpenSSL allocates
 * anything: first thing in main().  -CB_EINTERNAL when it is too late.
 */
int	 pkey_wipe_frees(struct cb_error *err);
/*
 * Turn on OpenSSL's secure heap (CRYPTO_secure_malloc_init) once for the
 * process; later calls do nothing.  Fails (-CB_EINTERNAL, saying why) when
 * the heap cannot be set up, for example when RLIMIT_MEMLOCK is too low.
 */
int	 pkey_secure_heap_init(struct cb_error *err);

/* A new RSA key of bits bits, public exponent 65537. */
int	 pkey_generate(unsigned bits, EVP_PKEY **out, struct cb_error *err);

/*
 * An RSA private key from unencrypted PEM text of len bytes (not NUL
 * terminated): PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY".
 * -CB_EBADREQ, with a message that says which, for: text that is not a
 * PEM private key, an encrypted PEM (PKCS#8 "ENCRYPTED PRIVATE KEY" or a
 * Proc-Type: 4,ENCRYPTED header), a key that is not RSA (naming its
 * type), a modulus outside PKEY_BITS_MIN..PKEY_BITS_MAX and more than one
 * key in the text; -CB_ETOOLARGE for text longer than PKEY_PEM_MAX.
 * Never prompts.
 */
int	 pkey_private_from_pem(const char *pem, size_t len, EVP_PKEY **out,
	    struct cb_error *err);
/*
 * An RSA public key from PEM text: SubjectPublicKeyInfo "PUBLIC KEY" or
 * PKCS#1 "RSA PUBLIC KEY".  Refused like pkey_private_from_pem (a private
 * key given here is refused too: a peer key is public).
 */
int	 pkey_public_from_pem(const char *pem, size_t len, EVP_PKEY **out,
	    struct cb_error *err);

/* The private key as PKCS#8 DER, appended to out (a wiping buffer). */
int	 pkey_private_der(EVP_PKEY *k, struct secbuf *out, struct cb_error *err);
/* A private key from PKCS#8 DER (what pkey_private_der wrote). */
int	 pkey_private_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
	    struct cb_error *err);
/* The public key as SubjectPublicKeyInfo DER, appended to out. */
int	 pkey_public_der(EVP_PKEY *k, struct secbuf *out, struct cb_error *err);
/* A public key from SubjectPublicKeyInfo DER. */
int	 pkey_public_from_der(const uint8_t *der, size_t len, EVP_PKEY **out,
	    struct cb_error *err);
/* The public key as SubjectPublicKeyInfo PEM: *out malloc'd, NUL ended. */
int	 pkey_public_pem(EVP_PKEY *k, char **out, struct cb_error *err);
/* Modulus size in bits. */
int	 pkey_bits(EVP_PKEY *k);

#endif
