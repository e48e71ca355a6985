/*
 * scrub: echo scrubbing of the responses to broker-executed requests (SPEC
 * section 13).  The patterns (each value used by a call and its filter
 * encodings) go into an Aho-Corasick automaton; each response field is a
 * stream fed through it, and the output has every leftmost-longest match
 * replaced with "[REDACTED:<id>]".
 *
 * Leftmost-longest in one pass: the automaton's state always describes
 * the text from the end of the last written match on (state q is the
 * longest suffix of text[p, pos) that begins a pattern), so every match it
 * reports starts there or later.  Matches that may still lose to one not
 * yet seen are kept as a short list of tentative ones (scrub_record); the
 * first is written as soon as no match still in progress can start at or
 * before it (scrub_settle), and the state is then cut back to the text
 * after it by following failure links.  Each byte deepens the state by at
 * most one and each failure link makes it shallower, so the work is
 * linear in the input (a byte that ends several patterns at once may
 * also walk the output links: at most once per pattern that is a suffix
 * of another, a bound of the patterns, not of the text); no byte is read
 * twice (restarting the search
 * after a match, as simpler leftmost automata do, costs the length of the
 * longest pattern per match on hostile input).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "scrub.h"
#include "secbuf.h"
#include "template.h"

#define SCRUB_NONE	UINT32_MAX
#define SCRUB_FLUSH	4096	/* released bytes gathered before a write */

/* A pattern before compilation: its bytes are in scrub.pbytes. */
struct scrub_pat {
	size_t		 off;
	size_t		 len;
	uint32_t	 a;		/* id index */
	uint32_t	 b;		/* second id of a pair, or SCRUB_NONE */
};

/* A value added, kept until compilation for the pair patterns. */
struct scrub_val {
	uint32_t	 id;
	struct secbuf	 v;
};

/*
 * A node of the trie.  Node 0 is the root; 0 as a child, sibling or out
 * means none (the root is nobody's child and ends no pattern).
 */
struct scrub_node {
	uint32_t	 fail;		/* longest proper suffix in the trie */
	uint32_t	 out;		/* nearest node ending a pattern on the
					   fail chain, this one included */
	uint32_t	 depth;
	uint32_t	 live;		/* depth of the deepest node with a child
					   on the fail chain, this one included */
	uint32_t	 pat;		/* pattern ending here, or SCRUB_NONE */
	uint32_t	 child;		/* first child */
	uint32_t	 sibling;	/* next child of the parent */
	uint8_t		 byte;		/* the edge from the parent */
};

struct scrub {
	char		 ids[SCRUB_IDS_MAX][TPL_ID_MAX + 1];
	size_t		 nids;
	struct scrub_val vals[SCRUB_VALUES_MAX];
	size_t		 nvals;
	size_t		 nrendered;
	struct secbuf	 pbytes;	/* the patterns' bytes, until compiled */
	struct scrub_pat *pats;
	size_t		 npats;
	size_t		 patcap;
	size_t		 skipped;
	bool		 compiled;

	struct scrub_node *nodes;	/* secmem */
	size_t		 nodes_cap;	/* bytes */
	size_t		 nnodes;
	uint32_t	 root[256];	/* the root's children, dense */
	uint32_t	*patid;		/* pattern -> a, b (2 per pattern) */
	size_t		 patid_cap;
	size_t		 maxlen;	/* longest pattern */

	size_t		 count;
	uint64_t	 steps;
	size_t		 cap;		/* bytes allocated for this struct */
};

/* A match not yet written: it may still lose to one found later. */
struct scrub_tent {
	uint64_t	 start;
	uint64_t	 end;
	uint32_t	 pat;
};

struct scrub_stream {
	struct scrub	*s;
	uint8_t		*ring;		/* unwritten bytes, by offset % ringsz */
	size_t		 ringcap;	/* bytes allocated */
	size_t		 ringsz;
	struct scrub_tent *tent;	/* a deque, in text order */
	size_t		 tentcap;	/* bytes allocated */
	size_t		 tentsz;	/* entries */
	size_t		 thead;
	size_t		 tn;
	uint64_t	 pos;		/* bytes fed */
	uint64_t	 emitted;	/* bytes before this are written */
	uint64_t	 rel;		/* bytes before this may be written */
	uint64_t	 p;		/* matches start here or later */
	uint32_t	 q;		/* automaton state for text[p, pos) */
};

/* Whether id is 1 to TPL_ID_MAX bytes of [A-Za-z0-9_-]. */
static bool
scrub_id_valid(const char *id)
{
	size_t	i;

	for (i = 0; id[i] != '\0'; i++) {
		if (i == TPL_ID_MAX)
			return false;
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= '0' && id[i] <= '9') || id[i] == '_' ||
		    id[i] == '-'))
			return false;
	}
	return i > 0;
}

/* The index of id in s->ids, added if new. */
static int
scrub_id(struct scrub *s, const char *id, uint32_t *idx, struct cb_error *err)
{
	size_t	i;

	if (id == NULL || !scrub_id_valid(id))
		return cb_error_set(err, CB_EBADREQ, "scrub: invalid "
		    "credential id");
	for (i = 0; i < s->nids; i++)
		if (strcmp(s->ids[i], id) == 0) {
			*idx = (uint32_t)i;
			return 0;
		}
	if (s->nids == SCRUB_IDS_MAX)
		return cb_error_set(err, CB_ETOOLARGE, "scrub: more than %d "
		    "credential ids", SCRUB_IDS_MAX);
	strcpy(s->ids[s->nids], id);
	*idx = (uint32_t)s->nids++;
	return 0;
}

/*
 * Record the pattern that the last len bytes of s->pbytes hold; on error
 * they are dropped (and wiped with pbytes).
 */
static int
scrub_pat_push(struct scrub *s, uint32_t a, uint32_t b, size_t len,
    struct cb_error *err)
{
	struct scrub_pat	*np;
	size_t			 n;

	if (len > SCRUB_BYTES_MAX || s->pbytes.len > SCRUB_BYTES_MAX) {
		s->pbytes.len -= len;
		return cb_error_set(err, CB_ETOOLARGE, "scrub: the patterns "
		    "to look for would take more than %zu bytes",
		    SCRUB_BYTES_MAX);
	}
	if (s->npats == s->patcap) {
		n = s->patcap == 0 ? 16 : s->patcap * 2;
		if ((np = reallocarray(s->pats, n, sizeof(*np))) == NULL) {
			s->pbytes.len -= len;
			return cb_error_set(err, CB_EINTERNAL,
			    "out of memory");
		}
		s->pats = np;
		s->patcap = n;
	}
	s->pats[s->npats].off = s->pbytes.len - len;
	s->pats[s->npats].len = len;
	s->pats[s->npats].a = a;
	s->pats[s->npats].b = b;
	s->npats++;
	return 0;
}

/* Append filter f of n bytes at v as a pattern; json of non-UTF-8 is none. */
static int
scrub_pat_filter(struct scrub *s, int f, uint32_t a, uint32_t b,
    const uint8_t *v, size_t n, struct cb_error *err)
{
	size_t	before = s->pbytes.len;
	int	rc;

	if ((rc = tpl_filter_apply(f, v, n, &s->pbytes, err)) != 0) {
		s->pbytes.len = before;
		if (rc == -CB_EBADREQ && f == TPL_F_JSON) {
			cb_error_clear(err);
			return 0;
		}
		return rc;
	}
	return scrub_pat_push(s, a, b, s->pbytes.len - before, err);
}

int
scrub_new(struct scrub **out, struct cb_error *err)
{
	struct scrub	*s;
	size_t		 cap;

	*out = NULL;
	/* Locked like the rest: root[] is a table built from the patterns. */
	if ((s = secmem_alloc(sizeof(*s), &cap)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	memset(s, 0, sizeof(*s));
	s->cap = cap;
	*out = s;
	return 0;
}

int
scrub_add_value(struct scrub *s, const char *id, const uint8_t *val,
    size_t len, struct cb_error *err)
{
	struct scrub_val	*sv;
	size_t			 i, before;
	uint32_t		 a;
	int			 rc;

	if (s->compiled)
		return cb_error_set(err, CB_EINTERNAL, "scrub: value added "
		    "after compilation");
	if ((rc = scrub_id(s, id, &a, err)) != 0)
		return rc;
	for (i = 0; i < s->nvals; i++)
		if (s->vals[i].id == a && s->vals[i].v.len == len &&
		    (len == 0 ||
		    CRYPTO_memcmp(s->vals[i].v.data, val, len) == 0))
			return 0;
	if (s->nvals == SCRUB_VALUES_MAX)
		return cb_error_set(err, CB_ETOOLARGE, "scrub: more than %d "
		    "credential values", SCRUB_VALUES_MAX);
	if (len > SCRUB_BYTES_MAX - s->pbytes.len)
		return cb_error_set(err, CB_ETOOLARGE, "scrub: the patterns "
		    "to look for would take more than %zu bytes",
		    SCRUB_BYTES_MAX);
	sv = &s->vals[s->nvals];
	if (secbuf_append(&sv->v, val, len) != 0) {
		secbuf_free(&sv->v);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	sv->id = a;
	s->nvals++;
	if (len < SCRUB_MIN_LEN) {
		s->skipped++;
		return 0;
	}

	before = s->pbytes.len;
	if (secbuf_append(&s->pbytes, val, len) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	if ((rc = scrub_pat_push(s, a, SCRUB_NONE, len, err)) != 0)
		goto fail;
	if ((rc = scrub_pat_filter(s, TPL_F_URLQUERY, a, SCRUB_NONE, val,
	    len, err)) != 0)
		goto fail;
	if ((rc = scrub_pat_filter(s, TPL_F_JSON, a, SCRUB_NONE, val, len,
	    err)) != 0)
		goto fail;
	if ((rc = scrub_pat_filter(s, TPL_F_BASE64, a, SCRUB_NONE, val, len,
	    err)) != 0)
		goto fail;
	return 0;
fail:
	/* All or nothing: drop this value's patterns and the value. */
	while (s->npats > 0 && s->pats[s->npats - 1].off >= before)
		s->npats--;
	s->pbytes.len = before;
	s->nvals--;
	secbuf_free(&s->vals[s->nvals].v);
	return rc;
}

int
scrub_add_rendered(struct scrub *s, const char *id, const uint8_t *p,
    size_t len, struct cb_error *err)
{
	uint32_t	a;
	int		rc;

	if (s->compiled)
		return cb_error_set(err, CB_EINTERNAL, "scrub: pattern added "
		    "after compilation");
	if ((rc = scrub_id(s, id, &a, err)) != 0)
		return rc;
	if (s->nrendered == SCRUB_RENDERED_MAX)
		return cb_error_set(err, CB_ETOOLARGE, "scrub: more than %d "
		    "rendered values", SCRUB_RENDERED_MAX);
	if (len < SCRUB_MIN_LEN) {
		s->nrendered++;
		s->skipped++;
		return 0;
	}
	if (len > SCRUB_BYTES_MAX - s->pbytes.len)
		return cb_error_set(err, CB_ETOOLARGE, "scrub: the patterns "
		    "to look for would take more than %zu bytes",
		    SCRUB_BYTES_MAX);
	if (secbuf_append(&s->pbytes, p, len) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if ((rc = scrub_pat_push(s, a, SCRUB_NONE, len, err)) != 0)
		return rc;
	s->nrendered++;
	return 0;
}

/* base64(a ":" b) for every ordered pair of values. */
static int
scrub_pairs(struct scrub *s, struct cb_error *err)
{
	struct secbuf	 tmp = SECBUF_INIT;
	struct scrub_val *va, *vb;
	size_t		 i, j;
	int		 rc = 0;

	for (i = 0; i < s->nvals; i++) {
		for (j = 0; j < s->nvals; j++) {
			if (i == j)
				continue;
			va = &s->vals[i];
			vb = &s->vals[j];
			if (va->v.len + 1 + vb->v.len < SCRUB_MIN_LEN) {
				s->skipped++;
				continue;
			}
			secbuf_reset(&tmp);
			if (secbuf_append(&tmp, va->v.data, va->v.len) != 0 ||
			    secbuf_append(&tmp, ":", 1) != 0 ||
			    secbuf_append(&tmp, vb->v.data, vb->v.len) != 0) {
				rc = cb_error_set(err, CB_EINTERNAL,
				    "out of memory");
				goto done;
			}
			if ((rc = scrub_pat_filter(s, TPL_F_BASE64, va->id,
			    vb->id, tmp.data, tmp.len, err)) != 0)
				goto done;
		}
	}
done:
	secbuf_free(&tmp);
	return rc;
}

/* The child of node u on byte c, or 0. */
static uint32_t
scrub_child(const struct scrub *s, uint32_t u, uint8_t c)
{
	uint32_t	v;

	if (u == 0)
		return s->root[c];
	for (v = s->nodes[u].child; v != 0; v = s->nodes[v].sibling)
		if (s->nodes[v].byte == c)
			return v;
	return 0;
}

/* Add pattern k to the trie (nodes has room: one per pattern byte). */
static void
scrub_insert(struct scrub *s, uint32_t k, const uint8_t *p, size_t len)
{
	struct scrub_node	*n;
	uint32_t		 u = 0, v;
	size_t			 i;

	for (i = 0; i < len; i++) {
		if ((v = scrub_child(s, u, p[i])) == 0) {
			v = (uint32_t)s->nnodes++;
			n = &s->nodes[v];
			memset(n, 0, sizeof(*n));
			n->pat = SCRUB_NONE;
			n->depth = s->nodes[u].depth + 1;
			n->byte = p[i];
			n->sibling = s->nodes[u].child;
			s->nodes[u].child = v;
			if (u == 0)
				s->root[p[i]] = v;
		}
		u = v;
	}
	if (s->nodes[u].pat == SCRUB_NONE)
		s->nodes[u].pat = k;	/* the first of equal patterns */
}

/* Failure, output and live links, breadth first. */
static int
scrub_links(struct scrub *s, struct cb_error *err)
{
	struct scrub_node	*nd = s->nodes;
	uint32_t		*queue;
	size_t			 qcap, head = 0, tail = 0;
	uint32_t		 u, v, f, w;

	if ((queue = secmem_alloc(s->nnodes * sizeof(*queue), &qcap)) ==
	    NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	nd[0].fail = 0;
	nd[0].out = 0;
	nd[0].live = 0;
	queue[tail++] = 0;
	while (head < tail) {
		u = queue[head++];
		for (v = nd[u].child; v != 0; v = nd[v].sibling) {
			queue[tail++] = v;
			f = 0;
			if (u != 0) {
				for (f = nd[u].fail;; f = nd[f].fail) {
					if ((w = scrub_child(s, f,
					    nd[v].byte)) != 0) {
						f = w;
						break;
					}
					if (f == 0)
						break;
				}
			}
			nd[v].fail = f;
			nd[v].out = nd[v].pat != SCRUB_NONE ? v : nd[f].out;
			nd[v].live = nd[v].child != 0 ? nd[v].depth :
			    nd[f].live;
		}
	}
	secmem_free(queue, qcap);
	return 0;
}

int
scrub_compile(struct scrub *s, struct cb_error *err)
{
	size_t		 i, n;
	int		 rc = 0;

	if (s->compiled)
		return cb_error_set(err, CB_EINTERNAL, "scrub: compiled twice");
	if ((rc = scrub_pairs(s, err)) != 0)
		goto done;
	if (s->pbytes.len > SIZE_MAX / sizeof(struct scrub_node) - 1) {
		rc = cb_error_set(err, CB_ETOOLARGE, "scrub: too many "
		    "pattern bytes");
		goto done;
	}
	n = s->pbytes.len + 1;
	if ((s->nodes = secmem_alloc(n * sizeof(*s->nodes), &s->nodes_cap)) ==
	    NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((s->patid = secmem_alloc((s->npats + 1) * 2 * sizeof(*s->patid),
	    &s->patid_cap)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	memset(&s->nodes[0], 0, sizeof(s->nodes[0]));
	s->nodes[0].pat = SCRUB_NONE;
	s->nnodes = 1;
	memset(s->root, 0, sizeof(s->root));
	s->maxlen = 0;
	for (i = 0; i < s->npats; i++) {
		scrub_insert(s, (uint32_t)i, s->pbytes.data + s->pats[i].off,
		    s->pats[i].len);
		s->patid[2 * i] = s->pats[i].a;
		s->patid[2 * i + 1] = s->pats[i].b;
		if (s->pats[i].len > s->maxlen)
			s->maxlen = s->pats[i].len;
	}
	rc = scrub_links(s, err);
done:
	/* The trie holds the patterns now; the staging copies go. */
	secbuf_free(&s->pbytes);
	for (i = 0; i < s->nvals; i++)
		secbuf_free(&s->vals[i].v);
	if (rc != 0) {
		if (s->nodes != NULL)
			secmem_free(s->nodes, s->nodes_cap);
		s->nodes = NULL;
		s->nnodes = 0;
		cb_wipe(s->root, sizeof(s->root));
	}
	s->compiled = true;	/* failed or not: no more adds */
	return rc;
}

int
scrub_stream_begin(struct scrub *s, struct scrub_stream **out,
    struct cb_error *err)
{
	struct scrub_stream	*st;
	int			 rc = 0;

	*out = NULL;
	if (!s->compiled || s->nodes == NULL)
		return cb_error_set(err, CB_EINTERNAL, "scrub: stream on a "
		    "scrubber that is not compiled");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	st->s = s;
	/*
	 * Unwritten bytes: up to maxlen - 1 held back, one being looked
	 * at, and fewer than SCRUB_FLUSH released but not yet written.
	 */
	st->ringsz = s->maxlen + SCRUB_FLUSH;
	/* Matches do not overlap and are SCRUB_MIN_LEN long or more. */
	st->tentsz = s->maxlen / SCRUB_MIN_LEN + 2;
	if ((st->ring = secmem_alloc(st->ringsz, &st->ringcap)) == NULL ||
	    (st->tent = secmem_alloc(st->tentsz * sizeof(*st->tent),
	    &st->tentcap)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	*out = st;
done:
	if (rc != 0)
		scrub_stream_free(st);
	return rc;
}

static struct scrub_tent *
scrub_tent(struct scrub_stream *st, size_t j)
{
	return &st->tent[(st->thead + j) % st->tentsz];
}

/* The automaton's next state from q on byte c. */
static uint32_t
scrub_step(struct scrub *s, uint32_t q, uint8_t c)
{
	uint32_t	v;

	for (;;) {
		s->steps++;
		if ((v = scrub_child(s, q, c)) != 0 || q == 0)
			return v;
		q = s->nodes[q].fail;
	}
}

/*
 * Fold the matches that end at st->pos into the tentative matches.  The
 * tentative list is what leftmost-longest selection from st->p makes of
 * every match found so far: T1, then the leftmost-longest match starting
 * at or after the end of T1, and so on.  A new match (s, pos) ends after
 * all of them, so it changes the list at the first step j where it is the
 * leftmost candidate, that is where no longer starts after T_j's start:
 * it replaces T_j and everything after.  The state only sees text from
 * st->p on, so its outputs (the longest first, then shorter ones along
 * the output links) all start at or after st->p.
 */
static void
scrub_record(struct scrub_stream *st)
{
	struct scrub		*s = st->s;
	const struct scrub_node	*nd = s->nodes;
	struct scrub_tent	*t;
	uint32_t		 o;
	uint64_t		 start, from;
	size_t			 j;

	if ((o = nd[st->q].out) == 0)
		return;
	start = st->pos - nd[o].depth;
	/*
	 * Steps whose T_j ends at or before start keep T_j: skip them,
	 * from the back.  What is passed over here is then either dropped
	 * or paid for by a step along the output links below.
	 */
	for (j = st->tn; j > 0 && scrub_tent(st, j - 1)->end > start; j--)
		s->steps++;
	for (;; j++) {
		if (j == st->tn) {
			if (st->tn == st->tentsz)
				return;		/* cannot happen: see begin */
			st->tn++;
			break;
		}
		t = scrub_tent(st, j);
		if (start <= t->start) {
			st->tn = j + 1;
			break;
		}
		/* T_j stays; the next step needs a match from its end on. */
		from = t->end;
		while (o != 0 && st->pos - nd[o].depth < from) {
			s->steps++;
			o = nd[nd[o].fail].out;
		}
		if (o == 0)
			return;
		start = st->pos - nd[o].depth;
	}
	t = scrub_tent(st, j);
	t->start = start;
	t->end = st->pos;
	t->pat = nd[o].pat;
}

/* Write the unwritten bytes [st->emitted, to) from the ring into out. */
static int
scrub_emit_raw(struct scrub_stream *st, uint64_t to, struct secbuf *out)
{
	size_t	off, n;

	while (st->emitted < to) {
		off = (size_t)(st->emitted % st->ringsz);
		n = st->ringsz - off;
		if ((uint64_t)n > to - st->emitted)
			n = (size_t)(to - st->emitted);
		if (secbuf_append(out, st->ring + off, n) != 0)
			return -CB_EINTERNAL;
		st->emitted += n;
	}
	return 0;
}

/* Write T1 (and the text before it) and drop it from the list. */
static int
scrub_commit(struct scrub_stream *st, struct secbuf *out)
{
	struct scrub		*s = st->s;
	struct scrub_tent	*t = scrub_tent(st, 0);
	uint32_t		 a, b;

	if (scrub_emit_raw(st, t->start, out) != 0)
		return -CB_EINTERNAL;
	a = s->patid[2 * t->pat];
	b = s->patid[2 * t->pat + 1];
	if (secbuf_append(out, "[REDACTED:", 10) != 0 ||
	    secbuf_append(out, s->ids[a], strlen(s->ids[a])) != 0 ||
	    (b != SCRUB_NONE && (secbuf_append(out, "+", 1) != 0 ||
	    secbuf_append(out, s->ids[b], strlen(s->ids[b])) != 0)) ||
	    secbuf_append(out, "]", 1) != 0)
		return -CB_EINTERNAL;
	s->count++;
	st->emitted = st->rel = st->p = t->end;
	st->thead = (st->thead + 1) % st->tentsz;
	st->tn--;
	return 0;
}

/*
 * Write what is settled after a byte: every future match starts at or
 * after pos - live (its part seen so far is a suffix of the text that can
 * still grow), so T1 is final once it starts before that, and the bytes
 * before both are released.
 */
static int
scrub_settle(struct scrub_stream *st, struct secbuf *out)
{
	struct scrub		*s = st->s;
	const struct scrub_node	*nd = s->nodes;
	uint64_t		 lim;

	for (;;) {
		lim = st->pos - nd[st->q].live;
		if (st->tn == 0 || scrub_tent(st, 0)->start >= lim)
			break;
		if (scrub_commit(st, out) != 0)
			return -CB_EINTERNAL;
		/* From the match's end on: shorten the state to fit. */
		while (nd[st->q].depth > st->pos - st->p) {
			s->steps++;
			st->q = nd[st->q].fail;
		}
	}
	if (lim > st->rel)
		st->rel = lim;
	if (st->rel - st->emitted >= SCRUB_FLUSH)
		return scrub_emit_raw(st, st->rel, out);
	return 0;
}

int
scrub_feed(struct scrub_stream *st, const void *in, size_t len,
    struct secbuf *out, struct cb_error *err)
{
	const uint8_t	*b = in;
	struct scrub	*s = st->s;
	size_t		 k;

	for (k = 0; k < len; k++) {
		st->ring[st->pos % st->ringsz] = b[k];
		st->pos++;
		st->q = scrub_step(s, st->q, b[k]);
		scrub_record(st);
		if (scrub_settle(st, out) != 0)
			return cb_error_set(err, CB_EINTERNAL,
			    "out of memory");
	}
	if (scrub_emit_raw(st, st->rel, out) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	return 0;
}

int
scrub_stream_end(struct scrub_stream *st, struct secbuf *out,
    struct cb_error *err)
{
	int	rc = 0;

	/* No byte follows: every tentative match is final. */
	while (st->tn > 0)
		if (scrub_commit(st, out) != 0)
			goto oom;
	if (scrub_emit_raw(st, st->pos, out) != 0)
		goto oom;
	goto done;
oom:
	rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
done:
	scrub_stream_free(st);
	return rc;
}

size_t
scrub_stream_held(const struct scrub_stream *st)
{
	return (size_t)(st->pos - st->emitted);
}

void
scrub_stream_free(struct scrub_stream *st)
{
	if (st == NULL)
		return;
	if (st->ring != NULL)
		secmem_free(st->ring, st->ringcap);
	if (st->tent != NULL)
		secmem_free(st->tent, st->tentcap);
	cb_wipe(st, sizeof(*st));
	free(st);
}

size_t
scrub_count(const struct scrub *s)
{
	return s->count;
}

size_t
scrub_skipped(const struct scrub *s)
{
	return s->skipped;
}

uint64_t
scrub_steps(const struct scrub *s)
{
	return s->steps;
}

void
scrub_free(struct scrub *s)
{
	size_t	i;

	if (s == NULL)
		return;
	secbuf_free(&s->pbytes);
	for (i = 0; i < s->nvals; i++)
		secbuf_free(&s->vals[i].v);
	if (s->pats != NULL) {
		cb_wipe(s->pats, s->patcap * sizeof(*s->pats));
		free(s->pats);
	}
	if (s->nodes != NULL)
		secmem_free(s->nodes, s->nodes_cap);
	if (s->patid != NULL)
		secmem_free(s->patid, s->patid_cap);
	secmem_free(s, s->cap);
}
