/*
 * awscloud.h - the "aws" cloud driver: struct cloud over the Auto Scaling
 * and EC2 Query APIs (real AWS, or the local provider at another endpoint).
 *
 * describe() issues DescribeAutoScalingGroups for the group, then (when
 * the group lists any instance) DescribeInstances filtered on the tag Auto
 * Scaling puts on every instance it launches, Filter.1.Name
 * tag:aws:autoscaling:groupName = the group's name (with EC2's wildcards
 * '*' '?' and their escape '\' escaped), MaxResults 1000, following
 * nextToken. EC2 refuses MaxResults together with InstanceId.N, and
 * filtering on ids took 200 ids a call; by tag a pass over 10,000 instances
 * costs 1 + 10 calls instead of 1 + 50. Pages are bounded by AWSQ_MAX_PAGES
 * and each response by the client's max_response.
 *
 * The instances the ASG lists that no tag page returned (one attached with
 * AttachInstances lacks the tag; a new one's tag may not be visible yet)
 * are then asked for by id: Filter.1.Name instance-id, at most
 * AWSCLOUD_FILTER_VALUES ids a call, MaxResults 1000, nextToken followed.
 * A pass where the tag returned every instance costs no extra call; the
 * odd missing instance costs one. (A filter, not InstanceId.N: one id EC2
 * does not know yet would fail the whole InstanceId.N call, and those
 * calls cannot be paginated.)
 *
 * Only instances the ASG lists are observed: one EC2 returns that the ASG
 * no longer lists (terminated, detached) is ignored. One the ASG lists but
 * neither the tag nor the id query returns keeps ec2_seen = 0: not yet
 * visible, unknown, not absent (no address, so no agent call; the planner
 * never reads it as gone). An InvalidInstanceID.NotFound answer makes the
 * observation incomplete and returns SP_EBUSY. g->complete is set only
 * when every page of every call succeeded. A group that does not exist is
 * found = 0 with complete = 1 (the answer was complete: there is no such
 * group).
 *
 * Mutations: SetDesiredCapacity (HonorCooldown=false),
 * SetInstanceProtection (at most CLOUD_PROTECT_BATCH ids a call),
 * TerminateInstanceInAutoScalingGroup (an unknown instance is SP_ENOTFOUND),
 * SetInstanceHealth. Errors are mapped as in awsq.h: throttling and 5xx are
 * retried inside the call, ScalingActivityInProgress is SP_EBUSY (next
 * pass), AccessDenied / UnauthorizedOperation is SP_EDENIED.
 *
 * Rate limits: client-side token buckets kept below AWS's, because every
 * other client of the account and region (consoles, CLIs, other tools)
 * draws from the same AWS buckets:
 *   EC2 describe   burst 80 at 16/s. AWS publishes 100 at 20/s for filtered
 *                  or paginated non-mutating actions (DescribeInstances
 *                  unfiltered and unpaginated: 50 at 10/s; ours always
 *                  filters and pages).
 *   EC2 mutating   burst 40 at 4/s. AWS publishes 50 at 5/s. (The driver
 *                  sends no EC2 mutation today; the bucket bounds any.)
 *   Auto Scaling   burst 20 at 2/s, ONE bucket for describe and mutating
 *                  calls alike: AWS throttles every Auto Scaling call of an
 *                  account from one shared bucket and publishes no figures,
 *                  so this is a conservative guess, not a fraction.
 */
#ifndef SPINUP_AWSCLOUD_H
#define SPINUP_AWSCLOUD_H

#include "../model/err.h"
#include "awscreds.h"
#include "awsq.h"
#include "cloud.h"

/* Token buckets (see above). */
#define AWSCLOUD_EC2_READ_BURST 80
#define AWSCLOUD_EC2_READ_RATE 16
#define AWSCLOUD_EC2_WRITE_BURST 40
#define AWSCLOUD_EC2_WRITE_RATE 4
#define AWSCLOUD_ASG_BURST 20
#define AWSCLOUD_ASG_RATE 2

/* The tag Auto Scaling puts on its instances, and DescribeInstances' page size. */
#define AWSCLOUD_GROUP_TAG "aws:autoscaling:groupName"
#define AWSCLOUD_EC2_PAGE "1000"
/*
 * Instance ids in one instance-id filter: the batch the driver used before
 * the tag filter. AWS publishes no limit on filter values; EC2 has been
 * seen to refuse more than 200 in one call.
 */
#define AWSCLOUD_FILTER_VALUES 200

struct awscloud_config {
	const char *region;          /* NULL: AWS_REGION / AWS_DEFAULT_REGION / config file */
	const char *endpoint;        /* NULL: AWS_ENDPOINT_URL or AWS's; both services */
	const char *asg_endpoint;    /* NULL: AWS_ENDPOINT_URL_AUTO_SCALING, then endpoint */
	const char *ec2_endpoint;    /* NULL: AWS_ENDPOINT_URL_EC2, then endpoint */
	struct awscreds_config creds;/* credentials chain settings (see awscreds.h) */
	long timeout_ms;             /* per HTTP call; 0: AWSQ_DEFAULT_TIMEOUT_MS */
	long connect_timeout_ms;     /* 0: AWSQ_DEFAULT_CONNECT_TIMEOUT_MS */
	int max_attempts;            /* 0: AWSQ_DEFAULT_ATTEMPTS */
	int64_t backoff_base_ms, backoff_cap_ms;
	size_t max_response;         /* bytes of one response; 0: AWSQ_MAX_RESPONSE */
	const struct awsq_clock *clock; /* NULL: real clock */
};

/*
 * Build the driver. A zeroed config takes everything from the environment
 * as the AWS SDKs do (AWS_REGION, AWS_ENDPOINT_URL[_EC2|_AUTO_SCALING],
 * the credentials chain). Resolves the region (IMDS as a last resort); credentials are fetched on first
 * use (so a missing role shows up as an error of the first call, with the
 * chain's message). 0, SP_EINVAL (no region, bad endpoint), SP_ENOMEM.
 */
int awscloud_new(const struct awscloud_config *cfg, struct cloud **out, struct err *e);

/* Total HTTP requests sent by the driver's clients (retries included). */
unsigned long awscloud_requests(const struct cloud *c);

/*
 * Response parsers, exposed for tests and benchmarks. Each adds what one
 * page holds to g and copies the page's NextToken (or "") into next.
 * parse_asg fills the group named asg (found, sizes, instances);
 * parse_instances fills the EC2 fields of instances already in g
 * (ec2_seen, state, private IP, launch time) and ignores others.
 * 0, SP_EPROTO (a field is missing, malformed or over its limit), SP_ENOMEM.
 */
int awscloud_parse_asg(xmlDocPtr doc, const char *asg, struct obs_group *g, char *next,
		       size_t nextsz, struct err *e);
int awscloud_parse_instances(xmlDocPtr doc, struct obs_group *g, char *next, size_t nextsz,
			     struct err *e);

#endif
