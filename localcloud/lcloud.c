/*
 * lcloud.c - the local provider's world and its Query API (see lcloud.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lcloud.h"
#include "../drivers/log.h"
#include "../drivers/sigv4.h"
#include "../model/strbuf.h"
#include "../model/banned.h"

#define ASG_XMLNS "http://autoscaling.amazonaws.com/doc/2011-01-01/"
#define EC2_XMLNS "http://ec2.amazonaws.com/doc/2016-11-15/"
#define MAX_PARAMS 512

enum inst_state { INST_PENDING, INST_INSERVICE, INST_TERMINATING, INST_TERMINATED };

struct inst {
	char id[20];
	char addr[16];
	enum inst_state st;
	int healthy, protect;
	int64_t launched_ms, ready_ms, kill_ms;
	pid_t pgid;                 /* the command's process group; 0 when none */
	int running;                /* the command's leader has not been reaped */
};

struct lcloud {
	struct lcloud_config cfg;
	char *region, *key, *secret, *group, *instance_cmd, *stop_cmd;
	struct MHD_Daemon *mhd;
	int port;
	struct inst *v;
	size_t n;
	int desired;
	unsigned seq, rnd, launched;
	volatile sig_atomic_t stopping;
};

struct param {
	char *k, *v;
};

struct conn {
	struct strbuf body;
	int too_large;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *state_name(enum inst_state s)
{
	static const char *const n[] = { "Pending", "InService", "Terminating", "Terminated" };
	return n[s];
}

/* ------------------------------------------------------------ processes */

/* Append template with {addr} and {id} replaced by single-quoted values. */
static int expand(struct strbuf *out, const char *tpl, const struct inst *in)
{
	const char *p = tpl;
	int rc = 0;

	while (*p && !rc) {
		const char *val = NULL;
		size_t skip = 0;
		if (!strncmp(p, "{addr}", 6))
			val = in->addr, skip = 6;
		else if (!strncmp(p, "{id}", 4))
			val = in->id, skip = 4;
		if (val) {
			rc = strbuf_addf(out, "'%s'", val); /* ids and addresses hold no quote */
			p += skip;
		} else {
			rc = strbuf_addch(out, *p++);
		}
	}
	return rc;
}

/* Start `sh -c CMD` in a new session; returns its pid (= process group) or -1. */
static pid_t spawn(const char *cmd, int wait_for_it)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		sigset_t none;
		if (fd >= 0)
			dup2(fd, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (wait_for_it) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	return pid;
}

static void inst_start(struct lcloud *lc, struct inst *in)
{
	struct strbuf cmd = STRBUF_INIT;

	if (!expand(&cmd, lc->instance_cmd, in)) {
		in->pgid = spawn(cmd.buf, 0);
		in->running = in->pgid > 0;
	}
	if (in->pgid <= 0)
		log_warnx("could not start instance %s: fork failed", in->id);
	else
		log_info("instance %s running addr=%s pid=%d", in->id, in->addr, (int)in->pgid);
	strbuf_release(&cmd);
}

/* Begin termination: SIGTERM the group, run the stop command. */
static void inst_terminate(struct lcloud *lc, struct inst *in, const char *why)
{
	struct strbuf cmd = STRBUF_INIT;

	if (in->st == INST_TERMINATING || in->st == INST_TERMINATED)
		return;
	log_info("instance %s terminating (%s)", in->id, why);
	in->st = INST_TERMINATING;
	in->kill_ms = now_ms() + LCLOUD_KILL_GRACE_MS;
	if (in->pgid > 0)
		kill(-in->pgid, SIGTERM);
	if (lc->stop_cmd && !expand(&cmd, lc->stop_cmd, in))
		spawn(cmd.buf, 1);
	strbuf_release(&cmd);
}

static void inst_finish(struct inst *in, int64_t now)
{
	if (in->pgid > 0)
		kill(-in->pgid, SIGKILL);
	in->st = INST_TERMINATED;
	(void)now;
	log_info("instance %s terminated", in->id);
}

static struct inst *inst_find(struct lcloud *lc, const char *id)
{
	size_t i;

	for (i = 0; i < lc->n; i++)
		if (!strcmp(lc->v[i].id, id))
			return &lc->v[i];
	return NULL;
}

static int inst_live(const struct inst *in)
{
	return in->st == INST_PENDING || in->st == INST_INSERVICE;
}

static void inst_launch(struct lcloud *lc, int64_t now)
{
	struct inst *in;
	unsigned k;

	if (lc->n >= LCLOUD_MAX_INSTANCES) {
		log_warnx("cannot launch an instance: %d launched already", LCLOUD_MAX_INSTANCES);
		return;
	}
	in = &lc->v[lc->n++];
	memset(in, 0, sizeof(*in));
	k = ++lc->launched;
	snprintf(in->id, sizeof(in->id), "i-%017x", (lc->rnd << 12) ^ k);
	snprintf(in->addr, sizeof(in->addr), "127.%d.%u.%u", lc->cfg.net, k / 250, k % 250 + 2);
	in->st = INST_PENDING;
	in->healthy = 1;
	in->launched_ms = now;
	in->ready_ms = now + lc->cfg.boot_delay_ms;
	log_info("instance %s launched addr=%s", in->id, in->addr);
}

static void reap(struct lcloud *lc)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < lc->n; i++)
			if (lc->v[i].pgid == pid && lc->v[i].running) {
				lc->v[i].running = 0;
				if (lc->v[i].st == INST_INSERVICE)
					log_info("instance %s: its command exited (status %d); "
						 "the instance keeps running", lc->v[i].id, status);
			}
}

/* One step of the world: boot, replace unhealthy, match desired, finish terminations. */
static void tick(struct lcloud *lc)
{
	int64_t now = now_ms();
	int live = 0;
	size_t i;

	reap(lc);
	for (i = 0; i < lc->n; i++) {
		struct inst *in = &lc->v[i];
		if (in->st == INST_INSERVICE && !in->healthy)
			inst_terminate(lc, in, "unhealthy, replaced");
		if (in->st == INST_PENDING && now >= in->ready_ms) {
			in->st = INST_INSERVICE;
			inst_start(lc, in);
		}
		if (in->st == INST_TERMINATING && now >= in->kill_ms)
			inst_finish(in, now);
		live += inst_live(in);
	}
	for (; live < lc->desired; live++)
		inst_launch(lc, now);
	/* scale in: newest unprotected first (pending before in service) */
	for (i = lc->n; i-- > 0 && live > lc->desired;) {
		struct inst *in = &lc->v[i];
		if (inst_live(in) && !in->protect) {
			inst_terminate(lc, in, "scale-in");
			live--;
		}
	}
}

/* ------------------------------------------------------------ HTTP helpers */

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

/* Decode a form-encoded component in place. */
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

/* Split body (modified) into params; returns the count or -1 over the limit. */
static int form_parse(char *body, struct param *p, int max)
{
	int n = 0;
	char *s = body, *amp, *eq;

	while (s && *s) {
		amp = strchr(s, '&');
		if (amp)
			*amp = '\0';
		if (*s) {
			if (n >= max)
				return -1;
			eq = strchr(s, '=');
			if (eq)
				*eq = '\0';
			p[n].k = s;
			p[n].v = eq ? eq + 1 : s + strlen(s);
			form_decode(p[n].k);
			form_decode(p[n].v);
			n++;
		}
		s = amp ? amp + 1 : NULL;
	}
	return n;
}

static const char *param(const struct param *p, int n, const char *k)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(p[i].k, k))
			return p[i].v;
	return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
			     const struct strbuf *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(body->len, body->buf, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static void request_id(struct lcloud *lc, char out[40])
{
	snprintf(out, 40, "%08x-0000-4000-8000-%012x", lc->rnd, ++lc->seq);
}

/* The error document of the service; code and message are plain text. */
static enum MHD_Result api_error(struct lcloud *lc, struct MHD_Connection *c, int ec2,
				 unsigned status, const char *code, const char *msg)
{
	struct strbuf b = STRBUF_INIT;
	char rid[40];
	enum MHD_Result r;

	request_id(lc, rid);
	if (ec2)
		strbuf_addf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
			    "<Code>%s</Code><Message>%s</Message></Error></Errors>"
			    "<RequestID>%s</RequestID></Response>", code, msg, rid);
	else
		strbuf_addf(&b, "<ErrorResponse xmlns=\"" ASG_XMLNS "\"><Error><Type>%s</Type>"
			    "<Code>%s</Code><Message>%s</Message></Error>"
			    "<RequestId>%s</RequestId></ErrorResponse>",
			    status >= 500 ? "Receiver" : "Sender", code, msg, rid);
	log_info("api error status=%u code=%s", status, code);
	r = reply(c, status, "text/xml", &b);
	strbuf_release(&b);
	return r;
}

/* XML-safe: our names and ids are [A-Za-z0-9._-]; anything else is dropped. */
static void xml_safe(char *dst, size_t n, const char *s)
{
	size_t i = 0;

	for (; *s && i + 1 < n; s++)
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("._-: ", *s))
			dst[i++] = *s;
	dst[i] = '\0';
}

/* ------------------------------------------------------------ ASG actions */

static enum MHD_Result asg_ok(struct lcloud *lc, struct MHD_Connection *c, const char *action,
			      const char *result)
{
	struct strbuf b = STRBUF_INIT;
	char rid[40];
	enum MHD_Result r;

	request_id(lc, rid);
	strbuf_addf(&b, "<%sResponse xmlns=\"" ASG_XMLNS "\">%s<ResponseMetadata><RequestId>%s"
		    "</RequestId></ResponseMetadata></%sResponse>", action, result ? result : "",
		    rid, action);
	r = reply(c, 200, "text/xml", &b);
	strbuf_release(&b);
	return r;
}

static enum MHD_Result describe_groups(struct lcloud *lc, struct MHD_Connection *c,
				       const struct param *p, int np)
{
	struct strbuf b = STRBUF_INIT;
	int i, named = 0, ours = 0;
	size_t k;
	enum MHD_Result r;

	for (i = 0; i < np; i++)
		if (!strncmp(p[i].k, "AutoScalingGroupNames.member.", 29)) {
			named = 1;
			ours |= !strcmp(p[i].v, lc->group);
		}
	strbuf_addstr(&b, "<DescribeAutoScalingGroupsResult><AutoScalingGroups>");
	if (!named || ours) {
		strbuf_addf(&b, "<member><AutoScalingGroupName>%s</AutoScalingGroupName>"
			    "<MinSize>%d</MinSize><MaxSize>%d</MaxSize>"
			    "<DesiredCapacity>%d</DesiredCapacity><HealthCheckType>EC2</HealthCheckType>"
			    "<Instances>", lc->group, lc->cfg.min_size, lc->cfg.max_size, lc->desired);
		for (k = 0; k < lc->n; k++) {
			const struct inst *in = &lc->v[k];
			if (in->st == INST_TERMINATED)
				continue;
			strbuf_addf(&b, "<member><InstanceId>%s</InstanceId>"
				    "<AvailabilityZone>%sa</AvailabilityZone>"
				    "<LifecycleState>%s</LifecycleState><HealthStatus>%s</HealthStatus>"
				    "<ProtectedFromScaleIn>%s</ProtectedFromScaleIn></member>",
				    in->id, lc->region, state_name(in->st),
				    in->healthy ? "Healthy" : "Unhealthy",
				    in->protect ? "true" : "false");
		}
		strbuf_addstr(&b, "</Instances></member>");
	}
	strbuf_addstr(&b, "</AutoScalingGroups></DescribeAutoScalingGroupsResult>");
	r = asg_ok(lc, c, "DescribeAutoScalingGroups", b.buf);
	strbuf_release(&b);
	return r;
}

/* 1 when v is a decimal integer in [lo, hi], stored in out. */
static int int_param(const char *v, int lo, int hi, int *out)
{
	char *end;
	long x;

	if (!v || !*v)
		return 0;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return 0;
	*out = (int)x;
	return 1;
}

static int group_param_ok(const struct lcloud *lc, const struct param *p, int np)
{
	const char *g = param(p, np, "AutoScalingGroupName");
	return g && !strcmp(g, lc->group);
}

static enum MHD_Result set_desired(struct lcloud *lc, struct MHD_Connection *c,
				   const struct param *p, int np)
{
	char msg[160];
	int d;

	if (!group_param_ok(lc, p, np))
		return api_error(lc, c, 0, 400, "ValidationError", "AutoScalingGroup name not found");
	if (!int_param(param(p, np, "DesiredCapacity"), 0, 1000000, &d))
		return api_error(lc, c, 0, 400, "ValidationError", "DesiredCapacity is invalid");
	if (d < lc->cfg.min_size || d > lc->cfg.max_size) {
		snprintf(msg, sizeof(msg), "New SetDesiredCapacity value %d is %s %s value %d for "
			 "the AutoScalingGroup.", d, d < lc->cfg.min_size ? "below" : "above",
			 d < lc->cfg.min_size ? "min" : "max",
			 d < lc->cfg.min_size ? lc->cfg.min_size : lc->cfg.max_size);
		return api_error(lc, c, 0, 400, "ValidationError", msg);
	}
	if (d != lc->desired)
		log_info("group %s desired capacity %d -> %d", lc->group, lc->desired, d);
	lc->desired = d;
	return asg_ok(lc, c, "SetDesiredCapacity", NULL);
}

static enum MHD_Result set_protection(struct lcloud *lc, struct MHD_Connection *c,
				      const struct param *p, int np)
{
	const char *pv = param(p, np, "ProtectedFromScaleIn");
	struct inst *in;
	char msg[128], id[24];
	int i, on;

	if (!group_param_ok(lc, p, np))
		return api_error(lc, c, 0, 400, "ValidationError", "AutoScalingGroup name not found");
	if (!pv || (strcmp(pv, "true") && strcmp(pv, "false")))
		return api_error(lc, c, 0, 400, "ValidationError", "ProtectedFromScaleIn is invalid");
	on = !strcmp(pv, "true");
	for (i = 0; i < np; i++) {
		if (strncmp(p[i].k, "InstanceIds.member.", 19))
			continue;
		in = inst_find(lc, p[i].v);
		if (!in || !inst_live(in)) {
			xml_safe(id, sizeof(id), p[i].v);
			snprintf(msg, sizeof(msg), "The instance %s is not part of Auto Scaling group %s.",
				 id, lc->group);
			return api_error(lc, c, 0, 400, "ValidationError", msg);
		}
	}
	for (i = 0; i < np; i++)
		if (!strncmp(p[i].k, "InstanceIds.member.", 19))
			inst_find(lc, p[i].v)->protect = on;
	return asg_ok(lc, c, "SetInstanceProtection", "<SetInstanceProtectionResult/>");
}

static enum MHD_Result terminate_in_group(struct lcloud *lc, struct MHD_Connection *c,
					  const struct param *p, int np)
{
	const char *dec = param(p, np, "ShouldDecrementDesiredCapacity");
	struct inst *in = inst_find(lc, param(p, np, "InstanceId") ? param(p, np, "InstanceId") : "");
	struct strbuf b = STRBUF_INIT;
	enum MHD_Result r;

	if (!dec || (strcmp(dec, "true") && strcmp(dec, "false")))
		return api_error(lc, c, 0, 400, "ValidationError",
				 "ShouldDecrementDesiredCapacity is required");
	if (!in || in->st == INST_TERMINATED)
		return api_error(lc, c, 0, 400, "ValidationError",
				 "Instance Id not found - No managed instance found for instance ID");
	if (!strcmp(dec, "true") && inst_live(in)) {
		if (lc->desired <= lc->cfg.min_size)
			return api_error(lc, c, 0, 400, "ValidationError",
					 "Currently, desiredSize equals minSize. Terminating "
					 "instance without replacement will violate group's min size "
					 "constraint.");
		lc->desired--;
	}
	inst_terminate(lc, in, "TerminateInstanceInAutoScalingGroup");
	strbuf_addf(&b, "<TerminateInstanceInAutoScalingGroupResult><Activity>"
		    "<StatusCode>InProgress</StatusCode><AutoScalingGroupName>%s"
		    "</AutoScalingGroupName></Activity></TerminateInstanceInAutoScalingGroupResult>",
		    lc->group);
	r = asg_ok(lc, c, "TerminateInstanceInAutoScalingGroup", b.buf);
	strbuf_release(&b);
	return r;
}

static enum MHD_Result set_health(struct lcloud *lc, struct MHD_Connection *c,
				  const struct param *p, int np)
{
	const char *h = param(p, np, "HealthStatus");
	struct inst *in = inst_find(lc, param(p, np, "InstanceId") ? param(p, np, "InstanceId") : "");

	if (!h || (strcmp(h, "Healthy") && strcmp(h, "Unhealthy")))
		return api_error(lc, c, 0, 400, "ValidationError", "HealthStatus is invalid");
	if (!in || in->st == INST_TERMINATED)
		return api_error(lc, c, 0, 400, "ValidationError", "Instance Id not found");
	if (in->healthy && !strcmp(h, "Unhealthy"))
		log_info("instance %s set unhealthy", in->id);
	if (inst_live(in))
		in->healthy = !strcmp(h, "Healthy");
	return asg_ok(lc, c, "SetInstanceHealth", NULL);
}

/* ------------------------------------------------------------ EC2 */

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + strlen(out), 32 - strlen(out), ".%03dZ", (int)(ms % 1000));
}

/* 1 when in is selected by the instance-id filters / InstanceId.N (none: all). */
static int selected(const struct inst *in, const struct param *p, int np)
{
	int i, any = 0;
	char name[64];

	for (i = 0; i < np; i++) {
		const char *k = p[i].k, *dot;
		if (!strncmp(k, "InstanceId.", 11)) {
			any = 1;
			if (!strcmp(p[i].v, in->id))
				return 1;
		} else if (!strncmp(k, "Filter.", 7) && (dot = strstr(k, ".Value."))) {
			snprintf(name, sizeof(name), "%.*s.Name", (int)(dot - k), k);
			if (strcmp(param(p, np, name) ? param(p, np, name) : "", "instance-id"))
				continue;
			any = 1;
			if (!strcmp(p[i].v, in->id))
				return 1;
		}
	}
	return !any;
}

static enum MHD_Result describe_instances(struct lcloud *lc, struct MHD_Connection *c,
					  const struct param *p, int np)
{
	static const int code[] = { 0, 16, 32, 48 };
	static const char *const name[] = { "pending", "running", "shutting-down", "terminated" };
	const char *tok = param(p, np, "NextToken");
	struct strbuf b = STRBUF_INIT;
	int max = 1000, start = 0, shown = 0;
	char rid[40], when[32];
	size_t k;
	enum MHD_Result r;

	if (param(p, np, "MaxResults") && !int_param(param(p, np, "MaxResults"), 5, 1000, &max))
		return api_error(lc, c, 1, 400, "InvalidParameterValue",
				 "MaxResults must be between 5 and 1000");
	if (tok && !int_param(tok, 0, LCLOUD_MAX_INSTANCES, &start))
		return api_error(lc, c, 1, 400, "InvalidNextToken", "The token is invalid");
	request_id(lc, rid);
	strbuf_addf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse "
		    "xmlns=\"" EC2_XMLNS "\"><requestId>%s</requestId><reservationSet>", rid);
	for (k = (size_t)start; k < lc->n; k++) {
		const struct inst *in = &lc->v[k];
		if (!selected(in, p, np))
			continue;
		if (shown == max) {
			break;
		}
		shown++;
		iso_time(in->launched_ms, when);
		strbuf_addf(&b, "<item><reservationId>r-%s</reservationId><ownerId>000000000000"
			    "</ownerId><instancesSet><item><instanceId>%s</instanceId>"
			    "<instanceState><code>%d</code><name>%s</name></instanceState>"
			    "<instanceType>local.process</instanceType><launchTime>%s</launchTime>"
			    "<placement><availabilityZone>%sa</availabilityZone></placement>",
			    in->id + 2, in->id, code[in->st], name[in->st], when, lc->region);
		if (in->st != INST_TERMINATED)
			strbuf_addf(&b, "<privateIpAddress>%s</privateIpAddress>", in->addr);
		strbuf_addstr(&b, "</item></instancesSet></item>");
	}
	strbuf_addstr(&b, "</reservationSet>");
	if (k < lc->n)
		strbuf_addf(&b, "<nextToken>%zu</nextToken>", k);
	strbuf_addstr(&b, "</DescribeInstancesResponse>");
	r = reply(c, 200, "text/xml", &b);
	strbuf_release(&b);
	return r;
}

/* ------------------------------------------------------------ dispatch */

struct hdrs {
	struct sigv4_header h[SIGV4_MAX_HEADERS];
	size_t n;
	int overflow;
};

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct hdrs *h = cls;

	(void)kind;
	if (h->n == SIGV4_MAX_HEADERS) {
		h->overflow = 1;
		return MHD_NO;
	}
	h->h[h->n].name = k;
	h->h[h->n].value = v ? v : "";
	h->n++;
	return MHD_YES;
}

static const char *lookup_secret(void *ctx, const char *key)
{
	struct lcloud *lc = ctx;
	return !strcmp(key, lc->key) ? lc->secret : NULL;
}

static int is_ec2(const char *action)
{
	return !strcmp(action, "DescribeInstances");
}

static enum MHD_Result api(struct lcloud *lc, struct MHD_Connection *c, struct conn *cs)
{
	static struct param p[MAX_PARAMS];
	struct hdrs h = { .n = 0 };
	struct sigv4_req req;
	struct err e = ERR_INIT;
	char *body, code[64], act[64];
	const char *action;
	int np, ec2;
	enum MHD_Result r;

	if (cs->too_large)
		return api_error(lc, c, 0, 413, "ValidationError", "request body too large");
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &h);
	body = strndup(cs->body.buf, cs->body.len);
	if (!body)
		return MHD_NO;
	np = form_parse(body, p, MAX_PARAMS);
	action = np > 0 ? param(p, np, "Action") : NULL;
	if (np < 0 || !action) {
		free(body);
		return api_error(lc, c, 0, 400, "MissingAction", "no Action in the request body");
	}
	xml_safe(act, sizeof(act), action);
	ec2 = is_ec2(action);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = "/";
	req.query = "";
	req.headers = h.h;
	req.nheaders = h.n;
	req.payload = cs->body.buf;
	req.payload_len = cs->body.len;
	if (h.overflow || sigv4_verify(&req, lc->region, ec2 ? "ec2" : "autoscaling",
				       lookup_secret, lc, now_ms() / 1000, SIGV4_DEFAULT_SKEW_S,
				       &e)) {
		sscanf(e.msg[0] ? e.msg : "SignatureDoesNotMatch", "%63s", code);
		log_info("refused %s: %s", act, code);
		r = api_error(lc, c, ec2, 403, code, "the request signature was refused");
	} else if (lc->cfg.throttle_pct && (int)(rand_r(&lc->rnd) % 100) < lc->cfg.throttle_pct) {
		r = ec2 ? api_error(lc, c, 1, 503, "RequestLimitExceeded", "Request limit exceeded.")
			: api_error(lc, c, 0, 400, "Throttling", "Rate exceeded");
	} else if (lc->cfg.error_pct && (int)(rand_r(&lc->rnd) % 100) < lc->cfg.error_pct) {
		r = api_error(lc, c, ec2, 500, ec2 ? "InternalError" : "InternalFailure",
			      "An internal error has occurred (injected fault)");
	} else if (ec2) {
		r = describe_instances(lc, c, p, np);
	} else if (!strcmp(action, "DescribeAutoScalingGroups")) {
		r = describe_groups(lc, c, p, np);
	} else if (!strcmp(action, "SetDesiredCapacity")) {
		r = set_desired(lc, c, p, np);
	} else if (!strcmp(action, "SetInstanceProtection")) {
		r = set_protection(lc, c, p, np);
	} else if (!strcmp(action, "TerminateInstanceInAutoScalingGroup")) {
		r = terminate_in_group(lc, c, p, np);
	} else if (!strcmp(action, "SetInstanceHealth")) {
		r = set_health(lc, c, p, np);
	} else {
		r = api_error(lc, c, 0, 400, "InvalidAction", "unsupported action");
	}
	log_debug("api action=%s", act);
	free(body);
	return r;
}

static enum MHD_Result admin(struct lcloud *lc, struct MHD_Connection *c, const char *method,
			     const char *url)
{
	struct strbuf b = STRBUF_INIT;
	unsigned status = 200;
	struct inst *in;
	char id[24];
	size_t k;
	enum MHD_Result r;
	int v;

	if (!strcmp(method, "GET") && !strcmp(url, "/_admin/state")) {
		strbuf_addf(&b, "group %s min %d max %d desired %d throttle %d error %d\n",
			    lc->group, lc->cfg.min_size, lc->cfg.max_size, lc->desired,
			    lc->cfg.throttle_pct, lc->cfg.error_pct);
		for (k = 0; k < lc->n; k++) {
			in = &lc->v[k];
			strbuf_addf(&b, "instance %s %s %s %s %s pid %d\n", in->id, in->addr,
				    state_name(in->st), in->healthy ? "Healthy" : "Unhealthy",
				    in->protect ? "protected" : "unprotected",
				    in->running ? (int)in->pgid : 0);
		}
	} else if (!strcmp(method, "POST") && sscanf(url, "/_admin/instances/%23[^/]/terminate", id) == 1) {
		in = inst_find(lc, id);
		if (in && in->st != INST_TERMINATED) {
			inst_terminate(lc, in, "admin: instance failure");
			strbuf_addf(&b, "terminating %s\n", in->id);
		} else {
			status = 404;
			strbuf_addstr(&b, "no such running instance\n");
		}
	} else if (!strcmp(method, "POST") && !strcmp(url, "/_admin/faults")) {
		const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "throttle");
		const char *er = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "error");
		if ((t && !int_param(t, 0, 100, &v)) || (er && !int_param(er, 0, 100, &v))) {
			status = 400;
			strbuf_addstr(&b, "throttle and error are percentages 0..100\n");
		} else {
			if (t)
				int_param(t, 0, 100, &lc->cfg.throttle_pct);
			if (er)
				int_param(er, 0, 100, &lc->cfg.error_pct);
			strbuf_addf(&b, "throttle %d error %d\n", lc->cfg.throttle_pct,
				    lc->cfg.error_pct);
			log_info("faults throttle=%d error=%d", lc->cfg.throttle_pct, lc->cfg.error_pct);
		}
	} else {
		status = 404;
		strbuf_addstr(&b, "unknown admin endpoint\n");
	}
	r = reply(c, status, "text/plain", &b);
	strbuf_release(&b);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **ctx)
{
	struct lcloud *lc = cls;
	struct conn *cs = *ctx;

	(void)version;
	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return MHD_NO;
		strbuf_init(&cs->body, LCLOUD_BODY_MAX);
		*ctx = cs;
		return MHD_YES;
	}
	if (*size) {
		if (!cs->too_large && strbuf_add(&cs->body, data, *size))
			cs->too_large = 1;
		*size = 0;
		return MHD_YES;
	}
	if (!strncmp(url, "/_admin/", 8))
		return admin(lc, c, method, url);
	if (strcmp(method, "POST") || strcmp(url, "/")) {
		struct strbuf b = STRBUF_INIT;
		enum MHD_Result r;
		strbuf_addstr(&b, "the Query API is POST /\n");
		r = reply(c, 404, "text/plain", &b);
		strbuf_release(&b);
		return r;
	}
	return api(lc, c, cs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn *cs = *ctx;

	(void)cls, (void)c, (void)toe;
	if (cs) {
		strbuf_release(&cs->body);
		free(cs);
	}
	*ctx = NULL;
}

/* ------------------------------------------------------------ lifecycle */

int lcloud_new(const struct lcloud_config *cfg, struct lcloud **out, struct err *e)
{
	struct sockaddr_in sa;
	struct lcloud *lc;
	const union MHD_DaemonInfo *di;
	int rc = 0;

	if (!cfg->region || !cfg->access_key_id || !cfg->secret_access_key || !cfg->group ||
	    !cfg->instance_cmd || cfg->net < 1 || cfg->net > 254 || cfg->min_size < 0 ||
	    cfg->max_size < cfg->min_size || cfg->desired < cfg->min_size ||
	    cfg->desired > cfg->max_size || cfg->max_size > LCLOUD_MAX_INSTANCES)
		return err_set(e, SP_EINVAL, "local provider configuration is incomplete or out of range");
	lc = calloc(1, sizeof(*lc));
	if (!lc)
		return err_set(e, SP_ENOMEM, "out of memory");
	lc->cfg = *cfg;
	lc->region = strdup(cfg->region);
	lc->key = strdup(cfg->access_key_id);
	lc->secret = strdup(cfg->secret_access_key);
	lc->group = strdup(cfg->group);
	lc->instance_cmd = strdup(cfg->instance_cmd);
	lc->stop_cmd = cfg->stop_cmd ? strdup(cfg->stop_cmd) : NULL;
	lc->v = calloc(LCLOUD_MAX_INSTANCES, sizeof(*lc->v));
	lc->desired = cfg->desired;
	lc->rnd = (unsigned)getpid() ^ (unsigned)now_ms();
	if (!lc->region || !lc->key || !lc->secret || !lc->group || !lc->instance_cmd ||
	    (cfg->stop_cmd && !lc->stop_cmd) || !lc->v) {
		rc = err_set(e, SP_ENOMEM, "out of memory");
		goto fail;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)cfg->port);
	if (inet_pton(AF_INET, cfg->listen_addr ? cfg->listen_addr : "127.0.0.1",
		      &sa.sin_addr) != 1) {
		rc = err_set(e, SP_EINVAL, "listen address '%s' is not an IPv4 address",
			     cfg->listen_addr);
		goto fail;
	}
	lc->mhd = MHD_start_daemon(MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, lc,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, lc, MHD_OPTION_END);
	if (!lc->mhd) {
		rc = err_set(e, SP_EIO, "could not listen on %s:%d",
			     cfg->listen_addr ? cfg->listen_addr : "127.0.0.1", cfg->port);
		goto fail;
	}
	di = MHD_get_daemon_info(lc->mhd, MHD_DAEMON_INFO_BIND_PORT);
	lc->port = di ? di->port : cfg->port;
	*out = lc;
	return 0;
fail:
	lcloud_free(lc);
	return rc;
}

int lcloud_port(const struct lcloud *lc)
{
	return lc->port;
}

void lcloud_stop(struct lcloud *lc)
{
	lc->stopping = 1;
}

/* Terminate everything and wait for the groups to go (bounded by the grace). */
static void shutdown_all(struct lcloud *lc)
{
	int64_t deadline = now_ms() + LCLOUD_KILL_GRACE_MS;
	size_t i;

	lc->desired = 0;
	for (i = 0; i < lc->n; i++)
		inst_terminate(lc, &lc->v[i], "provider shutting down");
	while (now_ms() < deadline) {
		int left = 0;
		reap(lc);
		for (i = 0; i < lc->n; i++)
			left += lc->v[i].running;
		if (!left)
			break;
		usleep(50 * 1000);
	}
	for (i = 0; i < lc->n; i++)
		if (lc->v[i].st == INST_TERMINATING)
			inst_finish(&lc->v[i], now_ms());
	reap(lc);
}

int lcloud_run(struct lcloud *lc, struct err *e)
{
	(void)e;
	log_info("local provider listening on 127.0.0.1:%d group=%s region=%s", lc->port,
		 lc->group, lc->region);
	while (!lc->stopping) {
		MHD_run_wait(lc->mhd, 100);
		tick(lc);
	}
	shutdown_all(lc);
	return 0;
}

void lcloud_free(struct lcloud *lc)
{
	if (!lc)
		return;
	if (lc->mhd)
		MHD_stop_daemon(lc->mhd);
	if (lc->secret)
		memset(lc->secret, 0, strlen(lc->secret));
	free(lc->region);
	free(lc->key);
	free(lc->secret);
	free(lc->group);
	free(lc->instance_cmd);
	free(lc->stop_cmd);
	free(lc->v);
	free(lc);
}
