/*
 * lcapi.h - the Query API of the local provider: form parameters in, the
 * documented XML answer (or error document) out, over an lcworld.
 *
 * Auto Scaling (Version 2011-01-01, namespace
 * http://autoscaling.amazonaws.com/doc/2011-01-01/): DescribeAutoScalingGroups
 * (AutoScalingGroupNames.member.N, MaxRecords 1..100, NextToken),
 * SetDesiredCapacity, SetInstanceProtection (at most 50 ids),
 * TerminateInstanceInAutoScalingGroup, SetInstanceHealth. Errors are
 * <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>.
 *
 * EC2 (Version 2016-11-15, namespace http://ec2.amazonaws.com/doc/2016-11-15/):
 * DescribeInstances with InstanceId.N (an unknown or not yet visible id is
 * InvalidInstanceID.NotFound, as AWS answers) or Filter.N.Name/Value.M on
 * instance-id, tag:aws:autoscaling:groupName and instance-state-name (no
 * match is simply absent; tag and state values match as EC2's do, '*' and
 * '?' wildcards, '\' escaping the next character; instance ids exactly; an
 * untagged instance matches no tag filter and has an empty tagSet);
 * MaxResults 5..1000 (not with InstanceId.N), and
 * NextToken (opaque; a bad one is InvalidPaginationToken). Without
 * MaxResults every match comes in one page. Errors are
 * <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/>.
 *
 * No I/O, no clock (now is a parameter). Every value that comes from the
 * request and goes into a document is XML-escaped.
 */
#ifndef SPINUP_LCAPI_H
#define SPINUP_LCAPI_H

#include <stddef.h>
#include <stdint.h>

#include "../model/strbuf.h"
#include "lcworld.h"

#define LCAPI_ASG_VERSION "2011-01-01"
#define LCAPI_EC2_VERSION "2016-11-15"
#define LCAPI_ASG_XMLNS "http://autoscaling.amazonaws.com/doc/2011-01-01/"
#define LCAPI_EC2_XMLNS "http://ec2.amazonaws.com/doc/2016-11-15/"
#define LCAPI_MAX_PARAMS 1024          /* parameters in one request */
#define LCAPI_MAX_FILTER_VALUES 1000   /* values over all filters of one call */
#define LCAPI_PROTECT_MAX 50           /* SetInstanceProtection ids per call */

enum lcapi_service { LCAPI_ASG, LCAPI_EC2 };

struct lcapi_param {
	char *k, *v;
};

/*
 * Split a form-encoded body (modified in place) into params, decoding
 * %XX and '+'. 0, or SP_ELIMIT over max params.
 */
int lcapi_parse_form(char *body, struct lcapi_param *p, size_t max, size_t *n);
/* The value of the first parameter named k, or NULL. */
const char *lcapi_param_get(const struct lcapi_param *p, size_t n, const char *k);
/* The service an action belongs to; -1 when the action is unknown. */
int lcapi_action_service(const char *action);

struct lcapi_opts {
	int page_cap;       /* > 0: DescribeInstances pages hold at most this many */
};

struct lcapi_resp {
	unsigned status;    /* HTTP status */
	char code[64];      /* the error code, "" on success */
	struct strbuf body;
};

void lcapi_resp_init(struct lcapi_resp *r);
void lcapi_resp_release(struct lcapi_resp *r);

/*
 * Handle one request of service svc (Action and Version among the
 * params); fills r (status, body, code). request_id goes into the answer.
 * Returns 0, or SP_ENOMEM when the answer could not be built.
 */
int lcapi_handle(struct lcworld *w, enum lcapi_service svc, const struct lcapi_param *p,
		 size_t n, const struct lcapi_opts *o, int64_t now, const char *request_id,
		 struct lcapi_resp *r);

/* An error document of the service into r (status, code, message). */
int lcapi_error(enum lcapi_service svc, unsigned status, const char *code, const char *msg,
		const char *request_id, struct lcapi_resp *r);

/* Append s XML-escaped. */
int lcapi_xml_escape(struct strbuf *sb, const char *s);

#endif
