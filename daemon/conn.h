/*
 * conn.h: what server.c and conn.c share about a client connection.  The
 * connection's reading, framing, write queue, reply sink and the list of
 * open connections are conn.c's; server.c accepts and admits a connection
 * and closes them all at shutdown.  conn.c never calls into server.c: what
 * server.c must hear of (the last connection gone while stopping, a stack
 * to scrub) it learns through a callback and conn_take_scrub().
 */
#ifndef CONN_H
#define CONN_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "credbrokerd.h"
#include "proto.h"
#include "secbuf.h"

struct conn {
	uv_pipe_t		 pipe;
	uv_timer_t		 idle;		/* idle and message deadlines */
	struct broker		*b;
	uint64_t		 id;
	struct peer		 peer;
	struct secbuf		 rbuf;
	struct secbuf		 obuf;		/* replies not yet sent */
	unsigned		 obuf_n;
	bool			 wqueued;	/* on server_wpending */
	TAILQ_ENTRY(conn)	 wentry;
	struct proto_scan	 scan;
	unsigned		 pending_writes;	/* replies being written */
	unsigned		 inflight;	/* calls waiting (on Vault) */
	bool			 processing;	/* in conn_process() */
	unsigned		 held;		/* calls whose write is in flight */
	unsigned		 refs;		/* held by waiting calls */
	int			 open_handles;
	uint64_t		 last_read;	/* uv_now of the last bytes */
	uint64_t		 msg_start;	/* uv_now: a message began */
	bool			 msg_partial;	/* part of a message is read */
	bool			 reading;
	bool			 closing;	/* close once writes drain */
	bool			 closed;	/* uv_close called */
	bool			 notified;	/* a notification was logged */
	TAILQ_ENTRY(conn)	 entry;
};

TAILQ_HEAD(conn_list, conn);

/* conn.c: every connection accepted and not yet freed. */
extern struct conn_list conns;

/* conn.c */
/* Start reading from a connection just accepted and admitted. */
void	 conn_read_start(struct conn *c);
/* Close after pending writes and waiting calls. */
void	 conn_close(struct conn *c);
/* Close both handles now, dropping anything unsent. */
void	 conn_really_close(struct conn *c);
/*
 * on: replies wait for conn_send_queued() at the end of the loop
 * iteration (server.c's check handle runs); off: they are sent at once.
 */
void	 conn_defer_writes(bool on);
/* Send the replies queued during this loop iteration. */
void	 conn_send_queued(void);
/* Whether a call that handled a secret ended since the last call. */
bool	 conn_take_scrub(void);
/* Called when the last connection is freed while the broker stops. */
void	 conn_on_drained(void (*cb)(struct broker *));

#endif
