/*
 * awscloud.c - the "aws" cloud driver (see awscloud.h).
 */
#include "awscloud.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "../model/banned.h"

#define ASG_VERSION "2011-01-01"
#define EC2_VERSION "2016-11-15"
#define AWSCLOUD_TOKEN_MAX 4096     /* NextToken length we accept */
#define AWSCLOUD_TEXT_MAX 256       /* any other text field */

struct awscloud {
	struct awscreds *creds;
	struct awsq *asg;
	struct awsq *ec2;
	struct cloud *cloud;        /* back pointer, to count extra API calls */
};

/* ---- parsing ---- */

static int parse_int(xmlNodePtr n, const char *path, int *out)
{
	char buf[32], *end;
	long v;

	if (!awsq_text(n, path, buf, sizeof(buf)) || !buf[0])
		return -1;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || *end || v < 0 || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

/* Copy the text at path into a fixed field; SP_EPROTO when missing (if required) or too long. */
static int text_field(xmlNodePtr n, const char *path, char *dst, size_t dsz, int required,
		      const char *what, struct err *e)
{
	char buf[AWSCLOUD_TEXT_MAX + 2];

	if (!awsq_text(n, path, buf, sizeof(buf)) || !buf[0]) {
		dst[0] = '\0';
		return required ? err_set(e, SP_EPROTO, "response lacks %s", what) : 0;
	}
	if (str_copy(dst, dsz, buf))
		return err_set(e, SP_EPROTO, "%s '%.40s...' is longer than %zu bytes", what, buf,
			       dsz - 1);
	return 0;
}

static int next_token(xmlNodePtr n, const char *path, char *next, size_t nextsz,
		      struct err *e)
{
	char buf[AWSCLOUD_TOKEN_MAX + 2];

	awsq_text(n, path, buf, sizeof(buf));
	if (strlen(buf) > AWSCLOUD_TOKEN_MAX || str_copy(next, nextsz, buf))
		return err_set(e, SP_EPROTO, "pagination token is longer than %zu bytes",
			       nextsz - 1);
	return 0;
}

/* An index of g's instances sorted by id, so lookups in big pages stay O(log n). */
struct id_index {
	size_t *pos;
	size_t n;
};

static int by_id(const void *a, const void *b, void *ctx)
{
	const struct obs_instance *in = ctx;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(in[x].id, in[y].id);

	return c ? c : (x > y) - (x < y);
}

static int id_index_build(struct id_index *ix, struct obs_group *g)
{
	size_t i;

	ix->n = g->ninstances;
	ix->pos = malloc((ix->n ? ix->n : 1) * sizeof(*ix->pos));
	if (!ix->pos)
		return SP_ENOMEM;
	for (i = 0; i < ix->n; i++)
		ix->pos[i] = i;
	qsort_r(ix->pos, ix->n, sizeof(*ix->pos), by_id, g->instances);
	return 0;
}

static struct obs_instance *id_index_find(const struct id_index *ix, struct obs_group *g,
					  const char *id)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->instances[ix->pos[mid]].id, id);

		if (c == 0)
			return &g->instances[ix->pos[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Drop later duplicates of an id (a malformed answer), keeping the order. */
static int dedupe(struct obs_group *g)
{
	struct id_index ix;
	char *drop;
	size_t i, w = 0;

	if (g->ninstances < 2)
		return 0;
	if (id_index_build(&ix, g))
		return SP_ENOMEM;
	drop = calloc(g->ninstances, 1);
	if (!drop) {
		free(ix.pos);
		return SP_ENOMEM;
	}
	for (i = 1; i < ix.n; i++)
		if (!strcmp(g->instances[ix.pos[i]].id, g->instances[ix.pos[i - 1]].id))
			drop[ix.pos[i]] = 1;
	for (i = 0; i < g->ninstances; i++)
		if (!drop[i])
			g->instances[w++] = g->instances[i];
	g->ninstances = w;
	free(drop);
	free(ix.pos);
	return 0;
}

static int parse_asg_instance(xmlNodePtr m, struct obs_group *g, struct err *e)
{
	char id[OBS_INSTANCE_ID_MAX + 1], lc[64], health[32], prot[8];
	struct obs_instance *in;
	int rc;

	rc = text_field(m, "InstanceId", id, sizeof(id), 1, "InstanceId", e);
	if (!rc)
		rc = text_field(m, "LifecycleState", lc, sizeof(lc), 1, "LifecycleState", e);
	if (!rc)
		rc = text_field(m, "HealthStatus", health, sizeof(health), 0, "HealthStatus", e);
	if (!rc)
		rc = text_field(m, "ProtectedFromScaleIn", prot, sizeof(prot), 0,
				"ProtectedFromScaleIn", e);
	if (rc)
		return rc;
	in = obs_group_add(g); /* duplicates are dropped once the page is read */
	if (!in)
		return err_set(e, SP_ENOMEM, "out of memory adding instance %s", id);
	str_copy(in->id, sizeof(in->id), id);
	rc = text_field(m, "AvailabilityZone", in->az, sizeof(in->az), 0, "AvailabilityZone", e);
	in->lifecycle = inst_lifecycle_parse(lc);
	in->healthy = !strcasecmp(health, "Healthy");
	in->protected_from_scale_in = !strcmp(prot, "true");
	return rc;
}

int awscloud_parse_asg(xmlDocPtr doc, const char *asg, struct obs_group *g, char *next,
		       size_t nextsz, struct err *e)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr res = awsq_child(root, "DescribeAutoScalingGroupsResult");
	xmlNodePtr m, im;
	char name[256];
	int rc = 0;

	if (!res)
		return err_set(e, SP_EPROTO, "DescribeAutoScalingGroups response lacks its result");
	for (m = awsq_child(awsq_child(res, "AutoScalingGroups"), "member"); m && !rc;
	     m = awsq_next(m, "member")) {
		awsq_text(m, "AutoScalingGroupName", name, sizeof(name));
		if (strcmp(name, asg) != 0)
			continue;
		g->found = 1;
		if (parse_int(m, "MinSize", &g->min_size) || parse_int(m, "MaxSize", &g->max_size) ||
		    parse_int(m, "DesiredCapacity", &g->desired_capacity)) {
			rc = err_set(e, SP_EPROTO, "group '%s' has a missing or malformed "
				     "MinSize, MaxSize or DesiredCapacity", asg);
			break;
		}
		for (im = awsq_child(awsq_child(m, "Instances"), "member"); im && !rc;
		     im = awsq_next(im, "member"))
			rc = parse_asg_instance(im, g, e);
	}
	if (!rc && dedupe(g))
		rc = err_set(e, SP_ENOMEM, "out of memory indexing instances");
	if (!rc)
		rc = next_token(res, "NextToken", next, nextsz, e);
	if (rc)
		err_prefix(e, "DescribeAutoScalingGroups '%s'", asg);
	return rc;
}

/* "2018-05-08T16:46:19.000Z" -> ms since the epoch, or -1. */
static int64_t parse_time_ms(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, ms = 0, n = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return -1;
	if (s[n] == '.')
		sscanf(s + n + 1, "%3d", &ms);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static int parse_ec2_instance(xmlNodePtr it, struct obs_group *g, const struct id_index *ix,
			      struct err *e)
{
	char id[OBS_INSTANCE_ID_MAX + 1], when[64];
	struct obs_instance *in;
	int rc;

	rc = text_field(it, "instanceId", id, sizeof(id), 1, "instanceId", e);
	if (rc)
		return rc;
	in = id_index_find(ix, g, id);
	if (!in)
		return 0; /* tagged for the group but no longer listed by it: ignored */
	in->ec2_seen = 1;
	rc = text_field(it, "instanceState/name", in->ec2_state, sizeof(in->ec2_state), 1,
			"instanceState/name", e);
	if (!rc)
		rc = text_field(it, "privateIpAddress", in->private_ip, sizeof(in->private_ip), 0,
				"privateIpAddress", e);
	if (!rc && !in->az[0])
		rc = text_field(it, "placement/availabilityZone", in->az, sizeof(in->az), 0,
				"placement/availabilityZone", e);
	if (!rc && awsq_text(it, "launchTime", when, sizeof(when)) && when[0]) {
		in->launch_time = parse_time_ms(when);
		if (in->launch_time < 0)
			rc = err_set(e, SP_EPROTO, "instance %s has a malformed launchTime '%s'",
				     id, when);
	}
	return rc;
}

int awscloud_parse_instances(xmlDocPtr doc, struct obs_group *g, char *next, size_t nextsz,
			     struct err *e)
{
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr r, it;
	struct id_index ix;
	int rc = 0;

	if (!root)
		return err_set(e, SP_EPROTO, "DescribeInstances response is empty");
	if (id_index_build(&ix, g))
		return err_set(e, SP_ENOMEM, "out of memory indexing instances");
	for (r = awsq_child(awsq_child(root, "reservationSet"), "item"); r && !rc;
	     r = awsq_next(r, "item"))
		for (it = awsq_child(awsq_child(r, "instancesSet"), "item"); it && !rc;
		     it = awsq_next(it, "item"))
			rc = parse_ec2_instance(it, g, &ix, e);
	free(ix.pos);
	if (!rc)
		rc = next_token(root, "nextToken", next, nextsz, e);
	if (rc)
		err_prefix(e, "DescribeInstances");
	return rc;
}

/* ---- describe ---- */

static int describe_asg(struct awscloud *s, const char *asg, struct obs_group *g,
			unsigned *calls, struct err *e)
{
	char *next = calloc(1, AWSCLOUD_TOKEN_MAX + 1);
	struct awsq_params p;
	xmlDocPtr doc;
	int pages = 0, rc = 0;

	if (!next)
		return err_set(e, SP_ENOMEM, "out of memory describing group '%s'", asg);
	do {
		if (++pages > AWSQ_MAX_PAGES) {
			rc = err_set(e, SP_ELIMIT, "DescribeAutoScalingGroups '%s' returned more "
				     "than %d pages", asg, AWSQ_MAX_PAGES);
			break;
		}
		awsq_params_init(&p, "DescribeAutoScalingGroups");
		rc = awsq_params_add(&p, "Version", ASG_VERSION);
		if (!rc)
			rc = awsq_params_add(&p, "AutoScalingGroupNames.member.1", asg);
		if (!rc && next[0])
			rc = awsq_params_add(&p, "NextToken", next);
		if (!rc) {
			(*calls)++;
			rc = awsq_call(s->asg, &p, 0, &doc, e);
		}
		awsq_params_release(&p);
		if (!rc) {
			rc = awscloud_parse_asg(doc, asg, g, next, AWSCLOUD_TOKEN_MAX + 1, e);
			xmlFreeDoc(doc);
		}
	} while (!rc && next[0]);
	free(next);
	return rc;
}

/*
 * A group name as an EC2 filter value: EC2 reads '*' and '?' as wildcards
 * and '\\' as their escape, so each of the three is escaped to match
 * literally. 0, or SP_ELIMIT when the escaped name does not fit out.
 */
static int filter_literal(const char *name, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *name; name++) {
		if (strchr("*?\\", *name) && o + 1 < outsz)
			out[o++] = '\\';
		if (o + 1 >= outsz)
			return SP_ELIMIT;
		out[o++] = *name;
	}
	out[o] = '\0';
	return 0;
}

/* What one DescribeInstances series asks for: the group's tag, or a batch of instance ids. */
struct ec2_query {
	const char *tag;            /* Filter tag:aws:autoscaling:groupName = tag, or NULL */
	const char *const *ids;     /* else Filter instance-id = these */
	size_t nids;                /* 1..AWSCLOUD_FILTER_VALUES */
};

static int query_params(struct awsq_params *p, const struct ec2_query *q, const char *next)
{
	size_t i;
	int rc;

	awsq_params_init(p, "DescribeInstances");
	rc = awsq_params_add(p, "Version", EC2_VERSION);
	if (!rc)
		rc = awsq_params_add(p, "Filter.1.Name", q->tag ? "tag:" AWSCLOUD_GROUP_TAG :
				     "instance-id");
	if (!rc && q->tag)
		rc = awsq_params_add(p, "Filter.1.Value.1", q->tag);
	for (i = 0; !q->tag && i < q->nids && !rc; i++)
		rc = awsq_params_addf(p, q->ids[i], "Filter.1.Value.%zu", i + 1);
	if (!rc)
		rc = awsq_params_add(p, "MaxResults", AWSCLOUD_EC2_PAGE);
	if (!rc && next[0])
		rc = awsq_params_add(p, "NextToken", next);
	return rc;
}

/* One page of DescribeInstances for q, after the token in next (or the first). */
static int describe_page(struct awscloud *s, struct obs_group *g, const struct ec2_query *q,
			 char *next, unsigned *calls, struct err *e)
{
	struct awsq_params p;
	xmlDocPtr doc;
	int rc;

	rc = query_params(&p, q, next);
	if (rc) {
		awsq_params_release(&p);
		return err_set(e, rc, "could not build DescribeInstances parameters");
	}
	(*calls)++;
	rc = awsq_call(s->ec2, &p, 0, &doc, e);
	awsq_params_release(&p);
	if (!rc) {
		rc = awscloud_parse_instances(doc, g, next, AWSCLOUD_TOKEN_MAX + 1, e);
		xmlFreeDoc(doc);
	}
	return rc;
}

/* Every page of DescribeInstances for q (at most AWSQ_MAX_PAGES). */
static int describe_series(struct awscloud *s, struct obs_group *g, const struct ec2_query *q,
			   unsigned *calls, struct err *e)
{
	char *next = calloc(1, AWSCLOUD_TOKEN_MAX + 1);
	int pages = 0, rc = 0;

	if (!next)
		return err_set(e, SP_ENOMEM, "out of memory describing instances");
	do {
		if (++pages > AWSQ_MAX_PAGES) {
			rc = err_set(e, SP_ELIMIT, "DescribeInstances returned more than %d pages",
				     AWSQ_MAX_PAGES);
			break;
		}
		rc = describe_page(s, g, q, next, calls, e);
	} while (!rc && next[0]);
	free(next);
	return rc;
}

/*
 * Every page of DescribeInstances filtered on the group's tag. Instances
 * the group does not list are ignored by the parser; ones it lists that no
 * page returns keep ec2_seen = 0 for describe_missed.
 */
static int describe_tagged(struct awscloud *s, struct obs_group *g, unsigned *calls,
			   struct err *e)
{
	char value[2 * sizeof(g->name)];
	struct ec2_query q = { value, NULL, 0 };

	if (filter_literal(g->name, value, sizeof(value)))
		return err_set(e, SP_EINVAL, "group name '%.64s...' is too long", g->name);
	return describe_series(s, g, &q, calls, e);
}

/*
 * The instances the group lists that the tag pages did not return (attached
 * without the tag, or the tag not yet visible), by instance id, at most
 * AWSCLOUD_FILTER_VALUES a call: no call when there are none. One EC2 does
 * not know yet is simply not returned and keeps ec2_seen = 0 (unknown).
 */
static int describe_missed(struct awscloud *s, struct obs_group *g, unsigned *calls,
			   struct err *e)
{
	const char **ids = malloc((g->ninstances ? g->ninstances : 1) * sizeof(*ids));
	struct ec2_query q = { NULL, NULL, 0 };
	size_t i, n = 0, off;
	int rc = 0;

	if (!ids)
		return err_set(e, SP_ENOMEM, "out of memory describing instances");
	for (i = 0; i < g->ninstances; i++)
		if (!g->instances[i].ec2_seen)
			ids[n++] = g->instances[i].id;
	for (off = 0; off < n && !rc; off += q.nids) {
		q.ids = ids + off;
		q.nids = n - off < AWSCLOUD_FILTER_VALUES ? n - off : AWSCLOUD_FILTER_VALUES;
		rc = describe_series(s, g, &q, calls, e);
	}
	free(ids);
	return rc;
}

static int describe_ec2(struct awscloud *s, struct obs_group *g, unsigned *calls,
			struct err *e)
{
	int rc = describe_tagged(s, g, calls, e);

	if (!rc)
		rc = describe_missed(s, g, calls, e);
	if (rc == SP_ENOTFOUND)
		rc = err_set(e, SP_EBUSY, "some instances of group '%s' are not yet visible in "
			     "ec2 (InvalidInstanceID.NotFound), observation incomplete", g->name);
	return rc;
}

static int aws_describe(void *st, const char *asg, struct obs_group *g, struct err *e)
{
	struct awscloud *s = st;
	unsigned calls = 0;
	int rc;

	obs_group_release(g);
	if (str_copy(g->name, sizeof(g->name), asg))
		return err_set(e, SP_EINVAL, "group name '%.64s...' is too long", asg);
	rc = describe_asg(s, asg, g, &calls, e);
	if (!rc && g->found && g->ninstances)
		rc = describe_ec2(s, g, &calls, e);
	g->complete = rc == 0;
	if (s->cloud && calls > 1)
		s->cloud->calls += calls - 1;
	return rc;
}

/* ---- mutations ---- */

/* Run a mutating Auto Scaling call and discard its (empty) result. */
static int asg_mutate(struct awscloud *s, struct awsq_params *p, int rc, struct err *e)
{
	xmlDocPtr doc = NULL;

	if (!rc)
		rc = awsq_call(s->asg, p, 1, &doc, e);
	else
		err_set(e, rc, "could not build request parameters");
	xmlFreeDoc(doc);
	awsq_params_release(p);
	return rc;
}

static int aws_set_capacity(void *st, const char *asg, int desired, struct err *e)
{
	struct awsq_params p;
	char v[16];
	int rc;

	if (desired < 0)
		return err_set(e, SP_EINVAL, "desired capacity %d for '%s' is negative", desired,
			       asg);
	snprintf(v, sizeof(v), "%d", desired);
	awsq_params_init(&p, "SetDesiredCapacity");
	rc = awsq_params_add(&p, "Version", ASG_VERSION);
	if (!rc)
		rc = awsq_params_add(&p, "AutoScalingGroupName", asg);
	if (!rc)
		rc = awsq_params_add(&p, "DesiredCapacity", v);
	if (!rc)
		rc = awsq_params_add(&p, "HonorCooldown", "false");
	return asg_mutate(st, &p, rc, e);
}

static int protect_batch(struct awscloud *s, const char *asg, const char *const *ids, size_t n,
			 int protect, struct err *e)
{
	struct awsq_params p;
	size_t i;
	int rc;

	awsq_params_init(&p, "SetInstanceProtection");
	rc = awsq_params_add(&p, "Version", ASG_VERSION);
	if (!rc)
		rc = awsq_params_add(&p, "AutoScalingGroupName", asg);
	for (i = 0; i < n && !rc; i++)
		rc = awsq_params_addf(&p, ids[i], "InstanceIds.member.%zu", i + 1);
	if (!rc)
		rc = awsq_params_add(&p, "ProtectedFromScaleIn", protect ? "true" : "false");
	return asg_mutate(s, &p, rc, e);
}

static int aws_set_protection(void *st, const char *asg, const char *const *ids, size_t n,
			      int protect, struct err *e)
{
	size_t off, batch;
	int rc = 0;

	for (off = 0; off < n && !rc; off += batch) {
		batch = n - off < CLOUD_PROTECT_BATCH ? n - off : CLOUD_PROTECT_BATCH;
		rc = protect_batch(st, asg, ids + off, batch, protect, e);
	}
	return rc;
}

static int aws_terminate(void *st, const char *id, int decrement, struct err *e)
{
	struct awsq_params p;
	int rc;

	awsq_params_init(&p, "TerminateInstanceInAutoScalingGroup");
	rc = awsq_params_add(&p, "Version", ASG_VERSION);
	if (!rc)
		rc = awsq_params_add(&p, "InstanceId", id);
	if (!rc)
		rc = awsq_params_add(&p, "ShouldDecrementDesiredCapacity",
				     decrement ? "true" : "false");
	return asg_mutate(st, &p, rc, e);
}

static int aws_set_health(void *st, const char *id, int healthy, struct err *e)
{
	struct awsq_params p;
	int rc;

	awsq_params_init(&p, "SetInstanceHealth");
	rc = awsq_params_add(&p, "Version", ASG_VERSION);
	if (!rc)
		rc = awsq_params_add(&p, "InstanceId", id);
	if (!rc)
		rc = awsq_params_add(&p, "HealthStatus", healthy ? "Healthy" : "Unhealthy");
	return asg_mutate(st, &p, rc, e);
}

static void aws_free(void *st)
{
	struct awscloud *s = st;

	if (!s)
		return;
	awsq_free(s->asg);
	awsq_free(s->ec2);
	awscreds_free(s->creds);
	free(s);
}

static const struct cloud_ops aws_ops = {
	.name = "aws",
	.describe = aws_describe,
	.set_capacity = aws_set_capacity,
	.set_protection = aws_set_protection,
	.terminate = aws_terminate,
	.set_health = aws_set_health,
	.free = aws_free,
};

/* ---- construction ---- */

static void q_config(const struct awscloud_config *cfg, struct awsq_config *qc,
		     struct awscloud *s, const char *region)
{
	memset(qc, 0, sizeof(*qc));
	qc->region = region;
	qc->creds = s->creds;
	qc->timeout_ms = cfg->timeout_ms;
	qc->connect_timeout_ms = cfg->connect_timeout_ms;
	qc->max_attempts = cfg->max_attempts;
	qc->backoff_base_ms = cfg->backoff_base_ms;
	qc->backoff_cap_ms = cfg->backoff_cap_ms;
	qc->clock = cfg->clock;
	qc->max_response = cfg->max_response;
}

/* The explicit per-service endpoint, else the env's per-service one, else the common one. */
static const char *pick_endpoint(const char *specific, const char *env, const char *common)
{
	const char *v = getenv(env);

	if (specific && *specific)
		return specific;
	if (v && *v)
		return v;
	return common;
}

int awscloud_new(const struct awscloud_config *cfg, struct cloud **out, struct err *e)
{
	struct awscloud *s;
	struct cloud *c;
	struct awsq_config qc;
	struct awscreds_config cc;
	const char *region;
	int rc;

	if (!cfg)
		return err_set(e, SP_EINVAL, "awscloud: no configuration");
	s = calloc(1, sizeof(*s));
	c = calloc(1, sizeof(*c));
	if (!s || !c) {
		free(s);
		free(c);
		return err_set(e, SP_ENOMEM, "out of memory creating aws cloud driver");
	}
	cc = cfg->creds;
	if (cfg->region)
		cc.region = cfg->region;
	rc = awscreds_new(&cc, &s->creds, e);
	if (!rc && !*awscreds_region(s->creds) &&
	    awscreds_resolve_region(s->creds, (int64_t)time(NULL), e)) {
		rc = SP_EINVAL; /* no region: a configuration problem, whatever IMDS said */
		if (e)
			e->code = rc;
	}
	region = s->creds ? awscreds_region(s->creds) : "";
	if (!rc) {
		q_config(cfg, &qc, s, region);
		qc.service = "autoscaling";
		qc.version = ASG_VERSION;
		qc.endpoint = pick_endpoint(cfg->asg_endpoint, "AWS_ENDPOINT_URL_AUTO_SCALING",
					    cfg->endpoint);
		qc.read_burst = AWSCLOUD_ASG_BURST;
		qc.read_rate = AWSCLOUD_ASG_RATE;
		qc.one_bucket = 1;
		rc = awsq_new(&qc, &s->asg, e);
	}
	if (!rc) {
		qc.service = "ec2";
		qc.version = EC2_VERSION;
		qc.endpoint = pick_endpoint(cfg->ec2_endpoint, "AWS_ENDPOINT_URL_EC2",
					    cfg->endpoint);
		qc.one_bucket = 0;
		qc.read_burst = AWSCLOUD_EC2_READ_BURST;
		qc.read_rate = AWSCLOUD_EC2_READ_RATE;
		qc.write_burst = AWSCLOUD_EC2_WRITE_BURST;
		qc.write_rate = AWSCLOUD_EC2_WRITE_RATE;
		rc = awsq_new(&qc, &s->ec2, e);
	}
	if (rc) {
		aws_free(s);
		free(c);
		return rc;
	}
	log_debug("awscloud: region=%s autoscaling=%s ec2=%s", region, awsq_endpoint(s->asg),
		  awsq_endpoint(s->ec2));
	s->cloud = c;
	c->ops = &aws_ops;
	c->state = s;
	*out = c;
	return 0;
}

unsigned long awscloud_requests(const struct cloud *c)
{
	const struct awscloud *s;

	if (!c || c->ops != &aws_ops)
		return 0;
	s = c->state;
	return awsq_requests(s->asg) + awsq_requests(s->ec2);
}
