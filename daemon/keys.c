/*
 * keys: the master key in use (SPEC sections 3 and 8): the key version
 * and any rotation state read from the store at start-up, the new key of
 * an interrupted rotation loaded again, and the key file a finished
 * rotation moved to.  The rotation itself is in rotate.c, the key.status
 * and key.rotate methods in rpc-key.c, sealing and opening with the right
 * key in keys-seal.c.
 *
 * The new key is read from a file on the broker's host; it never crosses
 * the socket.  The file's path is kept so a restart can resume.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "keys-int.h"
#include "log.h"
#include "seal.h"
#include "store.h"

const char *const rot_states[] = { "none", "running", "done" };

struct seal_key *
keys_staged_for(const struct broker *b, const struct rotation *r)
{
	struct seal_key	*k;
	char		 kcv[SEAL_KCV_MAX];
	struct cb_error	 e;

	if (b->key_staged == NULL || seal_kcv(b->key_staged, kcv, &e) != 0 ||
	    strlen(kcv) != strlen(r->kcv) ||
	    CRYPTO_memcmp(kcv, r->kcv, strlen(kcv)) != 0 ||
	    (k = seal_key_alloc()) == NULL)
		return NULL;
	*k = *b->key_staged;
	k->version = r->version;
	return k;
}

/* Index of name in list, or -1. */
static int
keys_lookup(const char *const *list, size_t n, const char *name)
{
	size_t	i;

	for (i = 0; name != NULL && i < n; i++)
		if (strcmp(list[i], name) == 0)
			return (int)i;
	return -1;
}

int
keys_state_read(const char *text, uint32_t *version, struct rotation **out,
    struct cb_error *err)
{
	struct rotation	*r;
	json_t		*doc = NULL, *rot, *cur;
	const char	*text2;
	int		 rc = 0, st, ph;

	*version = 1;
	*out = NULL;
	if (text == NULL)
		return 0;
	if ((doc = json_loads(text, 0, NULL)) == NULL ||
	    json_integer_value(json_object_get(doc, "version")) < 1) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "the stored key state is not valid");
		goto done;
	}
	*version = (uint32_t)json_integer_value(json_object_get(doc,
	    "version"));
	rot = json_object_get(doc, "rotation");
	if (!json_is_object(rot))
		goto done;
	st = keys_lookup(rot_states, 3, json_string_value(json_object_get(rot,
	    "state")));
	if ((text2 = json_string_value(json_object_get(rot, "phase"))) !=
	    NULL && strcmp(text2, "settings") == 0)
		ph = PH_SETTINGS;
	else
		ph = store_kind_parse(text2);
	cur = json_object_get(rot, "cursor");
	if (st < 0 || ph < 0 || !json_is_string(json_object_get(rot, "file")) ||
	    !json_is_array(cur) || json_array_size(cur) != 2) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "the stored key rotation state is not valid");
		goto done;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->file = strdup(json_string_value(json_object_get(rot,
	    "file")))) == NULL) {
		free(r);
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	r->state = st;
	r->phase = ph;
	r->version = (uint32_t)json_integer_value(json_object_get(rot,
	    "version"));
	snprintf(r->kcv, sizeof(r->kcv), "%s",
	    json_string_value(json_object_get(rot, "kcv")) ?
	    json_string_value(json_object_get(rot, "kcv")) : "");
	snprintf(r->cur_type, sizeof(r->cur_type), "%s",
	    json_string_value(json_array_get(cur, 0)) ?
	    json_string_value(json_array_get(cur, 0)) : "");
	snprintf(r->cur_user, sizeof(r->cur_user), "%s",
	    json_string_value(json_array_get(cur, 1)) ?
	    json_string_value(json_array_get(cur, 1)) : "");
	r->done = json_integer_value(json_object_get(rot, "done"));
	r->total = json_integer_value(json_object_get(rot, "total"));
	*out = r;
done:
	json_decref(doc);
	return rc;
}

int
keys_load_state(struct broker *b, uint32_t *version, struct cb_error *err)
{
	char		*text = NULL;
	int		 rc;

	*version = 1;
	if ((rc = store_setting_get(b->store, KEYS_SETTING, &text, err)) != 0)
		return rc;
	rc = keys_state_read(text, version, &b->rot, err);
	free(text);
	return rc;
}

const char *
keys_rotated_to(const struct broker *b)
{
	return b->rot != NULL && b->rot->state == ROT_DONE ? b->rot->file :
	    NULL;
}

int
keys_resume(struct broker *b, struct cb_error *err)
{
	struct rotation	*r = b->rot;
	struct seal_key	*k;
	char		 kcv[SEAL_KCV_MAX];

	if (r == NULL || r->state != ROT_RUNNING)
		return 0;
	/*
	 * In a fleet the rotation may have been started on another host:
	 * the key of security.next_key_file is taken when it is that key.
	 */
	if ((k = keys_staged_for(b, r)) != NULL) {
		b->key_next = k;
		log_info("a key rotation to version %u is running (%lld of "
		    "%lld values done); this broker holds its key", r->version,
		    (long long)r->done, (long long)r->total);
		return 0;
	}
	if ((k = seal_key_alloc()) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if (b->pgs != NULL && access(r->file, F_OK) != 0) {
		seal_key_free(k);
		return cb_error_set(err, CB_EBADREQ, "a key rotation to key "
		    "version %u is running in the fleet and this broker does "
		    "not hold the new key: put it in security.next_key_file",
		    r->version);
	}
	if (seal_key_load_file(k, r->file, r->version, err) != 0 ||
	    seal_kcv(k, kcv, err) != 0) {
		seal_key_free(k);
		return cb_error_set(err, CB_EBADREQ, "cannot resume the key "
		    "rotation: %.300s", err->msg);
	}
	if (strcmp(kcv, r->kcv) != 0) {
		seal_key_free(k);
		return cb_error_set(err, CB_EBADREQ, "cannot resume the key "
		    "rotation: %s no longer holds the key it was started with",
		    r->file);
	}
	b->key_next = k;
	log_info("resuming key rotation to version %u (%lld of %lld values "
	    "done)", r->version, (long long)r->done, (long long)r->total);
	return 0;
}

void
keys_free(struct broker *b)
{
	struct rotation	*r = b->rot;

	if (r == NULL)
		return;
	free(r->file);
	free(r);
	b->rot = NULL;
	seal_key_free(b->key_next);
	b->key_next = NULL;
}

/*
 * A running rotation started elsewhere: take its new key, if held, and
 * seal with it from now on.  Published at once, so that the broker that
 * runs it knows when every broker seals with the new key.
 */
void
keys_follow(struct broker *b)
{
	struct rotation	*r = b->rot;

	if (r == NULL || r->state != ROT_RUNNING || b->key_next != NULL)
		return;
	if ((b->key_next = keys_staged_for(b, r)) == NULL) {
		if (!r->warned)
			log_warnx("a key rotation to key version %u is "
			    "running and this broker does not hold the new "
			    "key: put it in security.next_key_file and "
			    "reload (SIGHUP)", r->version);
		r->warned = true;
		return;
	}
	log_info("key rotation to version %u: this broker seals with the "
	    "new key from now on and opens values under either key",
	    r->version);
	fleet_publish(b);
}

void
keys_staged_changed(struct broker *b)
{
	keys_follow(b);
	fleet_publish(b);
}
