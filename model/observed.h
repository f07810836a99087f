/*
 * observed.h - what the loop saw: the Auto Scaling group, its EC2
 * instances, each instance's agent and containers.
 *
 * Unknown is not absent (DESIGN.md invariant 7): every collection carries a
 * `complete` flag, and every per-instance agent view an `observed` flag. A
 * driver that failed or got a partial answer says so here instead of
 * returning an empty list; the planner refuses destructive actions for
 * whatever an incomplete observation covers.
 *
 * Arrays are owned by the struct that holds them and freed by its _release.
 */
#ifndef SPINUP_OBSERVED_H
#define SPINUP_OBSERVED_H

#include <stddef.h>
#include <stdint.h>

#define OBS_INSTANCE_ID_MAX 31     /* "i-" + 17 hex, with room */
#define OBS_ADDR_MAX 63            /* IPv4/IPv6 text */
#define OBS_AZ_MAX 31
#define OBS_CONTAINER_NAME_MAX 79  /* "spinup-" + workspace id */
#define OBS_MSG_MAX 255

/* Auto Scaling lifecycle state, as DescribeAutoScalingGroups reports it. */
enum inst_lifecycle {
	LC_PENDING,        /* Pending, Pending:Wait, Pending:Proceed */
	LC_IN_SERVICE,     /* InService */
	LC_TERMINATING,    /* Terminating, Terminating:Wait, Terminating:Proceed */
	LC_TERMINATED,     /* Terminated */
	LC_OTHER,          /* Standby, Detaching, EnteringStandby, Warmed:* ... */
	LC_MAX
};

/* "Pending", "InService", ...; for logs and drift. */
const char *inst_lifecycle_name(enum inst_lifecycle lc);
/* Map AWS's LifecycleState text to the enum ("Pending:Wait" -> LC_PENDING). */
enum inst_lifecycle inst_lifecycle_parse(const char *aws);

struct obs_instance {
	char id[OBS_INSTANCE_ID_MAX + 1];
	char private_ip[OBS_ADDR_MAX + 1];   /* "" until EC2 reports one */
	char az[OBS_AZ_MAX + 1];
	enum inst_lifecycle lifecycle;
	int healthy;                         /* ASG HealthStatus == "Healthy" */
	int protected_from_scale_in;
	int ec2_seen;                        /* DescribeInstances returned it */
	char ec2_state[16];                  /* pending, running, shutting-down, ... */
	int64_t launch_time;                 /* ms */
};

struct obs_group {
	char name[256];
	int found;                           /* DescribeAutoScalingGroups listed it */
	int complete;                        /* every page of every call succeeded */
	int min_size, max_size, desired_capacity;
	struct obs_instance *instances;
	size_t ninstances;
	size_t alloc;
};

void obs_group_init(struct obs_group *g);
void obs_group_release(struct obs_group *g);
/* Append a zeroed instance; returns it, or NULL on allocation failure. */
struct obs_instance *obs_group_add(struct obs_group *g);
/* Find by instance id; NULL if absent. */
const struct obs_instance *obs_group_find(const struct obs_group *g, const char *id);

enum container_state {
	CS_CREATED,
	CS_RUNNING,
	CS_STOPPED,        /* stopped on purpose, files synced */
	CS_EXITED,         /* died on its own (crash) */
	CS_FAILED,         /* could not start (bad image, restore failure) */
	CS_MAX
};

const char *container_state_name(enum container_state s);
int container_state_parse(const char *s, enum container_state *out);

enum sync_result { SYNC_NONE, SYNC_OK, SYNC_FAILED, SYNC_RUNNING, SYNC_MAX };
const char *sync_result_name(enum sync_result r);
int sync_result_parse(const char *s, enum sync_result *out);

/*
 * A sync, stop or remove the agent accepted on a container and has not
 * finished (agent/API.md "pending"): the strongest one queued. While one
 * is pending, asking again only queues a duplicate.
 */
enum container_op { COP_NONE, COP_SYNC, COP_STOP, COP_REMOVE, COP_MAX };
const char *container_op_name(enum container_op o);
int container_op_parse(const char *s, enum container_op *out);

struct obs_container {
	char name[OBS_CONTAINER_NAME_MAX + 1]; /* spinup-<workspace id> */
	int64_t workspace_id;                  /* from the label; 0 = not ours */
	enum container_state state;
	int ready;                             /* its HTTP endpoint answers */
	int port;                              /* where the workspace listens */
	int64_t started_at;                    /* ms */
	int64_t last_sync_at;                  /* ms; 0 never */
	enum sync_result last_sync;
	enum container_op pending;             /* accepted, not finished; COP_NONE */
	int restore_failed;                    /* sync-back forbidden (invariant 4) */
	int restarts;
	char message[OBS_MSG_MAX + 1];         /* last error, "" if none */
	char image[256];                       /* image it runs; "" = not reported */
};

struct obs_agent {
	char instance_id[OBS_INSTANCE_ID_MAX + 1];
	int observed;          /* 1: health and list both answered; 0: unknown */
	int healthy;           /* health said ok */
	int capacity;          /* slots the agent reports */
	int64_t max_epoch_seen;
	char error[OBS_MSG_MAX + 1];  /* why observed == 0 */
	struct obs_container *containers;
	size_t ncontainers;
	size_t alloc;
};

void obs_agent_init(struct obs_agent *a);
void obs_agent_release(struct obs_agent *a);
struct obs_container *obs_agent_add(struct obs_agent *a);

/* What an agent's ensure call asks for: everything needed to start a workspace. */
struct container_req {
	int64_t workspace_id;
	char workspace_name[64];
	char image[256];
	int cpu_milli;
	int memory_mib;
	char bucket[64];
	char prefix[256];
	int expect_snapshot;   /* a previous sync exists: restore must find it */
};

/* Deterministic container name for a workspace: "spinup-<id>". */
int container_name_for(int64_t workspace_id, char *out, size_t outsz);

#endif
