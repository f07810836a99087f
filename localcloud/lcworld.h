/*
 * lcworld.h - the local provider's world: Auto Scaling groups and their EC2
 * instances, in memory, moved along by lcworld_tick(now).
 *
 * No I/O, no clock: every function takes the time (ms since the epoch) as a
 * parameter, so tests and benchmarks step it as they like. Starting and
 * stopping an instance's process is delegated to the hooks in struct
 * lcworld_hooks (the server runs real commands; tests may count calls).
 *
 * Lifecycle, as AWS behaves (times from struct lcworld_config):
 *   launch        -> Pending (EC2 "pending"); start hook not yet called
 *   +boot_ms      -> InService (EC2 "running"); start hook called
 *   terminate     -> Terminating (EC2 "shutting-down"); stop hook called
 *   +terminate_ms -> Terminated: gone from the group, EC2 "terminated"
 *   +gone_ms      -> forgotten (DescribeInstances no longer lists it)
 * A group keeps DesiredCapacity live (Pending or InService) instances: a
 * tick launches what is missing and, when there are too many, terminates
 * unprotected ones, newest first (LCWORLD_SCALE_IN_NEWEST, the default) or
 * oldest first. A protected instance is never removed by scale-in; the
 * group then stays above its desired capacity until protection is lifted,
 * as AWS does. An instance set Unhealthy is terminated and replaced on the
 * next tick, protected or not (protection only guards scale-in).
 *
 * Addresses: each instance gets 127.<net>.x.y, distinct among the live
 * and terminating instances, never 127.<net>.0.0/.0.1 nor .255 endings;
 * addr_ok (optional) may refuse an address (one in use by another program).
 *
 * Ids are "i-" + 17 lowercase hex digits, from a caller-given seed and a
 * counter, so they never repeat within one world.
 *
 * Not thread-safe. Errors: SP_EINVAL, SP_ENOTFOUND, SP_ELIMIT, SP_ENOMEM
 * with e naming the object and the cause (the API turns them into
 * ValidationError answers).
 */
#ifndef SPINUP_LCWORLD_H
#define SPINUP_LCWORLD_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"

#define LCWORLD_MAX_GROUPS 64
#define LCWORLD_NAME_MAX 255            /* group name bytes, as AWS */
#define LCWORLD_MAX_INSTANCES 60000     /* live + remembered instances */
#define LCWORLD_MAX_SIZE 50000          /* a group's MaxSize */
#define LCWORLD_ID_LEN 19               /* "i-" + 17 hex */
#define LCWORLD_IP_MAX 16

enum lcworld_state {
	LCWORLD_PENDING,
	LCWORLD_IN_SERVICE,
	LCWORLD_TERMINATING,
	LCWORLD_TERMINATED,
	LCWORLD_STATE_MAX
};

/* Auto Scaling LifecycleState ("InService"), EC2 state name ("running") and code (16). */
const char *lcworld_state_asg(enum lcworld_state s);
const char *lcworld_state_ec2(enum lcworld_state s);
int lcworld_state_code(enum lcworld_state s);

enum lcworld_scale_in { LCWORLD_SCALE_IN_NEWEST, LCWORLD_SCALE_IN_OLDEST };

struct lcworld_inst {
	char id[LCWORLD_ID_LEN + 1];
	char ip[LCWORLD_IP_MAX];
	int group;                  /* index into the groups */
	uint64_t seq;               /* launch order, 1.. (pagination follows it) */
	enum lcworld_state state;
	int healthy;
	int protect;
	int64_t launched_ms;
	int64_t next_ms;            /* when the current state ends (0: never) */
	int64_t visible_ms;         /* DescribeInstances shows it from then on */
	int untagged;               /* lacks the group tag (attached with AttachInstances): */
				    /* a tag filter skips it, an instance-id filter finds it */
	int proc_running;           /* the hooks' business: a process runs for it */
	int pid;                    /* the hooks' business: its process group */
	int64_t kill_ms;            /* the hooks' business: SIGKILL deadline, 0 none */
};

struct lcworld_group {
	char name[LCWORLD_NAME_MAX + 1];
	int min_size, max_size, desired;
	int64_t created_ms;
};

struct lcworld_hooks {
	/* Called when an instance turns InService and when termination begins. */
	void (*start)(void *ctx, struct lcworld_inst *in);
	void (*stop)(void *ctx, struct lcworld_inst *in);
	/* 1 when ip may be given to a new instance (NULL: always). */
	int (*addr_ok)(void *ctx, const char *ip);
	void *ctx;
};

struct lcworld_config {
	int64_t boot_ms;            /* Pending -> InService */
	int64_t terminate_ms;       /* Terminating -> Terminated */
	int64_t gone_ms;            /* Terminated -> forgotten */
	int64_t visibility_ms;      /* launch -> visible to DescribeInstances */
	int net;                    /* second octet of instance addresses, 0..254 */
	enum lcworld_scale_in scale_in;
	uint64_t seed;              /* instance ids */
	const char *az;             /* availability zone, "us-east-1a" */
};

struct lcworld;

/* 0, SP_EINVAL (net out of range), SP_ENOMEM. hooks may be NULL; both are copied. */
int lcworld_new(const struct lcworld_config *cfg, const struct lcworld_hooks *hooks,
		struct lcworld **out, struct err *e);
void lcworld_free(struct lcworld *w);

/* Settings changed at runtime (the admin endpoint): visibility_ms only. */
void lcworld_set_visibility(struct lcworld *w, int64_t ms);
int64_t lcworld_visibility(const struct lcworld *w);
const char *lcworld_az(const struct lcworld *w);

/*
 * Add a group (0 <= min <= desired <= max <= LCWORLD_MAX_SIZE, a new name of
 * 1..255 printable bytes). Its instances are launched by the next tick.
 * 0, SP_EINVAL, SP_ECONFLICT (name taken), SP_ELIMIT (too many groups).
 */
int lcworld_add_group(struct lcworld *w, const char *name, int min, int max, int desired,
		      int64_t now, struct err *e);

size_t lcworld_ngroups(const struct lcworld *w);
const struct lcworld_group *lcworld_group(const struct lcworld *w, size_t i);
/* Index of the group named name, or -1. */
int lcworld_find_group(const struct lcworld *w, const char *name);

/* Instances in launch order (terminated ones included until forgotten). */
size_t lcworld_ninst(const struct lcworld *w);
struct lcworld_inst *lcworld_inst(struct lcworld *w, size_t i);
/* By id; NULL when unknown or forgotten. O(log n). */
struct lcworld_inst *lcworld_find(struct lcworld *w, const char *id);
/* Index of the first instance whose seq >= seq (n when none). */
size_t lcworld_seek(const struct lcworld *w, uint64_t seq);
/* Live (Pending or InService) instances of group g. */
int lcworld_live(const struct lcworld *w, int g);

/* SetDesiredCapacity: SP_ENOTFOUND (no group), SP_EINVAL (outside min..max). */
int lcworld_set_desired(struct lcworld *w, const char *group, int desired, struct err *e);
/*
 * SetInstanceProtection for n ids of group: all or nothing. SP_ENOTFOUND
 * (no group), SP_EINVAL (an id not a live member of the group).
 */
int lcworld_set_protection(struct lcworld *w, const char *group, const char *const *ids,
			   size_t n, int protect, struct err *e);
/*
 * TerminateInstanceInAutoScalingGroup. With decrement the desired
 * capacity drops by one (SP_EINVAL when that would cross MinSize), else
 * the group launches a replacement. SP_ENOTFOUND for an unknown or
 * already terminated instance. The group's index goes to *group.
 */
int lcworld_terminate(struct lcworld *w, const char *id, int decrement, int64_t now, int *group,
		      struct err *e);
/* SetInstanceHealth: SP_ENOTFOUND for an unknown or terminated instance. */
int lcworld_set_health(struct lcworld *w, const char *id, int healthy, struct err *e);
/* Out of band (a hardware failure): terminate now, the group replaces it. */
int lcworld_fail(struct lcworld *w, const char *id, int64_t now, struct err *e);

/* Move time to now: boots, terminations, replacements, desired capacity. */
void lcworld_tick(struct lcworld *w, int64_t now);
/* Terminate every instance at once (the provider is stopping). */
void lcworld_stop_all(struct lcworld *w, int64_t now);

#endif
