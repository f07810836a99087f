/*
 * agentwire.h - the agent's JSON wire types, shared by spinup-agent (which
 * writes containers and reads ensure requests) and the HTTP driver (which
 * does the reverse). See agent/API.md for the documents themselves.
 *
 * Decoders check types and every size against the named limits below and
 * the fixed fields of model/observed.h; a field too long is SP_ELIMIT, a
 * wrong type or missing required field SP_EINVAL, both with the field named
 * in e. Outputs are untouched on failure. Encoders return a new jansson
 * reference (caller owns) or NULL when out of memory.
 */
#ifndef SPINUP_AGENTWIRE_H
#define SPINUP_AGENTWIRE_H

#include <jansson.h>

#include "../model/err.h"
#include "../model/observed.h"

#define AGENTWIRE_API "/v1"
#define AGENTWIRE_DEFAULT_PORT 7070           /* where spinup-agent listens unless told */
#define AGENTWIRE_REQUEST_MAX (64 * 1024)     /* bytes of a request body */
#define AGENTWIRE_RESPONSE_MAX (1024 * 1024)  /* bytes of a response body */
#define AGENTWIRE_CONTAINERS_MAX 256          /* containers in one list */

json_t *agentwire_req_encode(const struct container_req *r);
int agentwire_req_decode(const json_t *j, struct container_req *r, struct err *e);

json_t *agentwire_container_encode(const struct obs_container *c);
int agentwire_container_decode(const json_t *j, struct obs_container *c, struct err *e);

/*
 * Map an agent's error response to an SP_E* code: the HTTP status and the
 * body's "code" ("stale_epoch" -> SP_EFENCED, "not_found" -> SP_ENOTFOUND,
 * ...). code may be NULL.
 */
int agentwire_error_code(long http_status, const char *code);

#endif
