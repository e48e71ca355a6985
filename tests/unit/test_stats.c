/*
 * Unit tests for daemon/rpc-stats.c's latency histogram: values below
 * 2 * RPC_STATS_SUB microseconds are exact, larger ones fall into
 * log-linear buckets at most 1/RPC_STATS_SUB of their value wide; a
 * percentile is the upper bound of the bucket holding the rank-th value
 * (rank = ceil(count * q)), never more than the maximum, which is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "credbrokerd.h"

static struct rpc_stats_hist	h;

static void
reset(void)
{
	memset(&h, 0, sizeof(h));
}

static void
test_empty_histogram_reports_zero(void **state)
{
	(void)state;
	reset();
	assert_int_equal(h.count, 0);
	assert_int_equal(rpc_stats_hist_value(&h, 50000), 0);
	assert_int_equal(rpc_stats_hist_value(&h, 100000), 0);
}

static void
test_small_values_are_exact(void **state)
{
	uint64_t	v;

	(void)state;
	reset();
	for (v = 0; v < 2 * RPC_STATS_SUB; v++)
		rpc_stats_hist_add(&h, v);
	assert_int_equal(h.count, 2 * RPC_STATS_SUB);
	assert_int_equal(h.max, 2 * RPC_STATS_SUB - 1);
	/* 32 values 0..31: the 16th is 15, the 29th (ceil 28.8) is 28. */
	assert_int_equal(rpc_stats_hist_value(&h, 50000), 15);
	assert_int_equal(rpc_stats_hist_value(&h, 90000), 28);
	assert_int_equal(rpc_stats_hist_value(&h, 99000), 31);
	assert_int_equal(rpc_stats_hist_value(&h, 100000), 31);
	/* A quantile of 0 is the smallest value. */
	assert_int_equal(rpc_stats_hist_value(&h, 0), 0);
}

static void
test_percentiles_of_1_to_1000_are_bucket_tops(void **state)
{
	uint64_t	v;

	(void)state;
	reset();
	for (v = 1; v <= 1000; v++)
		rpc_stats_hist_add(&h, v);
	/*
	 * 500 is in [496, 511] (256..511 cut in 16), 900 in [896, 927],
	 * 990 in [960, 991]; 999 is in [992, 1023], capped at max 1000.
	 */
	assert_int_equal(rpc_stats_hist_value(&h, 50000), 511);
	assert_int_equal(rpc_stats_hist_value(&h, 90000), 927);
	assert_int_equal(rpc_stats_hist_value(&h, 99000), 991);
	assert_int_equal(rpc_stats_hist_value(&h, 99900), 1000);
	assert_int_equal(h.max, 1000);
}

static void
test_bucket_width_is_within_one_sixteenth(void **state)
{
	uint64_t	v, got, big = UINT64_C(1) << 39;

	(void)state;
	for (v = 0; v < (UINT64_C(1) << 39); v = v < 5000 ? v + 1 :
	    v + v / 7 + 3) {
		reset();
		rpc_stats_hist_add(&h, v);
		rpc_stats_hist_add(&h, big);	/* so max does not cap */
		got = rpc_stats_hist_value(&h, 50000);
		if (got < v || got - v > v / RPC_STATS_SUB)
			fail_msg("value %llu reported as %llu",
			    (unsigned long long)v, (unsigned long long)got);
	}
}

static void
test_one_value_is_reported_exactly(void **state)
{
	(void)state;
	reset();
	rpc_stats_hist_add(&h, 123457);
	assert_int_equal(rpc_stats_hist_value(&h, 50000), 123457);
	assert_int_equal(rpc_stats_hist_value(&h, 99900), 123457);
}

static void
test_huge_values_share_the_top_bucket(void **state)
{
	uint64_t	top = (UINT64_C(1) << RPC_STATS_MAX_BITS) - 1;

	(void)state;
	reset();
	rpc_stats_hist_add(&h, UINT64_MAX);
	rpc_stats_hist_add(&h, UINT64_MAX - 1);
	assert_int_equal(h.max, UINT64_MAX);
	assert_int_equal(h.bucket[RPC_STATS_BUCKETS - 1], 2);
	assert_int_equal(rpc_stats_hist_value(&h, 50000), top);
}

static void
test_percentiles_are_ordered(void **state)
{
	static const unsigned q[] = { 50000, 90000, 99000, 99900, 100000 };
	uint64_t	v, prev = 0, got;
	size_t		i;

	(void)state;
	reset();
	/* Mostly fast, a long tail: 990 values of 20..1009, 10 slow ones. */
	for (v = 0; v < 990; v++)
		rpc_stats_hist_add(&h, 20 + v);
	for (v = 0; v < 10; v++)
		rpc_stats_hist_add(&h, 250000 + v * 100000);
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		got = rpc_stats_hist_value(&h, q[i]);
		assert_true(got >= prev);
		assert_true(got <= h.max);
		prev = got;
	}
	/*
	 * p99 is the 990th value (1009, in [992, 1023]); p99.9 the 999th
	 * (1050000, in [1048576, 1114111]).
	 */
	assert_int_equal(rpc_stats_hist_value(&h, 99000), 1023);
	assert_int_equal(rpc_stats_hist_value(&h, 99900), 1114111);
	assert_int_equal(rpc_stats_hist_value(&h, 100000), 1150000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_histogram_reports_zero),
		cmocka_unit_test(test_small_values_are_exact),
		cmocka_unit_test(test_percentiles_of_1_to_1000_are_bucket_tops),
		cmocka_unit_test(test_bucket_width_is_within_one_sixteenth),
		cmocka_unit_test(test_one_value_is_reported_exactly),
		cmocka_unit_test(test_huge_values_share_the_top_bucket),
		cmocka_unit_test(test_percentiles_are_ordered),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
