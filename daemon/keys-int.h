/*
 * keys-int: the key rotation's state, shared by keys.c (loading it),
 * rotate.c (running it) and rpc-key.c (starting it, reporting it).  Not
 * part of the daemon's central header: nothing else looks inside.
 */
#ifndef CB_KEYS_INT_H
#define CB_KEYS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "seal.h"
#include "store.h"
#include "values.h"

#define KEYS_SETTING	"key"
#define KEYS_BATCH	256
/*
 * On the postgresql backend: the advisory lock of the broker that runs
 * the rotation, and how often the others check whether it still runs.
 */
#define KEYS_LOCK_KEY	"7161413228262944098"
#define KEYS_TAKEOVER_MS	5000

enum rot_state { ROT_NONE, ROT_RUNNING, ROT_DONE };
/*
 * Phases: the values backend of each storage kind in turn (phase k is
 * kind k, named after it), then the sealed Vault settings.
 */
#define PH_SETTINGS	STORE_KINDS

struct rotation {
	int		 state;
	int		 phase;
	char		*file;		/* the new key's file */
	uint32_t	 version;	/* the new key's version */
	char		 kcv[SEAL_KCV_MAX];
	char		 cur_type[STORE_UUID_LEN + 1];
	char		 cur_user[STORE_UUID_LEN + 1];
	int64_t		 done;
	int64_t		 total;
	char		 message[256];
	uv_timer_t	*timer;
	bool		 busy;		/* a backend's re-seal is running */
	bool		 follower;	/* another broker of the fleet runs it */
	bool		 warned;	/* "does not hold the new key" said */
	struct values_reseal rs;	/* what the backend is asked */
};

struct broker;
struct cb_error;

/* keys.c: the names of the states, indexed by enum rot_state. */
extern const char *const rot_states[];

/* keys.c */
/*
 * Parse the "key" setting (text may be NULL: none): the key version, and
 * the rotation state when there is one (*out, or NULL).
 */
int	 keys_state_read(const char *text, uint32_t *version,
	    struct rotation **out, struct cb_error *err);
/*
 * A copy of the key of security.next_key_file under r's version when it
 * is r's new key (by key check value), or NULL.
 */
struct seal_key *keys_staged_for(const struct broker *b,
	    const struct rotation *r);

/* rotate.c */
/* Name of a phase, in the key setting and in key.status. */
const char *keys_phase_name(int phase);
/*
 * Persist the rotation state alone, through the store's writer: then()
 * is called on the loop once it is durable (rc 0) or has failed.
 */
typedef void (*keys_saved_fn)(struct broker *b, int rc,
    const struct cb_error *err, void *arg);
int	 keys_save(struct broker *b, keys_saved_fn then, void *arg,
	    struct cb_error *err);
/* Release the rotation's advisory lock (postgresql backend). */
void	 keys_unlock(struct broker *b);
/* Schedule the next step of the rotation after ms. */
void	 keys_schedule(struct broker *b, uint64_t ms);
/* Seal with the new key of a rotation another broker runs (keys.c). */
void	 keys_follow(struct broker *b);

#endif
