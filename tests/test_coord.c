/*
 * test_coord: Redis coordination (drivers/coord.c) on a real Redis
 * (REDIS_URL): the lease and the runtime mirror, and what happens when
 * Redis is not there or does not answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "drivers/coord.h"
#include "model/strbuf.h"
#include "model/banned.h"

static char lease_key[64];

static const char *url(void)
{
	const char *u = getenv("REDIS_URL");

	if (!u || !*u)
		fail_msg("REDIS_URL is not set (run through scripts/run-tests.sh)");
	return u;
}

static struct coord *mk(const char *holder)
{
	struct err e = ERR_INIT;
	struct coord *c = NULL;

	if (coord_new(url(), holder, 1000, &c, &e))
		fail_msg("coord_new: %s", e.msg);
	return c;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A raw connection for checks, to the same Redis. */
static redisContext *raw(void)
{
	const char *u = url() + strlen("redis://");
	char host[64];
	const char *colon = strchr(u, ':');
	redisContext *r;

	assert_non_null(colon);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - u), u);
	r = redisConnect(host, (int)strtol(colon + 1, NULL, 10));
	assert_non_null(r);
	assert_int_equal(r->err, 0);
	return r;
}

static int setup(void **state)
{
	(void)state;
	snprintf(lease_key, sizeof(lease_key), "spinup:test:lease:%d:%ld", (int)getpid(),
		 (long)random());
	return 0;
}

static void test_coord__lease_is_exclusive(void **state)
{
	struct coord *a = mk("a"), *b = mk("b");
	struct err e = ERR_INIT;
	char holder[64];
	int held = -1;

	(void)state;
	assert_int_equal(coord_lease_acquire(a, lease_key, 5000, &held, &e), 0);
	assert_int_equal(held, 1);
	assert_int_equal(coord_lease_acquire(b, lease_key, 5000, &held, &e), 0);
	assert_int_equal(held, 0);
	assert_int_equal(coord_lease_holder(b, lease_key, holder, sizeof(holder), &e), 0);
	assert_string_equal(holder, "a");
	/* the holder acquiring again keeps it */
	assert_int_equal(coord_lease_acquire(a, lease_key, 5000, &held, &e), 0);
	assert_int_equal(held, 1);
	coord_free(a);
	coord_free(b);
}

static void test_coord__renew_and_release_by_owner_only(void **state)
{
	struct coord *a = mk("a"), *b = mk("b");
	struct err e = ERR_INIT;
	redisContext *r = raw();
	redisReply *rep;
	int held = -1, rel = -1;

	(void)state;
	assert_int_equal(coord_lease_acquire(a, lease_key, 300, &held, &e), 0);
	assert_int_equal(held, 1);
	assert_int_equal(coord_lease_renew(b, lease_key, 60000, &held, &e), 0);
	assert_int_equal(held, 0);
	assert_int_equal(coord_lease_renew(a, lease_key, 60000, &held, &e), 0);
	assert_int_equal(held, 1);
	rep = redisCommand(r, "PTTL %s", lease_key);
	assert_true(rep->integer > 30000);   /* the owner's renewal took */
	freeReplyObject(rep);
	assert_int_equal(coord_lease_release(b, lease_key, &rel, &e), 0);
	assert_int_equal(rel, 0);
	rep = redisCommand(r, "EXISTS %s", lease_key);
	assert_int_equal(rep->integer, 1);
	freeReplyObject(rep);
	assert_int_equal(coord_lease_release(a, lease_key, &rel, &e), 0);
	assert_int_equal(rel, 1);
	assert_int_equal(coord_lease_acquire(b, lease_key, 5000, &held, &e), 0);
	assert_int_equal(held, 1);
	redisFree(r);
	coord_free(a);
	coord_free(b);
}

static void test_coord__expiry_lets_another_take_it(void **state)
{
	struct coord *a = mk("a"), *b = mk("b");
	struct err e = ERR_INIT;
	int held = -1, i;

	(void)state;
	assert_int_equal(coord_lease_acquire(a, lease_key, 150, &held, &e), 0);
	assert_int_equal(held, 1);
	for (i = 0; i < 100; i++) {
		assert_int_equal(coord_lease_acquire(b, lease_key, 5000, &held, &e), 0);
		if (held)
			break;
		sleep_ms(20);
	}
	assert_int_equal(held, 1);
	/* the old holder's renewal now fails: it has lost leadership */
	assert_int_equal(coord_lease_renew(a, lease_key, 5000, &held, &e), 0);
	assert_int_equal(held, 0);
	coord_free(a);
	coord_free(b);
}

static void test_coord__mirror_write_and_rebuild(void **state)
{
	struct coord *a = mk("a");
	struct err e = ERR_INIT;
	redisContext *r = raw(), *sub = raw();
	redisReply *rep;
	struct coord_ws v[3];
	void *msg = NULL;

	(void)state;
	rep = redisCommand(r, "DEL %s", COORD_WS_INDEX);
	freeReplyObject(rep);
	rep = redisCommand(sub, "SUBSCRIBE %s", COORD_PHASE_CHANNEL);
	freeReplyObject(rep);
	memset(v, 0, sizeof(v));
	v[0] = (struct coord_ws){ 901, "READY", "i-1", "10.0.0.1", "http://10.0.0.1:8000/", 1000, 1 };
	v[1] = (struct coord_ws){ 902, "PENDING", "", "", "", 1000, 0 };
	v[2] = (struct coord_ws){ 903, "STOPPED", "", "", "", 1000, 0 };
	assert_true(coord_needs_rebuild(a));
	assert_int_equal(coord_mirror_rebuild(a, v, 2, &e), 0);
	assert_false(coord_needs_rebuild(a));
	assert_int_equal(coord_mirror_put(a, v, 1, &e), 0);   /* a phase change: published */
	assert_int_equal(redisGetReply(sub, &msg), REDIS_OK);
	assert_int_equal(((redisReply *)msg)->elements, 3);
	assert_non_null(strstr(((redisReply *)msg)->element[2]->str, "\"phase\":\"READY\""));
	freeReplyObject(msg);
	rep = redisCommand(r, "HGET " COORD_WS_PREFIX "901 instance");
	assert_string_equal(rep->str, "i-1");
	freeReplyObject(rep);

	/* Redis forgets everything (restart): the next connection rebuilds it */
	rep = redisCommand(r, "DEL " COORD_WS_PREFIX "901 " COORD_WS_PREFIX "902");
	freeReplyObject(rep);
	coord_free(a);
	a = mk("a");
	assert_true(coord_needs_rebuild(a));
	/* 902 is gone from the desired set, 903 is new */
	v[1] = v[2];
	assert_int_equal(coord_mirror_rebuild(a, v, 2, &e), 0);
	rep = redisCommand(r, "HGET " COORD_WS_PREFIX "901 phase");
	assert_string_equal(rep->str, "READY");
	freeReplyObject(rep);
	rep = redisCommand(r, "EXISTS " COORD_WS_PREFIX "902");
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	rep = redisCommand(r, "SISMEMBER %s 902", COORD_WS_INDEX);
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	rep = redisCommand(r, "HGET " COORD_WS_PREFIX "903 phase");
	assert_string_equal(rep->str, "STOPPED");
	freeReplyObject(rep);
	{
		int64_t gone = 903;
		assert_int_equal(coord_mirror_del(a, &gone, 1, &e), 0);
	}
	rep = redisCommand(r, "EXISTS " COORD_WS_PREFIX "903");
	assert_int_equal(rep->integer, 0);
	freeReplyObject(rep);
	redisFree(sub);
	redisFree(r);
	coord_free(a);
}

/*
 * An error reply (not a dropped connection) fails a mirror write: the mirror
 * is marked for rebuild, the connection stays in step (the pipeline's other
 * replies are read), and the rebuild rewrites the key whatever its type.
 */
static void test_coord__error_reply_marks_mirror_for_rebuild(void **state)
{
	struct coord *a = mk("a");
	struct err e = ERR_INIT;
	redisContext *r = raw();
	redisReply *rep;
	struct coord_ws v = { 904, "READY", "i-4", "10.0.0.4", "http://10.0.0.4:8000/", 1000, 0 };
	char holder[64] = "x";

	(void)state;
	freeReplyObject(redisCommand(r, "DEL %s " COORD_WS_PREFIX "904", COORD_WS_INDEX));
	assert_int_equal(coord_mirror_rebuild(a, NULL, 0, &e), 0);
	assert_false(coord_needs_rebuild(a));
	freeReplyObject(redisCommand(r, "SET " COORD_WS_PREFIX "904 not-a-hash"));

	assert_int_equal(coord_mirror_put(a, &v, 1, &e), SP_EUNAVAIL);
	assert_non_null(strstr(e.msg, "WRONGTYPE"));
	assert_true(coord_connected(a));          /* a reply, not a lost connection */
	assert_true(coord_needs_rebuild(a));
	/* the SADD reply behind the error was read: the next command gets its own */
	assert_int_equal(coord_lease_holder(a, lease_key, holder, sizeof(holder), &e), 0);
	assert_string_equal(holder, "");

	assert_int_equal(coord_mirror_rebuild(a, &v, 1, &e), 0);
	assert_false(coord_needs_rebuild(a));
	rep = redisCommand(r, "HGET " COORD_WS_PREFIX "904 phase");
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	assert_string_equal(rep->str, "READY");
	freeReplyObject(rep);
	freeReplyObject(redisCommand(r, "DEL %s " COORD_WS_PREFIX "904", COORD_WS_INDEX));
	redisFree(r);
	coord_free(a);
}

/* A loopback port nobody listens on. */
static int dead_port(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void test_coord__redis_down_is_a_clean_error(void **state)
{
	struct err e = ERR_INIT;
	struct coord *c = NULL;
	struct coord_ws w = { 1, "READY", "", "", "", 1, 1 };
	char u[64];
	int held = -1;

	(void)state;
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0", dead_port());
	assert_int_equal(coord_new(u, "a", 300, &c, &e), 0);
	assert_int_equal(coord_lease_acquire(c, "k", 1000, &held, &e), SP_EUNAVAIL);
	assert_int_equal(held, -1);            /* out-parameter untouched */
	assert_non_null(strstr(e.msg, "could not connect to redis"));
	assert_int_equal(coord_mirror_put(c, &w, 1, &e), SP_EUNAVAIL);
	assert_false(coord_connected(c));
	coord_free(c);
	assert_int_equal(coord_new("http://x", "a", 300, &c, &e), SP_EINVAL);
}

static void test_coord__silent_server_times_out(void **state)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct err e = ERR_INIT;
	struct coord *c = NULL;
	char u[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0), held = -1;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);     /* connects, never answers */
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d", ntohs(sa.sin_port));
	assert_int_equal(coord_new(u, "a", 200, &c, &e), 0);
	assert_int_equal(coord_lease_acquire(c, "k", 1000, &held, &e), SP_ETIMEOUT);
	assert_false(coord_connected(c));
	coord_free(c);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_coord__lease_is_exclusive, setup),
		cmocka_unit_test_setup(test_coord__renew_and_release_by_owner_only, setup),
		cmocka_unit_test_setup(test_coord__expiry_lets_another_take_it, setup),
		cmocka_unit_test_setup(test_coord__mirror_write_and_rebuild, setup),
		cmocka_unit_test_setup(test_coord__error_reply_marks_mirror_for_rebuild, setup),
		cmocka_unit_test_setup(test_coord__redis_down_is_a_clean_error, setup),
		cmocka_unit_test_setup(test_coord__silent_server_times_out, setup),
	};

	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
