/*
 * awscreds.h - AWS credentials and region, resolved the way the AWS SDKs do.
 *
 * Chain, first match wins:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. shared files for the profile (AWS_PROFILE, else "default"):
 *      AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, section [NAME]),
 *      then AWS_CONFIG_FILE (default ~/.aws/config, section [profile NAME],
 *      or [default]); a file holding a secret that others may read is refused
 *   3. IMDSv2 on EC2: PUT /latest/api/token (TTL header), then GET the role
 *      name and its credentials; the endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      (default http://169.254.169.254); AWS_EC2_METADATA_DISABLED=true skips it
 * Region: AWS_REGION, AWS_DEFAULT_REGION, then `region` in the config file.
 *
 * The environment is read once by awscreds_new; sources are consulted by
 * awscreds_get. Static credentials (env, files) are resolved once; IMDS
 * credentials are refreshed AWSCREDS_REFRESH_MARGIN_S before they expire
 * (a failed refresh keeps the old ones while they are still valid).
 * Refreshes are paced by the now_s the caller passes (no clock read here):
 * while the held credentials are valid, at most one attempt per
 * AWSCREDS_REFRESH_INTERVAL_S, whatever its outcome (IMDS may serve the same
 * credentials for minutes inside the margin); with none valid, a failed
 * attempt is repeated at most once per AWSCREDS_RETRY_INTERVAL_S, and calls
 * in between return its error at once instead of waiting on IMDS again.
 *
 * Secrets never reach logs or error messages; every copy this module holds
 * is wiped (OPENSSL_cleanse) when replaced or freed. Blocking: awscreds_get
 * may make up to three HTTP calls to IMDS, each bounded by the timeouts.
 */
#ifndef SPINUP_AWSCREDS_H
#define SPINUP_AWSCREDS_H

#include <stdint.h>

#include "../model/err.h"
#include "sigv4.h"

#define AWSCREDS_KEY_MAX 128           /* access key id */
#define AWSCREDS_SECRET_MAX 128        /* secret access key */
#define AWSCREDS_TOKEN_MAX 4096        /* session token */
#define AWSCREDS_FILE_MAX (64 * 1024)  /* shared credentials/config file size */
#define AWSCREDS_IMDS_BODY_MAX (16 * 1024)
#define AWSCREDS_REFRESH_MARGIN_S (15 * 60)
#define AWSCREDS_REFRESH_INTERVAL_S 60  /* between refreshes of valid credentials */
#define AWSCREDS_RETRY_INTERVAL_S 5     /* between attempts when none are valid */
#define AWSCREDS_IMDS_TOKEN_TTL_S 21600

enum awscreds_source {
	AWSCREDS_NONE,
	AWSCREDS_ENV,
	AWSCREDS_FILE,
	AWSCREDS_IMDS,
	AWSCREDS_STATIC,    /* given in the config */
	AWSCREDS_SOURCE_MAX
};

struct awscreds_config {
	const char *profile;            /* NULL: AWS_PROFILE, else "default" */
	const char *region;             /* NULL: from env / config file */
	long imds_connect_timeout_ms;   /* 0: 1000 */
	long imds_timeout_ms;           /* 0: 2000 */
	/* Optional fixed credentials (tests, the demo); bypass the chain when set. */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
};

struct awscreds;

/* Read the environment and config. 0, SP_ENOMEM, SP_EINVAL (a value too long). */
int awscreds_new(const struct awscreds_config *cfg, struct awscreds **out, struct err *e);

/*
 * Current credentials at time now_s (seconds since the epoch). The strings
 * in out are lent: valid until the next awscreds_get or awscreds_free.
 * SP_ENOTFOUND when no source has credentials (the message names every
 * source tried), SP_EDENIED for a refused file, SP_EPROTO / SP_ETIMEOUT /
 * SP_EIO for IMDS failures (within AWSCREDS_RETRY_INTERVAL_S of a failed
 * attempt: that attempt's code and message, without a new one).
 */
int awscreds_get(struct awscreds *c, int64_t now_s, struct sigv4_creds *out, struct err *e);

/* The region, "" when none is configured. */
const char *awscreds_region(const struct awscreds *c);
/*
 * When no region is configured, ask IMDSv2 (/latest/meta-data/placement/region)
 * and keep the answer. 0 when a region is known afterwards; SP_ENOTFOUND when
 * IMDS is disabled; IMDS errors as for awscreds_get. Blocks like awscreds_get.
 */
int awscreds_resolve_region(struct awscreds *c, int64_t now_s, struct err *e);
/* Where the current credentials came from. */
enum awscreds_source awscreds_source(const struct awscreds *c);
const char *awscreds_source_name(enum awscreds_source s);
/* Expiration of the current credentials (seconds), 0 when they do not expire. */
int64_t awscreds_expiration(const struct awscreds *c);

void awscreds_free(struct awscreds *c);

#endif
