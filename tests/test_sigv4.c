/*
 * test_sigv4: every case of the AWS SigV4 test suite (canonical request,
 * string to sign and Authorization header compared exactly), then
 * sign/verify round trips and tamper detection.
 *
 * The suite lives in $SPINUP_TOP/../shared/testdata/aws-sigv4-suite (see
 * its README); SPINUP_SIGV4_SUITE overrides the location.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "drivers/sigv4.h"
#include "model/strbuf.h"

#define SUITE_CASES 34
#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE "20150830T123600Z"
#define SUITE_NOW 1440938160 /* 2015-08-30T12:36:00Z */

/* Read a whole file with '\r' removed; NULL if missing. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct strbuf sb = STRBUF_INIT;
	int c;

	if (!f)
		return NULL;
	while ((c = fgetc(f)) != EOF)
		if (c != '\r')
			assert_int_equal(strbuf_addch(&sb, c), 0);
	fclose(f);
	return strbuf_detach(&sb, NULL);
}

struct parsed_req {
	char *method, *path, *query;
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	char *names[SIGV4_MAX_HEADERS];
	struct strbuf values[SIGV4_MAX_HEADERS];
	size_t nh;
	const char *body;
	char *text;
};

/* Parse "METHOD target HTTP/1.1\nName:value\n continuation\n\nbody". */
static void parse_req(char *text, struct parsed_req *r)
{
	char *line = text, *next, *sp, *ver, *q;
	int in_body = 0;

	memset(r, 0, sizeof(*r));
	r->text = text;
	next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	sp = strchr(line, ' ');
	ver = strstr(line, " HTTP/");
	assert_non_null(sp);
	assert_non_null(ver);
	*sp = '\0';
	*ver = '\0';
	r->method = line;
	r->path = sp + 1;
	q = strchr(r->path, '?');
	r->query = "";
	if (q) {
		*q = '\0';
		r->query = q + 1;
	}
	r->body = "";
	while (next && !in_body) {
		line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == '\0') {
			in_body = 1;
			r->body = next ? next : "";
		} else if (*line == ' ' || *line == '\t') {
			assert_true(r->nh > 0);
			assert_int_equal(strbuf_addf(&r->values[r->nh - 1], " %s", line), 0);
		} else {
			char *colon = strchr(line, ':');

			assert_non_null(colon);
			assert_true(r->nh < SIGV4_MAX_HEADERS);
			*colon = '\0';
			r->names[r->nh] = line;
			strbuf_init(&r->values[r->nh], 0);
			assert_int_equal(strbuf_addstr(&r->values[r->nh], colon + 1), 0);
			r->nh++;
		}
	}
}

static void parsed_req_release(struct parsed_req *r)
{
	size_t i;

	for (i = 0; i < r->nh; i++)
		strbuf_release(&r->values[i]);
	free(r->text);
}

/*
 * The suite folder: SPINUP_SIGV4_SUITE, else ../shared beside the repo top
 * (the main checkout), else ../../shared (a worktree under /work/wt), else
 * /work/shared (a clone anywhere else on the machine).
 */
static char *suite_dir(void)
{
	static const char *const rel[] = { "/../shared/testdata/aws-sigv4-suite",
					   "/../../shared/testdata/aws-sigv4-suite" };
	const char *over = getenv("SPINUP_SIGV4_SUITE"), *top = getenv("SPINUP_TOP");
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	size_t i;

	if (over) {
		assert_int_equal(strbuf_addstr(&sb, over), 0);
		return strbuf_detach(&sb, NULL);
	}
	for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		strbuf_reset(&sb);
		assert_int_equal(strbuf_addf(&sb, "%s%s", top ? top : ".", rel[i]), 0);
		if (stat(sb.buf, &st) == 0 && S_ISDIR(st.st_mode))
			return strbuf_detach(&sb, NULL);
	}
	/* A clone elsewhere on this machine: the workplace's shared folder. */
	strbuf_reset(&sb);
	assert_int_equal(strbuf_addstr(&sb, "/work/shared/testdata/aws-sigv4-suite"), 0);
	return strbuf_detach(&sb, NULL);
}

/* Token the case expects: the x-amz-security-token line of its .creq. */
static char *creq_token(const char *creq)
{
	const char *p = strstr(creq, "\nx-amz-security-token:");
	const char *end;
	struct strbuf sb = STRBUF_INIT;

	if (!p)
		return NULL;
	p += strlen("\nx-amz-security-token:");
	end = strchr(p, '\n');
	assert_int_equal(strbuf_add(&sb, p, end ? (size_t)(end - p) : strlen(p)), 0);
	return strbuf_detach(&sb, NULL);
}

/* Run one case in dir/name; returns 1 if all three outputs matched. */
static int run_case(const char *dir, const char *name)
{
	char path[1024];
	char *req_text, *creq, *sts, *authz, *token;
	struct parsed_req r;
	struct sigv4_creds creds = { SUITE_AKID, SUITE_SECRET, NULL };
	struct sigv4_scope scope = { "us-east-1", "service", SUITE_DATE };
	struct strbuf o_creq = STRBUF_INIT, o_sts = STRBUF_INIT, o_authz = STRBUF_INIT;
	struct sigv4_out out = { &o_creq, &o_sts, &o_authz, NULL };
	struct sigv4_req req;
	struct err e = ERR_INIT;
	size_t i;
	int ok;

	snprintf(path, sizeof(path), "%s/%s.req", dir, name);
	req_text = slurp(path);
	snprintf(path, sizeof(path), "%s/%s.creq", dir, name);
	creq = slurp(path);
	snprintf(path, sizeof(path), "%s/%s.sts", dir, name);
	sts = slurp(path);
	snprintf(path, sizeof(path), "%s/%s.authz", dir, name);
	authz = slurp(path);
	assert_non_null(req_text);
	assert_non_null(creq);
	assert_non_null(sts);
	assert_non_null(authz);
	token = creq_token(creq);
	creds.session_token = token;
	parse_req(req_text, &r);
	for (i = 0; i < r.nh; i++) {
		r.h[i].name = r.names[i];
		r.h[i].value = r.values[i].buf;
	}
	req.method = r.method;
	req.path = r.path;
	req.query = r.query;
	req.headers = r.h;
	req.nheaders = r.nh;
	req.payload = r.body;
	req.payload_len = strlen(r.body);
	assert_int_equal(sigv4_sign(&req, &creds, &scope, &out, &e), 0);
	ok = strcmp(o_creq.buf, creq) == 0 && strcmp(o_sts.buf, sts) == 0 &&
	     strcmp(o_authz.buf, authz) == 0;
	if (!ok)
		print_message("case %s FAILED\n-- got creq:\n%s\n-- want:\n%s\n-- got authz: %s\n",
			      name, o_creq.buf, creq, o_authz.buf);
	strbuf_release(&o_creq);
	strbuf_release(&o_sts);
	strbuf_release(&o_authz);
	parsed_req_release(&r);
	free(creq);
	free(sts);
	free(authz);
	free(token);
	return ok;
}

/* Walk dir (cases may sit one level deeper); counts cases and passes. */
static void walk(const char *dir, int depth, int *cases, int *passed)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char sub[1024], reqp[1200];
	struct stat st;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (stat(sub, &st) || !S_ISDIR(st.st_mode))
			continue;
		snprintf(reqp, sizeof(reqp), "%s/%s.req", sub, de->d_name);
		if (stat(reqp, &st) == 0) {
			(*cases)++;
			*passed += run_case(sub, de->d_name);
		} else if (depth < 2) {
			walk(sub, depth + 1, cases, passed);
		}
	}
	closedir(d);
}

static void test_sigv4__aws_suite_all_cases_match(void **state)
{
	char *dir = suite_dir();
	struct stat st;
	int cases = 0, passed = 0;

	(void)state;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		char shown[512];
		snprintf(shown, sizeof(shown), "%s", dir);
		free(dir);
		fail_msg("sigv4 test suite not found (last tried '%s'; set SPINUP_TOP or "
			 "SPINUP_SIGV4_SUITE)", shown);
	}
	walk(dir, 0, &cases, &passed);
	print_message("sigv4 suite: %d/%d cases match\n", passed, cases);
	assert_int_equal(cases, SUITE_CASES);
	assert_int_equal(passed, SUITE_CASES);
	free(dir);
}

/* ---- round trip and tamper detection ---- */

struct signed_req {
	struct sigv4_header h[8];
	size_t nh;
	struct strbuf authz;
	struct sigv4_req req;
	const char *body;
};

static const char *lookup(void *ctx, const char *akid)
{
	(void)ctx;
	return strcmp(akid, "AKIDTEST") == 0 ? "secret/with+chars" : NULL;
}

static void make_signed(struct signed_req *s, const char *token)
{
	struct sigv4_creds creds = { "AKIDTEST", "secret/with+chars", token };
	struct sigv4_scope scope = { "eu-west-1", "ec2", "20260101T000000Z" };
	struct sigv4_out out = { NULL, NULL, NULL, NULL };
	struct err e = ERR_INIT;

	memset(s, 0, sizeof(*s));
	strbuf_init(&s->authz, 0);
	out.authorization = &s->authz;
	s->body = "Action=DescribeInstances&Version=2016-11-15";
	s->h[s->nh++] = (struct sigv4_header){ "Host", "ec2.eu-west-1.amazonaws.com" };
	s->h[s->nh++] = (struct sigv4_header){ "Content-Type",
		"application/x-www-form-urlencoded; charset=utf-8" };
	s->h[s->nh++] = (struct sigv4_header){ "X-Amz-Date", "20260101T000000Z" };
	s->req.method = "POST";
	s->req.path = "/";
	s->req.query = "";
	s->req.headers = s->h;
	s->req.nheaders = s->nh;
	s->req.payload = s->body;
	s->req.payload_len = strlen(s->body);
	assert_int_equal(sigv4_sign(&s->req, &creds, &scope, &out, &e), 0);
	if (token)
		s->h[s->nh++] = (struct sigv4_header){ "X-Amz-Security-Token", token };
	s->h[s->nh++] = (struct sigv4_header){ "Authorization", s->authz.buf };
	s->req.nheaders = s->nh;
}

#define T0 1767225600 /* 2026-01-01T00:00:00Z */

static int verify(const struct sigv4_req *req, int64_t now, struct err *e)
{
	return sigv4_verify(req, "eu-west-1", "ec2", lookup, NULL, now, SIGV4_DEFAULT_SKEW_S, e);
}

static void test_sigv4__round_trip_verifies(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;

	(void)state;
	make_signed(&s, NULL);
	assert_int_equal(verify(&s.req, T0, &e), 0);
	assert_int_equal(verify(&s.req, T0 + 899, &e), 0);
	assert_int_equal(verify(&s.req, T0 - 899, &e), 0);
	strbuf_release(&s.authz);
	make_signed(&s, "session/token+x==");
	assert_non_null(strstr(s.authz.buf, "x-amz-security-token"));
	assert_int_equal(verify(&s.req, T0, &e), 0);
	strbuf_release(&s.authz);
}

static void test_sigv4__tampered_body_is_rejected(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;

	(void)state;
	make_signed(&s, NULL);
	s.req.payload = "Action=TerminateInstances&Version=2016-11-15";
	s.req.payload_len = strlen(s.req.payload);
	assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
	assert_string_equal(strtok_r(e.msg, " ", &(char *){ NULL }), "SignatureDoesNotMatch");
	strbuf_release(&s.authz);
}

static void test_sigv4__tampered_header_is_rejected(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;

	(void)state;
	make_signed(&s, NULL);
	s.h[0].value = "evil.example.com";
	assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "SignatureDoesNotMatch", 21) == 0);
	strbuf_release(&s.authz);
}

static void test_sigv4__tampered_signature_is_rejected(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;
	char *sig;

	(void)state;
	make_signed(&s, NULL);
	sig = strstr(s.authz.buf, "Signature=") + strlen("Signature=");
	sig[10] = sig[10] == 'a' ? 'b' : 'a';
	assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "SignatureDoesNotMatch", 21) == 0);
	strbuf_release(&s.authz);
}

static void test_sigv4__skew_beyond_limit_is_expired(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;

	(void)state;
	make_signed(&s, NULL);
	assert_int_equal(verify(&s.req, T0 + 901, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "RequestExpired", 14) == 0);
	assert_int_equal(verify(&s.req, T0 - 901, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "RequestExpired", 14) == 0);
	strbuf_release(&s.authz);
}

static void test_sigv4__unknown_key_and_wrong_scope_are_rejected(void **state)
{
	struct signed_req s;
	struct err e = ERR_INIT;
	char *akid;

	(void)state;
	make_signed(&s, NULL);
	assert_int_equal(sigv4_verify(&s.req, "us-east-1", "ec2", lookup, NULL, T0, 900, &e),
			 SP_EDENIED);
	assert_true(strncmp(e.msg, "SignatureDoesNotMatch", 21) == 0);
	assert_int_equal(sigv4_verify(&s.req, "eu-west-1", "autoscaling", lookup, NULL, T0,
				      900, &e), SP_EDENIED);
	akid = strstr(s.authz.buf, "AKIDTEST");
	akid[4] = 'X';
	assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "InvalidClientTokenId", 20) == 0);
	/* the secret never appears in a message */
	assert_null(strstr(e.msg, "secret/with+chars"));
	strbuf_release(&s.authz);
}

static void test_sigv4__malformed_authorization_is_incomplete(void **state)
{
	static const char *const bad[] = {
		"",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA1 Credential=AKIDTEST/20260101/eu-west-1/ec2/aws4_request, "
		"SignedHeaders=host;x-amz-date, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/eu-west-1/ec2, "
		"SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000"
		"000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/eu-west-1/ec2/aws4_request, "
		"Signature=00000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/eu-west-1/ec2/aws4_request, "
		"SignedHeaders=content-type, Signature=000000000000000000000000000000000000000000"
		"0000000000000000000000",
	};
	struct signed_req s;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	make_signed(&s, NULL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.h[s.nh - 1].value = bad[i];
		assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
		assert_true(strncmp(e.msg, "IncompleteSignature", 19) == 0);
	}
	s.nh--; /* no Authorization at all */
	s.req.nheaders = s.nh;
	assert_int_equal(verify(&s.req, T0, &e), SP_EDENIED);
	assert_true(strncmp(e.msg, "IncompleteSignature", 19) == 0);
	strbuf_release(&s.authz);
}

static void test_sigv4__sha256_hex_of_empty(void **state)
{
	char hex[65];

	(void)state;
	sigv4_sha256_hex("", 0, hex);
	assert_string_equal(hex,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigv4__aws_suite_all_cases_match),
		cmocka_unit_test(test_sigv4__round_trip_verifies),
		cmocka_unit_test(test_sigv4__tampered_body_is_rejected),
		cmocka_unit_test(test_sigv4__tampered_header_is_rejected),
		cmocka_unit_test(test_sigv4__tampered_signature_is_rejected),
		cmocka_unit_test(test_sigv4__skew_beyond_limit_is_expired),
		cmocka_unit_test(test_sigv4__unknown_key_and_wrong_scope_are_rejected),
		cmocka_unit_test(test_sigv4__malformed_authorization_is_incomplete),
		cmocka_unit_test(test_sigv4__sha256_hex_of_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
