/*
 * lcloud.h - the local provider: one Auto Scaling group and its EC2
 * instances, served over the ASG/EC2 Query API subset the aws driver uses,
 * whose instances are local processes on their own loopback addresses.
 *
 * API (POST /, form-encoded, SigV4-verified against one key pair, services
 * "autoscaling" and "ec2" in cfg->region): DescribeAutoScalingGroups,
 * SetDesiredCapacity, SetInstanceProtection,
 * TerminateInstanceInAutoScalingGroup, SetInstanceHealth, DescribeInstances
 * (instance-id filter, MaxResults, NextToken). Answers are the documented
 * XML; errors the documented ErrorResponse (ASG) / Response/Errors (EC2).
 *
 * World, as AWS behaves: the group keeps DesiredCapacity instances. A
 * launched instance is Pending for boot_delay_ms, then its command
 * (instance_cmd with {addr} and {id} replaced, shell-quoted) starts in a
 * process group of its own and it is InService. Scale-in terminates only
 * unprotected instances. An instance marked Unhealthy is terminated and
 * replaced whatever its protection. Termination sends SIGTERM to the
 * instance's process group, runs stop_cmd (same placeholders: for processes
 * that left the group, such as workspaces in sessions of their own), and
 * SIGKILLs the group after LCLOUD_KILL_GRACE_MS; the instance stays visible
 * to DescribeInstances as terminated. A command that exits on its own does
 * not end the instance (a VM whose agent crashed is still a running VM).
 *
 * Admin (no signature, loopback only): GET /_admin/state (one line per
 * instance), POST /_admin/instances/ID/terminate (as a hardware failure:
 * replaced), POST /_admin/faults?throttle=PCT&error=PCT (that share of API
 * calls answered Throttling 400 / InternalFailure 500).
 *
 * One thread: lcloud_run serves and ticks until lcloud_stop is called (from
 * a signal handler: it only sets a flag). Secrets never reach the logs.
 */
#ifndef SPINUP_LCLOUD_H
#define SPINUP_LCLOUD_H

#include <stdint.h>

#include "../model/err.h"

#define LCLOUD_MAX_INSTANCES 1024      /* launched over the provider's life */
#define LCLOUD_BODY_MAX (64 * 1024)    /* request body */
#define LCLOUD_KILL_GRACE_MS 2000
#define LCLOUD_CMD_MAX 4096

struct lcloud_config {
	const char *listen_addr;    /* "127.0.0.1" */
	int port;                   /* 0: any free port */
	const char *region;
	const char *access_key_id;  /* the only key pair accepted */
	const char *secret_access_key;
	const char *group;          /* Auto Scaling group name */
	int min_size, max_size, desired;
	int boot_delay_ms;
	int net;                    /* instances get 127.<net>.x.y, 1..254 */
	const char *instance_cmd;   /* shell template; {addr} {id} */
	const char *stop_cmd;       /* NULL or shell template run on termination */
	int throttle_pct, error_pct;/* faults, 0..100 */
};

struct lcloud;

/* Bind and prepare. 0, SP_EINVAL (bad config), SP_EIO (cannot bind), SP_ENOMEM. */
int lcloud_new(const struct lcloud_config *cfg, struct lcloud **out, struct err *e);
int lcloud_port(const struct lcloud *lc);
/* Serve and run the world until lcloud_stop; then terminate every instance. 0 or SP_EIO. */
int lcloud_run(struct lcloud *lc, struct err *e);
/* Async-signal-safe. */
void lcloud_stop(struct lcloud *lc);
void lcloud_free(struct lcloud *lc);

#endif
