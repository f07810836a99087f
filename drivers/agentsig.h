/*
 * agentsig.h - signing and verifying agent requests (HMAC-SHA256), shared by
 * the agent (verify) and the HTTP agent driver (sign).
 *
 * Every request to a spinup-agent carries four headers:
 *
 *   X-Spinup-Timestamp  unix seconds when it was signed
 *   X-Spinup-Nonce      32 lowercase hex characters, random per request
 *   X-Spinup-Epoch      the caller's fencing epoch (decimal, >= 0)
 *   X-Spinup-Signature  lowercase hex HMAC-SHA256(secret, string-to-sign)
 *
 * with the string to sign
 *
 *   "SPINUP-HMAC-SHA256\n" METHOD "\n" PATH "\n" TIMESTAMP "\n" NONCE "\n"
 *   EPOCH "\n" hex(SHA-256(body))
 *
 * PATH is the request path without the query string. The nonce makes two
 * identical requests in the same second distinct, so the agent can refuse
 * any repeated signature as a replay.
 *
 * The shared secret is read from a file that group and others cannot read
 * (mode & 077 == 0); agentsig_key_load refuses anything else. The key bytes
 * never reach an error message or a log. Signatures are compared with
 * CRYPTO_memcmp (constant time).
 */
#ifndef SPINUP_AGENTSIG_H
#define SPINUP_AGENTSIG_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"

#define AGENTSIG_HDR_TIMESTAMP "X-Spinup-Timestamp"
#define AGENTSIG_HDR_NONCE "X-Spinup-Nonce"
#define AGENTSIG_HDR_EPOCH "X-Spinup-Epoch"
#define AGENTSIG_HDR_SIGNATURE "X-Spinup-Signature"

#define AGENTSIG_SKEW_MAX_S 300      /* requests older or newer than this are refused */
#define AGENTSIG_SECRET_MIN 16       /* bytes, after trailing whitespace is dropped */
#define AGENTSIG_SECRET_MAX 1024
#define AGENTSIG_HEX_LEN 64          /* a signature in hex */
#define AGENTSIG_NONCE_LEN 32        /* a nonce in hex */
#define AGENTSIG_REPLAY_MAX 8192     /* signatures remembered by a replay cache */

struct agentsig_key {
	unsigned char bytes[AGENTSIG_SECRET_MAX];
	size_t len;
};

/*
 * Load the secret from path. Refuses (SP_EDENIED) a file group or others
 * may read, or one that is not a regular file; SP_EINVAL when it is shorter
 * than AGENTSIG_SECRET_MIN, SP_ELIMIT when longer than AGENTSIG_SECRET_MAX,
 * SP_EIO when it cannot be read. Trailing whitespace is dropped.
 */
int agentsig_key_load(struct agentsig_key *k, const char *path, struct err *e);
/* Overwrite the key bytes; accepts NULL. */
void agentsig_key_wipe(struct agentsig_key *k);

/* A fresh random nonce (AGENTSIG_NONCE_LEN hex chars + NUL). 0 or SP_EINTERNAL. */
int agentsig_nonce(char out[AGENTSIG_NONCE_LEN + 1], struct err *e);

/* Sign; writes AGENTSIG_HEX_LEN hex chars + NUL to out. 0 or SP_EINVAL (bad input). */
int agentsig_sign(const struct agentsig_key *k, const char *method, const char *path,
		  int64_t ts, const char *nonce, int64_t epoch, const void *body, size_t len,
		  char out[AGENTSIG_HEX_LEN + 1], struct err *e);

/* Why a request was refused (for the agent's error code and its log). */
enum agentsig_why {
	AGENTSIG_OK,
	AGENTSIG_MISSING,      /* a header is absent or malformed */
	AGENTSIG_BAD_SIGNATURE,
	AGENTSIG_SKEW,         /* timestamp more than AGENTSIG_SKEW_MAX_S away from now */
	AGENTSIG_REPLAY,
	AGENTSIG_WHY_MAX
};

/* "ok", "missing_auth", "bad_signature", "clock_skew", "replay". */
const char *agentsig_why_name(enum agentsig_why w);

/* The four header values of a request as received (NULL when absent). */
struct agentsig_hdrs {
	const char *timestamp;
	const char *nonce;
	const char *epoch;
	const char *signature;
};

/*
 * Verify a request against now (unix seconds). On success returns 0 and
 * sets *ts and *epoch; otherwise SP_EDENIED with *why saying which check
 * failed. The signature is checked before the clock, so an unsigned caller
 * learns nothing about the agent's time.
 */
int agentsig_verify(const struct agentsig_key *k, const char *method, const char *path,
		    const struct agentsig_hdrs *h, const void *body, size_t len, int64_t now,
		    int64_t *ts, int64_t *epoch, enum agentsig_why *why, struct err *e);

/*
 * A bounded memory of recently accepted signatures. agentsig_replay_check
 * records sig (hex) with its timestamp and returns 0, or SP_EDENIED when it
 * was seen already. Entries older than the skew window are forgotten (a
 * request that old is refused by the clock check anyway). When full of live
 * entries, the oldest is evicted and every timestamp up to its one is
 * refused from then on, so the guarantee holds with bounded memory.
 */
struct agentsig_replay;
struct agentsig_replay *agentsig_replay_new(size_t max);
void agentsig_replay_free(struct agentsig_replay *r);
int agentsig_replay_check(struct agentsig_replay *r, const char *sig, int64_t ts, int64_t now,
			  struct err *e);

#endif
