/*
 * spec.h - desired state: pools and workspaces, as declared.
 *
 * These are plain value types. A manifest (model/manifest.h) and a database
 * row (drivers/pgstore.h) decode into exactly these structs, so the planner
 * never knows where a spec came from. Strings are fixed arrays sized by the
 * limits below, the same limits the database CHECK constraints enforce
 * (drivers/migrations/); a value that does not fit is invalid input.
 *
 * Times are milliseconds since the Unix epoch (int64_t), 0 meaning "none".
 */
#ifndef SPINUP_SPEC_H
#define SPINUP_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define SPEC_NAME_MAX 63        /* DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])? */
#define SPEC_OWNER_MAX 128
#define SPEC_ASG_MAX 255
#define SPEC_REGION_MAX 32
#define SPEC_IMAGE_MAX 255
#define SPEC_TEMPLATE_MAX 63
#define SPEC_BUCKET_MAX 63
#define SPEC_PREFIX_MAX 255
#define SPEC_LABELS_MAX 16
#define SPEC_LABEL_KEY_MAX 63
#define SPEC_LABEL_VALUE_MAX 63

/* Ranges (inclusive), mirrored by CHECK constraints in the schema. */
#define SPEC_SLOTS_MIN 1
#define SPEC_SLOTS_MAX 64
#define SPEC_WARM_MAX 100
#define SPEC_INSTANCES_MAX 10000
#define SPEC_CPU_MILLI_MIN 100          /* 0.1 core */
#define SPEC_CPU_MILLI_MAX 64000        /* 64 cores */
#define SPEC_MEMORY_MIB_MIN 256
#define SPEC_MEMORY_MIB_MAX 262144      /* 256 GiB */
#define SPEC_IDLE_TIMEOUT_MIN_S 0       /* 0: never stop for idleness */
#define SPEC_IDLE_TIMEOUT_MAX_S 604800  /* one week */

enum ws_state {
	WS_STATE_RUNNING,
	WS_STATE_STOPPED,
	WS_STATE_MAX
};

/* "Running", "Stopped"; NULL for out-of-range values. */
const char *ws_state_name(enum ws_state s);
/* Parse "Running"/"Stopped" (exact case). 0 or SP_EINVAL. */
int ws_state_parse(const char *s, enum ws_state *out);

struct label {
	char key[SPEC_LABEL_KEY_MAX + 1];
	char value[SPEC_LABEL_VALUE_MAX + 1];
};

struct pool_spec {
	int64_t id;                       /* database id; 0 when from a manifest */
	char name[SPEC_NAME_MAX + 1];
	char asg_name[SPEC_ASG_MAX + 1];
	char region[SPEC_REGION_MAX + 1];
	int slots_per_instance;           /* workspaces one instance holds */
	int warm_instances;               /* idle instances kept ready */
	int min_instances;
	int max_instances;
	int agent_port;                   /* 1..65535 */
	char default_image[SPEC_IMAGE_MAX + 1];
	int64_t generation;
	int64_t paused_until;             /* ms; 0 = not paused; INT64_MAX = until resumed */
	int observe_only;                 /* plan and report, never act */
	int64_t safety_clear_requested_at; /* ms; clears a safety stop entered before it,
					      echoed in pool_record.clear_handled_at */
};

struct workspace_spec {
	int64_t id;                       /* database id; 0 when from a manifest */
	char name[SPEC_NAME_MAX + 1];     /* unique within its pool */
	char owner[SPEC_OWNER_MAX + 1];
	char pool[SPEC_NAME_MAX + 1];
	enum ws_state state;
	char template_name[SPEC_TEMPLATE_MAX + 1]; /* optional, "" = none */
	char image[SPEC_IMAGE_MAX + 1];   /* "" = the pool's default image */
	int cpu_milli;
	int memory_mib;
	char bucket[SPEC_BUCKET_MAX + 1];
	char prefix[SPEC_PREFIX_MAX + 1];
	int idle_timeout_s;
	struct label labels[SPEC_LABELS_MAX];
	int nlabels;
	int64_t generation;               /* bumped by the database on spec change */
	int64_t deletion_requested_at;    /* ms; 0 = not marked for deletion */
	int64_t paused_until;             /* ms; 0 = not paused */
	int64_t reconcile_requested_at;   /* ms; "reconcile now" request, echoed in status */
};

/* Defaults a manifest gets for omitted optional fields. */
void pool_spec_defaults(struct pool_spec *p);
void workspace_spec_defaults(struct workspace_spec *w);

/*
 * Validate a name as a DNS label (RFC 1123: 1-63 chars, lowercase
 * alphanumerics and '-', not starting or ending with '-').
 * Returns 0 or SP_EINVAL with a reason in e.
 */
struct err;
int spec_name_valid(const char *name, struct err *e);

/*
 * The text rules, shared by the manifest decoder, workspace_spec_validate()
 * and the schema's CHECK constraints (migration 003), so a value the web UI
 * writes is held to exactly what a manifest may say. Each returns 1 if valid.
 *   spec_text_valid:      no control characters (owner, prefix, label values)
 *   spec_token_valid:     non-empty, printable, no spaces (image, asg, region)
 *   spec_bucket_valid:    an S3 bucket name: 3-63 of [a-z0-9.-], not starting
 *                         or ending with '.' or '-'
 *   spec_label_key_valid: 1-63 of letters, digits, '-', '_', '.', '/'
 */
int spec_text_valid(const char *s);
int spec_token_valid(const char *s);
int spec_bucket_valid(const char *s);
int spec_label_key_valid(const char *s);

/* Validate every field of a spec against the rules above. 0 or SP_EINVAL. */
int pool_spec_validate(const struct pool_spec *p, struct err *e);
int workspace_spec_validate(const struct workspace_spec *w, struct err *e);

#endif
