/*
 * credctl cred commands: set, status, list, rm, link, unlink.
 *
 * A value belongs to a user or to a technical account of the type (SPEC
 * section 10): "--account NAME" takes the place of the USER argument of
 * set and rm.  Users without a value of their own get a linked
 * account's value, else the type's default account's; "cred status"
 * shows which.
 *
 * "cred set" is the one place where credctl holds a secret.  The value
 * never comes from argv (it would be visible in ps and shell history): it
 * is read from standard input, or, when that is a terminal, from a prompt
 * on /dev/tty with echo turned off.  It goes straight from read(2) into
 * a wiping buffer (no stdio), is packed into a second wiping buffer, and
 * libcredbroker copies it once more into its own; all three are wiped
 * with OPENSSL_cleanse on every path, including errors and signals that
 * interrupt the prompt.  Core dumps and ptrace attach are disabled first.
 *
 * The readers and the hardening are shared (credctl.h): "vault set" and
 * "vault test" read the Vault secret_id with them.
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <paths.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "credbroker.h"
#include "credctl.h"
#include "ids.h"
#include "proto.h"
#include "secbuf.h"

/* Largest value accepted, in bytes. */
#define CREDCTL_VALUE_MAX	(1024 * 1024)

/* Signals that would otherwise leave the terminal without echo. */
static const int credctl_tty_signals[] = {
	SIGALRM, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN,
	SIGTTOU
};
#define CREDCTL_NSIGNALS \
	(sizeof(credctl_tty_signals) / sizeof(credctl_tty_signals[0]))

static volatile sig_atomic_t credctl_signo;

/* Remember which signal interrupted the prompt. */
static void
credctl_on_signal(int sig)
{
	credctl_signo = sig;
}

/* Keep the value out of core dumps and away from same-uid debuggers. */
void
credctl_harden(void)
{
	struct rlimit	rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * Prompt on /dev/tty with echo off and read one line (without its
 * newline) into val.  The terminal settings and signal handlers are
 * restored on every path; a signal that arrived meanwhile is re-raised
 * after the restore (after a stop, the prompt starts again).  Returns 0
 * or an exit status; val is wiped on failure.
 */
static int
credctl_read_tty_prompt(struct credctl *ctx, const char *prompt,
    struct secbuf *val)
{
	struct sigaction	 sa, saved[CREDCTL_NSIGNALS];
	struct termios		 term, noecho;
	size_t			 i;
	ssize_t			 n;
	int			 fd, sig, rc, read_errno;
	bool			 toolong;

restart:
	secbuf_reset(val);
	if ((fd = open(_PATH_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1)
		return credctl_local_error(ctx, CREDBROKER_ERR_IO,
		    "cannot open %s: %s", _PATH_TTY, strerror(errno));
	if (tcgetattr(fd, &term) == -1) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_IO,
		    "cannot turn off echo on %s: %s", _PATH_TTY,
		    strerror(errno));
		close(fd);
		return rc;
	}

	credctl_signo = 0;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = credctl_on_signal;	/* no SA_RESTART: EINTR */
	for (i = 0; i < CREDCTL_NSIGNALS; i++)
		(void)sigaction(credctl_tty_signals[i], &sa, &saved[i]);

	noecho = term;
	noecho.c_lflag &= ~(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	rc = 0;
	read_errno = 0;
	toolong = false;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) == -1) {
		read_errno = errno;
		goto restore;
	}
	dprintf(fd, "%s", prompt);
	while (credctl_signo == 0) {
		if (secbuf_reserve(val, 1) != 0) {
			read_errno = ENOMEM;
			break;
		}
		n = read(fd, val->data + val->len, 1);
		if (n == 0)
			break;			/* end of input (^D) */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			read_errno = errno;
			break;
		}
		if (val->data[val->len] == '\n') {
			cb_wipe(val->data + val->len, 1);
			break;
		}
		if (val->len >= CREDCTL_VALUE_MAX) {
			cb_wipe(val->data + val->len, 1);
			toolong = true;		/* drain the rest of the line */
			continue;
		}
		val->len++;
	}
	/* The user's Enter was not echoed; end the prompt line. */
	n = write(fd, "\n", 1);

restore:
	while (tcsetattr(fd, TCSAFLUSH, &term) == -1 && errno == EINTR)
		;
	for (i = 0; i < CREDCTL_NSIGNALS; i++)
		(void)sigaction(credctl_tty_signals[i], &saved[i], NULL);
	close(fd);

	if ((sig = credctl_signo) != 0) {
		secbuf_reset(val);
		credctl_signo = 0;
		(void)raise(sig);	/* usually the end of credctl */
		if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
			goto restart;	/* continued after a stop */
		return credctl_local_error(ctx, CREDBROKER_ERR_IO,
		    "interrupted by signal %d", sig);
	}
	if (read_errno != 0) {
		secbuf_reset(val);
		return credctl_local_error(ctx, CREDBROKER_ERR_IO,
		    "cannot read the value from %s: %s", _PATH_TTY,
		    strerror(read_errno));
	}
	if (toolong) {
		secbuf_reset(val);
		return credctl_invalid(ctx, "the value is larger than %d bytes",
		    CREDCTL_VALUE_MAX);
	}
	return rc;
}

/*
 * Prompt on /dev/tty with the printf-style prompt, echo off, and read one
 * line into val (see credctl_read_tty_prompt).  Returns 0 or an exit
 * status; val is wiped on failure.
 */
int
credctl_read_tty(struct credctl *ctx, struct secbuf *val, const char *fmt,
    ...)
{
	va_list	 ap;
	char	*prompt;
	int	 n, rc;

	va_start(ap, fmt);
	n = vasprintf(&prompt, fmt, ap);
	va_end(ap);
	if (n == -1)
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	rc = credctl_read_tty_prompt(ctx, prompt, val);
	free(prompt);
	return rc;
}

/*
 * Read all of standard input into val, at most CREDCTL_VALUE_MAX bytes,
 * and strip one trailing "\n" or "\r\n" unless raw.  Returns 0 or an
 * exit status; val is wiped on failure.
 */
int
credctl_read_stdin(struct credctl *ctx, bool raw, struct secbuf *val)
{
	ssize_t	n;
	size_t	want;

	for (;;) {
		if (secbuf_reserve(val, 64 * 1024) != 0) {
			secbuf_reset(val);
			return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
		}
		want = val->cap - val->len;
		if (want > CREDCTL_VALUE_MAX + 1 - val->len)
			want = CREDCTL_VALUE_MAX + 1 - val->len;
		n = read(STDIN_FILENO, val->data + val->len, want);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			secbuf_reset(val);
			return credctl_local_error(ctx, CREDBROKER_ERR_IO,
			    "cannot read the value from standard input: %s",
			    strerror(errno));
		}
		val->len += (size_t)n;
		if (val->len > CREDCTL_VALUE_MAX) {
			secbuf_reset(val);
			return credctl_invalid(ctx, "the value on standard "
			    "input is larger than %d bytes", CREDCTL_VALUE_MAX);
		}
	}
	if (!raw && val->len > 0 && val->data[val->len - 1] == '\n') {
		cb_wipe(&val->data[--val->len], 1);
		if (val->len > 0 && val->data[val->len - 1] == '\r')
			cb_wipe(&val->data[--val->len], 1);
	}
	return 0;
}

/*
 * Check that a command taking "TYPE USER" or "TYPE --account NAME" got
 * exactly one of USER and --account.  Returns 0 or exit status 2.
 */
static int
credctl_cred_owner(struct credctl *ctx, struct credctl_args *args)
{
	if (args->account != NULL && args->argc != 1)
		return credctl_usage(ctx, "%s: give either USER or --account "
		    "NAME", ctx->cmd->name);
	if (args->account == NULL && args->argc != 2)
		return credctl_usage(ctx, "%s: missing USER (or --account "
		    "NAME)", ctx->cmd->name);
	return 0;
}

/* Pack the "user" or "account" parameter of a set or rm. */
static void
credctl_pack_owner(struct credctl_pack *p, struct credctl_args *args)
{
	if (args->account != NULL)
		proto_pack_kv_str(&p->pk, "account", args->account);
	else
		proto_pack_kv_str(&p->pk, "user", args->argv[1]);
}

/*
 * The caller's permissions, as CB_PERM_BIT()s: "hello" lists them.
 * Returns 0 or an exit status.
 */
static int
credctl_perms(struct credctl *ctx, unsigned *mask)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*perms, *o;
	uint32_t		 i;
	int			 perm, rc;

	*mask = 0;
	if ((rc = credctl_call(ctx, "hello", NULL, &reply)) != 0)
		return rc;
	perms = proto_map_get(credbroker_reply_result(reply), "permissions");
	for (i = 0; perms != NULL && perms->type == MSGPACK_OBJECT_ARRAY &&
	    i < perms->via.array.size; i++) {
		o = &perms->via.array.ptr[i];
		if (o->type == MSGPACK_OBJECT_STR && (perm = proto_perm_lookup(
		    o->via.str.ptr, o->via.str.size)) >= 0)
			*mask |= CB_PERM_BIT(perm);
	}
	credbroker_reply_free(reply);
	return 0;
}

/*
 * Before a value is asked for, check what can be checked without it: the
 * user id, the caller's permission, and (when the caller may read types)
 * that the type exists.  Returns 0 or an exit status.
 */
static int
credctl_cred_set_check(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	struct credctl_pack	 p;
	unsigned		 perms;
	int			 rc;

	if (args->account == NULL && !ids_uuid_valid(args->argv[1]))
		return credctl_invalid(ctx, "cred set: USER must be the "
		    "platform's user id, a UUID in lower-case RFC 4122 text "
		    "form such as 123e4567-e89b-12d3-a456-426614174000 (the "
		    "value itself is never an argument: it is read from "
		    "standard input or a prompt); nothing was set");
	if ((rc = credctl_perms(ctx, &perms)) != 0)
		return rc;
	if ((perms & CB_PERM_BIT(CB_PERM_CREDS)) == 0)
		return credctl_broker_error(ctx, "forbidden", "cred.set needs "
		    "permission %s, which you do not have: ask for a grant "
		    "(access.grant in credbroker.conf(5)); nothing was set",
		    proto_perm_name(CB_PERM_CREDS));
	/* type.get needs another permission, which not every caller has. */
	if ((perms & CB_PERM_BIT(CB_PERM_TYPES)) == 0)
		return 0;
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	rc = credctl_call(ctx, "type.get", &p, &reply);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/* credctl cred set TYPE USER|--account NAME [--raw] */
int
credctl_cred_set(struct credctl *ctx, struct credctl_args *args)
{
	struct secbuf		 val = SECBUF_INIT;
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*at;
	char			*s;
	int			 rc;

	credctl_harden();
	credctl_pack_init(&p);

	if ((rc = credctl_cred_owner(ctx, args)) != 0)
		goto done;
	/* Fail before asking for a secret when it could not be set. */
	if ((rc = credctl_cred_set_check(ctx, args)) != 0)
		goto done;
	if (isatty(STDIN_FILENO) && args->account != NULL)
		rc = credctl_read_tty(ctx, &val, "Value for %s of account "
		    "%s: ", args->argv[0], args->account);
	else if (isatty(STDIN_FILENO))
		rc = credctl_read_tty(ctx, &val, "Value for %s of %s: ",
		    args->argv[0], args->argv[1]);
	else
		rc = credctl_read_stdin(ctx, args->raw, &val);
	if (rc != 0)
		goto done;
	if (val.len == 0) {
		rc = credctl_invalid(ctx, "the value is empty; nothing was "
		    "set");
		goto done;
	}

	msgpack_pack_map(&p.pk, 3);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	credctl_pack_owner(&p, args);
	proto_pack_cstr(&p.pk, "value");
	if (credctl_utf8_valid(val.data, val.len)) {
		msgpack_pack_str(&p.pk, val.len);
		msgpack_pack_str_body(&p.pk, val.data, val.len);
	} else {
		msgpack_pack_bin(&p.pk, val.len);
		msgpack_pack_bin_body(&p.pk, val.data, val.len);
	}
	secbuf_free(&val);

	if ((rc = credctl_call(ctx, "cred.set", &p, &reply)) != 0)
		goto done;
	credctl_pack_free(&p);
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	else if ((at = proto_map_get(credbroker_reply_result(reply),
	    "updated_at")) != NULL) {
		s = credctl_text(at);
		printf("updated at %s\n", s != NULL ? s : "?");
		free(s);
	} else
		printf("updated\n");
done:
	secbuf_free(&val);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/* Print cred.status {type}: the type, its default, its accounts. */
static int
credctl_cred_status_type(struct credctl *ctx, const msgpack_object *res)
{
	static const char *const fields[] = {
		"type", "ident", "default_account", NULL
	};
	static const char *const skip[] = { "accounts", NULL };
	static const char *const headers[] = {
		"ACCOUNT", "LINKS", "UPDATED_AT", NULL
	};
	static const char *const keys[] = {
		"name", "links", "updated_at", NULL
	};
	const msgpack_object	*accounts;
	struct credctl_table	*t;
	uint32_t		 i;

	accounts = proto_map_get(res, "accounts");
	if (res->type != MSGPACK_OBJECT_MAP || accounts == NULL ||
	    accounts->type != MSGPACK_OBJECT_ARRAY)
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "cred.status did not return a type's accounts");
	if ((t = credctl_table_new(headers)) == NULL)
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	for (i = 0; i < accounts->via.array.size; i++)
		if (credctl_table_add(t, &accounts->via.array.ptr[i],
		    keys) != 0) {
			credctl_table_free(t);
			return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
		}
	credctl_print_fields(stdout, res, fields, skip);
	printf("\n");
	credctl_table_print(stdout, t);
	credctl_table_free(t);
	return CREDCTL_EXIT_OK;
}

/*
 * Add one type's row of cred status USER.  A type whose status the broker
 * could not tell carries an error {code, message}: its FILLED cell says
 * "error: CODE", not "no".
 */
static void
credctl_cred_status_row(struct credctl_table *t, const msgpack_object *e,
    const char *const *keys)
{
	const msgpack_object	*error;
	char			*row[8], *code;
	size_t			 j;

	for (j = 0; keys[j] != NULL; j++)
		row[j] = credctl_text(proto_map_get(e, keys[j]));
	if ((error = proto_map_get(e, "error")) != NULL &&
	    error->type != MSGPACK_OBJECT_NIL) {
		code = credctl_text(proto_map_get(error, "code"));
		free(row[3]);
		if (asprintf(&row[3], "error: %s", code != NULL ? code :
		    "?") == -1)
			row[3] = NULL;
		free(code);
	}
	credctl_table_add_cells(t, row);
}

/* After the table: why a type's status is an error, on stderr. */
static void
credctl_cred_status_error(const msgpack_object *e)
{
	const msgpack_object	*error;
	char			*ident, *code, *msg;

	if ((error = proto_map_get(e, "error")) == NULL ||
	    error->type == MSGPACK_OBJECT_NIL)
		return;
	ident = credctl_text(proto_map_get(e, "ident"));
	code = credctl_text(proto_map_get(error, "code"));
	msg = credctl_text(proto_map_get(error, "message"));
	fprintf(stderr, "credctl: the status of '%s' is unknown: %s: %s\n",
	    ident != NULL ? ident : "?",
	    code != NULL ? code : "?", msg != NULL ? msg : "?");
	free(ident);
	free(code);
	free(msg);
}

/* credctl cred status USER|--type TYPE */
int
credctl_cred_status(struct credctl *ctx, struct credctl_args *args)
{
	static const char *const headers[] = {
		"IDENT", "NAME", "STORAGE", "FILLED", "SOURCE", "ACCOUNT",
		"UPDATED_AT", NULL
	};
	static const char *const keys[] = {
		"ident", "name", "storage", "filled", "source", "account",
		"updated_at", NULL
	};
	struct credbroker_reply	*reply;
	const msgpack_object	*res;
	struct credctl_table	*t;
	struct credctl_pack	 p;
	uint32_t		 i;
	int			 rc;

	if ((args->type != NULL) == (args->argc == 1))
		return credctl_usage(ctx, "cred status: give either USER or "
		    "--type TYPE");
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	if (args->type != NULL)
		proto_pack_kv_str(&p.pk, "type", args->type);
	else
		proto_pack_kv_str(&p.pk, "user", args->argv[0]);
	rc = credctl_call(ctx, "cred.status", &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else if (args->type != NULL)
		rc = credctl_cred_status_type(ctx, res);
	else if (res->type != MSGPACK_OBJECT_ARRAY)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "cred.status did not return an array");
	else if ((t = credctl_table_new(headers)) == NULL)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	else {
		for (i = 0; i < res->via.array.size; i++)
			credctl_cred_status_row(t, &res->via.array.ptr[i],
			    keys);
		credctl_table_print(stdout, t);
		credctl_table_free(t);
		for (i = 0; i < res->via.array.size; i++)
			credctl_cred_status_error(&res->via.array.ptr[i]);
	}
	credbroker_reply_free(reply);
	return rc;
}

/* The names one kind of cred.list returned, over all its pages. */
struct credctl_names {
	char	**v;
	size_t	  n;
};

static void
credctl_names_free(struct credctl_names *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Copy a str object into l; -1 when out of memory or not a str. */
static int
credctl_names_add(struct credctl_names *l, const msgpack_object *o)
{
	char	**v;

	if (o->type != MSGPACK_OBJECT_STR)
		return -1;
	if ((v = reallocarray(l->v, l->n + 1, sizeof(*v))) == NULL)
		return -1;
	l->v = v;
	if ((v[l->n] = strndup(o->via.str.ptr, o->via.str.size)) == NULL)
		return -1;
	l->n++;
	return 0;
}

/*
 * Call cred.list {type, kind} page after page until "next" is nil.
 * Returns 0 or an exit status.
 */
static int
credctl_cred_list_kind(struct credctl *ctx, const char *type,
    const char *kind, struct credctl_names *out)
{
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*res, *items, *next;
	struct credctl_pack	 p;
	char			*after = NULL;
	uint32_t		 i;
	int			 rc;

	for (;;) {
		credctl_pack_init(&p);
		msgpack_pack_map(&p.pk, after != NULL ? 4 : 3);
		proto_pack_kv_str(&p.pk, "type", type);
		proto_pack_kv_str(&p.pk, "kind", kind);
		proto_pack_kv_int(&p.pk, "limit", 1000);
		if (after != NULL)
			proto_pack_kv_str(&p.pk, "after", after);
		rc = credctl_call(ctx, "cred.list", &p, &reply);
		credctl_pack_free(&p);
		free(after);
		after = NULL;
		if (rc != 0)
			return rc;
		res = credbroker_reply_result(reply);
		items = proto_map_get(res, "items");
		next = proto_map_get(res, "next");
		if (items == NULL || items->type != MSGPACK_OBJECT_ARRAY ||
		    next == NULL || (next->type != MSGPACK_OBJECT_NIL &&
		    next->type != MSGPACK_OBJECT_STR)) {
			credbroker_reply_free(reply);
			return credctl_local_error(ctx,
			    CREDBROKER_ERR_PROTOCOL, "cred.list did not "
			    "return {items, next}");
		}
		for (i = 0; i < items->via.array.size; i++)
			if (credctl_names_add(out,
			    &items->via.array.ptr[i]) != 0) {
				credbroker_reply_free(reply);
				return credctl_local_error(ctx,
				    CREDBROKER_ERR_PROTOCOL, "cred.list "
				    "returned an item that is not a string, "
				    "or out of memory");
			}
		if (next->type == MSGPACK_OBJECT_STR &&
		    (after = strndup(next->via.str.ptr,
		    next->via.str.size)) == NULL) {
			credbroker_reply_free(reply);
			return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
		}
		credbroker_reply_free(reply);
		if (after == NULL)
			return 0;
	}
}

/* --json: {"users": [...], "accounts": [...]} */
static int
credctl_cred_list_json(struct credctl *ctx, struct credctl_names *users,
    struct credctl_names *accounts)
{
	struct credctl_names	*kinds[2] = { users, accounts };
	static const char *const names[2] = { "users", "accounts" };
	struct credctl_pack	 p;
	msgpack_unpacked	 up;
	size_t			 i, k;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 2);
	for (k = 0; k < 2; k++) {
		proto_pack_cstr(&p.pk, names[k]);
		msgpack_pack_array(&p.pk, (uint32_t)kinds[k]->n);
		for (i = 0; i < kinds[k]->n; i++)
			proto_pack_cstr(&p.pk, kinds[k]->v[i]);
	}
	msgpack_unpacked_init(&up);
	if (secbuf_failed(&p.buf) || msgpack_unpack_next(&up,
	    (const char *)p.buf.data, p.buf.len, NULL) !=
	    MSGPACK_UNPACK_SUCCESS)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	else
		rc = credctl_output(ctx, &up.data);
	msgpack_unpacked_destroy(&up);
	credctl_pack_free(&p);
	return rc;
}

/* credctl cred list --type TYPE */
int
credctl_cred_list(struct credctl *ctx, struct credctl_args *args)
{
	static const char *const headers[] = { "KIND", "NAME", NULL };
	struct credctl_names	 users = { 0 }, accounts = { 0 };
	struct credctl_table	*t = NULL;
	char			*row[2];
	size_t			 i;
	int			 rc;

	if (args->type == NULL)
		return credctl_usage(ctx, "cred list: --type TYPE is "
		    "required");
	if ((rc = credctl_cred_list_kind(ctx, args->type, "users",
	    &users)) != 0 ||
	    (rc = credctl_cred_list_kind(ctx, args->type, "accounts",
	    &accounts)) != 0)
		goto done;
	if (ctx->json) {
		rc = credctl_cred_list_json(ctx, &users, &accounts);
		goto done;
	}
	if ((t = credctl_table_new(headers)) == NULL) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
		goto done;
	}
	for (i = 0; i < users.n + accounts.n; i++) {
		row[0] = strdup(i < users.n ? "user" : "account");
		row[1] = credctl_sanitize(i < users.n ? users.v[i] :
		    accounts.v[i - users.n], strlen(i < users.n ?
		    users.v[i] : accounts.v[i - users.n]));
		if (credctl_table_add_cells(t, row) != 0) {
			rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
			goto done;
		}
	}
	credctl_table_print(stdout, t);
done:
	credctl_table_free(t);
	credctl_names_free(&users);
	credctl_names_free(&accounts);
	return rc;
}

/* credctl cred rm TYPE USER|--account NAME [--force] */
int
credctl_cred_rm(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	struct credctl_pack	 p;
	int			 rc;

	if ((rc = credctl_cred_owner(ctx, args)) != 0)
		return rc;
	if (args->force && args->account == NULL)
		return credctl_usage(ctx, "cred rm: --force applies to "
		    "--account only");
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, args->force ? 3 : 2);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	credctl_pack_owner(&p, args);
	if (args->force)
		proto_pack_kv_bool(&p.pk, "force", true);
	rc = credctl_call(ctx, "cred.delete", &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	credbroker_reply_free(reply);
	return rc;
}

/* credctl cred link TYPE USER ACCOUNT */
int
credctl_cred_link(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res;
	struct credctl_pack	 p;
	char			*account, *at;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 3);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	proto_pack_kv_str(&p.pk, "user", args->argv[1]);
	proto_pack_kv_str(&p.pk, "account", args->argv[2]);
	rc = credctl_call(ctx, "cred.link", &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else {
		account = credctl_text(proto_map_get(res, "account"));
		at = credctl_text(proto_map_get(res, "updated_at"));
		printf("linked to %s at %s\n", account != NULL ? account : "?",
		    at != NULL ? at : "?");
		free(account);
		free(at);
	}
	credbroker_reply_free(reply);
	return rc;
}

/* credctl cred unlink TYPE USER */
int
credctl_cred_unlink(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	struct credctl_pack	 p;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 2);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	proto_pack_kv_str(&p.pk, "user", args->argv[1]);
	rc = credctl_call(ctx, "cred.unlink", &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	credbroker_reply_free(reply);
	return rc;
}
