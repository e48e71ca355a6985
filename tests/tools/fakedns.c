/*
 * fakedns: a name-resolution stand-in for tests only, LD_PRELOAD'ed into
 * the daemon.  getaddrinfo(3) of a name listed in a file answers from the
 * file; every other name goes to the C library as usual.
 *
 *   CB_FAKEDNS_FILE	the list, one name a line:
 *			    NAME FIRST [LATER]
 *			FIRST and LATER are comma-separated numeric
 *			addresses: the first lookup of NAME answers FIRST,
 *			every later one LATER (FIRST again when absent).
 *			An empty list (a lone ",") answers "no address".
 *   CB_FAKEDNS_LOG	optional: each lookup of a listed name appends
 *			"NAME\n" here, so that a test can count them.
 *
 * Answers are SOCK_STREAM addresses in the order written.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/socket.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAKEDNS_NAMES	64

/* One answer block: what the list hands out, freed by freeaddrinfo. */
struct fakedns_ai {
	struct addrinfo		 ai;
	struct sockaddr_storage	 sa;
	struct fakedns_ai	*next_alloc;	/* the registry */
};

static pthread_mutex_t	 fakedns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fakedns_ai *fakedns_allocs;
static char		 fakedns_seen[FAKEDNS_NAMES][256];
static unsigned		 fakedns_count[FAKEDNS_NAMES];

/* How many times name was looked up before (and count this one). */
static unsigned
fakedns_bump(const char *name)
{
	unsigned	i, n = 0;

	pthread_mutex_lock(&fakedns_lock);
	for (i = 0; i < FAKEDNS_NAMES && fakedns_seen[i][0] != '\0'; i++)
		if (strcmp(fakedns_seen[i], name) == 0)
			break;
	if (i < FAKEDNS_NAMES) {
		if (fakedns_seen[i][0] == '\0')
			snprintf(fakedns_seen[i], sizeof(fakedns_seen[i]), "%s",
			    name);
		n = fakedns_count[i]++;
	}
	pthread_mutex_unlock(&fakedns_lock);
	return n;
}

/* The answer list for name's n-th lookup into buf, or 0 if not listed. */
static int
fakedns_find(const char *name, unsigned n, char *buf, size_t len)
{
	const char	*path = getenv("CB_FAKEDNS_FILE");
	char		 line[1024], nm[256], first[512], later[512];
	FILE		*f;
	int		 found = 0, k;

	if (path == NULL || (f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		k = sscanf(line, "%255s %511s %511s", nm, first, later);
		if (k < 2 || strcasecmp(nm, name) != 0)
			continue;
		snprintf(buf, len, "%s", n > 0 && k == 3 ? later : first);
		found = 1;
		break;
	}
	fclose(f);
	return found;
}

static void
fakedns_log(const char *name)
{
	const char	*path = getenv("CB_FAKEDNS_LOG");
	char		 line[300];
	int		 fd;

	if (path == NULL)
		return;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600)) < 0)
		return;
	snprintf(line, sizeof(line), "%s\n", name);
	if (write(fd, line, strlen(line)) < 0) {
		/* Nothing to do: the test will see the count is off. */
	}
	close(fd);
}

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static int (*real)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);
	struct fakedns_ai	*head = NULL, *tail = NULL, *b;
	char			 list[512], *tok, *save;
	unsigned		 port = 0;

	if (real == NULL)
		real = (int (*)(const char *, const char *,
		    const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT,
		    "getaddrinfo");
	if (node == NULL || !fakedns_find(node, 0, list, sizeof(list)))
		return real(node, service, hints, res);
	fakedns_log(node);
	fakedns_find(node, fakedns_bump(node), list, sizeof(list));
	if (service != NULL)
		port = (unsigned)atoi(service);
	for (tok = strtok_r(list, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			break;
		if (inet_pton(AF_INET, tok, &((struct sockaddr_in *)
		    &b->sa)->sin_addr) == 1) {
			((struct sockaddr_in *)&b->sa)->sin_family = AF_INET;
			((struct sockaddr_in *)&b->sa)->sin_port = htons(port);
			b->ai.ai_family = AF_INET;
			b->ai.ai_addrlen = sizeof(struct sockaddr_in);
		} else if (inet_pton(AF_INET6, tok, &((struct sockaddr_in6 *)
		    &b->sa)->sin6_addr) == 1) {
			((struct sockaddr_in6 *)&b->sa)->sin6_family = AF_INET6;
			((struct sockaddr_in6 *)&b->sa)->sin6_port = htons(port);
			b->ai.ai_family = AF_INET6;
			b->ai.ai_addrlen = sizeof(struct sockaddr_in6);
		} else {
			free(b);
			continue;
		}
		b->ai.ai_socktype = SOCK_STREAM;
		b->ai.ai_protocol = IPPROTO_TCP;
		b->ai.ai_addr = (struct sockaddr *)&b->sa;
		pthread_mutex_lock(&fakedns_lock);
		b->next_alloc = fakedns_allocs;
		fakedns_allocs = b;
		pthread_mutex_unlock(&fakedns_lock);
		if (tail != NULL)
			tail->ai.ai_next = &b->ai;
		else
			head = b;
		tail = b;
	}
	if (head == NULL)
		return EAI_NONAME;
	*res = &head->ai;
	return 0;
}

void
freeaddrinfo(struct addrinfo *ai)
{
	static void (*real)(struct addrinfo *);
	struct fakedns_ai	**pp, *b;
	struct addrinfo		*next;
	int			 ours = 0;

	if (real == NULL)
		real = (void (*)(struct addrinfo *))dlsym(RTLD_NEXT,
		    "freeaddrinfo");
	pthread_mutex_lock(&fakedns_lock);
	for (pp = &fakedns_allocs; *pp != NULL; pp = &(*pp)->next_alloc)
		if (&(*pp)->ai == ai) {
			ours = 1;
			break;
		}
	pthread_mutex_unlock(&fakedns_lock);
	if (!ours) {
		real(ai);
		return;
	}
	for (; ai != NULL; ai = next) {
		next = ai->ai_next;
		pthread_mutex_lock(&fakedns_lock);
		for (pp = &fakedns_allocs; *pp != NULL;
		    pp = &(*pp)->next_alloc)
			if (&(*pp)->ai == ai) {
				b = *pp;
				*pp = b->next_alloc;
				free(b);
				break;
			}
		pthread_mutex_unlock(&fakedns_lock);
	}
}
