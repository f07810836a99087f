/* test_core: strbuf, err, spec names and validation, status conditions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "model/err.h"
#include "model/spec.h"
#include "model/status.h"
#include "model/strbuf.h"

static void test_core__strbuf_formats_and_grows(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int i;

	(void)state;
	assert_string_equal(sb.buf, "");
	for (i = 0; i < 1000; i++)
		assert_int_equal(strbuf_addf(&sb, "%d,", i % 10), 0);
	assert_int_equal(sb.len, 2000);
	assert_memory_equal(sb.buf, "0,1,2,", 6);
	strbuf_release(&sb);
	assert_int_equal(sb.len, 0);
	strbuf_release(&sb); /* twice is fine */
}

static void test_core__strbuf_cap_is_enforced_and_keeps_content(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 8);
	assert_int_equal(strbuf_addstr(&sb, "abcdefg"), 0);
	assert_int_equal(strbuf_addstr(&sb, "h"), SP_ELIMIT);
	assert_string_equal(sb.buf, "abcdefg");
	strbuf_release(&sb);
}

static void test_core__str_copy_truncates_with_error(void **state)
{
	char small[4];

	(void)state;
	assert_int_equal(str_copy(small, sizeof(small), "abc"), 0);
	assert_int_equal(str_copy(small, sizeof(small), "abcd"), SP_ELIMIT);
	assert_string_equal(small, "abc");
}

static void test_core__err_codes_have_classes(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(err_set(&e, SP_EINVAL, "bad '%s'", "x"), SP_EINVAL);
	assert_string_equal(e.msg, "bad 'x'");
	err_prefix(&e, "field %s", "name");
	assert_string_equal(e.msg, "field name: bad 'x'");
	assert_int_equal(sp_code_class(SP_ETHROTTLED), SP_CLASS_RETRYABLE);
	assert_int_equal(sp_code_class(SP_EDENIED), SP_CLASS_NEEDS_OPERATOR);
	assert_int_equal(sp_code_class(SP_EINVAL), SP_CLASS_NEEDS_USER);
	assert_true(sp_code_retryable(SP_ETIMEOUT));
	assert_false(sp_code_retryable(SP_EDENIED));
	assert_string_equal(sp_code_name(SP_EFENCED), "EFENCED");
	assert_string_equal(sp_code_name(-999), "EUNKNOWN");
	assert_int_equal(err_set(NULL, SP_EIO, "dropped"), SP_EIO);
}

static void test_core__names_must_be_dns_labels(void **state)
{
	static const char *const good[] = { "a", "alice-blog", "x1", "0abc" };
	static const char *const bad[] = {
		"", "-a", "a-", "Alice", "a_b", "a.b", "a b", "'; DROP TABLE pools; --",
		"ünïcode", "0123456789012345678901234567890123456789012345678901234567890123",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_int_equal(spec_name_valid(good[i], NULL), 0);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(spec_name_valid(bad[i], NULL), SP_EINVAL);
}

static void test_core__status_condition_transition_time_moves_only_on_change(void **state)
{
	struct workspace_status st, before;

	(void)state;
	workspace_status_init(&st, 7, 1000);
	assert_int_equal(st.conds[COND_READY].status, CSTAT_UNKNOWN);
	assert_int_equal(status_set_cond(&st, COND_READY, CSTAT_FALSE, "Waiting", "", 2000), 1);
	assert_int_equal(st.conds[COND_READY].last_transition, 2000);
	before = st;
	assert_int_equal(status_set_cond(&st, COND_READY, CSTAT_FALSE, "Waiting", "", 3000), 0);
	assert_false(workspace_status_differs(&st, &before));
	assert_int_equal(status_set_cond(&st, COND_READY, CSTAT_FALSE, "Other", "m", 4000), 1);
	assert_int_equal(st.conds[COND_READY].last_transition, 2000);
	assert_true(workspace_status_differs(&st, &before));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core__strbuf_formats_and_grows),
		cmocka_unit_test(test_core__strbuf_cap_is_enforced_and_keeps_content),
		cmocka_unit_test(test_core__str_copy_truncates_with_error),
		cmocka_unit_test(test_core__err_codes_have_classes),
		cmocka_unit_test(test_core__names_must_be_dns_labels),
		cmocka_unit_test(test_core__status_condition_transition_time_moves_only_on_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
