/*
 * access: who is calling, and what they may do (SPEC section 7).
 *
 * The caller is whoever the kernel says is on the other end of the socket:
 * SO_PEERCRED gives uid, gid and pid, SO_PEERGROUPS the supplementary
 * groups, both as they were when the peer connected.  Permissions are the
 * union of every grant that names the uid, the primary gid or one of the
 * supplementary gids.  Nothing is granted by default, root included.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "credbrokerd.h"

int
access_peer_get(int fd, struct peer *p, struct cb_error *err)
{
	struct ucred	 uc;
	socklen_t	 len = sizeof(uc);
	gid_t		*groups = NULL, *ng;
	socklen_t	 glen;

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0)
		return cb_error_set(err, CB_EINTERNAL,
		    "SO_PEERCRED: %s", strerror(errno));
	p->uid = uc.uid;
	p->gid = uc.gid;
	p->pid = uc.pid;

	/* Ask with a guess, then with the size the kernel reports. */
	glen = 16 * sizeof(gid_t);
	for (;;) {
		if ((ng = realloc(groups, glen ? glen : sizeof(gid_t))) == NULL) {
			free(groups);
			return cb_error_set(err, CB_EINTERNAL, "out of memory");
		}
		groups = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups,
		    &glen) == 0)
			break;
		if (errno != ERANGE) {
			free(groups);
			return cb_error_set(err, CB_EINTERNAL,
			    "SO_PEERGROUPS: %s", strerror(errno));
		}
	}
	p->groups = groups;
	p->ngroups = (int)(glen / sizeof(gid_t));
	return 0;
}

void
access_peer_free(struct peer *p)
{
	free(p->groups);
	p->groups = NULL;
	p->ngroups = 0;
}

/* Whether the peer is in group gid (primary or supplementary). */
static int
access_in_group(const struct peer *p, gid_t gid)
{
	int	i;

	if (p->gid == gid)
		return 1;
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return 1;
	return 0;
}

unsigned
access_perms(const struct grant *grants, size_t n, const struct peer *p)
{
	unsigned	perms = 0;
	size_t		i;

	for (i = 0; i < n; i++) {
		if (grants[i].kind == GRANT_UID && grants[i].id == p->uid)
			perms |= grants[i].perms;
		else if (grants[i].kind == GRANT_GID &&
		    access_in_group(p, grants[i].id))
			perms |= grants[i].perms;
	}
	return perms;
}
