/*
 * test_localcloud.c - the local provider.
 *
 * First its parts without I/O: the world (lifecycle, scale-in and
 * protection, health replacement, addresses and ids) on a stepped clock,
 * and the Query API documents (pagination, filters, errors). Then the
 * binary ($SPINUP_BIN_DIR/spinup-localcloud) on a free loopback port,
 * driven by the real aws cloud driver (drivers/awscloud) and the Query API
 * client (drivers/awsq): discovery, scaling, protection, termination,
 * health, 2,500-instance pagination, every error class and the admin
 * endpoint. Instance commands write marker files and sleep, so the test
 * sees which processes ran and that they were stopped. Every provider
 * started is stopped in the teardown, on failure too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>

#include "drivers/awscloud.h"
#include "drivers/awsq.h"
#include "drivers/cloud.h"
#include "localcloud/lcapi.h"
#include "localcloud/lcworld.h"
#include "model/strbuf.h"
#include "model/banned.h"

#define KEY "AKIDLOCALTEST0000001"
#define SECRET "local-test-secret-0123456789abcdef"
#define ENV_TOKEN "local-test-session-token"

/* ================================================================ world */

struct counts {
	int starts, stops;
	const char *refuse;     /* addr_ok says no to this one */
};

static void c_start(void *ctx, struct lcworld_inst *in)
{
	(void)in;
	((struct counts *)ctx)->starts++;
}

static void c_stop(void *ctx, struct lcworld_inst *in)
{
	(void)in;
	((struct counts *)ctx)->stops++;
}

static int c_addr_ok(void *ctx, const char *ip)
{
	const struct counts *c = ctx;
	return !c->refuse || strcmp(ip, c->refuse);
}

static struct lcworld *world(struct counts *c, enum lcworld_scale_in si)
{
	struct lcworld_config cfg = { .boot_ms = 100, .terminate_ms = 100, .gone_ms = 1000,
				      .visibility_ms = 0, .net = 0, .scale_in = si, .seed = 0xabc };
	struct lcworld_hooks h = { c_start, c_stop, c_addr_ok, c };
	struct lcworld *w = NULL;
	struct err e = ERR_INIT;

	assert_int_equal(lcworld_new(&cfg, &h, &w, &e), 0);
	return w;
}

static int count_state(struct lcworld *w, enum lcworld_state s)
{
	size_t i;
	int n = 0;

	for (i = 0; i < lcworld_ninst(w); i++)
		n += lcworld_inst(w, i)->state == s;
	return n;
}

static void test_localcloud__world_lifecycle_pending_inservice_terminated_forgotten(void **state)
{
	struct counts c = { 0 };
	struct lcworld *w = world(&c, LCWORLD_SCALE_IN_NEWEST);
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(lcworld_add_group(w, "g", 0, 5, 2, 0, &e), 0);
	lcworld_tick(w, 1000);
	assert_int_equal(count_state(w, LCWORLD_PENDING), 2);
	assert_int_equal(c.starts, 0);
	lcworld_tick(w, 1099);
	assert_int_equal(count_state(w, LCWORLD_PENDING), 2);
	lcworld_tick(w, 1100);
	assert_int_equal(count_state(w, LCWORLD_IN_SERVICE), 2);
	assert_int_equal(c.starts, 2);
	assert_int_equal(lcworld_set_desired(w, "g", 0, &e), 0);
	lcworld_tick(w, 1200);
	assert_int_equal(count_state(w, LCWORLD_TERMINATING), 2);
	assert_int_equal(c.stops, 2);
	lcworld_tick(w, 1300);
	assert_int_equal(count_state(w, LCWORLD_TERMINATED), 2);
	assert_int_equal(lcworld_live(w, 0), 0);
	lcworld_tick(w, 2299);
	assert_int_equal(lcworld_ninst(w), 2);
	lcworld_tick(w, 2300);
	assert_int_equal(lcworld_ninst(w), 0);
	lcworld_free(w);
}

static void test_localcloud__world_scale_in_never_removes_protected(void **state)
{
	struct counts c = { 0 };
	struct lcworld *w = world(&c, LCWORLD_SCALE_IN_NEWEST);
	struct err e = ERR_INIT;
	char ids[4][LCWORLD_ID_LEN + 1];
	const char *prot[2];
	size_t i;

	(void)state;
	assert_int_equal(lcworld_add_group(w, "g", 0, 10, 4, 0, &e), 0);
	lcworld_tick(w, 0);
	lcworld_tick(w, 200);
	for (i = 0; i < 4; i++)
		snprintf(ids[i], sizeof(ids[i]), "%s", lcworld_inst(w, i)->id);
	prot[0] = ids[1];
	prot[1] = ids[3];  /* the newest: scale-in would pick it first */
	assert_int_equal(lcworld_set_protection(w, "g", prot, 2, 1, &e), 0);
	assert_int_equal(lcworld_set_desired(w, "g", 0, &e), 0);
	lcworld_tick(w, 300);
	/* desired 0, but the two protected ones stay InService */
	assert_int_equal(lcworld_find(w, ids[1])->state, LCWORLD_IN_SERVICE);
	assert_int_equal(lcworld_find(w, ids[3])->state, LCWORLD_IN_SERVICE);
	assert_int_equal(lcworld_find(w, ids[0])->state, LCWORLD_TERMINATING);
	assert_int_equal(lcworld_find(w, ids[2])->state, LCWORLD_TERMINATING);
	lcworld_tick(w, 400);
	assert_int_equal(lcworld_live(w, 0), 2);
	/* lifting protection lets scale-in finish */
	assert_int_equal(lcworld_set_protection(w, "g", prot, 1, 0, &e), 0);
	lcworld_tick(w, 500);
	assert_int_equal(lcworld_find(w, ids[1])->state, LCWORLD_TERMINATING);
	assert_int_equal(lcworld_find(w, ids[3])->state, LCWORLD_IN_SERVICE);
	lcworld_free(w);
}

static void test_localcloud__world_scale_in_order_newest_or_oldest(void **state)
{
	struct counts c = { 0 };
	struct err e = ERR_INIT;
	int k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct lcworld *w = world(&c, k ? LCWORLD_SCALE_IN_OLDEST : LCWORLD_SCALE_IN_NEWEST);
		assert_int_equal(lcworld_add_group(w, "g", 0, 10, 3, 0, &e), 0);
		lcworld_tick(w, 0);
		lcworld_tick(w, 200);
		assert_int_equal(lcworld_set_desired(w, "g", 2, &e), 0);
		lcworld_tick(w, 300);
		assert_int_equal(lcworld_inst(w, k ? 0 : 2)->state, LCWORLD_TERMINATING);
		assert_int_equal(lcworld_inst(w, 1)->state, LCWORLD_IN_SERVICE);
		assert_int_equal(lcworld_inst(w, k ? 2 : 0)->state, LCWORLD_IN_SERVICE);
		lcworld_free(w);
	}
}

static void test_localcloud__world_min_max_and_termination_rules(void **state)
{
	struct counts c = { 0 };
	struct lcworld *w = world(&c, LCWORLD_SCALE_IN_NEWEST);
	struct err e = ERR_INIT;
	char id[LCWORLD_ID_LEN + 1];

	(void)state;
	assert_int_equal(lcworld_add_group(w, "g", 1, 3, 2, 0, &e), 0);
	assert_int_equal(lcworld_add_group(w, "g", 0, 1, 0, 0, &e), SP_ECONFLICT);
	assert_int_equal(lcworld_add_group(w, "h", 2, 1, 1, 0, &e), SP_EINVAL);
	assert_int_equal(lcworld_set_desired(w, "g", 4, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "above max value 3"));
	assert_int_equal(lcworld_set_desired(w, "g", 0, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "below min value 1"));
	assert_int_equal(lcworld_set_desired(w, "nope", 1, &e), SP_ENOTFOUND);
	lcworld_tick(w, 0);
	lcworld_tick(w, 100);
	/* decrement: desired 2 -> 1 */
	snprintf(id, sizeof(id), "%s", lcworld_inst(w, 0)->id);
	assert_int_equal(lcworld_terminate(w, id, 1, 100, NULL, &e), 0);
	assert_int_equal(lcworld_group(w, 0)->desired, 1);
	assert_int_equal(lcworld_terminate(w, id, 1, 100, NULL, &e), 0); /* terminating: no-op */
	assert_int_equal(lcworld_group(w, 0)->desired, 1);
	/* at min: decrementing is refused, replacing is fine */
	assert_int_equal(lcworld_terminate(w, lcworld_inst(w, 1)->id, 1, 100, NULL, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "min size"));
	assert_int_equal(lcworld_terminate(w, lcworld_inst(w, 1)->id, 0, 100, NULL, &e), 0);
	lcworld_tick(w, 150);
	assert_int_equal(lcworld_live(w, 0), 1);               /* a replacement launched */
	assert_int_equal(count_state(w, LCWORLD_PENDING), 1);
	assert_int_equal(lcworld_terminate(w, "i-00000000000000000", 0, 150, NULL, &e),
			 SP_ENOTFOUND);
	assert_int_equal(lcworld_set_health(w, "i-nope", 0, &e), SP_ENOTFOUND);
	lcworld_free(w);
}

static void test_localcloud__world_unhealthy_is_replaced_even_when_protected(void **state)
{
	struct counts c = { 0 };
	struct lcworld *w = world(&c, LCWORLD_SCALE_IN_NEWEST);
	struct err e = ERR_INIT;
	char id[LCWORLD_ID_LEN + 1];
	const char *ids[1] = { id };

	(void)state;
	assert_int_equal(lcworld_add_group(w, "g", 0, 3, 1, 0, &e), 0);
	lcworld_tick(w, 0);
	lcworld_tick(w, 100);
	snprintf(id, sizeof(id), "%s", lcworld_inst(w, 0)->id);
	assert_int_equal(lcworld_set_protection(w, "g", ids, 1, 1, &e), 0);
	assert_int_equal(lcworld_set_health(w, id, 0, &e), 0);
	lcworld_tick(w, 200);
	assert_int_equal(lcworld_find(w, id)->state, LCWORLD_TERMINATING);
	assert_int_equal(lcworld_live(w, 0), 1);
	assert_int_equal(lcworld_group(w, 0)->desired, 1);
	assert_string_not_equal(lcworld_inst(w, 1)->id, id);
	lcworld_free(w);
}

static void test_localcloud__world_addresses_distinct_ids_well_formed(void **state)
{
	struct counts c = { .refuse = "127.0.0.5" };
	struct lcworld *w = world(&c, LCWORLD_SCALE_IN_NEWEST);
	struct err e = ERR_INIT;
	size_t i, j;

	(void)state;
	assert_int_equal(lcworld_add_group(w, "g", 0, 1000, 600, 0, &e), 0);
	lcworld_tick(w, 0);
	assert_int_equal(lcworld_ninst(w), 600);
	for (i = 0; i < lcworld_ninst(w); i++) {
		const struct lcworld_inst *in = lcworld_inst(w, i);
		unsigned a, b, x, y;
		assert_int_equal(strlen(in->id), 19);
		assert_int_equal(strncmp(in->id, "i-", 2), 0);
		assert_int_equal(strspn(in->id + 2, "0123456789abcdef"), 17);
		assert_ptr_equal(lcworld_find(w, in->id), in);
		assert_int_equal(sscanf(in->ip, "%u.%u.%u.%u", &a, &b, &x, &y), 4);
		assert_int_equal(a, 127);
		assert_int_equal(b, 0);
		assert_true(y >= 1 && y <= 254);
		assert_string_not_equal(in->ip, "127.0.0.1");
		assert_string_not_equal(in->ip, "127.0.0.5");   /* refused by addr_ok */
		for (j = 0; j < i; j++)
			assert_string_not_equal(lcworld_inst(w, j)->ip, in->ip);
	}
	assert_null(lcworld_find(w, "i-0000000ffffffffff"));
	lcworld_free(w);
}

/* ================================================================ API documents */

struct api_fx {
	struct lcworld *w;
	struct counts c;
	struct lcapi_resp r;
	char body[8192];
	struct lcapi_param p[LCAPI_MAX_PARAMS];
	size_t n;
	xmlDocPtr doc;
};

/* Run one request (a form body) at time now; r and doc hold the answer. */
static void api_call(struct api_fx *f, int64_t now, const char *form)
{
	enum lcapi_service svc;

	xmlFreeDoc(f->doc);
	f->doc = NULL;
	snprintf(f->body, sizeof(f->body), "%s", form);
	assert_int_equal(lcapi_parse_form(f->body, f->p, LCAPI_MAX_PARAMS, &f->n), 0);
	svc = lcapi_action_service(lcapi_param_get(f->p, f->n, "Action")) == LCAPI_EC2 ?
		      LCAPI_EC2 : LCAPI_ASG;
	lcapi_resp_release(&f->r);
	lcapi_resp_init(&f->r);
	assert_int_equal(lcapi_handle(f->w, svc, f->p, f->n, NULL, now, "rid-1", &f->r), 0);
	f->doc = xmlReadMemory(f->r.body.buf, (int)f->r.body.len, "x.xml", NULL, XML_PARSE_NONET);
	assert_non_null(f->doc);
}

static int count_nodes(xmlNodePtr n, const char *name)
{
	int k = 0;

	for (; n; n = n->next) {
		if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name))
			k++;
		k += count_nodes(n->children, name);
	}
	return k;
}

static void text_at(struct api_fx *f, const char *path, char *out, size_t n)
{
	awsq_text(xmlDocGetRootElement(f->doc), path, out, n);
}

static void api_setup(struct api_fx *f, int desired)
{
	struct err e = ERR_INIT;

	memset(f, 0, sizeof(*f));
	lcapi_resp_init(&f->r);
	f->w = world(&f->c, LCWORLD_SCALE_IN_NEWEST);
	assert_int_equal(lcworld_add_group(f->w, "web & <co>", 0, 5000, desired, 0, &e), 0);
	assert_int_equal(lcworld_add_group(f->w, "other", 0, 5, 1, 0, &e), 0);
	lcworld_tick(f->w, 0);
	lcworld_tick(f->w, 100);
}

static void api_teardown(struct api_fx *f)
{
	xmlFreeDoc(f->doc);
	lcapi_resp_release(&f->r);
	lcworld_free(f->w);
}

static void test_localcloud__api_describe_instances_pages_of_1000_over_2500(void **state)
{
	struct api_fx *f = calloc(1, sizeof(*f));
	char tok[128] = "", form[512], v[64];
	int pages = 0, total = 0;

	(void)state;
	api_setup(f, 2500);
	do {
		snprintf(form, sizeof(form), "Action=DescribeInstances&Version=2016-11-15&"
			 "Filter.1.Name=tag%%3Aaws%%3Aautoscaling%%3AgroupName&"
			 "Filter.1.Value.1=web+%%26+%%3Cco%%3E&MaxResults=1000%s%s",
			 tok[0] ? "&NextToken=" : "", tok);
		api_call(f, 200, form);
		assert_int_equal(f->r.status, 200);
		total += count_nodes(xmlDocGetRootElement(f->doc), "instanceId");
		pages++;
		tok[0] = '\0';
		text_at(f, "nextToken", tok, sizeof(tok));
	} while (tok[0] && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(total, 2500);
	/* the namespace and the group tag, escaped and read back */
	assert_string_equal((const char *)xmlDocGetRootElement(f->doc)->ns->href, LCAPI_EC2_XMLNS);
	text_at(f, "reservationSet/item/instancesSet/item/tagSet/item/value", v, sizeof(v));
	assert_string_equal(v, "web & <co>");
	api_teardown(f);
	free(f);
}

static void test_localcloud__api_describe_instances_filters_and_errors(void **state)
{
	struct api_fx *f = calloc(1, sizeof(*f));
	char form[512], v[128], id0[32], id1[32];

	(void)state;
	api_setup(f, 3);
	snprintf(id0, sizeof(id0), "%s", lcworld_inst(f->w, 0)->id);
	snprintf(id1, sizeof(id1), "%s", lcworld_inst(f->w, 1)->id);
	snprintf(form, sizeof(form), "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=instance-id&Filter.1.Value.1=%s&Filter.1.Value.2=%s&"
		 "Filter.1.Value.3=i-0123456789abcdef0", id1, id0);
	api_call(f, 200, form);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 2);
	text_at(f, "reservationSet/item/instancesSet/item/instanceState/name", v, sizeof(v));
	assert_string_equal(v, "running");
	text_at(f, "reservationSet/item/instancesSet/item/privateIpAddress", v, sizeof(v));
	assert_string_equal(v, lcworld_inst(f->w, 0)->ip);
	/* tag values match as EC2's do: '*' and '?' wildcards, a backslash escapes */
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=web%20%26%20%3Cco%3E");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 3);
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=w?b*");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 3);
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=*");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 4);
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=web%5C*");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 0);
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=%5Cother");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 1);
	/* an untagged instance (attached): no tag filter matches it, the id filter does */
	lcworld_inst(f->w, 0)->untagged = 1;
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=tag:aws:autoscaling:groupName&Filter.1.Value.1=web%20%26%20%3Cco%3E");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 2);
	snprintf(form, sizeof(form), "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=instance-id&Filter.1.Value.1=%s", id0);
	api_call(f, 200, form);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 1);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "key"), 0);
	lcworld_inst(f->w, 0)->untagged = 0;
	/* InstanceId.N with an unknown id: InvalidInstanceID.NotFound, EC2's shape */
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&"
		 "InstanceId.1=i-0123456789abcdef0");
	assert_int_equal(f->r.status, 400);
	assert_string_equal((const char *)xmlDocGetRootElement(f->doc)->name, "Response");
	text_at(f, "Errors/Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidInstanceID.NotFound");
	text_at(f, "RequestID", v, sizeof(v));
	assert_string_equal(v, "rid-1");
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&MaxResults=4");
	text_at(f, "Errors/Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidParameterValue");
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&MaxResults=1001");
	assert_int_equal(f->r.status, 400);
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&NextToken=garbage");
	text_at(f, "Errors/Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidPaginationToken");
	api_call(f, 200, "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=vpc-id&"
		 "Filter.1.Value.1=x");
	text_at(f, "Errors/Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidParameterValue");
	api_call(f, 200, "Action=DescribeInstances&Version=2015-01-01");
	assert_int_equal(f->r.status, 400);
	api_teardown(f);
	free(f);
}

static void test_localcloud__api_visibility_delay_hides_new_instances(void **state)
{
	struct api_fx *f = calloc(1, sizeof(*f));
	struct err e = ERR_INIT;
	char form[256], id[32], v[64];

	(void)state;
	api_setup(f, 1);
	lcworld_set_visibility(f->w, 1000);
	assert_int_equal(lcworld_set_desired(f->w, "other", 2, &e), 0);
	lcworld_tick(f->w, 5000);
	snprintf(id, sizeof(id), "%s", lcworld_inst(f->w, lcworld_ninst(f->w) - 1)->id);
	/* listed by the group at once */
	api_call(f, 5000, "Action=DescribeAutoScalingGroups&Version=2011-01-01&"
		 "AutoScalingGroupNames.member.1=other");
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "InstanceId"), 2);
	/* but EC2 does not know it yet: absent from a filter, NotFound by id */
	snprintf(form, sizeof(form), "Action=DescribeInstances&Version=2016-11-15&"
		 "Filter.1.Name=instance-id&Filter.1.Value.1=%s", id);
	api_call(f, 5999, form);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 0);
	snprintf(form, sizeof(form), "Action=DescribeInstances&Version=2016-11-15&"
		 "InstanceId.1=%s", id);
	api_call(f, 5999, form);
	text_at(f, "Errors/Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidInstanceID.NotFound");
	api_call(f, 6000, form);
	assert_int_equal(f->r.status, 200);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "instanceId"), 1);
	api_teardown(f);
	free(f);
}

static void test_localcloud__api_autoscaling_documents_and_errors(void **state)
{
	struct api_fx *f = calloc(1, sizeof(*f));
	char form[512], v[256];

	(void)state;
	api_setup(f, 2);
	api_call(f, 200, "Action=DescribeAutoScalingGroups&Version=2011-01-01");
	assert_string_equal((const char *)xmlDocGetRootElement(f->doc)->ns->href, LCAPI_ASG_XMLNS);
	assert_int_equal(count_nodes(xmlDocGetRootElement(f->doc), "AutoScalingGroupName"), 2);
	text_at(f, "DescribeAutoScalingGroupsResult/AutoScalingGroups/member/AutoScalingGroupName",
		v, sizeof(v));
	assert_string_equal(v, "web & <co>");
	text_at(f, "ResponseMetadata/RequestId", v, sizeof(v));
	assert_string_equal(v, "rid-1");
	api_call(f, 200, "Action=DescribeAutoScalingGroups&Version=2011-01-01&MaxRecords=1");
	text_at(f, "DescribeAutoScalingGroupsResult/NextToken", v, sizeof(v));
	snprintf(form, sizeof(form), "Action=DescribeAutoScalingGroups&Version=2011-01-01&"
		 "MaxRecords=1&NextToken=%s", v);
	api_call(f, 200, form);
	text_at(f, "DescribeAutoScalingGroupsResult/AutoScalingGroups/member/AutoScalingGroupName",
		v, sizeof(v));
	assert_string_equal(v, "other");
	api_call(f, 200, "Action=SetDesiredCapacity&Version=2011-01-01&"
		 "AutoScalingGroupName=other&DesiredCapacity=6");
	assert_int_equal(f->r.status, 400);
	assert_string_equal((const char *)xmlDocGetRootElement(f->doc)->name, "ErrorResponse");
	text_at(f, "Error/Code", v, sizeof(v));
	assert_string_equal(v, "ValidationError");
	text_at(f, "Error/Type", v, sizeof(v));
	assert_string_equal(v, "Sender");
	text_at(f, "Error/Message", v, sizeof(v));
	assert_non_null(strstr(v, "above max value 5"));
	snprintf(form, sizeof(form), "Action=TerminateInstanceInAutoScalingGroup&"
		 "Version=2011-01-01&InstanceId=%s&ShouldDecrementDesiredCapacity=true",
		 lcworld_inst(f->w, 0)->id);
	api_call(f, 300, form);
	assert_int_equal(f->r.status, 200);
	text_at(f, "TerminateInstanceInAutoScalingGroupResult/Activity/StatusCode", v, sizeof(v));
	assert_string_equal(v, "InProgress");
	text_at(f, "TerminateInstanceInAutoScalingGroupResult/Activity/AutoScalingGroupName", v,
		sizeof(v));
	assert_string_equal(v, "web & <co>");
	assert_int_equal(lcworld_group(f->w, 0)->desired, 1);
	api_call(f, 300, "Action=SetInstanceHealth&Version=2011-01-01&InstanceId=i-x&"
		 "HealthStatus=Unhealthy");
	text_at(f, "Error/Message", v, sizeof(v));
	assert_non_null(strstr(v, "Instance Id not found"));
	api_call(f, 300, "Action=DescribeInstances&Version=2011-01-01");   /* wrong service */
	api_call(f, 300, "Action=RunInstances&Version=2011-01-01");
	text_at(f, "Error/Code", v, sizeof(v));
	assert_string_equal(v, "InvalidAction");
	api_teardown(f);
	free(f);
}

/* Random requests (deterministic seed): every answer is well-formed XML, 200 or 400. */
static void test_localcloud__api_random_requests_always_well_formed(void **state)
{
	static const char *const actions[] = { "DescribeAutoScalingGroups", "SetDesiredCapacity",
		"SetInstanceProtection", "TerminateInstanceInAutoScalingGroup", "SetInstanceHealth",
		"DescribeInstances", "Nope", "" };
	static const char *const keys[] = { "AutoScalingGroupName", "DesiredCapacity",
		"InstanceIds.member.1", "InstanceIds.member.2", "ProtectedFromScaleIn", "InstanceId",
		"ShouldDecrementDesiredCapacity", "HealthStatus", "MaxResults", "NextToken",
		"MaxRecords", "Filter.1.Name", "Filter.1.Value.1", "Filter.2.Value.1",
		"InstanceId.1", "AutoScalingGroupNames.member.1", "Version" };
	static const char *const vals[] = { "other", "web+%26+%3Cco%3E", "0", "1", "5", "-1",
		"99999999999999", "true", "false", "Healthy", "Unhealthy", "%3C%2F%3E%26%22%27",
		"instance-id", "tag%3Aaws%3Aautoscaling%3AgroupName", "instance-state-name",
		"lc1.1.2", "g1", "2011-01-01", "2016-11-15", "", "%00x", "i-0123456789abcdef0" };
	struct api_fx *f = calloc(1, sizeof(*f));
	struct strbuf form = STRBUF_INIT;
	unsigned seed = 12345;
	int i, k, n;

	(void)state;
	api_setup(f, 3);
	for (i = 0; i < 3000; i++) {
		strbuf_reset(&form);
		strbuf_addf(&form, "Action=%s", actions[rand_r(&seed) % 8]);
		n = (int)(rand_r(&seed) % 6);
		for (k = 0; k < n; k++)
			strbuf_addf(&form, "&%s=%s", keys[rand_r(&seed) % 17],
				    vals[rand_r(&seed) % 22]);
		if (rand_r(&seed) % 4)
			strbuf_addf(&form, "&Version=%s", rand_r(&seed) % 2 ? "2011-01-01" : "2016-11-15");
		api_call(f, 1000 + i, form.buf);   /* asserts the answer parses */
		assert_true(f->r.status == 200 || f->r.status == 400);
		assert_true(f->r.status == 200 || f->r.code[0]);
		lcworld_tick(f->w, 1000 + i);
	}
	strbuf_release(&form);
	api_teardown(f);
	free(f);
}

/* ================================================================ the binary */

struct fx {
	char dir[64];
	pid_t pid;
	int port;
	char url[64];
	struct cloud *c;
	struct awscreds *creds;
	int env_creds;       /* start: credentials from the environment, not a file */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int read_int_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static const char *bin_dir(void)
{
	const char *d = getenv("SPINUP_BIN_DIR");
	return d && *d ? d : "bin";
}

static struct cloud *driver(struct fx *f, const char *key, const char *secret, int attempts)
{
	struct awscloud_config cfg;
	struct err e = ERR_INIT;
	struct cloud *c = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.region = "us-east-1";
	cfg.endpoint = f->url;
	cfg.creds.access_key_id = key;
	cfg.creds.secret_access_key = secret;
	cfg.max_attempts = attempts;
	cfg.backoff_base_ms = 1;
	cfg.backoff_cap_ms = 5;
	assert_int_equal(awscloud_new(&cfg, &c, &e), 0);
	return c;
}

/* Start the provider with extra arguments (NULL-terminated) and a driver for it. */
static void start(struct fx *f, ...)
{
	char exe[512], creds[128], portf[128], cmd[512], stopcmd[256];
	const char *argv[48], *a;
	va_list ap;
	int n = 0, i;

	snprintf(exe, sizeof(exe), "%s/spinup-localcloud", bin_dir());
	snprintf(creds, sizeof(creds), "%s/credentials", f->dir);
	snprintf(portf, sizeof(portf), "%s/port", f->dir);
	write_file(creds, "[default]\naws_access_key_id = " KEY "\naws_secret_access_key = "
		   SECRET "\n\n[other]\naws_access_key_id=AKIDSECOND\n"
		   "aws_secret_access_key=second-secret\n", 0600);
	/* the pid file is renamed into place: once it exists, it and the addr file are complete */
	snprintf(cmd, sizeof(cmd), "echo {ip} {port} {group} > %s/{id}.addr; echo $$ > %s/{id}.pt"
		 " && mv %s/{id}.pt %s/{id}.pid; exec sleep 60", f->dir, f->dir, f->dir, f->dir);
	snprintf(stopcmd, sizeof(stopcmd), "touch %s/{id}.stopped", f->dir);
	argv[n++] = exe;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = portf;
	if (!f->env_creds) {
		argv[n++] = "--credentials";
		argv[n++] = creds;
	}
	argv[n++] = "--boot-delay-ms";
	argv[n++] = "50";
	argv[n++] = "--terminate-delay-ms";
	argv[n++] = "50";
	argv[n++] = "--kill-timeout-ms";
	argv[n++] = "1000";
	argv[n++] = "--net";
	argv[n++] = "0";
	argv[n++] = "--agent-port";
	argv[n++] = "0";
	argv[n++] = "--instance-cmd";
	argv[n++] = cmd;
	argv[n++] = "--stop-cmd";
	argv[n++] = stopcmd;
	va_start(ap, f);
	while ((a = va_arg(ap, const char *)) && n < 46)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	unlink(portf);   /* a restart must not read the previous provider's port */
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		int fd;
		char log[128];
		snprintf(log, sizeof(log), "%s/provider.log", f->dir);
		fd = creat(log, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (f->env_creds) {
			setenv("AWS_ACCESS_KEY_ID", KEY, 1);
			setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
			setenv("AWS_SESSION_TOKEN", ENV_TOKEN, 1);
			setenv("SPINUP_TEST_COPY", "x" SECRET "x", 1); /* the secret, renamed */
		}
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 200 && (f->port = read_int_file(portf)) <= 0; i++)
		sleep_ms(25);
	assert_true(f->port > 0);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
	f->c = driver(f, KEY, SECRET, 5);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/spinup-lc-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

/* SIGTERM the provider; -1 (its log printed) unless it exited 0 in time. */
static int stop_provider(struct fx *f)
{
	char cmd[160];
	int st = 0, i, rc = 0;

	if (f->pid <= 0)
		return 0;
	kill(f->pid, SIGTERM);
	for (i = 0; i < 200 && waitpid(f->pid, &st, WNOHANG) == 0; i++)
		sleep_ms(25);
	if (i == 200) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &st, 0);
	}
	f->pid = 0;
	if (i == 200 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "provider did not exit 0 on SIGTERM; its log:\n");
		snprintf(cmd, sizeof(cmd), "tail -n 40 %s/provider.log >&2", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
		rc = -1;
	}
	return rc;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	int rc;

	cloud_free(f->c);
	rc = stop_provider(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (getenv("LOCALCLOUD_TEST_KEEP"))   /* debugging: keep logs and markers */
		fprintf(stderr, "kept %s\n", f->dir);
	else if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return rc;
}

static void describe(struct fx *f, const char *group, struct obs_group *g, int want_rc)
{
	struct err e = ERR_INIT;

	obs_group_release(g);
	obs_group_init(g);
	assert_int_equal(cloud_describe(f->c, group, g, &e), want_rc);
}

static int n_running(const struct obs_group *g)
{
	size_t i;
	int n = 0;

	for (i = 0; i < g->ninstances; i++)
		n += g->instances[i].lifecycle == LC_IN_SERVICE && g->instances[i].ec2_seen &&
		     !strcmp(g->instances[i].ec2_state, "running") && g->instances[i].private_ip[0];
	return n;
}

/* Describe until n instances are InService and running (and no others) or ~8 s pass. */
static int wait_running(struct fx *f, const char *group, struct obs_group *g, size_t n)
{
	struct err e = ERR_INIT;
	int i;

	for (i = 0; i < 80; i++) {
		obs_group_release(g);
		obs_group_init(g);
		if (!cloud_describe(f->c, group, g, &e) && g->complete && g->ninstances == n &&
		    n_running(g) == (int)n)
			return 1;
		sleep_ms(100);
	}
	return 0;
}

/*
 * The pid of an instance's command, waiting up to ~5 s for it: the
 * provider reports an instance running when it starts the command, which
 * writes its pid file some time later. -1 when none came.
 */
static pid_t instance_pid(struct fx *f, const char *id)
{
	char path[128];
	int i, pid = -1;

	snprintf(path, sizeof(path), "%s/%s.pid", f->dir, id);
	for (i = 0; i < 100 && (pid = read_int_file(path)) <= 0; i++)
		sleep_ms(50);
	return pid > 0 ? (pid_t)pid : -1;
}

static int file_exists(struct fx *f, const char *id, const char *ext)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s.%s", f->dir, id, ext);
	return stat(path, &st) == 0;
}

/* A process is gone once kill(pid, 0) fails (it is not our child: no zombie here). */
static int wait_gone(pid_t pid)
{
	int i;

	if (pid <= 0)
		return 0;   /* no pid: kill() would ask about a group or every process */
	for (i = 0; i < 100; i++) {
		if (kill(pid, 0) && errno == ESRCH)
			return 1;
		sleep_ms(50);
	}
	return 0;
}

static void test_localcloud__driver_discovers_group_and_instance_processes(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	char path[128], line[128], ip[32], grp[32];
	size_t i;
	int port;
	FILE *fp;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:2", "--group", "empty:0:3:0", NULL);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_true(g.found);
	assert_int_equal(g.min_size, 0);
	assert_int_equal(g.max_size, 5);
	assert_int_equal(g.desired_capacity, 2);
	assert_string_not_equal(g.instances[0].private_ip, g.instances[1].private_ip);
	for (i = 0; i < 2; i++) {
		const struct obs_instance *in = &g.instances[i];
		assert_int_equal(strncmp(in->private_ip, "127.0.", 6), 0);
		assert_string_not_equal(in->private_ip, "127.0.0.1");
		/* the instance command ran with its own address, port and group */
		assert_true(instance_pid(f, in->id) > 0);   /* its files are written */
		snprintf(path, sizeof(path), "%s/%s.addr", f->dir, in->id);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_non_null(fgets(line, sizeof(line), fp));
		fclose(fp);
		assert_int_equal(sscanf(line, "%31s %d %31s", ip, &port, grp), 3);
		assert_string_equal(ip, in->private_ip);
		assert_string_equal(grp, "g1");
		assert_true(instance_pid(f, in->id) > 0);
		assert_int_equal(kill(instance_pid(f, in->id), 0), 0);
	}
	describe(f, "empty", &g, 0);
	assert_true(g.found && g.complete);
	assert_int_equal(g.ninstances, 0);
	describe(f, "no-such-group", &g, 0);
	assert_false(g.found);
	assert_true(g.complete);
	obs_group_release(&g);
}

static void test_localcloud__driver_scale_up_down_honours_protection(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char keep[2][32];
	const char *ids[2] = { keep[0], keep[1] };
	pid_t gone_pid = 0;
	size_t i;

	obs_group_init(&g);
	start(f, "--group", "g1:0:6:1", NULL);
	assert_true(wait_running(f, "g1", &g, 1));
	assert_int_equal(cloud_set_capacity(f->c, "g1", 4, &e), 0);
	assert_true(wait_running(f, "g1", &g, 4));
	/* protect the two newest: scale-in (newest first) must take the two oldest */
	snprintf(keep[0], sizeof(keep[0]), "%s", g.instances[2].id);
	snprintf(keep[1], sizeof(keep[1]), "%s", g.instances[3].id);
	gone_pid = instance_pid(f, g.instances[0].id);
	assert_int_equal(cloud_set_protection(f->c, "g1", ids, 2, 1, &e), 0);
	describe(f, "g1", &g, 0);
	for (i = 0; i < g.ninstances; i++)
		assert_int_equal(g.instances[i].protected_from_scale_in,
				 !strcmp(g.instances[i].id, keep[0]) || !strcmp(g.instances[i].id, keep[1]));
	assert_int_equal(cloud_set_capacity(f->c, "g1", 0, &e), 0);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_true(obs_group_find(&g, keep[0]) && obs_group_find(&g, keep[1]));
	assert_int_equal(g.desired_capacity, 0);
	/* the removed ones were stopped: stop command ran, process gone */
	assert_true(wait_gone(gone_pid));
	/* above max: ValidationError, SP_EINVAL, nothing changed */
	assert_int_equal(cloud_set_capacity(f->c, "g1", 7, &e), SP_EINVAL);
	assert_non_null(strstr(e.msg, "ValidationError"));
	/* protection of an instance not in the group is refused */
	ids[0] = "i-0123456789abcdef0";
	assert_int_equal(cloud_set_protection(f->c, "g1", ids, 1, 0, &e), SP_EINVAL);
	obs_group_release(&g);
}

static void test_localcloud__driver_terminate_with_and_without_decrement(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char a[32], b[32];
	pid_t pa;

	obs_group_init(&g);
	start(f, "--group", "g1:1:5:3", NULL);
	assert_true(wait_running(f, "g1", &g, 3));
	snprintf(a, sizeof(a), "%s", g.instances[0].id);
	snprintf(b, sizeof(b), "%s", g.instances[1].id);
	pa = instance_pid(f, a);
	assert_int_equal(cloud_terminate(f->c, a, 1, &e), 0);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_int_equal(g.desired_capacity, 2);
	assert_null(obs_group_find(&g, a));
	assert_true(wait_gone(pa));
	assert_true(file_exists(f, a, "stopped"));
	/* without decrement: replaced */
	assert_int_equal(cloud_terminate(f->c, b, 0, &e), 0);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_int_equal(g.desired_capacity, 2);
	assert_null(obs_group_find(&g, b));
	/* gone: SP_ENOTFOUND, which callers treat as done */
	assert_int_equal(cloud_terminate(f->c, a, 1, &e), SP_ENOTFOUND);
	obs_group_release(&g);
}

static void test_localcloud__driver_unhealthy_instance_is_replaced(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	char a[32];
	pid_t pa;

	obs_group_init(&g);
	start(f, "--group", "g1:0:3:1", NULL);
	assert_true(wait_running(f, "g1", &g, 1));
	snprintf(a, sizeof(a), "%s", g.instances[0].id);
	pa = instance_pid(f, a);
	assert_int_equal(cloud_set_health(f->c, a, 0, &e), 0);
	assert_true(wait_running(f, "g1", &g, 1));
	assert_string_not_equal(g.instances[0].id, a);
	assert_true(wait_gone(pa));
	assert_int_equal(cloud_set_health(f->c, "i-0123456789abcdef0", 1, &e), SP_ENOTFOUND);
	obs_group_release(&g);
}

static void test_localcloud__driver_paginates_2500_instances(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct awsq_config qc;
	struct awscreds_config cc;
	struct awsq *q = NULL;
	struct err e = ERR_INIT;
	char next[256] = "";
	int pages = 0, total = 0, i, seen = 0;
	unsigned long before;
	size_t k;

	obs_group_init(&g);
	/* no processes for these: a group of 2,500 with an empty command */
	start(f, "--group", "big:0:3000:2500", "--boot-delay-ms", "0", "--instance-cmd", "",
	      NULL);
	for (i = 0; i < 100; i++) {
		describe(f, "big", &g, 0);
		if (g.ninstances == 2500 && n_running(&g) == 2500)
			break;
		sleep_ms(100);
	}
	assert_int_equal(g.ninstances, 2500);
	for (k = 0; k < g.ninstances; k++)
		seen += g.instances[k].ec2_seen;
	assert_int_equal(seen, 2500);
	/* the driver: 1 DescribeAutoScalingGroups + 3 pages by tag (by ids of 200: 1 + 13) */
	before = awscloud_requests(f->c);
	describe(f, "big", &g, 0);
	assert_true(g.complete);
	assert_int_equal(awscloud_requests(f->c) - before, 1 + 3);
	/* the EC2 API alone: tag filter, pages of 1000, nextToken followed */
	memset(&cc, 0, sizeof(cc));
	cc.access_key_id = KEY;
	cc.secret_access_key = SECRET;
	cc.region = "us-east-1";
	assert_int_equal(awscreds_new(&cc, &f->creds, &e), 0);
	memset(&qc, 0, sizeof(qc));
	qc.service = "ec2";
	qc.version = "2016-11-15";
	qc.region = "us-east-1";
	qc.endpoint = f->url;
	qc.creds = f->creds;
	assert_int_equal(awsq_new(&qc, &q, &e), 0);
	do {
		struct awsq_params p;
		xmlDocPtr doc = NULL;
		awsq_params_init(&p, "DescribeInstances");
		assert_int_equal(awsq_params_add(&p, "Version", "2016-11-15"), 0);
		assert_int_equal(awsq_params_add(&p, "Filter.1.Name", "tag:aws:autoscaling:groupName"), 0);
		assert_int_equal(awsq_params_add(&p, "Filter.1.Value.1", "big"), 0);
		assert_int_equal(awsq_params_add(&p, "MaxResults", "1000"), 0);
		if (next[0])
			assert_int_equal(awsq_params_add(&p, "NextToken", next), 0);
		assert_int_equal(awsq_call(q, &p, 0, &doc, &e), 0);
		total += count_nodes(xmlDocGetRootElement(doc), "instanceId");
		next[0] = '\0';
		awsq_text(xmlDocGetRootElement(doc), "nextToken", next, sizeof(next));
		xmlFreeDoc(doc);
		awsq_params_release(&p);
		pages++;
	} while (next[0] && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(total, 2500);
	awsq_free(q);
	awscreds_free(f->creds);
	f->creds = NULL;
	obs_group_release(&g);
}

static void test_localcloud__driver_retries_throttling_and_5xx(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	unsigned long before;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:1", "--throttle-every", "2", NULL);
	assert_true(wait_running(f, "g1", &g, 1));
	before = awscloud_requests(f->c);
	/* every 2nd call throttled: each call still succeeds, on a retry */
	assert_int_equal(cloud_set_capacity(f->c, "g1", 2, &e), 0);
	describe(f, "g1", &g, 0);
	assert_true(g.complete);
	assert_int_equal(g.desired_capacity, 2);
	assert_true(awscloud_requests(f->c) > before + 2);
	cloud_free(f->c);
	f->c = NULL;
	assert_int_equal(stop_provider(f), 0);
	start(f, "--group", "g1:0:5:1", "--error-every", "2", NULL);
	assert_true(wait_running(f, "g1", &g, 1));
	before = awscloud_requests(f->c);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 2, &e), 0);
	describe(f, "g1", &g, 0);
	assert_true(g.complete);
	assert_true(awscloud_requests(f->c) > before + 2);
	obs_group_release(&g);
}

static void test_localcloud__driver_auth_and_denial_errors(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct err e = ERR_INIT;
	struct cloud *bad;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:0", "--deny", "SetInstanceHealth", NULL);
	/* a wrong secret: SignatureDoesNotMatch, SP_EDENIED, not retried */
	bad = driver(f, KEY, "not-the-secret", 5);
	assert_int_equal(cloud_set_capacity(bad, "g1", 1, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "SignatureDoesNotMatch"));
	assert_int_equal(awscloud_requests(bad), 1);
	assert_int_not_equal(cloud_describe(bad, "g1", &g, &e), 0);
	assert_false(g.complete);
	cloud_free(bad);
	/* an unknown key: InvalidClientTokenId (Auto Scaling) */
	bad = driver(f, "AKIDUNKNOWN", SECRET, 5);
	assert_int_equal(cloud_set_capacity(bad, "g1", 1, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "InvalidClientTokenId"));
	cloud_free(bad);
	/* the second profile's key pair is accepted too */
	bad = driver(f, "AKIDSECOND", "second-secret", 1);
	assert_int_equal(cloud_set_capacity(bad, "g1", 0, &e), 0);
	cloud_free(bad);
	/* a denied action: AccessDenied, SP_EDENIED */
	assert_int_equal(cloud_set_health(f->c, "i-0123456789abcdef0", 0, &e), SP_EDENIED);
	assert_non_null(strstr(e.msg, "AccessDenied"));
	obs_group_release(&g);
}

/* POST to the admin endpoint; returns the HTTP status, body into out. */
static long admin_post(struct fx *f, const char *path, struct strbuf *out);

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	return strbuf_add(ud, p, sz * n) ? 0 : sz * n;
}

static long admin_req(struct fx *f, const char *method, const char *path, struct strbuf *out)
{
	char url[256];
	long status = 0;
	CURL *h = curl_easy_init();

	assert_non_null(h);
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	strbuf_reset(out);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

static long admin_post(struct fx *f, const char *path, struct strbuf *out)
{
	return admin_req(f, "POST", path, out);
}

static void test_localcloud__driver_eventual_consistency_and_cut_bodies(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct strbuf b = STRBUF_INIT;
	struct err e = ERR_INIT;
	size_t k;
	int unseen = 0, i;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:0", "--visibility-delay-ms", "1500", NULL);
	assert_int_equal(cloud_set_capacity(f->c, "g1", 2, &e), 0);
	/* listed by the group, not yet by EC2: ec2_seen = 0 (unknown, not absent) */
	for (i = 0; i < 20 && g.ninstances < 2; i++) {
		describe(f, "g1", &g, 0);
		sleep_ms(50);
	}
	assert_int_equal(g.ninstances, 2);
	for (k = 0; k < g.ninstances; k++)
		unseen += !g.instances[k].ec2_seen;
	assert_int_equal(unseen, 2);
	assert_true(wait_running(f, "g1", &g, 2));
	/* cut answers never read as a complete observation */
	assert_int_equal(admin_post(f, "/_admin/faults?cut_every=1", &b), 200);
	assert_int_not_equal(cloud_describe(f->c, "g1", &g, &e), 0);
	assert_false(g.complete);
	assert_int_equal(admin_post(f, "/_admin/faults?cut_every=0&page_size=1", &b), 200);
	/* pages of one instance: the driver follows nextToken */
	describe(f, "g1", &g, 0);
	assert_true(g.complete);
	assert_int_equal(n_running(&g), 2);
	assert_int_equal(admin_post(f, "/_admin/faults?bogus=1", &b), 400);
	strbuf_release(&b);
	obs_group_release(&g);
}

/* An instance without the group tag is described by id: its address for one more call. */
static void test_localcloud__driver_describes_untagged_instance_by_id(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct strbuf b = STRBUF_INIT;
	char path[128], a[32], ip[OBS_ADDR_MAX + 1];
	unsigned long before;
	const struct obs_instance *in;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:3", NULL);
	assert_true(wait_running(f, "g1", &g, 3));
	snprintf(a, sizeof(a), "%s", g.instances[1].id);
	snprintf(ip, sizeof(ip), "%s", g.instances[1].private_ip);
	/* every instance tagged: 1 DescribeAutoScalingGroups + 1 page by tag */
	before = awscloud_requests(f->c);
	describe(f, "g1", &g, 0);
	assert_int_equal(awscloud_requests(f->c) - before, 2);
	snprintf(path, sizeof(path), "/_admin/instances/%s/untag", a);
	assert_int_equal(admin_post(f, path, &b), 200);
	/* untagged: still observed, with its address, for one call by id */
	before = awscloud_requests(f->c);
	describe(f, "g1", &g, 0);
	assert_int_equal(awscloud_requests(f->c) - before, 3);
	assert_true(g.complete);
	assert_int_equal(n_running(&g), 3);
	in = obs_group_find(&g, a);
	assert_non_null(in);
	assert_true(in->ec2_seen);
	assert_string_equal(in->private_ip, ip);
	strbuf_release(&b);
	obs_group_release(&g);
}

static void test_localcloud__admin_state_kill_terminate(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	struct strbuf b = STRBUF_INIT;
	char path[128], a[32];
	json_t *j;
	json_error_t je;
	pid_t pa;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:2", NULL);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_int_equal(admin_req(f, "GET", "/_admin/state", &b), 200);
	j = json_loads(b.buf, 0, &je);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "instances")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(j, "groups"), 0), "name")), "g1");
	json_decref(j);
	snprintf(a, sizeof(a), "%s", g.instances[0].id);
	pa = instance_pid(f, a);
	/* kill: the process dies, the instance stays (an agent crash) */
	snprintf(path, sizeof(path), "/_admin/instances/%s/kill", a);
	assert_int_equal(admin_post(f, path, &b), 200);
	assert_true(wait_gone(pa));
	describe(f, "g1", &g, 0);
	assert_non_null(obs_group_find(&g, a));
	/* terminate out of band: replaced, desired unchanged */
	snprintf(path, sizeof(path), "/_admin/instances/%s/terminate", a);
	assert_int_equal(admin_post(f, path, &b), 200);
	assert_true(wait_running(f, "g1", &g, 2));
	assert_null(obs_group_find(&g, a));
	assert_int_equal(admin_post(f, "/_admin/instances/i-0123456789abcdef0/kill", &b), 404);
	assert_int_equal(admin_post(f, "/_admin/groups/g1?desired=1", &b), 200);
	assert_true(wait_running(f, "g1", &g, 1));
	strbuf_release(&b);
	obs_group_release(&g);
}

/* The embedded default: each instance a real spinup-agent on its own address. */
static void test_localcloud__real_agents_answer_on_their_addresses(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	char cmd[1024], port[16], secret[128], out[128];
	size_t i;
	int agent_port = 20000 + (int)(getpid() % 20000), ok, k;

	obs_group_init(&g);
	snprintf(secret, sizeof(secret), "%s/agent.secret", f->dir);
	write_file(secret, "0123456789abcdef0123456789abcdef\n", 0600);
	snprintf(port, sizeof(port), "%d", agent_port);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/data/{id} && exec %s/spinup-agent --listen "
		 "{ip}:{port} --id {id} --secret-file %s --data-dir %s/data/{id} "
		 "--drain-timeout 1", f->dir, bin_dir(), secret, f->dir);
	start(f, "--group", "agents:0:3:2", "--agent-port", port, "--instance-cmd", cmd,
	      "--instance-log-dir", f->dir, NULL);
	assert_true(wait_running(f, "agents", &g, 2));
	for (i = 0; i < g.ninstances; i++) {
		/* the agent answers on the instance's address with the instance's id */
		for (k = 0, ok = 0; k < 50 && !ok; k++) {
			snprintf(cmd, sizeof(cmd), "%s/spinup-agent call --secret-file %s %s:%d GET "
				 "/v1/health > %s/health.out 2>/dev/null && grep -q '\"agent_id\":"
				 "\"%s\"' %s/health.out", bin_dir(), secret, g.instances[i].private_ip,
				 agent_port, f->dir, g.instances[i].id, f->dir);
			ok = system(cmd) == 0;
			if (!ok)
				sleep_ms(100);
		}
		snprintf(out, sizeof(out), "agent %s on %s", g.instances[i].id,
			 g.instances[i].private_ip);
		if (!ok)
			fail_msg("%s did not answer", out);
	}
	obs_group_release(&g);
}

static void test_localcloud__sigterm_stops_every_instance_process(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	pid_t p[3];
	size_t i;

	obs_group_init(&g);
	start(f, "--group", "g1:0:5:3", NULL);
	assert_true(wait_running(f, "g1", &g, 3));
	for (i = 0; i < 3; i++) {
		p[i] = instance_pid(f, g.instances[i].id);
		assert_true(p[i] > 0);
	}
	assert_int_equal(stop_provider(f), 0);
	for (i = 0; i < 3; i++)
		assert_true(wait_gone(p[i]));
	obs_group_release(&g);
}

/* Wait up to ~5 s for path to exist. */
static int wait_file(const char *path)
{
	struct stat st;
	int i;

	for (i = 0; i < 100; i++) {
		if (stat(path, &st) == 0)
			return 1;
		sleep_ms(50);
	}
	return 0;
}

/* Whether the file at path contains s. */
static int file_has(const char *path, const char *s)
{
	char buf[65536];
	size_t n;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strstr(buf, s) != NULL;
}

/* Credentials taken from the environment stay in the provider: instances never see them. */
static void test_localcloud__instance_commands_do_not_inherit_aws_secrets(void **state)
{
	struct fx *f = *state;
	struct obs_group g;
	char cmd[512], stopcmd[512], path[160], id[32];

	obs_group_init(&g);
	/* written whole, then renamed: a file that exists is complete */
	snprintf(cmd, sizeof(cmd), "env > %s/{id}.t1 && mv %s/{id}.t1 %s/{id}.env; exec sleep 60",
		 f->dir, f->dir, f->dir);
	snprintf(stopcmd, sizeof(stopcmd), "env > %s/{id}.t2 && mv %s/{id}.t2 %s/{id}.stopenv",
		 f->dir, f->dir, f->dir);
	f->env_creds = 1;
	start(f, "--group", "g1:0:3:1", "--instance-cmd", cmd, "--stop-cmd", stopcmd, NULL);
	/* the driver signs with the environment's key pair: the provider took them */
	assert_true(wait_running(f, "g1", &g, 1));
	snprintf(id, sizeof(id), "%s", g.instances[0].id);
	snprintf(path, sizeof(path), "%s/%s.env", f->dir, id);
	assert_true(wait_file(path));
	assert_true(file_has(path, "PATH="));        /* the rest of the environment is kept */
	assert_false(file_has(path, SECRET));
	assert_false(file_has(path, ENV_TOKEN));
	assert_false(file_has(path, "AWS_ACCESS_KEY_ID"));
	assert_false(file_has(path, "AWS_SECRET_ACCESS_KEY"));
	assert_false(file_has(path, "AWS_SESSION_TOKEN"));
	assert_false(file_has(path, "SPINUP_TEST_COPY"));
	/* the stop command alike */
	assert_int_equal(stop_provider(f), 0);
	snprintf(path, sizeof(path), "%s/%s.stopenv", f->dir, id);
	assert_true(wait_file(path));
	assert_true(file_has(path, "PATH="));
	assert_false(file_has(path, SECRET));
	assert_false(file_has(path, ENV_TOKEN));
	obs_group_release(&g);
}

static void test_localcloud__command_line_errors(void **state)
{
	struct fx *f = *state;
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s/spinup-localcloud --help | grep -q -- --instance-cmd",
		 bin_dir());
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b "
		 "%s/spinup-localcloud --group g:3:1:1 2>/dev/null", bin_dir());
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b "
		 "%s/spinup-localcloud --group g:0:1:1 --listen 0.0.0.0:0 2>%s/err; "
		 "grep -q 'not on loopback' %s/err", bin_dir(), f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "env -u AWS_ACCESS_KEY_ID %s/spinup-localcloud --group g "
		 "2>%s/err; grep -q 'no credentials' %s/err", bin_dir(), f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "printf '[default]\\naws_access_key_id=a\\n"
		 "aws_secret_access_key=b\\n' > %s/c; chmod 644 %s/c; %s/spinup-localcloud "
		 "--group g --credentials %s/c 2>%s/err; grep -q 'chmod 600' %s/err",
		 f->dir, f->dir, bin_dir(), f->dir, f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	/* a groups file: errors name file:line */
	snprintf(cmd, sizeof(cmd), "printf '# groups\\nok:0:2:1\\n\\nbad:1:x:1\\n' > %s/groups; "
		 "AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b %s/spinup-localcloud --groups-file "
		 "%s/groups 2>%s/err; grep -q 'groups:4: group .bad:1:x:1. is not' %s/err",
		 f->dir, bin_dir(), f->dir, f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_localcloud__world_lifecycle_pending_inservice_terminated_forgotten),
		cmocka_unit_test(test_localcloud__world_scale_in_never_removes_protected),
		cmocka_unit_test(test_localcloud__world_scale_in_order_newest_or_oldest),
		cmocka_unit_test(test_localcloud__world_min_max_and_termination_rules),
		cmocka_unit_test(test_localcloud__world_unhealthy_is_replaced_even_when_protected),
		cmocka_unit_test(test_localcloud__world_addresses_distinct_ids_well_formed),
		cmocka_unit_test(test_localcloud__api_describe_instances_pages_of_1000_over_2500),
		cmocka_unit_test(test_localcloud__api_describe_instances_filters_and_errors),
		cmocka_unit_test(test_localcloud__api_visibility_delay_hides_new_instances),
		cmocka_unit_test(test_localcloud__api_autoscaling_documents_and_errors),
		cmocka_unit_test(test_localcloud__api_random_requests_always_well_formed),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_discovers_group_and_instance_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_scale_up_down_honours_protection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_terminate_with_and_without_decrement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_unhealthy_instance_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_paginates_2500_instances, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_retries_throttling_and_5xx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_auth_and_denial_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_eventual_consistency_and_cut_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__driver_describes_untagged_instance_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__admin_state_kill_terminate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__real_agents_answer_on_their_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__sigterm_stops_every_instance_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__instance_commands_do_not_inherit_aws_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_localcloud__command_line_errors, setup, teardown),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (getenv("LOCALCLOUD_TEST_FILTER"))   /* debugging: run the matching tests only */
		cmocka_set_test_filter(getenv("LOCALCLOUD_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
