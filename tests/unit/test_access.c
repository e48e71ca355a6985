/*
 * Unit tests for daemon/access.c: the union of permissions that grants
 * give a peer (matching on uid, primary gid and supplementary gids; no
 * default permissions, root included), and reading the kernel's view of a
 * peer (SO_PEERCRED, SO_PEERGROUPS) on a UNIX socketpair, including a peer
 * with more supplementary groups than the first guess holds.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "proto.h"

#define P(x)		CB_PERM_BIT(CB_PERM_##x)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct grant grants[] = {
	{ GRANT_UID, 1000, P(HEALTH), NULL },
	{ GRANT_GID, 100, P(USE), NULL },
	{ GRANT_GID, 2000, P(CREDS), NULL },
	{ GRANT_UID, 0, P(TYPES), NULL },
	{ GRANT_GID, 3000, P(HEALTH) | P(USE), NULL },
};

static void
test_uid_match(void **state)
{
	struct peer	p = { .uid = 1000, .gid = 1, .pid = 1 };

	(void)state;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), P(HEALTH));
	p.uid = 1001;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), 0);
}

static void
test_primary_gid_match(void **state)
{
	struct peer	p = { .uid = 5, .gid = 100, .pid = 1 };

	(void)state;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), P(USE));
	p.gid = 101;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), 0);
}

static void
test_supplementary_gid_match(void **state)
{
	gid_t		groups[] = { 7, 8, 2000, 9 };
	struct peer	p = { .uid = 5, .gid = 6, .pid = 1,
			    .groups = groups, .ngroups = 4 };

	(void)state;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), P(CREDS));
	/* Only the first ngroups entries count. */
	p.ngroups = 2;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), 0);
	/* Last entry. */
	groups[3] = 3000;
	p.ngroups = 4;
	assert_int_equal(access_perms(grants, NELEM(grants), &p),
	    P(CREDS) | P(HEALTH) | P(USE));
}

/* A uid grant never matches a gid of the same number, and the reverse. */
static void
test_kind_matters(void **state)
{
	gid_t		groups[] = { 1000 };
	struct peer	p = { .uid = 100, .gid = 1000, .pid = 1,
			    .groups = groups, .ngroups = 1 };

	(void)state;
	assert_int_equal(access_perms(grants, NELEM(grants), &p), 0);
}

/* Nothing is granted by default, to root neither. */
static void
test_default_deny(void **state)
{
	gid_t		groups[] = { 0, 1, 4 };
	struct peer	root = { .uid = 0, .gid = 0, .pid = 1,
			    .groups = groups, .ngroups = 3 };
	struct peer	nobody = { .uid = 65534, .gid = 65534, .pid = 2 };
	static const struct grant others[] = {
		{ GRANT_UID, 1000, CB_PERM_ALL, NULL },
		{ GRANT_GID, 1000, CB_PERM_ALL, NULL },
	};

	(void)state;
	assert_int_equal(access_perms(NULL, 0, &root), 0);
	assert_int_equal(access_perms(NULL, 0, &nobody), 0);
	assert_int_equal(access_perms(others, NELEM(others), &root), 0);
	assert_int_equal(access_perms(others, NELEM(others), &nobody), 0);
	/* Root gets exactly what is configured for uid 0. */
	assert_int_equal(access_perms(grants, NELEM(grants), &root), P(TYPES));
	/* n bounds the array. */
	assert_int_equal(access_perms(grants, 3, &root), 0);
}

static void
test_union_of_grants(void **state)
{
	gid_t		groups[] = { 2000, 3000 };
	struct peer	p = { .uid = 1000, .gid = 100, .pid = 1,
			    .groups = groups, .ngroups = 2 };
	static const struct grant dup[] = {
		{ GRANT_UID, 42, P(HEALTH), NULL },
		{ GRANT_UID, 42, P(HEALTH), NULL },
		{ GRANT_GID, 42, P(TYPES), NULL },
	};
	struct peer	q = { .uid = 42, .gid = 1, .pid = 1 };

	(void)state;
	assert_int_equal(access_perms(grants, NELEM(grants), &p),
	    P(HEALTH) | P(USE) | P(CREDS));
	/* The uid-0 grant (TYPES) is not for this peer. */
	assert_int_equal(access_perms(grants, NELEM(grants), &p) & P(TYPES),
	    0);
	assert_int_equal(access_perms(dup, NELEM(dup), &q), P(HEALTH));
	q.gid = 42;
	assert_int_equal(access_perms(dup, NELEM(dup), &q),
	    P(HEALTH) | P(TYPES));
}

static int
gid_cmp(const void *a, const void *b)
{
	gid_t	x = *(const gid_t *)a, y = *(const gid_t *)b;

	return x < y ? -1 : x > y;
}

/* groups (n of them) equal our getgroups() as a set. */
static int
groups_equal_ours(const gid_t *groups, int n)
{
	gid_t	*mine, *theirs;
	int	 m, ok;

	if ((m = getgroups(0, NULL)) < 0)
		return 0;
	mine = calloc((size_t)m + 1, sizeof(gid_t));
	theirs = calloc((size_t)n + 1, sizeof(gid_t));
	if (mine == NULL || theirs == NULL || getgroups(m, mine) != m) {
		free(mine);
		free(theirs);
		return 0;
	}
	if (n > 0)
		memcpy(theirs, groups, (size_t)n * sizeof(gid_t));
	qsort(mine, (size_t)m, sizeof(gid_t), gid_cmp);
	qsort(theirs, (size_t)n, sizeof(gid_t), gid_cmp);
	ok = m == n && memcmp(mine, theirs, (size_t)n * sizeof(gid_t)) == 0;
	free(mine);
	free(theirs);
	return ok;
}

static void
test_peer_get_socketpair(void **state)
{
	int		sv[2];
	struct peer	p;
	struct cb_error	err;
	int		i;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (i = 0; i < 2; i++) {
		cb_error_clear(&err);
		memset(&p, 0xa5, sizeof(p));
		assert_int_equal(access_peer_get(sv[i], &p, &err), 0);
		assert_int_equal(err.code, 0);
		assert_int_equal(p.uid, getuid());
		assert_int_equal(p.gid, getgid());
		assert_int_equal(p.pid, getpid());
		assert_true(p.ngroups >= 0);
		assert_non_null(p.groups);
		assert_true(groups_equal_ours(p.groups, p.ngroups));
		access_peer_free(&p);
		assert_null(p.groups);
		assert_int_equal(p.ngroups, 0);
		access_peer_free(&p);	/* twice is harmless */
	}
	close(sv[0]);
	close(sv[1]);
}

/* Errors: a closed descriptor, and something that is not a socket. */
static void
test_peer_get_errors(void **state)
{
	int		fds[2];
	struct peer	p;
	struct cb_error	err;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(access_peer_get(fds[0], &p, &err), -CB_EINTERNAL);
	assert_int_equal(err.code, CB_EINTERNAL);
	assert_string_equal(err.msg, "SO_PEERCRED: Socket operation on "
	    "non-socket");
	assert_null(p.groups);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(access_peer_get(fds[0], &p, &err), -CB_EINTERNAL);
	assert_string_equal(err.msg, "SO_PEERCRED: Bad file descriptor");
	assert_null(p.groups);
	assert_int_equal(access_peer_get(fds[0], &p, NULL), -CB_EINTERNAL);
}

#define MANY_GROUPS	40

/*
 * A peer with more supplementary groups than the first guess (16): the
 * retry with the size the kernel reports must get all of them.  Needs
 * CAP_SETGID to set the groups in a child process; skipped otherwise.
 */
static void
test_peer_get_many_groups(void **state)
{
	gid_t		set[MANY_GROUPS];
	pid_t		pid;
	int		i, status, pfd[2];
	char		why[128] = "";
	ssize_t		n;

	(void)state;
	for (i = 0; i < MANY_GROUPS; i++)
		set[i] = (gid_t)(50000 + i * 3);
	assert_int_equal(pipe(pfd), 0);
	if ((pid = fork()) == 0) {
		struct peer	p;
		struct cb_error	err;
		int		sv[2], k, found;
		const char	*msg = "";

		close(pfd[0]);
		if (setgroups(MANY_GROUPS, set) != 0)
			_exit(77);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			msg = "socketpair";
		else if (access_peer_get(sv[0], &p, &err) != 0)
			msg = err.msg;
		else if (p.ngroups != MANY_GROUPS)
			msg = "wrong group count";
		else {
			for (i = 0; i < MANY_GROUPS; i++) {
				found = 0;
				for (k = 0; k < p.ngroups; k++)
					if (p.groups[k] == set[i])
						found = 1;
				if (!found)
					msg = "group missing";
			}
			access_peer_free(&p);
		}
		if (write(pfd[1], msg, strlen(msg)) < 0)
			_exit(2);
		_exit(*msg == '\0' ? 0 : 1);
	}
	assert_true(pid > 0);
	close(pfd[1]);
	n = read(pfd[0], why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	if (WEXITSTATUS(status) != 0)
		fail_msg("child: %s (ngroups expected %d)", why, MANY_GROUPS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_match),
		cmocka_unit_test(test_primary_gid_match),
		cmocka_unit_test(test_supplementary_gid_match),
		cmocka_unit_test(test_kind_matters),
		cmocka_unit_test(test_default_deny),
		cmocka_unit_test(test_union_of_grants),
		cmocka_unit_test(test_peer_get_socketpair),
		cmocka_unit_test(test_peer_get_errors),
		cmocka_unit_test(test_peer_get_many_groups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
