/*
 * test_awsq: the Query API client and the aws cloud driver.
 *
 * Canned responses (tests/data/aws/, in the documented shape) check the
 * XML parsers; a stub AWS on 127.0.0.1 (tests/lib/awsstub) that verifies
 * the SigV4 signature of every request checks pagination, retries and
 * re-signing, error mapping, non-XML bodies, timeouts and size limits. A
 * fake clock makes backoff and token-bucket waits instant and observable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "drivers/awscloud.h"
#include "drivers/awsq.h"
#include "drivers/sigv4.h"
#include "tests/lib/awsstub.h"

#define ASG "my-asg"
#define AKID "AKIDTEST"
#define SECRET "test-secret/+key"

/* ---- data files ---- */

static char *load(const char *name, size_t *len)
{
	const char *top = getenv("SPINUP_TOP");
	char path[1024];
	struct strbuf sb = STRBUF_INIT;
	FILE *f;
	char buf[4096];
	size_t n;

	snprintf(path, sizeof(path), "%s/tests/data/aws/%s", top ? top : ".", name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("test data '%s' not found (set SPINUP_TOP)", path);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		assert_int_equal(strbuf_add(&sb, buf, n), 0);
	fclose(f);
	if (len)
		*len = sb.len;
	return strbuf_detach(&sb, NULL);
}

static xmlDocPtr load_doc(const char *name)
{
	size_t len;
	char *text = load(name, &len);
	xmlDocPtr d = xmlReadMemory(text, (int)len, name, NULL, XML_PARSE_NONET);

	free(text);
	assert_non_null(d);
	return d;
}

/* ---- parsers on canned responses ---- */

static void test_awsq__parses_describe_asg(void **state)
{
	xmlDocPtr d = load_doc("describe_asg.xml");
	struct obs_group g;
	struct err e = ERR_INIT;
	char next[64] = "stale";

	(void)state;
	obs_group_init(&g);
	assert_int_equal(awscloud_parse_asg(d, ASG, &g, next, sizeof(next), &e), 0);
	assert_true(g.found);
	assert_int_equal(g.min_size, 1);
	assert_int_equal(g.max_size, 20);
	assert_int_equal(g.desired_capacity, 3);
	assert_int_equal(g.ninstances, 3);
	assert_string_equal(next, "");
	assert_string_equal(g.instances[0].id, "i-0598c7d356eba48d7");
	assert_int_equal(g.instances[0].lifecycle, LC_IN_SERVICE);
	assert_true(g.instances[0].healthy);
	assert_true(g.instances[0].protected_from_scale_in);
	assert_string_equal(g.instances[0].az, "eu-west-1a");
	assert_int_equal(g.instances[1].lifecycle, LC_PENDING);
	assert_false(g.instances[1].protected_from_scale_in);
	assert_int_equal(g.instances[2].lifecycle, LC_TERMINATING);
	assert_false(g.instances[2].healthy);
	assert_false(g.instances[0].ec2_seen);
	obs_group_release(&g);

	/* the other group in the same document */
	assert_int_equal(awscloud_parse_asg(d, "other-asg", &g, next, sizeof(next), &e), 0);
	assert_true(g.found);
	assert_int_equal(g.ninstances, 0);
	obs_group_release(&g);
	assert_int_equal(awscloud_parse_asg(d, "absent", &g, next, sizeof(next), &e), 0);
	assert_false(g.found);
	obs_group_release(&g);
	xmlFreeDoc(d);
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_awsq__parses_describe_instances(void **state)
{
	xmlDocPtr da = load_doc("describe_asg.xml"), di = load_doc("describe_instances.xml");
	struct obs_group g;
	struct err e = ERR_INIT;
	char next[64];

	(void)state;
	obs_group_init(&g);
	assert_int_equal(awscloud_parse_asg(da, ASG, &g, next, sizeof(next), &e), 0);
	assert_int_equal(awscloud_parse_instances(di, &g, next, sizeof(next), &e), 0);
	assert_int_equal(g.ninstances, 3); /* the other group's instance was not added */
	assert_true(g.instances[0].ec2_seen);
	assert_string_equal(g.instances[0].ec2_state, "running");
	assert_string_equal(g.instances[0].private_ip, "10.0.1.17");
	assert_int_equal(g.instances[0].launch_time, utc_ms(2026, 11, 20, 16, 46, 19, 0));
	assert_true(g.instances[1].ec2_seen);
	assert_string_equal(g.instances[1].ec2_state, "pending");
	/* a nested interface's address is not the instance's */
	assert_string_equal(g.instances[1].private_ip, "");
	assert_int_equal(g.instances[1].launch_time, utc_ms(2026, 11, 22, 9, 0, 1, 250));
	assert_false(g.instances[2].ec2_seen); /* unknown, not absent */
	assert_string_equal(next, "");
	obs_group_release(&g);
	xmlFreeDoc(da);
	xmlFreeDoc(di);
}

static xmlDocPtr doc_of(const char *xml)
{
	xmlDocPtr d = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);

	assert_non_null(d);
	return d;
}

static void test_awsq__parse_rejects_malformed_fields(void **state)
{
	static const char *const bad_asg[] = {
		"<DescribeAutoScalingGroupsResponse/>",
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
		"<member><AutoScalingGroupName>my-asg</AutoScalingGroupName><MinSize>x</MinSize>"
		"<MaxSize>1</MaxSize><DesiredCapacity>1</DesiredCapacity></member>"
		"</AutoScalingGroups></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>",
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
		"<member><AutoScalingGroupName>my-asg</AutoScalingGroupName><MinSize>0</MinSize>"
		"<MaxSize>1</MaxSize><DesiredCapacity>1</DesiredCapacity><Instances><member>"
		"<InstanceId>i-0123456789abcdef0123456789abcdef</InstanceId>"
		"<LifecycleState>InService</LifecycleState></member></Instances></member>"
		"</AutoScalingGroups></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>",
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
		"<member><AutoScalingGroupName>my-asg</AutoScalingGroupName><MinSize>0</MinSize>"
		"<MaxSize>1</MaxSize><DesiredCapacity>1</DesiredCapacity><Instances><member>"
		"<InstanceId>i-1</InstanceId></member></Instances></member>"
		"</AutoScalingGroups></DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>",
	};
	struct obs_group g;
	struct err e = ERR_INIT;
	char next[64];
	size_t i;
	xmlDocPtr d;

	(void)state;
	for (i = 0; i < sizeof(bad_asg) / sizeof(bad_asg[0]); i++) {
		obs_group_init(&g);
		d = doc_of(bad_asg[i]);
		assert_int_equal(awscloud_parse_asg(d, ASG, &g, next, sizeof(next), &e), SP_EPROTO);
		assert_non_null(strstr(e.msg, "DescribeAutoScalingGroups"));
		xmlFreeDoc(d);
		obs_group_release(&g);
	}
	obs_group_init(&g);
	str_copy(obs_group_add(&g)->id, OBS_INSTANCE_ID_MAX + 1, "i-1");
	d = doc_of("<DescribeInstancesResponse><reservationSet><item><instancesSet><item>"
		   "<instanceId>i-1</instanceId><instanceState><name>running</name></instanceState>"
		   "<launchTime>yesterday</launchTime></item></instancesSet></item></reservationSet>"
		   "</DescribeInstancesResponse>");
	assert_int_equal(awscloud_parse_instances(d, &g, next, sizeof(next), &e), SP_EPROTO);
	assert_non_null(strstr(e.msg, "launchTime"));
	xmlFreeDoc(d);
	obs_group_release(&g);
}

static void test_awsq__duplicate_instances_are_dropped(void **state)
{
	xmlDocPtr d = doc_of(
		"<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
		"<member><AutoScalingGroupName>my-asg</AutoScalingGroupName><MinSize>0</MinSize>"
		"<MaxSize>9</MaxSize><DesiredCapacity>3</DesiredCapacity><Instances>"
		"<member><InstanceId>i-b</InstanceId><LifecycleState>InService</LifecycleState></member>"
		"<member><InstanceId>i-a</InstanceId><LifecycleState>Pending</LifecycleState></member>"
		"<member><InstanceId>i-b</InstanceId><LifecycleState>Terminating</LifecycleState></member>"
		"<member><InstanceId>i-c</InstanceId><LifecycleState>InService</LifecycleState></member>"
		"</Instances></member></AutoScalingGroups></DescribeAutoScalingGroupsResult>"
		"</DescribeAutoScalingGroupsResponse>");
	struct obs_group g;
	struct err e = ERR_INIT;
	char next[16];

	(void)state;
	obs_group_init(&g);
	assert_int_equal(awscloud_parse_asg(d, ASG, &g, next, sizeof(next), &e), 0);
	assert_int_equal(g.ninstances, 3);
	assert_string_equal(g.instances[0].id, "i-b");
	assert_int_equal(g.instances[0].lifecycle, LC_IN_SERVICE);
	assert_string_equal(g.instances[1].id, "i-a");
	assert_string_equal(g.instances[2].id, "i-c");
	obs_group_release(&g);
	xmlFreeDoc(d);
}

/* Every prefix of the canned documents: parsers never crash, and say EPROTO when lost. */
static void test_awsq__truncated_documents_never_crash(void **state)
{
	static const char *const files[] = { "describe_asg.xml", "describe_instances.xml" };
	size_t f, len, cut;
	char next[64];

	(void)state;
	for (f = 0; f < 2; f++) {
		char *text = load(files[f], &len);

		for (cut = 0; cut <= len; cut += 7) {
			xmlDocPtr d = xmlReadMemory(text, (int)cut, "t.xml", NULL,
						    XML_PARSE_NONET | XML_PARSE_NOERROR |
						    XML_PARSE_NOWARNING | XML_PARSE_RECOVER);
			struct obs_group g;
			struct err e = ERR_INIT;
			int rc;

			obs_group_init(&g);
			str_copy(obs_group_add(&g)->id, OBS_INSTANCE_ID_MAX + 1, "i-0598c7d356eba48d7");
			rc = f == 0 ? awscloud_parse_asg(d, ASG, &g, next, sizeof(next), &e)
				    : awscloud_parse_instances(d, &g, next, sizeof(next), &e);
			assert_true(rc == 0 || rc == SP_EPROTO);
			if (!d)
				assert_int_equal(rc, SP_EPROTO);
			xmlFreeDoc(d);
			obs_group_release(&g);
		}
		free(text);
	}
}

static void test_awsq__error_codes_map_to_classes(void **state)
{
	static const struct {
		long status;
		const char *code, *msg;
		int want;
	} cases[] = {
		{ 400, "Throttling", "Rate exceeded", SP_ETHROTTLED },
		{ 503, "RequestLimitExceeded", NULL, SP_ETHROTTLED },
		{ 400, "Client.RequestLimitExceeded", NULL, SP_ETHROTTLED },
		{ 400, "ThrottlingException", NULL, SP_ETHROTTLED },
		{ 400, "ScalingActivityInProgress", NULL, SP_EBUSY },
		{ 400, "ResourceInUse", NULL, SP_EBUSY },
		{ 403, "AccessDenied", NULL, SP_EDENIED },
		{ 403, "UnauthorizedOperation", NULL, SP_EDENIED },
		{ 403, "Client.UnauthorizedOperation", NULL, SP_EDENIED },
		{ 401, "AuthFailure", NULL, SP_EDENIED },
		{ 403, "SignatureDoesNotMatch", NULL, SP_EDENIED },
		{ 400, "InvalidInstanceID.NotFound", NULL, SP_ENOTFOUND },
		{ 400, "ValidationError", "Instance Id not found - No managed instance", SP_ENOTFOUND },
		{ 400, "ValidationError", "New SetDesiredCapacity value 50 is above max", SP_EINVAL },
		{ 500, "ResourceContention", NULL, SP_EUNAVAIL },
		{ 500, "InternalError", NULL, SP_EUNAVAIL },
		{ 503, "Unavailable", NULL, SP_EUNAVAIL },
		{ 500, "SomethingNew", NULL, SP_EUNAVAIL },
		{ 400, "SomethingNew", NULL, SP_EINVAL },
		{ 429, NULL, NULL, SP_ETHROTTLED },
		{ 502, NULL, NULL, SP_EUNAVAIL },
		{ 403, NULL, NULL, SP_EDENIED },
		{ 404, NULL, NULL, SP_EPROTO },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = awsq_map_error(cases[i].status, cases[i].code, cases[i].msg);

		if (got != cases[i].want)
			fail_msg("code %s (http %ld): got %s, want %s", cases[i].code,
				 cases[i].status, sp_code_name(got), sp_code_name(cases[i].want));
	}
	/* classes the loop relies on */
	assert_int_equal(sp_code_class(awsq_map_error(403, "AccessDenied", NULL)),
			 SP_CLASS_NEEDS_OPERATOR);
	assert_true(sp_code_retryable(awsq_map_error(400, "Throttling", NULL)));
}

static void test_awsq__backoff_is_full_jitter_within_cap(void **state)
{
	static const uint32_t rs[] = { 0, 1, 12345, 99999, 0x7fffffff, 0xffffffffu };
	int a;
	size_t i;

	(void)state;
	for (a = 0; a < 20; a++) {
		int64_t ceil = 100;
		int k;

		for (k = 0; k < a && ceil < 5000; k++)
			ceil *= 2;
		if (ceil > 5000)
			ceil = 5000;
		for (i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
			int64_t b = awsq_backoff_ms(a, 100, 5000, rs[i]);

			assert_true(b >= 0);
			assert_true(b <= ceil);
		}
		/* the whole range is reachable: r = ceil gives the ceiling, r = 0 gives 0 */
		assert_int_equal(awsq_backoff_ms(a, 100, 5000, (uint32_t)ceil), ceil);
		assert_int_equal(awsq_backoff_ms(a, 100, 5000, 0), 0);
	}
	assert_int_equal(awsq_backoff_ms(3, 100, 5000, 800), 800);
	assert_int_equal(awsq_backoff_ms(3, 100, 5000, 801), 0);
}

static void test_awsq__token_bucket_arithmetic(void **state)
{
	struct awsq_bucket b;
	int i;

	(void)state;
	awsq_bucket_init(&b, 3, 2, 1000);
	for (i = 0; i < 3; i++)
		assert_int_equal(awsq_bucket_take(&b, 1000), 0);
	/* empty: next token in 500 ms at 2/s */
	assert_true(awsq_bucket_take(&b, 1000) >= 500 && awsq_bucket_take(&b, 1000) <= 501);
	assert_true(awsq_bucket_take(&b, 1250) >= 250 && awsq_bucket_take(&b, 1250) <= 251);
	assert_int_equal(awsq_bucket_take(&b, 1500), 0);
	assert_true(awsq_bucket_take(&b, 1500) > 0);
	/* refill is capped at the burst */
	for (i = 0; i < 3; i++)
		assert_int_equal(awsq_bucket_take(&b, 600000), 0);
	assert_true(awsq_bucket_take(&b, 600000) > 0);
	/* a clock going backwards adds nothing */
	assert_true(awsq_bucket_take(&b, 1) > 0);
}

/* ---- fake clock ---- */

struct fclock {
	int64_t now;
	int64_t slept;
	int nsleeps;
	int64_t max_sleep;
	uint32_t r;
};

static int64_t f_now(void *ctx)
{
	return ((struct fclock *)ctx)->now;
}

static void f_sleep(void *ctx, int64_t ms)
{
	struct fclock *c = ctx;

	c->now += ms;
	c->slept += ms;
	c->nsleeps++;
	if (ms > c->max_sleep)
		c->max_sleep = ms;
}

static uint32_t f_rand(void *ctx)
{
	return ((struct fclock *)ctx)->r;
}

/* ---- a fake AWS behind the stub server ---- */

#define FAKE_MAX_REQ 512

struct fake {
	struct fclock *clk;
	int ninst;               /* instances in ASG, ids i-<17 hex> */
	int ec2_page;            /* instances per DescribeInstances page */
	int hide;                /* 1-based index EC2 does not return; 0 none */
	int extra;               /* instances EC2 returns after the group's, not listed by it */
	int untagged_lo;         /* 1-based range of group instances without the group */
	int untagged_hi;         /*   tag (attached): only an instance-id filter finds them */
	int ids_not_found;       /* instance-id queries answer InvalidInstanceID.NotFound */
	int by_id_calls;         /* DescribeInstances calls filtered on instance-id */
	int by_id_max;           /* most ids in one of them */
	int ec2_bad_params;      /* DescribeInstances not by the group tag or by <= 200 ids, */
				 /* with MaxResults 1000 */
	char tag_value[64];      /* the group tag filter value last received */
	const char *asg;         /* the group's name; NULL: ASG */
	char fail_action[64];    /* Action to fail */
	int fail_times;          /* how many times; -1 forever */
	int fail_status;
	char *fail_body;         /* malloc'd */
	int delay_ms;
	size_t big_body;         /* answer with this many bytes */
	int verify_failures;
	int with_token;          /* requests carrying X-Amz-Security-Token */
	int nreq;
	char actions[FAKE_MAX_REQ][48];
	char dates[FAKE_MAX_REQ][17];
	int protect_sizes[16];
	int nprotect;
	char last_body[8192];
};

/* Value of name in a form body (percent-decoded) into out; 1 if present. */
static int form_get(const char *body, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name), o = 0;
	const char *p = body;

	while (p && *p) {
		if (!strncmp(p, name, nl) && p[nl] == '=') {
			p += nl + 1;
			while (*p && *p != '&' && o + 1 < outsz) {
				if (*p == '%' && p[1] && p[2]) {
					char hex[3] = { p[1], p[2], 0 };

					out[o++] = (char)strtol(hex, NULL, 16);
					p += 3;
				} else {
					out[o++] = *p++;
				}
			}
			out[o] = '\0';
			return 1;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	out[0] = '\0';
	return 0;
}

static const char *fake_secret(void *ctx, const char *akid)
{
	(void)ctx;
	return strcmp(akid, AKID) == 0 ? SECRET : NULL;
}

static void inst_id(int i, char *out, size_t n)
{
	snprintf(out, n, "i-%017x", (unsigned)i);
}

static void fake_describe_asg(struct fake *f, struct strbuf *b)
{
	char id[32];
	int i;

	strbuf_addf(b, "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/"
		    "doc/2011-01-01/\"><DescribeAutoScalingGroupsResult><AutoScalingGroups><member>"
		    "<AutoScalingGroupName>%s</AutoScalingGroupName><MinSize>0</MinSize>"
		    "<MaxSize>1000</MaxSize><DesiredCapacity>%d</DesiredCapacity><Instances>",
		    f->asg ? f->asg : ASG, f->ninst);
	for (i = 1; i <= f->ninst; i++) {
		inst_id(i, id, sizeof(id));
		strbuf_addf(b, "<member><InstanceId>%s</InstanceId><AvailabilityZone>us-east-1a"
			    "</AvailabilityZone><LifecycleState>InService</LifecycleState>"
			    "<HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>false"
			    "</ProtectedFromScaleIn></member>", id);
	}
	strbuf_addstr(b, "</Instances></member></AutoScalingGroups></DescribeAutoScalingGroupsResult>"
		      "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
		      "</DescribeAutoScalingGroupsResponse>");
}

/*
 * The 1-based indices a DescribeInstances call matches, as EC2 answers a
 * filter on the group tag (the group's tagged instances, then the extras)
 * or on instance-id (the ids asked for that exist); hide matches neither.
 * Counts what it is asked in f. malloc'd, n into *n.
 */
static int *fake_match(struct fake *f, const char *body, int *n)
{
	char name[64], val[64], key[48];
	int total = f->ninst + f->extra, *m = calloc((size_t)total + 1, sizeof(*m));
	int by_id, i, k;

	assert_non_null(m);
	*n = 0;
	form_get(body, "Filter.1.Name", name, sizeof(name));
	form_get(body, "MaxResults", val, sizeof(val));
	by_id = !strcmp(name, "instance-id");
	if ((!by_id && strcmp(name, "tag:aws:autoscaling:groupName")) || strcmp(val, "1000") ||
	    form_get(body, "InstanceId.1", key, sizeof(key)))
		f->ec2_bad_params++;
	if (!by_id) {
		form_get(body, "Filter.1.Value.1", f->tag_value, sizeof(f->tag_value));
		if (form_get(body, "Filter.1.Value.2", val, sizeof(val)))
			f->ec2_bad_params++;
		for (i = 1; i <= total; i++)
			if (i != f->hide && (i < f->untagged_lo || i > f->untagged_hi))
				m[(*n)++] = i;
		return m;
	}
	f->by_id_calls++;
	for (k = 1;; k++) {
		snprintf(key, sizeof(key), "Filter.1.Value.%d", k);
		if (!form_get(body, key, val, sizeof(val)))
			break;
		i = (int)strtol(val + 2, NULL, 16);
		if (i >= 1 && i <= total && i != f->hide && *n < total)
			m[(*n)++] = i;
	}
	if (k - 1 > f->by_id_max)
		f->by_id_max = k - 1;
	if (k - 1 > 200)
		f->ec2_bad_params++;
	return m;
}

/* DescribeInstances: what the filter matches, ec2_page a page, tokens "tok-<offset>". */
static void fake_describe_instances(struct fake *f, const char *body, struct strbuf *b)
{
	char tok[64], id[32];
	int start = 0, n, k, *m = fake_match(f, body, &n);

	if (form_get(body, "NextToken", tok, sizeof(tok)))
		start = (int)strtol(tok + 4, NULL, 10);
	strbuf_addstr(b, "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
		      "<requestId>r</requestId><reservationSet>");
	for (k = start; k < n && k < start + f->ec2_page; k++) {
		inst_id(m[k], id, sizeof(id));
		strbuf_addf(b, "<item><reservationId>r-%d</reservationId><instancesSet><item>"
			    "<instanceId>%s</instanceId><instanceState><code>16</code><name>running"
			    "</name></instanceState><launchTime>2026-11-22T10:00:00.000Z</launchTime>"
			    "<privateIpAddress>127.0.%d.%d</privateIpAddress></item></instancesSet>"
			    "</item>", m[k], id, m[k] / 250, m[k] % 250 + 1);
	}
	strbuf_addstr(b, "</reservationSet>");
	if (start + f->ec2_page < n)
		strbuf_addf(b, "<nextToken>tok-%d</nextToken>", start + f->ec2_page);
	strbuf_addstr(b, "</DescribeInstancesResponse>");
	free(m);
}

static void fake_handler(void *ctx, const struct awsstub_req *rq, struct awsstub_resp *rs)
{
	struct fake *f = ctx;
	struct sigv4_req req;
	char action[64], ids[64];
	struct err e = ERR_INIT;
	int i, n = 0;

	form_get(rq->body, "Action", action, sizeof(action));
	if (f->nreq < FAKE_MAX_REQ) {
		snprintf(f->actions[f->nreq], sizeof(f->actions[0]), "%s", action);
		snprintf(f->dates[f->nreq], sizeof(f->dates[0]), "%s",
			 awsstub_header(rq, "X-Amz-Date") ? awsstub_header(rq, "X-Amz-Date") : "");
	}
	f->nreq++;
	if (awsstub_header(rq, "X-Amz-Security-Token") &&
	    !strcmp(awsstub_header(rq, "X-Amz-Security-Token"), "session+token/==") &&
	    awsstub_header(rq, "Authorization") &&
	    strstr(awsstub_header(rq, "Authorization"), "x-amz-security-token"))
		f->with_token++; /* sent and among the signed headers */
	req.method = rq->method;
	req.path = rq->url;
	req.query = rq->query;
	req.headers = rq->headers;
	req.nheaders = rq->nheaders;
	req.payload = rq->body;
	req.payload_len = rq->body_len;
	if (sigv4_verify(&req, "us-east-1", strcmp(action, "DescribeInstances") ? "autoscaling" : "ec2",
			 fake_secret, NULL, f->clk->now / 1000, 900, &e)) {
		f->verify_failures++;
		rs->status = 403;
		strbuf_addf(&rs->body, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
			    "<Message>%s</Message></Error></ErrorResponse>", e.msg);
		return;
	}
	rs->delay_ms = f->delay_ms;
	if (f->big_body) {
		for (i = 0; (size_t)i < f->big_body; i++)
			strbuf_addch(&rs->body, 'x');
		return;
	}
	if (f->fail_times != 0 && !strcmp(action, f->fail_action)) {
		if (f->fail_times > 0)
			f->fail_times--;
		rs->status = f->fail_status;
		strbuf_addstr(&rs->body, f->fail_body ? f->fail_body : "");
		return;
	}
	if (strcmp(action, "DescribeAutoScalingGroups") && strcmp(action, "DescribeInstances"))
		snprintf(f->last_body, sizeof(f->last_body), "%s", rq->body);
	if (f->ids_not_found && !strcmp(action, "DescribeInstances") &&
	    form_get(rq->body, "Filter.1.Name", ids, sizeof(ids)) && !strcmp(ids, "instance-id")) {
		f->by_id_calls++;
		rs->status = 400;
		strbuf_addstr(&rs->body, "<Response><Errors><Error><Code>InvalidInstanceID.NotFound"
			      "</Code><Message>The instance ID does not exist</Message></Error>"
			      "</Errors><RequestID>r</RequestID></Response>");
		return;
	}
	if (!strcmp(action, "DescribeAutoScalingGroups")) {
		fake_describe_asg(f, &rs->body);
	} else if (!strcmp(action, "DescribeInstances")) {
		fake_describe_instances(f, rq->body, &rs->body);
	} else {
		if (!strcmp(action, "SetInstanceProtection")) {
			for (i = 1;; i++) {
				char nm[48];

				snprintf(nm, sizeof(nm), "InstanceIds.member.%d", i);
				if (!form_get(rq->body, nm, ids, sizeof(ids)))
					break;
				n++;
			}
			if (f->nprotect < 16)
				f->protect_sizes[f->nprotect++] = n;
		}
		strbuf_addf(&rs->body, "<%sResponse xmlns=\"http://autoscaling.amazonaws.com/doc/"
			    "2011-01-01/\"><ResponseMetadata><RequestId>r</RequestId>"
			    "</ResponseMetadata></%sResponse>", action, action);
	}
}

struct env {
	struct fclock clk;
	struct fake fake;
	struct awsstub *stub;
	struct cloud *cloud;
	struct awsq_clock qclock;
};

/* The env of the running test, stopped by the teardown even when an assertion fails. */
static struct env *live_env;
static const char *env_token; /* session token for the next env_new, or NULL */

static struct env *env_new(int ninst, int ec2_page, int attempts, long timeout_ms)
{
	struct env *v = calloc(1, sizeof(*v));
	struct awscloud_config cfg;
	struct err e = ERR_INIT;

	assert_non_null(v);
	v->clk.now = (int64_t)time(NULL) * 1000;
	v->clk.r = 0xffffffffu;
	v->fake.clk = &v->clk;
	v->fake.ninst = ninst;
	v->fake.ec2_page = ec2_page;
	assert_int_equal(awsstub_start(fake_handler, &v->fake, &v->stub), 0);
	v->qclock.now_ms = f_now;
	v->qclock.sleep_ms = f_sleep;
	v->qclock.rand32 = f_rand;
	v->qclock.ctx = &v->clk;
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint = awsstub_url(v->stub);
	cfg.creds.access_key_id = AKID;
	cfg.creds.secret_access_key = SECRET;
	cfg.creds.session_token = env_token;
	cfg.timeout_ms = timeout_ms;
	cfg.connect_timeout_ms = 1000;
	cfg.max_attempts = attempts;
	cfg.backoff_base_ms = 1500;
	cfg.backoff_cap_ms = 5000;
	cfg.clock = &v->qclock;
	cfg.max_response = 1u << 20;
	live_env = v;
	if (awscloud_new(&cfg, &v->cloud, &e))
		fail_msg("awscloud_new: %s", e.msg);
	return v;
}

static void env_fail(struct env *v, const char *action, int times, int status, const char *file)
{
	snprintf(v->fake.fail_action, sizeof(v->fake.fail_action), "%s", action);
	v->fake.fail_times = times;
	v->fake.fail_status = status;
	free(v->fake.fail_body);
	v->fake.fail_body = file ? load(file, NULL) : strdup("");
}

static void env_free(struct env *v)
{
	if (v == live_env)
		live_env = NULL;
	cloud_free(v->cloud);
	awsstub_stop(v->stub);
	free(v->fake.fail_body);
	free(v);
}

static int setup(void **state)
{
	(void)state;
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_EC2");
	unsetenv("AWS_ENDPOINT_URL_AUTO_SCALING");
	return 0;
}

static int env_teardown(void **state)
{
	(void)state;
	if (live_env)
		env_free(live_env);
	return 0;
}

/* ---- driver against the stub ---- */

static void test_awsq__describe_follows_pages_and_signs_every_request(void **state)
{
	struct env *v = env_new(7, 3, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	char id[32];
	int i;

	(void)state;
	v->fake.hide = 5;   /* listed by the group, not yet returned by EC2 */
	v->fake.extra = 2;  /* returned by EC2 (tagged), no longer listed by the group */
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.found);
	assert_true(g.complete);
	assert_int_equal(g.desired_capacity, 7);
	assert_int_equal(g.ninstances, 7);   /* the extras are ignored */
	assert_int_equal(v->fake.ec2_bad_params, 0);
	for (i = 0; i < 7; i++) {
		inst_id(i + 1, id, sizeof(id));
		assert_string_equal(g.instances[i].id, id);
		assert_int_equal(g.instances[i].ec2_seen, i != 4);
	}
	assert_string_equal(g.instances[0].private_ip, "127.0.0.2");
	assert_string_equal(g.instances[0].ec2_state, "running");
	/*
	 * 1 DescribeAutoScalingGroups + 3 pages by tag (8 instances, 3 a page)
	 * + 1 by id for the hidden one, which stays unseen: unknown, not absent
	 */
	assert_int_equal(v->fake.nreq, 5);
	assert_int_equal(v->fake.by_id_calls, 1);
	assert_int_equal(v->fake.by_id_max, 1);
	assert_int_equal(v->cloud->calls, 5);
	assert_int_equal(awscloud_requests(v->cloud), 5);
	assert_string_equal(v->fake.actions[1], "DescribeInstances");
	assert_int_equal(v->fake.verify_failures, 0);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__session_token_is_sent_and_signed(void **state)
{
	struct env *v;
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	env_token = "session+token/==";
	v = env_new(2, 10, 3, 2000);
	env_token = NULL;
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), 0);
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), 0);
	assert_int_equal(v->fake.nreq, 3);
	assert_int_equal(v->fake.with_token, 3);
	assert_int_equal(v->fake.verify_failures, 0);
	obs_group_release(&g);
	env_free(v);
}

/* By the group tag, pages of 1000: 2,500 instances cost 1 + 3 calls (by ids of 200: 1 + 13). */
static void test_awsq__describe_by_group_tag_in_pages_of_1000(void **state)
{
	struct env *v = env_new(2500, 1000, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.complete);
	assert_int_equal(g.ninstances, 2500);
	for (i = 0; i < g.ninstances; i++)
		assert_true(g.instances[i].ec2_seen);
	assert_int_equal(v->fake.nreq, 1 + 3);
	assert_int_equal(v->cloud->calls, 1 + 3);
	assert_int_equal(v->fake.ec2_bad_params, 0);
	assert_string_equal(v->fake.tag_value, ASG);
	obs_group_release(&g);
	env_free(v);
}

/*
 * An instance the group lists without the group tag (attached with
 * AttachInstances) is described by id: observed with its address for one
 * extra call. With the tag on every instance there is no extra call.
 */
static void test_awsq__untagged_instance_costs_one_call_tagged_ones_none(void **state)
{
	struct env *v = env_new(5, 1000, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	v->fake.untagged_lo = v->fake.untagged_hi = 3;
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.complete);
	assert_int_equal(g.ninstances, 5);
	for (i = 0; i < g.ninstances; i++)
		assert_true(g.instances[i].ec2_seen);
	assert_string_equal(g.instances[2].private_ip, "127.0.0.4");
	assert_string_equal(g.instances[2].ec2_state, "running");
	assert_true(g.instances[2].launch_time > 0);
	/* 1 DescribeAutoScalingGroups + 1 by tag + 1 by id (one id) */
	assert_int_equal(v->fake.nreq, 3);
	assert_int_equal(v->cloud->calls, 3);
	assert_int_equal(v->fake.by_id_calls, 1);
	assert_int_equal(v->fake.by_id_max, 1);
	assert_int_equal(v->fake.ec2_bad_params, 0);
	/* tagged now: the usual pass, no call by id */
	v->fake.untagged_lo = v->fake.untagged_hi = 0;
	v->fake.nreq = 0;
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.complete);
	for (i = 0; i < g.ninstances; i++)
		assert_true(g.instances[i].ec2_seen);
	assert_int_equal(v->fake.nreq, 2);
	assert_int_equal(v->fake.by_id_calls, 1);
	obs_group_release(&g);
	env_free(v);
}

/* Many untagged instances: at most 200 ids a call, each call's pages followed. */
static void test_awsq__untagged_instances_by_id_200_a_call_pages_followed(void **state)
{
	struct env *v = env_new(450, 150, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	v->fake.untagged_lo = 1;
	v->fake.untagged_hi = 450;
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.complete);
	assert_int_equal(g.ninstances, 450);
	for (i = 0; i < g.ninstances; i++)
		assert_true(g.instances[i].ec2_seen);
	assert_string_equal(g.instances[449].private_ip, "127.0.1.201");
	/* 1 + 1 by tag (empty) + ids 200 (2 pages of 150), 200 (2), 50 (1) */
	assert_int_equal(v->fake.by_id_max, 200);
	assert_int_equal(v->fake.by_id_calls, 5);
	assert_int_equal(v->fake.nreq, 1 + 1 + 5);
	assert_int_equal(v->cloud->calls, 1 + 1 + 5);
	assert_int_equal(v->fake.ec2_bad_params, 0);
	obs_group_release(&g);
	env_free(v);
}

/* InvalidInstanceID.NotFound asking by id: incomplete, the instance unknown, never absent. */
static void test_awsq__not_found_by_id_is_incomplete_not_absent(void **state)
{
	struct env *v = env_new(3, 1000, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	v->fake.untagged_lo = v->fake.untagged_hi = 2;
	v->fake.ids_not_found = 1;
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), SP_EBUSY);
	assert_non_null(strstr(e.msg, "not yet visible"));
	assert_true(g.found);
	assert_false(g.complete);
	assert_int_equal(g.ninstances, 3);       /* still listed: nothing reads as gone */
	assert_true(g.instances[0].ec2_seen);
	assert_false(g.instances[1].ec2_seen);
	assert_string_equal(g.instances[1].private_ip, "");
	assert_true(g.instances[2].ec2_seen);
	assert_int_equal(v->fake.by_id_calls, 1); /* not retried within the pass */
	obs_group_release(&g);
	env_free(v);
}

/* EC2 reads '*' and '?' in filter values as wildcards: a group name is sent escaped. */
static void test_awsq__group_tag_value_is_escaped(void **state)
{
	static const char name[] = "we*b?\\x";
	struct env *v = env_new(2, 10, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	v->fake.asg = name;
	obs_group_init(&g);
	if (cloud_describe(v->cloud, name, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.found && g.complete);
	assert_string_equal(v->fake.tag_value, "we\\*b\\?\\\\x");
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__throttling_retried_with_backoff_and_resigned(void **state)
{
	struct env *v = env_new(2, 10, 4, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	env_fail(v, "DescribeAutoScalingGroups", 2, 400, "err_asg_throttling.xml");
	v->clk.r = 1501 * 3001 - 1; /* r mod 1501 = 1500, r mod 3001 = 3000 */
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_true(g.complete);
	assert_int_equal(v->fake.nreq, 4); /* 3 attempts + 1 DescribeInstances */
	/* full jitter with r at the top of each range: the ceilings, 1500 then 3000 ms */
	assert_int_equal(v->clk.nsleeps, 2);
	assert_int_equal(v->clk.slept, 1500 + 3000);
	/* each attempt was signed anew (a new X-Amz-Date) and verified */
	assert_int_equal(v->fake.verify_failures, 0);
	assert_string_not_equal(v->fake.dates[0], v->fake.dates[1]);
	assert_string_not_equal(v->fake.dates[1], v->fake.dates[2]);
	obs_group_release(&g);

	/* EC2 RequestLimitExceeded is retried the same way */
	env_fail(v, "DescribeInstances", 1, 503, "err_ec2_request_limit.xml");
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), 0);
	assert_true(g.complete);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__throttling_exhausted_is_ethrottled(void **state)
{
	struct env *v = env_new(2, 10, 4, 2000);
	struct err e = ERR_INIT;

	(void)state;
	v->clk.r = 123456789;
	env_fail(v, "SetDesiredCapacity", -1, 400, "err_asg_throttling.xml");
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 3, &e), SP_ETHROTTLED);
	assert_non_null(strstr(e.msg, "Throttling"));
	assert_non_null(strstr(e.msg, "gave up after 4 attempts"));
	assert_int_equal(v->fake.nreq, 4);
	assert_int_equal(v->clk.nsleeps, 3);
	assert_true(v->clk.max_sleep <= 5000);
	assert_int_equal(sp_code_class(e.code), SP_CLASS_RETRYABLE);
	env_free(v);
}

static void test_awsq__5xx_and_html_retried_then_unavailable(void **state)
{
	struct env *v = env_new(2, 10, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	env_fail(v, "DescribeAutoScalingGroups", -1, 500, "html_500.html");
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), SP_EUNAVAIL);
	assert_false(g.complete);
	assert_false(g.found);
	assert_non_null(strstr(e.msg, "http 500"));
	assert_int_equal(v->fake.nreq, 3);
	obs_group_release(&g);

	v->fake.nreq = 0;
	env_fail(v, "DescribeAutoScalingGroups", 1, 500, "err_asg_resource_contention.xml");
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), 0);
	assert_int_equal(v->fake.nreq, 3);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__denied_and_busy_are_not_retried(void **state)
{
	struct env *v = env_new(3, 10, 4, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	env_fail(v, "SetDesiredCapacity", -1, 403, "err_asg_access_denied.xml");
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 3, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "AccessDenied"));
	assert_int_equal(sp_code_class(e.code), SP_CLASS_NEEDS_OPERATOR);
	assert_int_equal(v->fake.nreq, 1);

	env_fail(v, "SetDesiredCapacity", -1, 400, "err_asg_scaling_in_progress.xml");
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 3, &e), SP_EBUSY);
	assert_int_equal(v->fake.nreq, 2);

	env_fail(v, "DescribeInstances", -1, 403, "err_ec2_unauthorized.xml");
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "UnauthorizedOperation"));
	/* what the ASG said is kept, but the observation is incomplete */
	assert_true(g.found);
	assert_false(g.complete);
	assert_int_equal(g.ninstances, 3);
	assert_false(g.instances[0].ec2_seen);
	assert_int_equal(v->fake.nreq, 4);
	assert_int_equal(v->clk.nsleeps, 0);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__ec2_not_found_is_incomplete_not_absent(void **state)
{
	struct env *v = env_new(3, 10, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	env_fail(v, "DescribeInstances", -1, 400, "err_ec2_not_found.xml");
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), SP_EBUSY);
	assert_non_null(strstr(e.msg, "not yet visible"));
	assert_true(g.found);
	assert_false(g.complete);
	assert_int_equal(g.ninstances, 3);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__non_xml_bodies_are_clear_errors(void **state)
{
	static const char *const bodies[] = { NULL, "truncated.xml", "html_500.html" };
	struct env *v = env_new(2, 10, 3, 2000);
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		v->fake.nreq = 0;
		env_fail(v, "SetDesiredCapacity", -1, 200, bodies[i]);
		assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), SP_EPROTO);
		assert_non_null(strstr(e.msg, "SetDesiredCapacity answered http 200"));
		assert_int_equal(v->fake.nreq, 1);
	}
	/* binary garbage */
	free(v->fake.fail_body);
	v->fake.fail_body = strdup("\x01\x02<\xff\xfe>\x7f garbage");
	v->fake.fail_times = -1;
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), SP_EPROTO);
	/* a well-formed answer carrying a DTD (entity tricks) is refused */
	free(v->fake.fail_body);
	v->fake.fail_body = strdup("<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">"
				   "<!ENTITY b \"&a;&a;&a;&a;\">]><SetDesiredCapacityResponse>&b;"
				   "</SetDesiredCapacityResponse>");
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), SP_EPROTO);
	/* a 400 that is not an aws error document */
	env_fail(v, "SetDesiredCapacity", -1, 400, NULL);
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), SP_EPROTO);
	assert_non_null(strstr(e.msg, "http 400"));
	env_free(v);
}

static void test_awsq__timeout_is_reported(void **state)
{
	struct env *v = env_new(2, 10, 2, 150);
	struct err e = ERR_INIT;

	(void)state;
	v->fake.delay_ms = 500;
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 2, &e), SP_ETIMEOUT);
	assert_non_null(strstr(e.msg, "timed out"));
	assert_int_equal(v->fake.nreq, 2);
	env_free(v);
}

static void test_awsq__response_size_is_limited(void **state)
{
	struct env *v = env_new(2, 10, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;

	(void)state;
	v->fake.big_body = (1u << 20) + 4096;
	obs_group_init(&g);
	assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), SP_ELIMIT);
	assert_false(g.complete);
	assert_non_null(strstr(e.msg, "larger than"));
	assert_int_equal(v->fake.nreq, 1);
	obs_group_release(&g);
	env_free(v);
}

static void test_awsq__mutations_send_documented_parameters(void **state)
{
	struct env *v = env_new(2, 10, 3, 2000);
	const char *ids[120];
	char idbuf[120][32], val[64];
	struct err e = ERR_INIT;
	int i;

	(void)state;
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 7, &e), 0);
	assert_true(form_get(v->fake.last_body, "Version", val, sizeof(val)));
	assert_string_equal(val, "2011-01-01");
	assert_true(form_get(v->fake.last_body, "AutoScalingGroupName", val, sizeof(val)));
	assert_string_equal(val, ASG);
	assert_true(form_get(v->fake.last_body, "DesiredCapacity", val, sizeof(val)));
	assert_string_equal(val, "7");
	assert_true(form_get(v->fake.last_body, "HonorCooldown", val, sizeof(val)));
	assert_string_equal(val, "false");

	for (i = 0; i < 120; i++) {
		inst_id(i + 1, idbuf[i], sizeof(idbuf[i]));
		ids[i] = idbuf[i];
	}
	assert_int_equal(cloud_set_protection(v->cloud, ASG, ids, 120, 1, &e), 0);
	assert_int_equal(v->fake.nprotect, 3);
	assert_int_equal(v->fake.protect_sizes[0], 50);
	assert_int_equal(v->fake.protect_sizes[1], 50);
	assert_int_equal(v->fake.protect_sizes[2], 20);
	assert_true(form_get(v->fake.last_body, "ProtectedFromScaleIn", val, sizeof(val)));
	assert_string_equal(val, "true");
	assert_true(form_get(v->fake.last_body, "InstanceIds.member.20", val, sizeof(val)));
	assert_string_equal(val, idbuf[119]);

	assert_int_equal(cloud_terminate(v->cloud, "i-0123", 1, &e), 0);
	assert_true(form_get(v->fake.last_body, "Action", val, sizeof(val)));
	assert_string_equal(val, "TerminateInstanceInAutoScalingGroup");
	assert_true(form_get(v->fake.last_body, "ShouldDecrementDesiredCapacity", val,
			     sizeof(val)));
	assert_string_equal(val, "true");

	assert_int_equal(cloud_set_health(v->cloud, "i-0123", 0, &e), 0);
	assert_true(form_get(v->fake.last_body, "HealthStatus", val, sizeof(val)));
	assert_string_equal(val, "Unhealthy");

	env_fail(v, "TerminateInstanceInAutoScalingGroup", -1, 400, "err_asg_not_found.xml");
	assert_int_equal(cloud_terminate(v->cloud, "i-0123456789abcdef0", 0, &e), SP_ENOTFOUND);
	env_fail(v, "SetDesiredCapacity", -1, 400, "err_asg_validation.xml");
	assert_int_equal(cloud_set_capacity(v->cloud, ASG, 50, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "above max"));
	assert_int_equal(v->fake.verify_failures, 0);
	env_free(v);
}

static void test_awsq__token_bucket_paces_calls(void **state)
{
	struct env *v = env_new(1, 10, 3, 2000);
	struct err e = ERR_INIT;
	int i;

	(void)state;
	/* Auto Scaling mutating bucket: burst 20 at 2/s; 25 calls wait for 5 tokens */
	for (i = 0; i < 25; i++)
		assert_int_equal(cloud_set_capacity(v->cloud, ASG, 1, &e), 0);
	assert_true(v->clk.slept >= 2400 && v->clk.slept <= 2600);
	assert_int_equal(v->fake.nreq, 25);
	env_free(v);
}

/* EC2 describe bucket below AWS's 100 at 20/s: 100 pages in a row wait for 20 tokens at 16/s. */
static void test_awsq__ec2_bucket_is_below_the_published_limit(void **state)
{
	struct env *v = env_new(100, 1, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	int64_t want = (100 - AWSCLOUD_EC2_READ_BURST) * 1000 / AWSCLOUD_EC2_READ_RATE;

	(void)state;
	_Static_assert(AWSCLOUD_EC2_READ_BURST < 100 && AWSCLOUD_EC2_READ_RATE < 20,
		       "EC2 describe bucket must stay below AWS's published 100 at 20/s");
	_Static_assert(AWSCLOUD_EC2_WRITE_BURST < 50 && AWSCLOUD_EC2_WRITE_RATE < 5,
		       "EC2 mutating bucket must stay below AWS's published 50 at 5/s");
	obs_group_init(&g);
	if (cloud_describe(v->cloud, ASG, &g, &e))
		fail_msg("describe: %s", e.msg);
	assert_int_equal(v->fake.nreq, 1 + 100);
	assert_true(v->clk.slept >= want && v->clk.slept <= want + 100);
	obs_group_release(&g);
	env_free(v);
}

/* Auto Scaling throttles every call from one bucket: describes use up the mutations' tokens. */
static void test_awsq__asg_describe_and_mutations_share_one_bucket(void **state)
{
	struct env *v = env_new(0, 10, 3, 2000);
	struct obs_group g;
	struct err e = ERR_INIT;
	int i;

	(void)state;
	for (i = 0; i < 15; i++) {
		obs_group_init(&g);
		assert_int_equal(cloud_describe(v->cloud, ASG, &g, &e), 0);
		obs_group_release(&g);
	}
	assert_int_equal(v->clk.slept, 0);
	/* 15 + 10 calls against burst 20 at 2/s: 5 waits of 500 ms */
	for (i = 0; i < 10; i++)
		assert_int_equal(cloud_set_capacity(v->cloud, ASG, 0, &e), 0);
	assert_true(v->clk.slept >= 2400 && v->clk.slept <= 2600);
	assert_int_equal(v->fake.nreq, 25);
	env_free(v);
}

static void test_awsq__endpoints_follow_config_and_env(void **state)
{
	struct awscreds_config cc = { 0 };
	struct awscreds *cr = NULL;
	struct awsq_config qc;
	struct awsq *q = NULL;
	struct err e = ERR_INIT;

	(void)state;
	cc.access_key_id = AKID;
	cc.secret_access_key = SECRET;
	cc.region = "eu-west-1";
	assert_int_equal(awscreds_new(&cc, &cr, &e), 0);
	memset(&qc, 0, sizeof(qc));
	qc.service = "ec2";
	qc.version = "2016-11-15";
	qc.region = "eu-west-1";
	qc.creds = cr;
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	assert_string_equal(awsq_endpoint(q), "https://ec2.eu-west-1.amazonaws.com");
	awsq_free(q);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999", 1);
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	assert_string_equal(awsq_endpoint(q), "http://127.0.0.1:9999");
	awsq_free(q);
	setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.2:8888/", 1);
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	assert_string_equal(awsq_endpoint(q), "http://127.0.0.2:8888/");
	awsq_free(q);
	qc.service = "autoscaling";
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	assert_string_equal(awsq_endpoint(q), "http://127.0.0.1:9999");
	awsq_free(q);
	qc.endpoint = "ftp://nope";
	assert_int_equal(awsq_new(&qc, &q, &e), SP_EINVAL);
	qc.endpoint = NULL;
	qc.region = "";
	assert_int_equal(awsq_new(&qc, &q, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "region"));
	setup(NULL);
	qc.region = "cn-north-1";
	qc.service = "ec2";
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	assert_string_equal(awsq_endpoint(q), "https://ec2.cn-north-1.amazonaws.com.cn");
	awsq_free(q);
	awscreds_free(cr);
}

static void test_awsq__connection_refused_is_eio(void **state)
{
	struct awscloud_config cfg;
	struct cloud *c = NULL;
	struct fclock clk = { (int64_t)time(NULL) * 1000, 0, 0, 0, 7 };
	struct awsq_clock qclk = { f_now, f_sleep, f_rand, &clk };
	struct err e = ERR_INIT;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint = "http://127.0.0.1:1";
	cfg.creds.access_key_id = AKID;
	cfg.creds.secret_access_key = SECRET;
	cfg.max_attempts = 2;
	cfg.clock = &qclk;
	assert_int_equal(awscloud_new(&cfg, &c, &e), 0);
	assert_int_equal(cloud_set_health(c, "i-1", 1, &e), SP_EIO);
	assert_non_null(strstr(e.msg, "127.0.0.1:1"));
	assert_null(strstr(e.msg, SECRET));
	assert_int_equal(awscloud_requests(c), 2);
	cloud_free(c);
}

static void test_awsq__no_region_is_a_config_error(void **state)
{
	struct awscloud_config cfg;
	struct cloud *c = NULL;
	struct err e = ERR_INIT;

	(void)state;
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_PROFILE");
	setenv("AWS_CONFIG_FILE", "/nonexistent/spinup/aws-config", 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	memset(&cfg, 0, sizeof(cfg));
	cfg.creds.access_key_id = AKID;
	cfg.creds.secret_access_key = SECRET;
	assert_int_equal(awscloud_new(&cfg, &c, &e), SP_EINVAL);
	assert_null(c);
	assert_non_null(strstr(e.msg, "no aws region"));
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("AWS_EC2_METADATA_DISABLED");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_awsq__parses_describe_asg, env_teardown),
		cmocka_unit_test_teardown(test_awsq__parses_describe_instances, env_teardown),
		cmocka_unit_test_teardown(test_awsq__parse_rejects_malformed_fields, env_teardown),
		cmocka_unit_test_teardown(test_awsq__duplicate_instances_are_dropped, env_teardown),
		cmocka_unit_test_teardown(test_awsq__truncated_documents_never_crash, env_teardown),
		cmocka_unit_test_teardown(test_awsq__error_codes_map_to_classes, env_teardown),
		cmocka_unit_test_teardown(test_awsq__backoff_is_full_jitter_within_cap, env_teardown),
		cmocka_unit_test_teardown(test_awsq__token_bucket_arithmetic, env_teardown),
		cmocka_unit_test_teardown(test_awsq__describe_follows_pages_and_signs_every_request, env_teardown),
		cmocka_unit_test_teardown(test_awsq__session_token_is_sent_and_signed, env_teardown),
		cmocka_unit_test_teardown(test_awsq__describe_by_group_tag_in_pages_of_1000, env_teardown),
		cmocka_unit_test_teardown(test_awsq__group_tag_value_is_escaped, env_teardown),
		cmocka_unit_test_teardown(test_awsq__untagged_instance_costs_one_call_tagged_ones_none, env_teardown),
		cmocka_unit_test_teardown(test_awsq__untagged_instances_by_id_200_a_call_pages_followed, env_teardown),
		cmocka_unit_test_teardown(test_awsq__not_found_by_id_is_incomplete_not_absent, env_teardown),
		cmocka_unit_test_teardown(test_awsq__throttling_retried_with_backoff_and_resigned, env_teardown),
		cmocka_unit_test_teardown(test_awsq__throttling_exhausted_is_ethrottled, env_teardown),
		cmocka_unit_test_teardown(test_awsq__5xx_and_html_retried_then_unavailable, env_teardown),
		cmocka_unit_test_teardown(test_awsq__denied_and_busy_are_not_retried, env_teardown),
		cmocka_unit_test_teardown(test_awsq__ec2_not_found_is_incomplete_not_absent, env_teardown),
		cmocka_unit_test_teardown(test_awsq__non_xml_bodies_are_clear_errors, env_teardown),
		cmocka_unit_test_teardown(test_awsq__timeout_is_reported, env_teardown),
		cmocka_unit_test_teardown(test_awsq__response_size_is_limited, env_teardown),
		cmocka_unit_test_teardown(test_awsq__mutations_send_documented_parameters, env_teardown),
		cmocka_unit_test_teardown(test_awsq__token_bucket_paces_calls, env_teardown),
		cmocka_unit_test_teardown(test_awsq__ec2_bucket_is_below_the_published_limit, env_teardown),
		cmocka_unit_test_teardown(test_awsq__asg_describe_and_mutations_share_one_bucket, env_teardown),
		cmocka_unit_test_teardown(test_awsq__endpoints_follow_config_and_env, env_teardown),
		cmocka_unit_test_teardown(test_awsq__connection_refused_is_eio, env_teardown),
		cmocka_unit_test_teardown(test_awsq__no_region_is_a_config_error, env_teardown),
	};

	setup(NULL);
	return cmocka_run_group_tests(tests, setup, NULL);
}
