/*
 * lcapi.c - the local provider's Query API (see lcapi.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lcapi.h"
#include "../model/banned.h"

#define MAX_FILTERS 50
#define TOKEN_MAGIC 0x5bd1e9955bd1e995ULL
#define INSTANCE_TYPE "t3.medium"
#define OWNER_ID "000000000000"

/* ---------------------------------------------------------------- params */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void form_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '+') {
			*o++ = ' ';
		} else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			*o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int lcapi_parse_form(char *body, struct lcapi_param *p, size_t max, size_t *n)
{
	char *s = body, *amp, *eq;

	*n = 0;
	while (s && *s) {
		amp = strchr(s, '&');
		if (amp)
			*amp = '\0';
		if (*s) {
			if (*n >= max)
				return SP_ELIMIT;
			eq = strchr(s, '=');
			if (eq)
				*eq = '\0';
			p[*n].k = s;
			p[*n].v = eq ? eq + 1 : s + strlen(s);
			form_decode(p[*n].k);
			form_decode(p[*n].v);
			(*n)++;
		}
		s = amp ? amp + 1 : NULL;
	}
	return 0;
}

const char *lcapi_param_get(const struct lcapi_param *p, size_t n, const char *k)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(p[i].k, k))
			return p[i].v;
	return NULL;
}

int lcapi_action_service(const char *action)
{
	static const char *const asg[] = { "DescribeAutoScalingGroups", "SetDesiredCapacity",
		"SetInstanceProtection", "TerminateInstanceInAutoScalingGroup",
		"SetInstanceHealth" };
	size_t i;

	if (!action)
		return -1;
	for (i = 0; i < sizeof(asg) / sizeof(asg[0]); i++)
		if (!strcmp(action, asg[i]))
			return LCAPI_ASG;
	return !strcmp(action, "DescribeInstances") ? LCAPI_EC2 : -1;
}

/* 1 when v is a decimal integer in [lo, hi] (stored in out). */
static int int_value(const char *v, long lo, long hi, int *out)
{
	char *end;
	long x;

	if (!v || !*v || strlen(v) > 12)
		return 0;
	x = strtol(v, &end, 10);
	if (*end || x < lo || x > hi)
		return 0;
	*out = (int)x;
	return 1;
}

/* 1 for "true", 0 for "false", -1 otherwise. */
static int bool_value(const char *v)
{
	if (v && !strcmp(v, "true"))
		return 1;
	if (v && !strcmp(v, "false"))
		return 0;
	return -1;
}

/* ---------------------------------------------------------------- documents */

int lcapi_xml_escape(struct strbuf *sb, const char *s)
{
	int rc = 0;

	for (; s && *s && !rc; s++) {
		switch (*s) {
		case '&': rc = strbuf_addstr(sb, "&amp;"); break;
		case '<': rc = strbuf_addstr(sb, "&lt;"); break;
		case '>': rc = strbuf_addstr(sb, "&gt;"); break;
		case '"': rc = strbuf_addstr(sb, "&quot;"); break;
		case '\'': rc = strbuf_addstr(sb, "&apos;"); break;
		default: rc = strbuf_addch(sb, *s);
		}
	}
	return rc;
}

void lcapi_resp_init(struct lcapi_resp *r)
{
	memset(r, 0, sizeof(*r));
	strbuf_init(&r->body, 0);
	r->status = 200;
}

void lcapi_resp_release(struct lcapi_resp *r)
{
	if (r)
		strbuf_release(&r->body);
}

int lcapi_error(enum lcapi_service svc, unsigned status, const char *code, const char *msg,
		const char *request_id, struct lcapi_resp *r)
{
	struct strbuf *b = &r->body;
	int rc;

	strbuf_reset(b);
	r->status = status;
	snprintf(r->code, sizeof(r->code), "%s", code);
	if (svc == LCAPI_EC2) {
		rc = strbuf_addstr(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				   "<Response><Errors><Error><Code>");
		rc = rc ? rc : lcapi_xml_escape(b, code);
		rc = rc ? rc : strbuf_addstr(b, "</Code><Message>");
		rc = rc ? rc : lcapi_xml_escape(b, msg);
		rc = rc ? rc : strbuf_addf(b, "</Message></Error></Errors><RequestID>%s"
					   "</RequestID></Response>", request_id);
	} else {
		rc = strbuf_addf(b, "<ErrorResponse xmlns=\"https://autoscaling.amazonaws.com/doc/"
				 "2011-01-01/\">\n  <Error>\n    <Type>%s</Type>\n    <Code>",
				 status >= 500 ? "Receiver" : "Sender");
		rc = rc ? rc : lcapi_xml_escape(b, code);
		rc = rc ? rc : strbuf_addstr(b, "</Code>\n    <Message>");
		rc = rc ? rc : lcapi_xml_escape(b, msg);
		rc = rc ? rc : strbuf_addf(b, "</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n"
					   "</ErrorResponse>\n", request_id);
	}
	return rc;
}

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* <ActionResponse xmlns=..> result <ResponseMetadata>..</ActionResponse> */
static int asg_ok(struct lcapi_resp *r, const char *action, const char *result,
		  const char *request_id)
{
	strbuf_reset(&r->body);
	r->status = 200;
	return strbuf_addf(&r->body, "<%sResponse xmlns=\"" LCAPI_ASG_XMLNS "\">\n%s"
			   "  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n"
			   "  </ResponseMetadata>\n</%sResponse>\n", action, result ? result : "",
			   request_id, action);
}

static int world_error(struct lcapi_resp *r, const struct err *e, const char *rid)
{
	return lcapi_error(LCAPI_ASG, 400, "ValidationError", e->msg, rid, r);
}

/* ---------------------------------------------------------------- Auto Scaling */

static int asg_member(struct strbuf *b, struct lcworld *w, int g)
{
	const struct lcworld_group *gr = lcworld_group(w, (size_t)g);
	char when[32];
	size_t i;
	int rc;

	iso_time(gr->created_ms, when);
	rc = strbuf_addstr(b, "      <member>\n        <AutoScalingGroupName>");
	rc = rc ? rc : lcapi_xml_escape(b, gr->name);
	rc = rc ? rc : strbuf_addstr(b, "</AutoScalingGroupName>\n        <AutoScalingGroupARN>"
				     "arn:aws:autoscaling:local:" OWNER_ID ":autoScalingGroup:"
				     "00000000-0000-4000-8000-000000000000:autoScalingGroupName/");
	rc = rc ? rc : lcapi_xml_escape(b, gr->name);
	rc = rc ? rc : strbuf_addf(b, "</AutoScalingGroupARN>\n        <MinSize>%d</MinSize>\n"
			"        <MaxSize>%d</MaxSize>\n        <DesiredCapacity>%d"
			"</DesiredCapacity>\n        <DefaultCooldown>300</DefaultCooldown>\n"
			"        <AvailabilityZones>\n          <member>%s</member>\n"
			"        </AvailabilityZones>\n        <LoadBalancerNames/>\n"
			"        <TargetGroupARNs/>\n        <HealthCheckType>EC2</HealthCheckType>\n"
			"        <HealthCheckGracePeriod>0</HealthCheckGracePeriod>\n"
			"        <Instances>\n", gr->min_size, gr->max_size, gr->desired,
			lcworld_az(w));
	for (i = 0; !rc && i < lcworld_ninst(w); i++) {
		const struct lcworld_inst *in = lcworld_inst(w, i);
		if (in->group != g || in->state == LCWORLD_TERMINATED)
			continue;
		rc = strbuf_addf(b, "          <member>\n            <InstanceId>%s</InstanceId>\n"
				 "            <InstanceType>" INSTANCE_TYPE "</InstanceType>\n"
				 "            <AvailabilityZone>%s</AvailabilityZone>\n"
				 "            <LifecycleState>%s</LifecycleState>\n"
				 "            <HealthStatus>%s</HealthStatus>\n"
				 "            <ProtectedFromScaleIn>%s</ProtectedFromScaleIn>\n"
				 "          </member>\n", in->id, lcworld_az(w),
				 lcworld_state_asg(in->state), in->healthy ? "Healthy" : "Unhealthy",
				 in->protect ? "true" : "false");
	}
	rc = rc ? rc : strbuf_addf(b, "        </Instances>\n        <CreatedTime>%s</CreatedTime>\n"
			"        <SuspendedProcesses/>\n        <EnabledMetrics/>\n"
			"        <Tags/>\n        <TerminationPolicies>\n"
			"          <member>Default</member>\n        </TerminationPolicies>\n"
			"        <NewInstancesProtectedFromScaleIn>false"
			"</NewInstancesProtectedFromScaleIn>\n      </member>\n", when);
	return rc;
}

static int describe_groups(struct lcworld *w, const struct lcapi_param *p, size_t n,
			   const char *rid, struct lcapi_resp *r)
{
	struct strbuf b = STRBUF_INIT;
	const char *tok = lcapi_param_get(p, n, "NextToken");
	const char *mr = lcapi_param_get(p, n, "MaxRecords");
	int max = 50, start = 0, named = 0, shown = 0, rc = 0;
	size_t g, i;

	if (mr && !int_value(mr, 1, 100, &max))
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "1 validation error "
				   "detected: Value at 'maxRecords' failed to satisfy constraint: "
				   "Member must have value between 1 and 100", rid, r);
	if (tok && (tok[0] != 'g' || !int_value(tok + 1, 0, LCWORLD_MAX_GROUPS, &start)))
		return lcapi_error(LCAPI_ASG, 400, "InvalidNextToken", "The token is invalid.",
				   rid, r);
	for (i = 0; i < n; i++)
		named |= !strncmp(p[i].k, "AutoScalingGroupNames.member.", 29);
	rc = strbuf_addstr(&b, "  <DescribeAutoScalingGroupsResult>\n    <AutoScalingGroups>\n");
	for (g = (size_t)start; !rc && g < lcworld_ngroups(w); g++) {
		int want = !named;
		for (i = 0; named && i < n && !want; i++)
			want = !strncmp(p[i].k, "AutoScalingGroupNames.member.", 29) &&
			       !strcmp(p[i].v, lcworld_group(w, g)->name);
		if (!want)
			continue;
		if (shown == max)
			break;
		rc = asg_member(&b, w, (int)g);
		shown++;
	}
	rc = rc ? rc : strbuf_addstr(&b, "    </AutoScalingGroups>\n");
	if (!rc && g < lcworld_ngroups(w))
		rc = strbuf_addf(&b, "    <NextToken>g%zu</NextToken>\n", g);
	rc = rc ? rc : strbuf_addstr(&b, "  </DescribeAutoScalingGroupsResult>\n");
	rc = rc ? rc : asg_ok(r, "DescribeAutoScalingGroups", b.buf, rid);
	strbuf_release(&b);
	return rc;
}

static int set_desired(struct lcworld *w, const struct lcapi_param *p, size_t n,
		       const char *rid, struct lcapi_resp *r)
{
	struct err e = ERR_INIT;
	const char *g = lcapi_param_get(p, n, "AutoScalingGroupName");
	int d;

	if (!g)
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "1 validation error "
				   "detected: Value null at 'autoScalingGroupName' failed to satisfy "
				   "constraint: Member must not be null", rid, r);
	if (!int_value(lcapi_param_get(p, n, "DesiredCapacity"), 0, 1000000, &d))
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "1 validation error "
				   "detected: Value at 'desiredCapacity' failed to satisfy "
				   "constraint: Member must be a non-negative integer", rid, r);
	if (lcworld_set_desired(w, g, d, &e))
		return world_error(r, &e, rid);
	return asg_ok(r, "SetDesiredCapacity", NULL, rid);
}

static int set_protection(struct lcworld *w, const struct lcapi_param *p, size_t n,
			  const char *rid, struct lcapi_resp *r)
{
	const char *ids[LCAPI_PROTECT_MAX];
	struct err e = ERR_INIT;
	const char *g = lcapi_param_get(p, n, "AutoScalingGroupName");
	int on = bool_value(lcapi_param_get(p, n, "ProtectedFromScaleIn"));
	size_t i, k = 0;

	if (!g || on < 0)
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "AutoScalingGroupName, "
				   "InstanceIds and ProtectedFromScaleIn (true or false) are "
				   "required", rid, r);
	for (i = 0; i < n; i++) {
		if (strncmp(p[i].k, "InstanceIds.member.", 19))
			continue;
		if (k == LCAPI_PROTECT_MAX)
			return lcapi_error(LCAPI_ASG, 400, "ValidationError", "1 validation error "
					   "detected: Value at 'instanceIds' failed to satisfy "
					   "constraint: Member must have length less than or equal "
					   "to 50", rid, r);
		ids[k++] = p[i].v;
	}
	if (!k)
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "1 validation error "
				   "detected: Value null at 'instanceIds' failed to satisfy "
				   "constraint: Member must not be null", rid, r);
	if (lcworld_set_protection(w, g, ids, k, on, &e))
		return world_error(r, &e, rid);
	return asg_ok(r, "SetInstanceProtection", "  <SetInstanceProtectionResult/>\n", rid);
}

static int terminate(struct lcworld *w, const struct lcapi_param *p, size_t n, int64_t now,
		     const char *rid, struct lcapi_resp *r)
{
	struct strbuf b = STRBUF_INIT;
	struct err e = ERR_INIT;
	const char *id = lcapi_param_get(p, n, "InstanceId");
	int dec = bool_value(lcapi_param_get(p, n, "ShouldDecrementDesiredCapacity"));
	char when[32];
	int g = 0, rc;

	if (!id || dec < 0)
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "InstanceId and "
				   "ShouldDecrementDesiredCapacity (true or false) are required",
				   rid, r);
	if (lcworld_terminate(w, id, dec, now, &g, &e))
		return world_error(r, &e, rid);
	iso_time(now, when);
	rc = strbuf_addf(&b, "  <TerminateInstanceInAutoScalingGroupResult>\n    <Activity>\n"
			 "      <ActivityId>%08" PRIx64 "-0000-4000-8000-%012" PRIx64
			 "</ActivityId>\n      <AutoScalingGroupName>", (uint64_t)(now / 1000),
			 (uint64_t)now);
	rc = rc ? rc : lcapi_xml_escape(&b, lcworld_group(w, (size_t)g)->name);
	rc = rc ? rc : strbuf_addf(&b, "</AutoScalingGroupName>\n      <Description>Terminating "
			"EC2 instance: %s</Description>\n      <Cause>At %s instance %s was taken "
			"out of service in response to a user request%s.</Cause>\n"
			"      <StartTime>%s</StartTime>\n      <StatusCode>InProgress</StatusCode>\n"
			"      <Progress>0</Progress>\n      <Details>{&quot;Availability Zone&quot;:"
			"&quot;%s&quot;}</Details>\n    </Activity>\n"
			"  </TerminateInstanceInAutoScalingGroupResult>\n", id, when, id,
			dec ? ", shrinking the capacity from the higher value to the lower" : "",
			when, lcworld_az(w));
	rc = rc ? rc : asg_ok(r, "TerminateInstanceInAutoScalingGroup", b.buf, rid);
	strbuf_release(&b);
	return rc;
}

static int set_health(struct lcworld *w, const struct lcapi_param *p, size_t n,
		      const char *rid, struct lcapi_resp *r)
{
	struct err e = ERR_INIT;
	const char *id = lcapi_param_get(p, n, "InstanceId");
	const char *h = lcapi_param_get(p, n, "HealthStatus");

	if (!id || !h || (strcmp(h, "Healthy") && strcmp(h, "Unhealthy")))
		return lcapi_error(LCAPI_ASG, 400, "ValidationError", "InstanceId and "
				   "HealthStatus (Healthy or Unhealthy) are required", rid, r);
	if (lcworld_set_health(w, id, !strcmp(h, "Healthy"), &e))
		return world_error(r, &e, rid);
	return asg_ok(r, "SetInstanceHealth", NULL, rid);
}

/* ---------------------------------------------------------------- EC2 */

struct sel {
	const char **ids;        /* instance-id filter values, sorted */
	size_t nids;
	int by_id;
	const char **groups;     /* tag:aws:autoscaling:groupName values */
	size_t ngroups;
	int by_group;
	const char **states;     /* instance-state-name values */
	size_t nstates;
	int by_state;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Whether s matches the filter value p as EC2 matches one: '*' any run of
 * characters, '?' exactly one, a backslash makes the next character literal.
 */
static int value_match(const char *p, const char *s)
{
	const char *star_p = NULL, *star_s = NULL;

	while (*s) {
		int lit = p[0] == '\\' && p[1];

		if (!lit && *p == '*') {
			star_p = ++p;
			star_s = s;
			continue;
		}
		if (lit ? p[1] == *s : (*p && (*p == '?' || *p == *s))) {
			p += lit ? 2 : 1;
			s++;
			continue;
		}
		if (!star_p)
			return 0;
		p = star_p;       /* let the last '*' take one more character */
		s = ++star_s;
	}
	while (*p == '*')
		p++;
	return !*p;
}

static int in_list(const char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (value_match(v[i], s))
			return 1;
	return 0;
}

/* "Filter.N.Name" / "Filter.N.Value.M": N, and whether it is a value. -1 if neither. */
static int filter_index(const char *k, int *is_value)
{
	char *end;
	long x;

	if (strncmp(k, "Filter.", 7))
		return -1;
	x = strtol(k + 7, &end, 10);
	if (end == k + 7 || x < 1 || x > MAX_FILTERS)
		return -1;
	if (!strcmp(end, ".Name"))
		*is_value = 0;
	else if (!strncmp(end, ".Value.", 7))
		*is_value = 1;
	else
		return -1;
	return (int)x;
}

/* Build the selection from Filter.N.*; fills msg and returns -1 for a bad filter. */
static int sel_build(struct sel *s, const struct lcapi_param *p, size_t n, char *msg, size_t msz)
{
	const char *names[MAX_FILTERS + 1] = { 0 };
	size_t i, total = 0;
	int k, isv;

	for (i = 0; i < n; i++)
		if ((k = filter_index(p[i].k, &isv)) > 0 && !isv)
			names[k] = p[i].v;
	for (i = 0; i < n; i++) {
		const char *nm;
		if ((k = filter_index(p[i].k, &isv)) < 0 || !isv)
			continue;
		nm = names[k];
		if (!nm) {
			snprintf(msg, msz, "The filter 'null' is invalid");
			return -1;
		}
		if (++total > LCAPI_MAX_FILTER_VALUES) {
			snprintf(msg, msz, "The maximum number of filter values specified on a "
				 "single call is %d", LCAPI_MAX_FILTER_VALUES);
			return -1;
		}
		if (!strcmp(nm, "instance-id"))
			s->ids[s->nids++] = p[i].v, s->by_id = 1;
		else if (!strcmp(nm, "tag:aws:autoscaling:groupName"))
			s->groups[s->ngroups++] = p[i].v, s->by_group = 1;
		else if (!strcmp(nm, "instance-state-name"))
			s->states[s->nstates++] = p[i].v, s->by_state = 1;
		else {
			snprintf(msg, msz, "The filter '%.64s' is invalid", nm);
			return -1;
		}
	}
	for (k = 1; k <= MAX_FILTERS; k++) {
		if (!names[k])
			continue;
		if (strcmp(names[k], "instance-id") && strcmp(names[k], "instance-state-name") &&
		    strcmp(names[k], "tag:aws:autoscaling:groupName")) {
			snprintf(msg, msz, "The filter '%.64s' is invalid", names[k]);
			return -1;
		}
		/* a filter with no value matches nothing */
		if (!strcmp(names[k], "instance-id"))
			s->by_id = 1;
		else if (!strcmp(names[k], "instance-state-name"))
			s->by_state = 1;
		else
			s->by_group = 1;
	}
	qsort(s->ids, s->nids, sizeof(*s->ids), cmp_str);
	return 0;
}

static int sel_match(const struct sel *s, struct lcworld *w, const struct lcworld_inst *in)
{
	if (s->by_id && !bsearch(&(const char *){ in->id }, s->ids, s->nids, sizeof(*s->ids),
				 cmp_str))
		return 0;
	if (s->by_group && (in->untagged ||
			    !in_list(s->groups, s->ngroups, lcworld_group(w, (size_t)in->group)->name)))
		return 0;
	if (s->by_state && !in_list(s->states, s->nstates, lcworld_state_ec2(in->state)))
		return 0;
	return 1;
}

static int instance_item(struct strbuf *b, struct lcworld *w, const struct lcworld_inst *in)
{
	const char *gname = lcworld_group(w, (size_t)in->group)->name;
	char when[32];
	int rc;

	iso_time(in->launched_ms, when);
	rc = strbuf_addf(b, "        <item>\n          <reservationId>r-%s</reservationId>\n"
			 "          <ownerId>" OWNER_ID "</ownerId>\n          <groupSet/>\n"
			 "          <instancesSet>\n            <item>\n"
			 "              <instanceId>%s</instanceId>\n"
			 "              <imageId>ami-00000000000000000</imageId>\n"
			 "              <instanceState>\n                <code>%d</code>\n"
			 "                <name>%s</name>\n              </instanceState>\n"
			 "              <privateDnsName>%s</privateDnsName>\n"
			 "              <dnsName/>\n              <reason/>\n"
			 "              <amiLaunchIndex>0</amiLaunchIndex>\n"
			 "              <productCodes/>\n"
			 "              <instanceType>" INSTANCE_TYPE "</instanceType>\n"
			 "              <launchTime>%s</launchTime>\n              <placement>\n"
			 "                <availabilityZone>%s</availabilityZone>\n"
			 "                <groupName/>\n                <tenancy>default</tenancy>\n"
			 "              </placement>\n              <monitoring>\n"
			 "                <state>disabled</state>\n              </monitoring>\n",
			 in->id + 2, in->id, lcworld_state_code(in->state),
			 lcworld_state_ec2(in->state),
			 in->state == LCWORLD_TERMINATED ? "" : "localhost", when, lcworld_az(w));
	if (!rc && in->state != LCWORLD_TERMINATED)
		rc = strbuf_addf(b, "              <privateIpAddress>%s</privateIpAddress>\n",
				 in->ip);
	if (in->untagged) {
		rc = rc ? rc : strbuf_addstr(b, "              <tagSet/>\n");
	} else {
		rc = rc ? rc : strbuf_addstr(b, "              <tagSet>\n                <item>\n"
					     "                  <key>aws:autoscaling:groupName</key>\n"
					     "                  <value>");
		rc = rc ? rc : lcapi_xml_escape(b, gname);
		rc = rc ? rc : strbuf_addstr(b, "</value>\n                </item>\n"
					     "              </tagSet>\n");
	}
	rc = rc ? rc : strbuf_addstr(b, "            </item>\n          </instancesSet>\n"
				     "        </item>\n");
	return rc;
}

/* InstanceId.N: every id must exist and be visible, as AWS checks. */
static int check_instance_ids(struct lcworld *w, const struct lcapi_param *p, size_t n,
			      int64_t now, struct sel *s, struct strbuf *missing)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < n && !rc; i++) {
		struct lcworld_inst *in;
		if (strncmp(p[i].k, "InstanceId.", 11))
			continue;
		s->by_id = 1;
		if (s->nids >= LCAPI_MAX_FILTER_VALUES)
			return SP_ELIMIT;
		s->ids[s->nids++] = p[i].v;
		in = lcworld_find(w, p[i].v);
		if (!in || now < in->visible_ms) {
			rc = strbuf_addf(missing, "%s'", missing->len ? ", " : "");
			rc = rc ? rc : lcapi_xml_escape(missing, p[i].v);
			rc = rc ? rc : strbuf_addch(missing, '\'');
		}
	}
	return rc;
}

static uint64_t token_check(uint64_t seq)
{
	return (seq * 0x9e3779b97f4a7c15ULL) ^ TOKEN_MAGIC;
}

static int token_parse(const char *tok, uint64_t *seq)
{
	uint64_t s, c;
	char tail;

	if (sscanf(tok, "lc1.%16" SCNx64 ".%16" SCNx64 "%c", &s, &c, &tail) != 2 ||
	    c != token_check(s))
		return -1;
	*seq = s;
	return 0;
}

static int describe_instances_page(struct lcworld *w, struct sel *s, size_t start, int max,
				   int64_t now, const char *rid, struct lcapi_resp *r)
{
	struct strbuf *b = &r->body;
	size_t i;
	int shown = 0, rc;

	strbuf_reset(b);
	r->status = 200;
	rc = strbuf_addf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse "
			 "xmlns=\"" LCAPI_EC2_XMLNS "\">\n    <requestId>%s</requestId>\n"
			 "    <reservationSet>\n", rid);
	for (i = start; !rc && i < lcworld_ninst(w); i++) {
		const struct lcworld_inst *in = lcworld_inst(w, i);
		if (now < in->visible_ms || !sel_match(s, w, in))
			continue;
		if (max > 0 && shown == max)
			break;
		rc = instance_item(b, w, in);
		shown++;
	}
	rc = rc ? rc : strbuf_addstr(b, "    </reservationSet>\n");
	if (!rc && i < lcworld_ninst(w)) {
		uint64_t seq = lcworld_inst(w, i)->seq;
		rc = strbuf_addf(b, "    <nextToken>lc1.%" PRIx64 ".%" PRIx64 "</nextToken>\n", seq,
				 token_check(seq));
	}
	rc = rc ? rc : strbuf_addstr(b, "</DescribeInstancesResponse>\n");
	return rc;
}

static int describe_instances(struct lcworld *w, const struct lcapi_param *p, size_t n,
			      const struct lcapi_opts *o, int64_t now, const char *rid,
			      struct lcapi_resp *r)
{
	const char **vals = calloc(3 * LCAPI_MAX_FILTER_VALUES, sizeof(*vals));
	struct strbuf missing = STRBUF_INIT;
	struct sel s;
	const char *mr = lcapi_param_get(p, n, "MaxResults");
	const char *tok = lcapi_param_get(p, n, "NextToken");
	char msg[160];
	uint64_t seq = 0;
	int max = 0, rc;

	if (!vals)
		return SP_ENOMEM;
	memset(&s, 0, sizeof(s));
	s.ids = vals;
	s.groups = vals + LCAPI_MAX_FILTER_VALUES;
	s.states = vals + 2 * LCAPI_MAX_FILTER_VALUES;
	rc = check_instance_ids(w, p, n, now, &s, &missing);
	if (rc == SP_ELIMIT)
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidParameterValue", "too many instance ids",
				 rid, r);
	else if (!rc && missing.len)
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidInstanceID.NotFound", missing.len &&
				 strchr(missing.buf, ',') ? "The instance IDs do not exist" :
				 "The instance ID does not exist", rid, r);
	else if (!rc && mr && s.nids)
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidParameterCombination", "The parameter "
				 "instancesSet cannot be used with the parameter maxResults", rid, r);
	else if (!rc && mr && !int_value(mr, 5, 1000, &max))
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidParameterValue", "Value for parameter "
				 "maxResults is invalid. Expecting a value between 5 and 1000.",
				 rid, r);
	else if (!rc && tok && token_parse(tok, &seq))
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidPaginationToken", "Invalid pagination "
				 "token", rid, r);
	else if (!rc && sel_build(&s, p, n, msg, sizeof(msg)))
		rc = lcapi_error(LCAPI_EC2, 400, "InvalidParameterValue", msg, rid, r);
	else if (!rc) {
		if (o && o->page_cap > 0 && (max == 0 || max > o->page_cap))
			max = o->page_cap;
		qsort(s.ids, s.nids, sizeof(*s.ids), cmp_str);
		rc = describe_instances_page(w, &s, tok ? lcworld_seek(w, seq) : 0, max, now,
					     rid, r);
	}
	strbuf_release(&missing);
	free(vals);
	return rc;
}

/* ---------------------------------------------------------------- dispatch */

int lcapi_handle(struct lcworld *w, enum lcapi_service svc, const struct lcapi_param *p,
		 size_t n, const struct lcapi_opts *o, int64_t now, const char *request_id,
		 struct lcapi_resp *r)
{
	const char *action = lcapi_param_get(p, n, "Action");
	const char *version = lcapi_param_get(p, n, "Version");
	const char *want = svc == LCAPI_EC2 ? LCAPI_EC2_VERSION : LCAPI_ASG_VERSION;

	if (!action || !*action)
		return lcapi_error(svc, 400, "MissingAction", "The request must contain the "
				   "parameter Action", request_id, r);
	if (lcapi_action_service(action) != (int)svc)
		return lcapi_error(svc, 400, "InvalidAction", "The action or operation requested "
				   "is invalid. Verify that the action is typed correctly.",
				   request_id, r);
	if (!version)
		return lcapi_error(svc, 400, "MissingParameter", "The request must contain the "
				   "parameter Version", request_id, r);
	if (strcmp(version, want))
		return lcapi_error(svc, 400, svc == LCAPI_EC2 ? "InvalidParameterValue" :
				   "NoSuchVersion", "The requested version is not supported "
				   "by this local provider", request_id, r);
	if (svc == LCAPI_EC2)
		return describe_instances(w, p, n, o, now, request_id, r);
	if (!strcmp(action, "DescribeAutoScalingGroups"))
		return describe_groups(w, p, n, request_id, r);
	if (!strcmp(action, "SetDesiredCapacity"))
		return set_desired(w, p, n, request_id, r);
	if (!strcmp(action, "SetInstanceProtection"))
		return set_protection(w, p, n, request_id, r);
	if (!strcmp(action, "TerminateInstanceInAutoScalingGroup"))
		return terminate(w, p, n, now, request_id, r);
	return set_health(w, p, n, request_id, r);
}
