/*
 * test_awscreds: every source of the credentials chain, their precedence,
 * IMDSv2 against a stub on 127.0.0.1, refresh before expiry, failures, and
 * that no secret reaches the log or an error message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <cmocka.h>

#include "drivers/awscreds.h"
#include "drivers/log.h"
#include "tests/lib/awsstub.h"

#define T0 1790000000 /* some fixed "now" */

static char tmpdir[256];

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t psz)
{
	FILE *f;

	snprintf(path, psz, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* A clean environment: no AWS variables, HOME empty, IMDS disabled. */
static void clean_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE",
		"AWS_CONFIG_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
	};
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", tmpdir, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_awscreds.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	clean_env();
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_awscreds__env_source(void **state)
{
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SeCrEt-env", 1);
	setenv("AWS_SESSION_TOKEN", "ToKeN-env", 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIAENV");
	assert_string_equal(cr.secret_access_key, "SeCrEt-env");
	assert_string_equal(cr.session_token, "ToKeN-env");
	assert_int_equal(awscreds_source(c), AWSCREDS_ENV);
	assert_string_equal(awscreds_region(c), "eu-west-3");
	assert_int_equal(awscreds_expiration(c), 0);
	awscreds_free(c);
}

static const char creds_text[] =
	"# comment\n"
	"[default]\n"
	"aws_access_key_id = AKIADEFAULT\n"
	"aws_secret_access_key = SeCrEt-default\n"
	"\n"
	"[dev]\n"
	"aws_access_key_id=AKIADEV\n"
	"aws_secret_access_key=SeCrEt-dev\n"
	"aws_session_token=ToKeN-dev\n";

static const char config_text[] =
	"[default]\n"
	"region = us-west-2\n"
	"[profile dev]\n"
	"region = eu-central-1\n"
	"[profile cfgonly]\n"
	"region = ap-south-1\n"
	"aws_access_key_id = AKIACFG\n"
	"aws_secret_access_key = SeCrEt-cfg\n";

static void write_shared_files(mode_t mode)
{
	char p[512];

	write_file("credentials", creds_text, mode, p, sizeof(p));
	setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
	write_file("config", config_text, 0600, p, sizeof(p));
	setenv("AWS_CONFIG_FILE", p, 1);
}

static void test_awscreds__shared_files_by_profile(void **state)
{
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	clean_env();
	write_shared_files(0600);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIADEFAULT");
	assert_null(cr.session_token);
	assert_string_equal(awscreds_region(c), "us-west-2");
	assert_int_equal(awscreds_source(c), AWSCREDS_FILE);
	awscreds_free(c);

	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIADEV");
	assert_string_equal(cr.secret_access_key, "SeCrEt-dev");
	assert_string_equal(cr.session_token, "ToKeN-dev");
	assert_string_equal(awscreds_region(c), "eu-central-1");
	awscreds_free(c);

	/* credentials only in the config file, [profile NAME] section */
	setenv("AWS_PROFILE", "cfgonly", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIACFG");
	assert_string_equal(awscreds_region(c), "ap-south-1");
	awscreds_free(c);

	/* the environment's region wins over the config file */
	setenv("AWS_REGION", "sa-east-1", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_string_equal(awscreds_region(c), "sa-east-1");
	awscreds_free(c);
}

static void test_awscreds__default_home_location(void **state)
{
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;
	char dir[512], p[600];
	FILE *f;

	(void)state;
	clean_env();
	snprintf(dir, sizeof(dir), "%s/.aws", tmpdir);
	mkdir(dir, 0700);
	snprintf(p, sizeof(p), "%s/credentials", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(creds_text, f);
	fclose(f);
	chmod(p, 0600);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIADEFAULT");
	awscreds_free(c);
	unlink(p);
	rmdir(dir);
}

static void test_awscreds__world_readable_file_is_refused(void **state)
{
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	clean_env();
	write_shared_files(0644);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "readable by others"));
	assert_null(strstr(e.msg, "SeCrEt"));
	awscreds_free(c);
}

/* ---- IMDS stub ---- */

struct imds {
	int64_t expiration;
	int fail;            /* answer credentials with HTTP 500 */
	int delay_ms;
	int bad_token;       /* checks fail */
	unsigned creds_served;
	unsigned token_puts;
	int bad_answer;      /* 1: a session token over AWSCREDS_TOKEN_MAX, 2: not json */
	unsigned creds_asked;/* GETs of the role's credentials, answered or not */
};

static void iso8601(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void imds_handler(void *ctx, const struct awsstub_req *rq, struct awsstub_resp *rs)
{
	struct imds *m = ctx;
	const char *tok = awsstub_header(rq, "X-aws-ec2-metadata-token");
	char exp[32];
	int i;

	rs->content_type = "text/plain";
	rs->delay_ms = m->delay_ms;
	if (!strcmp(rq->method, "PUT") && !strcmp(rq->url, "/latest/api/token")) {
		if (!awsstub_header(rq, "X-aws-ec2-metadata-token-ttl-seconds")) {
			rs->status = 400;
			return;
		}
		m->token_puts++;
		strbuf_addstr(&rs->body, "imds-session-token");
		return;
	}
	if (!tok || strcmp(tok, "imds-session-token") != 0 || m->bad_token) {
		rs->status = 401;
		return;
	}
	if (!strcmp(rq->url, "/latest/meta-data/placement/region")) {
		strbuf_addstr(&rs->body, "ap-northeast-2");
		return;
	}
	if (!strcmp(rq->url, "/latest/meta-data/iam/security-credentials/")) {
		strbuf_addstr(&rs->body, "spinup-role\n");
		return;
	}
	if (!strcmp(rq->url, "/latest/meta-data/iam/security-credentials/spinup-role")) {
		m->creds_asked++;
		if (m->bad_answer == 2) {
			strbuf_addstr(&rs->body, "<html>not json</html>");
			return;
		}
		if (m->bad_answer == 1) {
			iso8601(m->expiration, exp, sizeof(exp));
			strbuf_addf(&rs->body, "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIABIG\","
				    "\"SecretAccessKey\":\"SeCrEt-big\",\"Expiration\":\"%s\","
				    "\"Token\":\"", exp);
			for (i = 0; i < AWSCREDS_TOKEN_MAX + 100; i++)
				strbuf_addch(&rs->body, 'T');
			strbuf_addstr(&rs->body, "\"}");
			return;
		}
		if (m->fail) {
			rs->status = 500;
			return;
		}
		m->creds_served++;
		iso8601(m->expiration, exp, sizeof(exp));
		rs->content_type = "application/json";
		strbuf_addf(&rs->body,
			    "{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\","
			    "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS%u\","
			    "\"SecretAccessKey\":\"SeCrEt-imds-%u\",\"Token\":\"ToKeN-imds-%u\","
			    "\"Expiration\":\"%s\"}", m->creds_served, m->creds_served,
			    m->creds_served, exp);
		return;
	}
	rs->status = 404;
}

/* The stub of the running test, stopped by the teardown even when an assertion fails. */
static struct awsstub *live_stub;

static void imds_stop(struct awsstub *s)
{
	if (s == live_stub)
		live_stub = NULL;
	awsstub_stop(s);
}

static int stub_teardown(void **state)
{
	(void)state;
	if (live_stub)
		imds_stop(live_stub);
	return 0;
}

static struct awsstub *imds_start(struct imds *m)
{
	struct awsstub *s = NULL;

	assert_int_equal(awsstub_start(imds_handler, m, &s), 0);
	live_stub = s;
	clean_env();
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", awsstub_url(s), 1);
	return s;
}

static void test_awscreds__imds_v2_flow(void **state)
{
	struct imds m = { T0 + 6 * 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS1");
	assert_string_equal(cr.secret_access_key, "SeCrEt-imds-1");
	assert_string_equal(cr.session_token, "ToKeN-imds-1");
	assert_int_equal(awscreds_source(c), AWSCREDS_IMDS);
	assert_int_equal(awscreds_expiration(c), T0 + 6 * 3600);
	assert_int_equal(m.token_puts, 1);
	assert_int_equal(awsstub_requests(s), 3);
	/* cached: no new call */
	assert_int_equal(awscreds_get(c, T0 + 60, &cr, &e), 0);
	assert_int_equal(awsstub_requests(s), 3);
	awscreds_free(c);
	imds_stop(s);
}

static void test_awscreds__imds_refreshes_before_expiry(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;
	int64_t before_margin = T0 + 3600 - AWSCREDS_REFRESH_MARGIN_S - 1;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS1");
	assert_int_equal(awscreds_get(c, before_margin, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS1");
	m.expiration = T0 + 7200;
	/* inside the margin: refreshed, although the old ones are still valid */
	assert_int_equal(awscreds_get(c, before_margin + 2, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS2");
	assert_int_equal(awscreds_expiration(c), T0 + 7200);
	assert_int_equal(m.token_puts, 1); /* the IMDS session token was reused */

	/* a failed refresh keeps credentials while they are valid, then fails */
	m.fail = 1;
	assert_int_equal(awscreds_get(c, T0 + 7200 - 60, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS2");
	assert_int_equal(awscreds_get(c, T0 + 7200, &cr, &e), SP_EUNAVAIL);
	assert_non_null(strstr(e.msg, "imds"));
	awscreds_free(c);
	imds_stop(s);
}

/*
 * IMDS may serve the same credentials for minutes inside the refresh margin:
 * N calls there make one refresh, not N; with none valid and IMDS failing,
 * calls between two attempts get the last failure without asking again.
 */
static void test_awscreds__refresh_attempts_are_paced(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;
	int64_t t = T0 + 3600 - AWSCREDS_REFRESH_MARGIN_S + 1, x;
	unsigned long gets;
	int i;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_int_equal(m.creds_asked, 1);
	gets = awsstub_requests(s);
	/* inside the margin, IMDS still serving the same expiration */
	for (i = 0; i < 5; i++)
		assert_int_equal(awscreds_get(c, t + i, &cr, &e), 0);
	assert_int_equal(m.creds_asked, 2);
	assert_int_equal(awsstub_requests(s), gets + 2); /* role name + credentials, once */
	assert_int_equal(awscreds_get(c, t + AWSCREDS_REFRESH_INTERVAL_S - 1, &cr, &e), 0);
	assert_int_equal(m.creds_asked, 2);
	assert_int_equal(awscreds_get(c, t + AWSCREDS_REFRESH_INTERVAL_S, &cr, &e), 0);
	assert_int_equal(m.creds_asked, 3);
	assert_string_equal(cr.access_key_id, "ASIAIMDS3");

	/* expired, IMDS failing: one attempt per retry interval, its error in between */
	m.fail = 1;
	x = T0 + 3600;
	assert_int_equal(awscreds_get(c, x, &cr, &e), SP_EUNAVAIL);
	assert_int_equal(m.creds_asked, 4);
	for (i = 0; i < AWSCREDS_RETRY_INTERVAL_S; i++) {
		err_clear(&e);
		assert_int_equal(awscreds_get(c, x + i, &cr, &e), SP_EUNAVAIL);
		assert_non_null(strstr(e.msg, "imds"));
	}
	assert_int_equal(m.creds_asked, 4);
	assert_int_equal(awscreds_get(c, x + AWSCREDS_RETRY_INTERVAL_S, &cr, &e), SP_EUNAVAIL);
	assert_int_equal(m.creds_asked, 5);
	/* IMDS back: the next attempt serves new credentials */
	m.fail = 0;
	m.expiration = T0 + 7200;
	assert_int_equal(awscreds_get(c, x + AWSCREDS_RETRY_INTERVAL_S + 1, &cr, &e),
			 SP_EUNAVAIL);
	assert_int_equal(awscreds_get(c, x + 2 * AWSCREDS_RETRY_INTERVAL_S, &cr, &e), 0);
	assert_int_equal(awscreds_expiration(c), T0 + 7200);
	assert_int_equal(m.creds_asked, 6);
	awscreds_free(c);

	/* none held yet: the same pacing from the first call */
	m.fail = 1;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EUNAVAIL);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EUNAVAIL);
	assert_int_equal(m.creds_asked, 7);
	assert_int_equal(awscreds_get(c, T0 + AWSCREDS_RETRY_INTERVAL_S, &cr, &e), SP_EUNAVAIL);
	assert_int_equal(m.creds_asked, 8);
	awscreds_free(c);
	imds_stop(s);
}

/* A refresh answered with credentials we cannot hold keeps the old, still valid ones. */
static void test_awscreds__bad_refresh_answer_keeps_valid_credentials(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;
	int64_t t;
	int bad;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS1");
	for (bad = 1; bad <= 2; bad++) {
		unsigned asked = m.creds_asked;

		m.bad_answer = bad;
		/* inside the refresh margin, the second try well after the first */
		t = T0 + 3600 - AWSCREDS_REFRESH_MARGIN_S + 1 + (bad - 1) * 120;
		assert_int_equal(awscreds_get(c, t, &cr, &e), 0);
		assert_true(m.creds_asked > asked); /* a refresh was tried, and failed */
		assert_string_equal(cr.access_key_id, "ASIAIMDS1");
		assert_string_equal(cr.secret_access_key, "SeCrEt-imds-1");
		assert_string_equal(cr.session_token, "ToKeN-imds-1");
		assert_int_equal(awscreds_source(c), AWSCREDS_IMDS);
		assert_int_equal(awscreds_expiration(c), T0 + 3600);
	}
	/* once they expire, the failure shows */
	assert_int_equal(awscreds_get(c, T0 + 3600, &cr, &e), SP_EPROTO);
	awscreds_free(c);
	imds_stop(s);
}

static void test_awscreds__imds_timeout_is_reported(void **state)
{
	struct imds m = { T0 + 3600, 0, 800, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds_config cfg = { 0 };
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	cfg.imds_timeout_ms = 200;
	cfg.imds_connect_timeout_ms = 200;
	assert_int_equal(awscreds_new(&cfg, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_ETIMEOUT);
	assert_non_null(strstr(e.msg, "timed out"));
	awscreds_free(c);
	imds_stop(s);
}

static void test_awscreds__imds_refused_token(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 1, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "401"));
	awscreds_free(c);
	imds_stop(s);
}

static void test_awscreds__region_from_imds_when_unset(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_string_equal(awscreds_region(c), "");
	assert_int_equal(awscreds_resolve_region(c, T0, &e), 0);
	assert_string_equal(awscreds_region(c), "ap-northeast-2");
	assert_int_equal(awsstub_requests(s), 2);
	/* known now: no further call */
	assert_int_equal(awscreds_resolve_region(c, T0, &e), 0);
	assert_int_equal(awsstub_requests(s), 2);
	awscreds_free(c);

	/* a configured region is never overridden */
	setenv("AWS_REGION", "eu-north-1", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_resolve_region(c, T0, &e), 0);
	assert_string_equal(awscreds_region(c), "eu-north-1");
	assert_int_equal(awsstub_requests(s), 2);
	awscreds_free(c);
	imds_stop(s);

	clean_env();
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_resolve_region(c, T0, &e), SP_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no aws region"));
	awscreds_free(c);
}

static void test_awscreds__precedence_env_then_files_then_imds(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s = imds_start(&m);
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	write_shared_files(0600);
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SeCrEt-env", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIAENV");
	awscreds_free(c);

	unsetenv("AWS_ACCESS_KEY_ID");
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIADEFAULT");
	awscreds_free(c);
	assert_int_equal(awsstub_requests(s), 0);

	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_CONFIG_FILE");
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "ASIAIMDS1");
	awscreds_free(c);
	imds_stop(s);
}

static void test_awscreds__missing_everything_is_clear(void **state)
{
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	clean_env();
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no aws credentials"));
	assert_non_null(strstr(e.msg, "AWS_ACCESS_KEY_ID"));
	assert_non_null(strstr(e.msg, "imds is disabled"));
	assert_string_equal(awscreds_region(c), "");
	awscreds_free(c);

	/* IMDS enabled but nothing listening: still a clear error, no hang */
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EIO);
	assert_non_null(strstr(e.msg, "no aws credentials"));
	awscreds_free(c);
}

static void test_awscreds__fixed_config_credentials(void **state)
{
	struct awscreds_config cfg = { 0 };
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;

	(void)state;
	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SeCrEt-env", 1);
	cfg.access_key_id = "AKIAFIXED";
	cfg.secret_access_key = "SeCrEt-fixed";
	cfg.region = "us-east-2";
	assert_int_equal(awscreds_new(&cfg, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	assert_string_equal(cr.access_key_id, "AKIAFIXED");
	assert_int_equal(awscreds_source(c), AWSCREDS_STATIC);
	assert_string_equal(awscreds_region(c), "us-east-2");
	awscreds_free(c);
}

/* Run every source and failure with debug logging into a file; no secret may appear. */
static void test_awscreds__secrets_never_logged(void **state)
{
	struct imds m = { T0 + 3600, 0, 0, 0, 0, 0, 0, 0 };
	struct awsstub *s;
	struct awscreds *c = NULL;
	struct sigv4_creds cr;
	struct err e = ERR_INIT;
	char logpath[512], buf[65536];
	int saved, fd;
	FILE *f;
	size_t n;
	struct strbuf msgs = STRBUF_INIT;

	(void)state;
	snprintf(logpath, sizeof(logpath), "%s/log.txt", tmpdir);
	fflush(stderr);
	saved = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	close(fd);
	log_init("test_awscreds", LOG_LVL_DEBUG);

	s = imds_start(&m);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	m.fail = 1;
	assert_int_equal(awscreds_get(c, T0 + 3600 - 60, &cr, &e), 0); /* failed refresh, logged */
	assert_int_equal(awscreds_get(c, T0 + 3600, &cr, &e), SP_EUNAVAIL);
	strbuf_addf(&msgs, "%s\n", e.msg);
	awscreds_free(c);
	imds_stop(s);

	clean_env();
	write_shared_files(0644);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), SP_EDENIED);
	strbuf_addf(&msgs, "%s\n", e.msg);
	awscreds_free(c);
	write_shared_files(0600);
	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	awscreds_free(c);
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SeCrEt-env", 1);
	assert_int_equal(awscreds_new(NULL, &c, &e), 0);
	assert_int_equal(awscreds_get(c, T0, &cr, &e), 0);
	awscreds_free(c);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_init("test_awscreds", LOG_LVL_INFO);
	f = fopen(logpath, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	strbuf_addstr(&msgs, buf);
	assert_non_null(strstr(msgs.buf, "source=imds")); /* the log did capture something */
	assert_null(strstr(msgs.buf, "SeCrEt"));
	assert_null(strstr(msgs.buf, "ToKeN"));
	assert_null(strstr(msgs.buf, "imds-session-token"));
	strbuf_release(&msgs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_awscreds__env_source, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__shared_files_by_profile, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__default_home_location, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__world_readable_file_is_refused, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__imds_v2_flow, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__imds_refreshes_before_expiry, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__refresh_attempts_are_paced, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__bad_refresh_answer_keeps_valid_credentials, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__imds_timeout_is_reported, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__imds_refused_token, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__region_from_imds_when_unset, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__precedence_env_then_files_then_imds, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__missing_everything_is_clear, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__fixed_config_credentials, stub_teardown),
		cmocka_unit_test_teardown(test_awscreds__secrets_never_logged, stub_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
