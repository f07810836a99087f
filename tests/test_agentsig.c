/*
 * test_agentsig: request signing (fixed vectors computed independently with
 * `openssl dgst -sha256 -hmac`), verification, the bounded replay cache and
 * the secret file checks; plus the agent's wire decoding limits and command
 * template quoting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/cmdtpl.h"
#include "drivers/agentsig.h"
#include "drivers/agentwire.h"
#include "model/strbuf.h"
#include "tests/lib/agentfx.h"

#define NONCE "00112233445566778899aabbccddeeff"
#define TS 1700000000

static void key_set(struct agentsig_key *k, const char *s)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->bytes, s, strlen(s));
	k->len = strlen(s);
}

static void test_agentsig__signs_known_vectors(void **state)
{
	struct agentsig_key k;
	char sig[AGENTSIG_HEX_LEN + 1];

	(void)state;
	key_set(&k, "sixteen-byte-key-0123");
	assert_int_equal(agentsig_sign(&k, "GET", "/v1/health", TS, NONCE, 7, NULL, 0, sig, NULL),
			 0);
	assert_string_equal(sig,
		"f6444dd27c4a30dc23a87710d77d3746e88b8035c966a2df3a45b2d6d7a34a16");
	assert_int_equal(agentsig_sign(&k, "POST", "/v1/containers/42/stop", TS, NONCE, 3,
				       "{\"sync\":false}", 14, sig, NULL), 0);
	assert_string_equal(sig,
		"bfaa4ef60b3bb49484182c9b93d5bfbad5ea1e37e3b71a15f7f84669e81a7893");
	/* bad input is refused, not signed */
	assert_int_equal(agentsig_sign(&k, "GET", "/", TS, "short", 0, NULL, 0, sig, NULL),
			 SP_EINVAL);
	assert_int_equal(agentsig_sign(&k, "GET", "/", TS, NONCE, -1, NULL, 0, sig, NULL),
			 SP_EINVAL);
}

static int verify(const struct agentsig_key *k, const char *method, const char *path,
		  const char *body, const char *ts, const char *epoch, const char *sig,
		  int64_t now, enum agentsig_why *why)
{
	struct agentsig_hdrs h = { ts, NONCE, epoch, sig };
	int64_t t, ep;

	return agentsig_verify(k, method, path, &h, body, body ? strlen(body) : 0, now, &t, &ep,
			       why, NULL);
}

static void test_agentsig__verify_checks_every_signed_part(void **state)
{
	struct agentsig_key k, other;
	char sig[AGENTSIG_HEX_LEN + 1];
	enum agentsig_why why;
	const char *body = "{\"sync\":false}";

	(void)state;
	key_set(&k, "sixteen-byte-key-0123");
	key_set(&other, "another-key-of-length");
	agentsig_sign(&k, "POST", "/v1/containers/42/stop", TS, NONCE, 3, body, strlen(body), sig,
		      NULL);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS, &why), 0);
	assert_int_equal(why, AGENTSIG_OK);
	/* each part is covered */
	assert_int_equal(verify(&k, "PUT", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS, &why), SP_EDENIED);
	assert_int_equal(why, AGENTSIG_BAD_SIGNATURE);
	assert_int_equal(verify(&k, "POST", "/v1/containers/43/stop", body, "1700000000", "3",
				sig, TS, &why), SP_EDENIED);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", "{\"sync\":true}",
				"1700000000", "3", sig, TS, &why), SP_EDENIED);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000001", "3",
				sig, TS, &why), SP_EDENIED);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000000", "4",
				sig, TS, &why), SP_EDENIED);
	assert_int_equal(why, AGENTSIG_BAD_SIGNATURE);
	assert_int_equal(verify(&other, "POST", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS, &why), SP_EDENIED);
	/* skew, both directions, checked after the signature */
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS + AGENTSIG_SKEW_MAX_S + 1, &why), SP_EDENIED);
	assert_int_equal(why, AGENTSIG_SKEW);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS - AGENTSIG_SKEW_MAX_S - 1, &why), SP_EDENIED);
	assert_int_equal(why, AGENTSIG_SKEW);
	assert_int_equal(verify(&k, "POST", "/v1/containers/42/stop", body, "1700000000", "3",
				sig, TS + AGENTSIG_SKEW_MAX_S, &why), 0);
	/* malformed headers */
	assert_int_equal(verify(&k, "POST", "/x", body, "17e8", "3", sig, TS, &why), SP_EDENIED);
	assert_int_equal(why, AGENTSIG_MISSING);
	assert_int_equal(verify(&k, "POST", "/x", body, "1700000000", "-3", sig, TS, &why),
			 SP_EDENIED);
	assert_int_equal(verify(&k, "POST", "/x", body, "1700000000", "3", "ABCD", TS, &why),
			 SP_EDENIED);
	assert_int_equal(why, AGENTSIG_MISSING);
	assert_int_equal(verify(&k, "POST", "/x", body, NULL, "3", sig, TS, &why), SP_EDENIED);
	assert_string_equal(agentsig_why_name(AGENTSIG_REPLAY), "replay");
}

static void test_agentsig__replay_cache_is_bounded_and_safe(void **state)
{
	struct agentsig_replay *r = agentsig_replay_new(4);
	char sig[AGENTSIG_HEX_LEN + 1];
	int i;

	(void)state;
	assert_non_null(r);
	for (i = 0; i < 4; i++) {
		snprintf(sig, sizeof(sig), "%064d", i);
		assert_int_equal(agentsig_replay_check(r, sig, TS + i, TS + 10, NULL), 0);
	}
	snprintf(sig, sizeof(sig), "%064d", 2);
	assert_int_equal(agentsig_replay_check(r, sig, TS + 2, TS + 10, NULL), SP_EDENIED);
	/* full of live entries: the oldest (ts TS) goes, and with it every ts <= TS */
	snprintf(sig, sizeof(sig), "%064d", 9);
	assert_int_equal(agentsig_replay_check(r, sig, TS + 9, TS + 10, NULL), 0);
	snprintf(sig, sizeof(sig), "%064d", 0);
	assert_int_equal(agentsig_replay_check(r, sig, TS, TS + 10, NULL), SP_EDENIED);
	snprintf(sig, sizeof(sig), "%064d", 7);
	assert_int_equal(agentsig_replay_check(r, sig, TS - 5, TS + 10, NULL), SP_EDENIED);
	/* entries older than the window are forgotten, making room */
	for (i = 0; i < 8; i++) {
		snprintf(sig, sizeof(sig), "%064d", 100 + i);
		assert_int_equal(agentsig_replay_check(r, sig, TS + 1000 + i,
						       TS + 1000 + AGENTSIG_SKEW_MAX_S, NULL), 0);
	}
	assert_int_equal(agentsig_replay_check(r, "nothex", TS, TS, NULL), SP_EDENIED);
	agentsig_replay_free(r);
	agentsig_replay_free(NULL);
}

static void test_agentsig__secret_file_checks(void **state)
{
	char dir[] = "/tmp/spinup-agentsig-XXXXXX", path[128], link[128];
	struct agentsig_key k;
	struct err e = ERR_INIT;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(agentfx_write(path, "0123456789abcdef-secret\n", 0600), 0);
	assert_int_equal(agentsig_key_load(&k, path, &e), 0);
	assert_int_equal(k.len, strlen("0123456789abcdef-secret"));   /* newline dropped */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(agentsig_key_load(&k, path, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "readable by group or others"));
	assert_null(strstr(e.msg, "0123456789abcdef"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(agentsig_key_load(&k, path, &e), SP_EDENIED);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(agentsig_key_load(&k, link, &e), SP_EIO);   /* O_NOFOLLOW */
	assert_int_equal(agentfx_write(path, "short", 0600), 0);
	assert_int_equal(agentsig_key_load(&k, path, &e), SP_EINVAL);
	assert_int_equal(agentsig_key_load(&k, dir, &e), SP_EDENIED);   /* not a regular file */
	agentsig_key_wipe(&k);
	assert_int_equal(k.len, 0);
	unlink(link);
	unlink(path);
	rmdir(dir);
}

static void test_agentwire__decoding_enforces_limits(void **state)
{
	struct container_req r;
	struct obs_container c;
	struct err e = ERR_INIT;
	char longname[300];
	json_t *j;

	(void)state;
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	j = json_pack("{sI ss}", "workspace_id", (json_int_t)5, "image", longname);
	r.workspace_id = 99;
	assert_int_equal(agentwire_req_decode(j, &r, &e), SP_ELIMIT);
	assert_non_null(strstr(e.msg, "image"));
	assert_int_equal(r.workspace_id, 99);   /* untouched on failure */
	json_decref(j);
	j = json_pack("{ss}", "workspace_id", "5");
	assert_int_equal(agentwire_req_decode(j, &r, &e), SP_EINVAL);
	json_decref(j);
	j = json_pack("{sI sb}", "workspace_id", (json_int_t)5, "expect_snapshot", 1);
	assert_int_equal(agentwire_req_decode(j, &r, &e), 0);
	assert_int_equal(r.expect_snapshot, 1);
	json_decref(j);
	/* a container with an unknown state is not guessed */
	j = json_pack("{ss sI ss}", "name", "spinup-5", "workspace_id", (json_int_t)5, "state",
		      "sideways");
	assert_int_equal(agentwire_container_decode(j, &c, &e), SP_EINVAL);
	json_decref(j);
	/* encode and decode round trip */
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "spinup-8");
	c.workspace_id = 8;
	c.state = CS_EXITED;
	c.restarts = 3;
	c.last_sync = SYNC_FAILED;
	c.pending = COP_STOP;
	snprintf(c.message, sizeof(c.message), "sync failed");
	j = agentwire_container_encode(&c);
	memset(&c, 0, sizeof(c));
	assert_int_equal(agentwire_container_decode(j, &c, &e), 0);
	assert_int_equal(c.state, CS_EXITED);
	assert_int_equal(c.restarts, 3);
	assert_int_equal(c.last_sync, SYNC_FAILED);
	assert_int_equal(c.pending, COP_STOP);
	assert_string_equal(c.message, "sync failed");
	/* an older agent says nothing about pending ops: none; an unknown one is refused */
	json_object_del(j, "pending");
	assert_int_equal(agentwire_container_decode(j, &c, &e), 0);
	assert_int_equal(c.pending, COP_NONE);
	json_object_set_new(j, "pending", json_string("reboot"));
	assert_int_equal(agentwire_container_decode(j, &c, &e), SP_EINVAL);
	json_decref(j);
	assert_int_equal(agentwire_error_code(409, "stale_epoch"), SP_EFENCED);
	assert_int_equal(agentwire_error_code(503, NULL), SP_EUNAVAIL);
	assert_int_equal(agentwire_error_code(200, NULL), SP_EPROTO);
}

static void test_cmdtpl__values_are_quoted_for_the_shell(void **state)
{
	static const char *const names[] = { "dir", "prefix", NULL };
	const struct cmdtpl_var vars[] = {
		{ "dir", "/data/ws 1" }, { "prefix", "x'; rm -rf / #" },
	};
	struct strbuf out = STRBUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(cmdtpl_expand("cp -a {dir}/. /b/{prefix}/ ${HOME} {other}", vars, 2, &out,
				       &e), 0);
	assert_string_equal(out.buf,
		"cp -a '/data/ws 1'/. /b/'x'\\''; rm -rf / #'/ ${HOME} {other}");
	assert_int_equal(cmdtpl_check("cp {dir} {prefix} ${HOME}", names, &e), 0);
	assert_int_equal(cmdtpl_check("cp {dir} {bucket}", names, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "{bucket}"));
	strbuf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agentsig__signs_known_vectors),
		cmocka_unit_test(test_agentsig__verify_checks_every_signed_part),
		cmocka_unit_test(test_agentsig__replay_cache_is_bounded_and_safe),
		cmocka_unit_test(test_agentsig__secret_file_checks),
		cmocka_unit_test(test_agentwire__decoding_enforces_limits),
		cmocka_unit_test(test_cmdtpl__values_are_quoted_for_the_shell),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
