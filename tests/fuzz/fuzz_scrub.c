/*
 * fuzz_scrub: libFuzzer target for daemon/scrub.c, the echo scrubber of
 * responses to broker-executed requests.
 *
 * Input layout (tests/fuzz/make_corpus.py writes seeds in it):
 *
 *	byte 0		number of patterns N (taken modulo 9)
 *	N times		[flags][len][len bytes]: flags bit 0 set is a value
 *			(scrub_add_value), clear a rendered pattern
 *			(scrub_add_rendered); bits 1-2 pick its id among
 *			"a", "b", "c", "d"; len is taken modulo 64
 *	byte		number of chunk sizes C (taken modulo 16)
 *	C bytes		chunk sizes for the streamed run, cycled (0 is 1)
 *	the rest	the text
 *
 * For each input the text is scrubbed in one feed and in chunks, and the
 * two outputs and counts must be equal; after every feed the stream holds
 * back less than the longest pattern.  Both must also equal a naive model
 * written here from scrub.h: the patterns listed in the order they were
 * added (each value's raw bytes, urlquery, json when it is valid UTF-8 and
 * base64; each rendered pattern; then base64(a ":" b) for every ordered
 * pair of values), those shorter than SCRUB_MIN_LEN by the rule of
 * scrub.h left out, and from each position the longest pattern starting
 * at the leftmost position where any does (the first added among equal
 * ones) replaced.  The encodings come from tpl_filter_apply, whose own
 * output fuzz_template checks against its model.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "scrub.h"
#include "secbuf.h"
#include "template.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_ASSERT(x)	do { if (!(x)) fz_fail(#x, __LINE__); } while (0)

/* An invariant does not hold: say which, then crash for libFuzzer. */
static void
fz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_scrub: invariant violated at line %d: %s\n",
	    line, what);
	__builtin_trap();
}

#define FZ_MAXIN	8
#define FZ_MAXPATS	(FZ_MAXIN * 4 + FZ_MAXIN * FZ_MAXIN)

static const char *const fz_ids[] = { "a", "b", "c", "d" };

struct fz_pat {
	struct secbuf	 b;
	const char	*ida;
	const char	*idb;	/* NULL unless a pair */
};

struct fz_model {
	struct fz_pat	 p[FZ_MAXPATS];
	size_t		 n;
	size_t		 maxlen;
};

/* Add len bytes at v as a pattern named ida (and idb) if long enough. */
static void
fz_add(struct fz_model *m, const uint8_t *v, size_t len, const char *ida,
    const char *idb)
{
	FZ_ASSERT(m->n < FZ_MAXPATS);
	FZ_ASSERT(secbuf_append(&m->p[m->n].b, v, len) == 0);
	m->p[m->n].ida = ida;
	m->p[m->n].idb = idb;
	if (len > m->maxlen)
		m->maxlen = len;
	m->n++;
}

/* The filter's output as a pattern; json of non-UTF-8 gives none. */
static void
fz_add_filter(struct fz_model *m, int f, const uint8_t *v, size_t len,
    const char *ida, const char *idb)
{
	struct secbuf	b = SECBUF_INIT;
	int		rc;

	rc = tpl_filter_apply(f, v, len, &b, NULL);
	if (rc == -CB_EBADREQ && f == TPL_F_JSON) {
		secbuf_free(&b);
		return;
	}
	FZ_ASSERT(rc == 0);
	fz_add(m, b.data, b.len, ida, idb);
	secbuf_free(&b);
}

/* Naive leftmost-longest replacement of text into out; the count. */
static size_t
fz_naive(const struct fz_model *m, const uint8_t *t, size_t len,
    struct secbuf *out)
{
	size_t	i = 0, k, best, bl, cnt = 0;

	while (i < len) {
		best = m->n;
		bl = 0;
		for (k = 0; k < m->n; k++)
			if (m->p[k].b.len > bl && m->p[k].b.len <= len - i &&
			    memcmp(t + i, m->p[k].b.data, m->p[k].b.len) ==
			    0) {
				best = k;
				bl = m->p[k].b.len;
			}
		if (best == m->n) {
			FZ_ASSERT(secbuf_append(out, t + i, 1) == 0);
			i++;
			continue;
		}
		FZ_ASSERT(secbuf_append(out, "[REDACTED:", 10) == 0);
		FZ_ASSERT(secbuf_append(out, m->p[best].ida,
		    strlen(m->p[best].ida)) == 0);
		if (m->p[best].idb != NULL) {
			FZ_ASSERT(secbuf_append(out, "+", 1) == 0);
			FZ_ASSERT(secbuf_append(out, m->p[best].idb,
			    strlen(m->p[best].idb)) == 0);
		}
		FZ_ASSERT(secbuf_append(out, "]", 1) == 0);
		i += bl;
		cnt++;
	}
	return cnt;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_model		 m;
	struct scrub		*s = NULL;
	struct scrub_stream	*st;
	struct secbuf		 one = SECBUF_INIT, many = SECBUF_INIT;
	struct secbuf		 model = SECBUF_INIT, tmp = SECBUF_INIT;
	struct cb_error		 err;
	const uint8_t		*vals[FZ_MAXIN], *chunks = NULL, *text;
	const char		*vid[FZ_MAXIN];
	size_t			 vlen[FZ_MAXIN], nv = 0, np, pos = 0, i, j;
	size_t			 nchunks, tlen, off, n, c, before, cnt;
	size_t			 cnt_one;
	uint8_t			 flags, len;
	bool			 dup;

	memset(&m, 0, sizeof(m));
	if (size < 1)
		return 0;
	np = data[pos++] % 9;
	FZ_ASSERT(scrub_new(&s, &err) == 0);
	for (i = 0; i < np; i++) {
		if (size - pos < 2)
			goto out;
		flags = data[pos++];
		len = data[pos++] % 64;
		if (len > size - pos)
			goto out;
		if (flags & 1) {
			FZ_ASSERT(scrub_add_value(s, fz_ids[(flags >> 1) & 3],
			    data + pos, len, &err) == 0);
			/* The same id and value again is no new value. */
			dup = false;
			for (j = 0; j < nv; j++)
				if (vid[j] == fz_ids[(flags >> 1) & 3] &&
				    vlen[j] == len &&
				    memcmp(vals[j], data + pos, len) == 0)
					dup = true;
			if (!dup) {
				vals[nv] = data + pos;
				vlen[nv] = len;
				vid[nv] = fz_ids[(flags >> 1) & 3];
				if (len >= SCRUB_MIN_LEN) {
					fz_add(&m, vals[nv], len, vid[nv],
					    NULL);
					fz_add_filter(&m, TPL_F_URLQUERY,
					    vals[nv], len, vid[nv], NULL);
					fz_add_filter(&m, TPL_F_JSON,
					    vals[nv], len, vid[nv], NULL);
					fz_add_filter(&m, TPL_F_BASE64,
					    vals[nv], len, vid[nv], NULL);
				}
				nv++;
			}
		} else {
			FZ_ASSERT(scrub_add_rendered(s,
			    fz_ids[(flags >> 1) & 3], data + pos, len,
			    &err) == 0);
			if (len >= SCRUB_MIN_LEN)
				fz_add(&m, data + pos, len,
				    fz_ids[(flags >> 1) & 3], NULL);
		}
		pos += len;
	}
	for (i = 0; i < nv; i++)
		for (j = 0; j < nv; j++) {
			if (i == j || vlen[i] + 1 + vlen[j] < SCRUB_MIN_LEN)
				continue;
			secbuf_reset(&tmp);
			FZ_ASSERT(secbuf_append(&tmp, vals[i], vlen[i]) == 0);
			FZ_ASSERT(secbuf_append(&tmp, ":", 1) == 0);
			FZ_ASSERT(secbuf_append(&tmp, vals[j], vlen[j]) == 0);
			fz_add_filter(&m, TPL_F_BASE64, tmp.data, tmp.len,
			    vid[i], vid[j]);
		}
	FZ_ASSERT(scrub_compile(s, &err) == 0);

	nchunks = 0;
	if (pos < size) {
		nchunks = data[pos++] % 16;
		if (nchunks > size - pos)
			nchunks = size - pos;
		chunks = data + pos;
		pos += nchunks;
	}
	text = data + pos;
	tlen = size - pos;

	/* One feed. */
	before = scrub_count(s);
	FZ_ASSERT(scrub_stream_begin(s, &st, &err) == 0);
	FZ_ASSERT(scrub_feed(st, text, tlen, &one, &err) == 0);
	FZ_ASSERT(scrub_stream_held(st) < (m.maxlen > 0 ? m.maxlen : 1));
	FZ_ASSERT(scrub_stream_end(st, &one, &err) == 0);
	cnt_one = scrub_count(s) - before;

	/* In chunks. */
	before = scrub_count(s);
	FZ_ASSERT(scrub_stream_begin(s, &st, &err) == 0);
	for (off = 0, c = 0; off < tlen; off += n, c++) {
		n = nchunks == 0 ? 1 : chunks[c % nchunks];
		if (n == 0)
			n = 1;
		if (n > tlen - off)
			n = tlen - off;
		FZ_ASSERT(scrub_feed(st, text + off, n, &many, &err) == 0);
		FZ_ASSERT(scrub_stream_held(st) <
		    (m.maxlen > 0 ? m.maxlen : 1));
	}
	FZ_ASSERT(scrub_stream_end(st, &many, &err) == 0);
	FZ_ASSERT(scrub_count(s) - before == cnt_one);
	FZ_ASSERT(one.len == many.len);
	FZ_ASSERT(one.len == 0 || memcmp(one.data, many.data, one.len) == 0);

	/* The model. */
	cnt = fz_naive(&m, text, tlen, &model);
	FZ_ASSERT(cnt == cnt_one);
	FZ_ASSERT(model.len == one.len);
	FZ_ASSERT(one.len == 0 || memcmp(model.data, one.data, one.len) == 0);
out:
	scrub_free(s);
	for (i = 0; i < m.n; i++)
		secbuf_free(&m.p[i].b);
	secbuf_free(&one);
	secbuf_free(&many);
	secbuf_free(&model);
	secbuf_free(&tmp);
	return 0;
}
