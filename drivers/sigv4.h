/*
 * sigv4.h - AWS Signature Version 4: signing requests, and verifying them
 * (the local provider checks every request with the same code).
 *
 * A request is described by struct sigv4_req: method, path (not yet
 * URI-encoded-normalised: the signer normalises it as AWS does for non-S3
 * services), raw query string, headers (name/value pairs as sent, in any
 * order, duplicates allowed), and the payload. Signing computes the
 * canonical request, the string to sign and the Authorization header, and
 * can return each (tests compare them with the AWS test suite).
 *
 * Secrets: the secret key is only read, never copied into results or
 * error messages.
 */
#ifndef SPINUP_SIGV4_H
#define SPINUP_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"
#include "../model/strbuf.h"

#define SIGV4_MAX_HEADERS 64
/* The clock skew AWS tolerates between X-Amz-Date and the server (15 minutes). */
#define SIGV4_DEFAULT_SKEW_S 900

struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_req {
	const char *method;            /* "GET", "POST" */
	const char *path;              /* "/", "/example/path" */
	const char *query;             /* raw query string without '?', or "" */
	const struct sigv4_header *headers;
	size_t nheaders;
	const void *payload;
	size_t payload_len;
};

struct sigv4_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;     /* NULL or "" when none */
};

struct sigv4_scope {
	const char *region;            /* "us-east-1" */
	const char *service;           /* "autoscaling", "ec2" */
	const char *amz_date;          /* "20150830T123600Z" (X-Amz-Date) */
};

/* What signing produced; each is optional (pass NULL for what you don't need). */
struct sigv4_out {
	struct strbuf *canonical_request;
	struct strbuf *string_to_sign;
	struct strbuf *authorization;  /* the Authorization header value */
	struct strbuf *signed_headers; /* "host;x-amz-date" */
};

/*
 * Sign req. The headers must already contain Host and X-Amz-Date (and
 * X-Amz-Security-Token when a session token is used); the caller adds the
 * Authorization header from out->authorization. 0, SP_EINVAL, SP_ENOMEM.
 * A session token in creds that is not among the headers is signed as an
 * X-Amz-Security-Token header all the same: the caller must then send it.
 */
int sigv4_sign(const struct sigv4_req *req, const struct sigv4_creds *creds,
	       const struct sigv4_scope *scope, struct sigv4_out *out, struct err *e);

/* Hex SHA-256 of data (64 chars + NUL into out). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Verify a received request that carries an Authorization header.
 * lookup_secret maps the access key id in the credential scope to its
 * secret (returns NULL if unknown). Checks the algorithm, the scope's
 * service and region, that the date is within max_skew_s of now_s, and the
 * signature (constant-time). On failure: SP_EDENIED with e naming the AWS
 * error code to return ("SignatureDoesNotMatch", "InvalidClientTokenId",
 * "IncompleteSignature", "RequestExpired") as the message's first word.
 */
int sigv4_verify(const struct sigv4_req *req, const char *region, const char *service,
		 const char *(*lookup_secret)(void *ctx, const char *access_key_id), void *ctx,
		 int64_t now_s, int64_t max_skew_s, struct err *e);

#endif
