/*
 * credctl key commands: check and rotate (SPEC sections 3 and 8, methods
 * key.status and key.rotate).
 *
 * "key check" shows the master key version in use and the state of a key
 * rotation: its phase (db, vault, settings, done), its progress as
 * done/total, the version and file of the new key, the broker's last
 * message (why a step is being retried, or, once the rotation is done,
 * how to configure the new key).
 *
 * "key rotate NEW_KEY_FILE" asks the broker to re-seal every stored value
 * under the key in NEW_KEY_FILE, or to resume the rotation to that file.
 * The file is read by the broker, on the broker's host: credctl sends its
 * path (made absolute against the current directory when relative) and
 * never opens it, so the key itself never passes through credctl, its
 * argv or the socket.  With --wait credctl polls key.status every 200 ms
 * until the rotation is done, showing the progress on standard error, and
 * then prints the final status and the broker's instruction (set
 * security.secret_key_file to the new file before the next start).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"

/* How often --wait asks for the status. */
#define CREDCTL_KEY_POLL_MS		200
/* Without a terminal, --wait prints a progress line at most this often. */
#define CREDCTL_KEY_LINE_EVERY_MS	5000

/* Is o the string s? */
static bool
credctl_key_is(const msgpack_object *o, const char *s)
{
	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size == strlen(s) &&
	    memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* An integer member of map, or def when absent or not an integer. */
static int64_t
credctl_key_int(const msgpack_object *map, const char *key, int64_t def)
{
	const msgpack_object	*o;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP ||
	    (o = proto_map_get(map, key)) == NULL)
		return def;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return o->via.u64 > INT64_MAX ? INT64_MAX : (int64_t)o->via.u64;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return o->via.i64;
	return def;
}

/* A member of map (NULL when map is not a map or lacks it). */
static const msgpack_object *
credctl_key_get(const msgpack_object *map, const char *key)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	return proto_map_get(map, key);
}

/* Is the member key of map a non-empty string? */
static bool
credctl_key_has_str(const msgpack_object *map, const char *key)
{
	const msgpack_object	*o = credctl_key_get(map, key);

	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size > 0;
}

/* "done/total (P%)"; P is capped at 100 (Vault values come on top). */
static void
credctl_key_progress(char *buf, size_t len, const msgpack_object *rot)
{
	int64_t	done = credctl_key_int(rot, "done", 0);
	int64_t	total = credctl_key_int(rot, "total", 0);
	int64_t	pct;

	if (total <= 0) {
		snprintf(buf, len, "%" PRId64 "/%" PRId64, done, total);
		return;
	}
	pct = done >= total ? 100 : done * 100 / total;
	snprintf(buf, len, "%" PRId64 "/%" PRId64 " (%" PRId64 "%%)", done,
	    total, pct);
}

/* One aligned "label: value" line; v (a msgpack value) is sanitized. */
static void
credctl_key_line(FILE *f, const char *label, const msgpack_object *v,
    const char *text)
{
	char	*s = NULL;

	if (v != NULL)
		s = credctl_text(v);
	fprintf(f, "%-13s %s\n", label, s != NULL ? s : text != NULL ? text :
	    "-");
	free(s);
}

/* Print the members of array a (numbers or strings), comma-separated. */
static void
credctl_key_list(FILE *f, const msgpack_object *a)
{
	char		*s;
	uint32_t	 i;

	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size
	    == 0) {
		fprintf(f, "-");
		return;
	}
	for (i = 0; i < a->via.array.size; i++) {
		s = credctl_text(&a->via.array.ptr[i]);
		fprintf(f, "%s%s", i > 0 ? "," : "", s != NULL ? s : "?");
		free(s);
	}
}

/*
 * The fleet's live brokers (postgresql backend), one line each: where it
 * runs, the key versions and check values it holds, what it seals with.
 */
static void
credctl_key_brokers(FILE *f, const msgpack_object *list)
{
	const msgpack_object	*m, *host, *self;
	char			*h;
	uint32_t		 i;

	if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
		return;
	fprintf(f, "brokers:\n");
	for (i = 0; i < list->via.array.size; i++) {
		m = &list->via.array.ptr[i];
		host = credctl_key_get(m, "host");
		self = credctl_key_get(m, "self");
		h = host != NULL ? credctl_text(host) : NULL;
		fprintf(f, "  %s pid %" PRId64 "%s: key versions ",
		    h != NULL ? h : "?", credctl_key_int(m, "pid", 0),
		    self != NULL && self->type == MSGPACK_OBJECT_BOOLEAN &&
		    self->via.boolean ? " (this broker)" : "");
		free(h);
		credctl_key_list(f, credctl_key_get(m, "key_versions"));
		fprintf(f, ", check values ");
		credctl_key_list(f, credctl_key_get(m, "key_kcvs"));
		fprintf(f, ", sealing with %" PRId64 "\n",
		    credctl_key_int(m, "sealing_version", 0));
	}
}

/* The lines of a running or finished rotation. */
static void
credctl_key_print_rotation(FILE *f, const msgpack_object *rot)
{
	char			 prog[96];

	credctl_key_line(f, "phase:", credctl_key_get(rot, "phase"), NULL);
	credctl_key_progress(prog, sizeof(prog), rot);
	credctl_key_line(f, "progress:", NULL, prog);
	credctl_key_line(f, "new version:", credctl_key_get(rot,
	    "new_version"), NULL);
	credctl_key_line(f, "new key file:", credctl_key_get(rot,
	    "new_key_file"), NULL);
	if (credctl_key_has_str(rot, "message"))
		credctl_key_line(f, "message:", credctl_key_get(rot,
		    "message"), NULL);
}

/* Print a key.status result for humans. */
static void
credctl_key_print(FILE *f, const msgpack_object *res)
{
	const msgpack_object	*rot = credctl_key_get(res, "rotation");
	const msgpack_object	*state = credctl_key_get(rot, "state");

	credctl_key_line(f, "key version:", credctl_key_get(res, "version"),
	    NULL);
	credctl_key_line(f, "rotation:", state, "none");
	if (state != NULL && !credctl_key_is(state, "none"))
		credctl_key_print_rotation(f, rot);
	credctl_key_brokers(f, credctl_key_get(res, "brokers"));
}

/* Print a key.status or key.rotate result, as JSON or for humans. */
static int
credctl_key_output(struct credctl *ctx, const msgpack_object *res)
{
	if (ctx->json)
		return credctl_output(ctx, res);
	credctl_key_print(stdout, res);
	return CREDCTL_EXIT_OK;
}

/* credctl key check */
int
credctl_key_check(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	int			 rc;

		if ((rc = credctl_call(ctx, "key.status", NULL, &reply)) != 0)
		return rc;
	rc = credctl_key_output(ctx, credbroker_reply_result(reply));
	credbroker_reply_free(reply);
	return rc;
}

/* Milliseconds of a monotonic clock. */
static int64_t
credctl_key_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms milliseconds. */
static void
credctl_key_sleep(int64_t ms)
{
	struct timespec	ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* State of the --wait progress display. */
struct credctl_key_wait {
	bool	 tty;
	bool	 dirty;		/* a \r line is on the terminal */
	int64_t	 last_ms;	/* when the last line was printed */
	char	 last[256];	/* the last progress text shown */
	char	*message;	/* the last broker message shown */
};

/* Show the progress of rot on stderr. */
static void
credctl_key_show_progress(struct credctl_key_wait *w,
    const msgpack_object *rot)
{
	const msgpack_object	*msg = credctl_key_get(rot, "message");
	char			 prog[96], line[256], *phase, *m;
	int64_t			 now = credctl_key_now_ms();

	phase = credctl_text(credctl_key_get(rot, "phase"));
	credctl_key_progress(prog, sizeof(prog), rot);
	snprintf(line, sizeof(line), "re-sealing (phase %s): %s",
	    phase != NULL ? phase : "-", prog);
	free(phase);
	if (strcmp(line, w->last) != 0) {
		if (w->tty) {
			fprintf(stderr, "\rcredctl: %s\033[K", line);
			w->dirty = true;
			snprintf(w->last, sizeof(w->last), "%s", line);
		} else if (w->last_ms == 0 ||
		    now - w->last_ms >= CREDCTL_KEY_LINE_EVERY_MS) {
			fprintf(stderr, "credctl: %s\n", line);
			w->last_ms = now;
			snprintf(w->last, sizeof(w->last), "%s", line);
		}
	}
	/* A step being retried: say why, once per distinct message. */
	if (msg != NULL && msg->type == MSGPACK_OBJECT_STR &&
	    msg->via.str.size > 0 && (m = credctl_text(msg)) != NULL) {
		if (w->message == NULL || strcmp(w->message, m) != 0) {
			if (w->dirty)
				fputc('\n', stderr);
			w->dirty = false;
			w->last[0] = '\0';
			fprintf(stderr, "credctl: broker: %s\n", m);
			free(w->message);
			w->message = m;
		} else
			free(m);
	}
	fflush(stderr);
}

/* Poll key.status until the rotation is done; print the outcome. */
static int
credctl_key_wait(struct credctl *ctx)
{
	struct credctl_key_wait	 w;
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*res, *rot, *state, *msg;
	char			*s;
	int			 rc;

	memset(&w, 0, sizeof(w));
	w.tty = isatty(STDERR_FILENO) == 1;
	for (;;) {
		if ((rc = credctl_call(ctx, "key.status", NULL, &reply)) != 0)
			break;
		res = credbroker_reply_result(reply);
		rot = credctl_key_get(res, "rotation");
		state = credctl_key_get(rot, "state");
		if (credctl_key_is(state, "done"))
			break;
		if (!credctl_key_is(state, "running")) {
			if (w.dirty)
				fputc('\n', stderr);
			w.dirty = false;
			s = credctl_text(state);
			fprintf(stderr, "credctl: the key rotation is no "
			    "longer running (state %s)\n", s != NULL ? s : "-");
			free(s);
			rc = CREDCTL_EXIT_BROKER;
			break;
		}
		credctl_key_show_progress(&w, rot);
		credbroker_reply_free(reply);
		reply = NULL;
		credctl_key_sleep(CREDCTL_KEY_POLL_MS);
	}
	if (w.dirty)
		fputc('\n', stderr);
	free(w.message);
	if (rc == 0) {
		res = credbroker_reply_result(reply);
		rot = credctl_key_get(res, "rotation");
		rc = credctl_key_output(ctx, res);
		msg = credctl_key_get(rot, "message");
		if (!ctx->json) {
			/* The instruction: which key to configure now. */
			if (msg != NULL && msg->type == MSGPACK_OBJECT_STR &&
			    msg->via.str.size > 0 &&
			    (s = credctl_text(msg)) != NULL) {
				printf("\n%s\n", s);
				free(s);
			} else if ((s = credctl_text(credctl_key_get(rot,
			    "new_key_file"))) != NULL) {
				printf("\nrotation complete: configure the new "
				    "key (security.secret_key_file = %s)\n", s);
				free(s);
			}
		}
	}
	credbroker_reply_free(reply);
	return rc;
}

/* credctl key rotate NEW_KEY_FILE [--wait] */
int
credctl_key_rotate(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	 p;
	struct credbroker_reply	*reply;
	const char		*file = args->argv[0];
	char			*abs = NULL, *cwd;
	int			 rc;

	if (*file == '\0')
		return credctl_usage(ctx, "the key file path is empty");
	/* The broker wants an absolute path; make a relative one so. */
	if (*file != '/') {
		if ((cwd = getcwd(NULL, 0)) == NULL)
			return credctl_local_error(ctx, "io", "cannot get the "
			    "current directory: %s", strerror(errno));
		if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd,
		    file) < 0) {
			free(cwd);
			return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
		}
		free(cwd);
		file = abs;
	}
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "new_key_file", file);
	rc = credctl_call(ctx, "key.rotate", &p, &reply);
	credctl_pack_free(&p);
	free(abs);
	if (rc != 0)
		return rc;
	if (args->wait) {
		credbroker_reply_free(reply);
		return credctl_key_wait(ctx);
	}
	rc = credctl_key_output(ctx, credbroker_reply_result(reply));
	if (rc == 0 && !ctx->json)
		printf("\nthe rotation runs in the broker; follow it with "
		    "'credctl key check'\n");
	credbroker_reply_free(reply);
	return rc;
}
